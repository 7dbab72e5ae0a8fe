//! What a room type does with its members' messages. The [`Room`] actor owns
//! membership, presence and ordering; a [`RoomBehaviour`] decides the rest.
//! Chat is the first behaviour; lobbies and matches come as others.
//!
//! [`Room`]: super::Room

use std::sync::Arc;

use crate::protocol::{ChatText, RoomName};
use crate::room::Member;

/// The hooks a room type implements. They run on the room's thread, in the
/// room's order, and must not block.
pub trait RoomBehaviour: Send + 'static {
    /// `member` joined `room`; presence has already been sent.
    fn on_join(&mut self, _room: &RoomName, _member: &Member) {}

    /// `member` left `room` (or was removed); presence has already been sent.
    fn on_leave(&mut self, _room: &RoomName, _member: &Member) {}

    /// A member sent `text`: `Some` is broadcast to every member (sender
    /// included), `None` drops it.
    fn on_chat(&mut self, room: &RoomName, from: &Member, text: ChatText) -> Option<ChatText>;
}

/// Builds the behaviour for a room being created, from its name.
pub type BehaviourFactory = Arc<dyn Fn(&RoomName) -> Box<dyn RoomBehaviour> + Send + Sync>;

/// Plain chat: every message goes to every member as sent.
#[derive(Debug, Default)]
pub struct Chat;

impl RoomBehaviour for Chat {
    fn on_chat(&mut self, _room: &RoomName, _from: &Member, text: ChatText) -> Option<ChatText> {
        Some(text)
    }
}

/// The factory giving every room the [`Chat`] behaviour.
pub fn chat_rooms() -> BehaviourFactory {
    Arc::new(|_| Box::new(Chat))
}
