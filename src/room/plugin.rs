//! The room plugin interface: what a studio implements to put its own logic
//! (a lobby, a card table, a match, a moderated chat) into a room. Tavern
//! keeps the connections, membership, ordering, fan-out, limits and metrics;
//! the plugin decides what members' messages mean.
//!
//! A plugin is compiled in and registered by kind on the server
//! (`Server::room_kind`). Its hooks run on the room's thread, one at a time,
//! in the room's order, so its state needs no locks. Each hook gets a
//! [`RoomCtx`] through which it sends, kicks, labels, locks, sets timers and
//! closes the room. A hook must not block: it runs on an event loop that
//! other rooms share, and one that runs longer than
//! [`Config::plugin_hook_budget_us`](crate::Config::plugin_hook_budget_us) is
//! logged and counted. A hook that panics closes its room (and only its room).

use std::sync::Arc;

use bytes::Bytes;

use super::RoomCtx;
use crate::protocol::{ChatText, RoomName};
use crate::room::Member;

/// The hooks of a room kind. Only [`RoomPlugin::create`] is required.
pub trait RoomPlugin: Send + 'static {
    /// Makes the plugin of a new room from the `params` of the join that
    /// creates it (their schema is the plugin's), and the room's settings.
    ///
    /// # Errors
    /// Why the room cannot be made: the joiner gets `JOIN_REJECTED` with it.
    fn create(room: &RoomName, params: &[u8]) -> Result<(Self, RoomSettings), String>
    where
        Self: Sized;

    /// May `joiner` come in? `metadata` is its join's (the plugin's schema).
    /// Runs after the room's own checks (closing, full, locked).
    ///
    /// # Errors
    /// Why not: the joiner gets `JOIN_REJECTED` with it.
    fn join_attempt(&mut self, _room: &mut RoomCtx<'_>, _joiner: &Member, _metadata: &[u8]) -> Result<(), String> {
        Ok(())
    }

    /// What a joiner receives as `RoomJoined.state`: the plugin's state as of
    /// the join, as this joiner may see it. Empty unless overridden.
    fn snapshot(&mut self, _room: &RoomCtx<'_>, _joiner: &Member) -> Bytes {
        Bytes::new()
    }

    /// `member` joined: everyone has seen `MemberJoined`, and the joiner its
    /// `RoomJoined`, so what this hook sends reaches the joiner after both.
    fn join(&mut self, _room: &mut RoomCtx<'_>, _member: &Member) {}

    /// `member`'s connection dropped, and its session is held for a resume
    /// ([`Config::resume_grace_ms`](crate::Config::resume_grace_ms)): it keeps
    /// its seat (the others are told nothing) but is sent nothing meanwhile.
    /// [`RoomPlugin::reconnected`] follows if it comes back in time;
    /// otherwise [`RoomPlugin::leave`], with [`LeaveReason::Disconnected`].
    fn dropped(&mut self, _room: &mut RoomCtx<'_>, _member: &Member) {}

    /// `member`, held since its connection dropped, took its seat back on a
    /// new connection: it has its `RoomJoined` (and the events it missed, if
    /// it could recover them), so what this hook sends reaches it after those.
    fn reconnected(&mut self, _room: &mut RoomCtx<'_>, _member: &Member) {}

    /// `member` left, for `reason`; the others have been told.
    fn leave(&mut self, _room: &mut RoomCtx<'_>, _member: &Member, _reason: LeaveReason) {}

    /// A member's `RoomSend`, in a room without a tick. (A ticked room
    /// gets its members' messages batched, in [`RoomPlugin::tick`].)
    fn message(&mut self, _room: &mut RoomCtx<'_>, _from: &Member, _op: u32, _data: Bytes) {}

    /// A member's chat text: `Some` is broadcast to every member (the sender
    /// included) as a `ChatMessage` with the room's next seq; `None` drops it.
    /// Unless overridden, every kind carries chat as sent.
    fn chat(&mut self, _room: &mut RoomCtx<'_>, _from: &Member, text: ChatText) -> Option<ChatText> {
        Some(text)
    }

    /// One tick of a room whose settings ask for a tick rate, with the
    /// members' messages since the last tick, in arrival order.
    fn tick(&mut self, _room: &mut RoomCtx<'_>, _inputs: Vec<Input>) {}

    /// A timer the plugin set went off; `tag` is the one it gave.
    fn timer(&mut self, _room: &mut RoomCtx<'_>, _tag: u64) {}

    /// The room is going away: its members have been told (or it is empty).
    /// Nothing it sends reaches anyone.
    fn dispose(&mut self, _room: &mut RoomCtx<'_>) {}
}

/// A room's settings, from [`RoomPlugin::create`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomSettings {
    /// Most members; 0 or anything above the server's
    /// [`max_room_members`](crate::Config::max_room_members) means the server's.
    pub max_members: usize,
    /// Ticks per second; 0 for none (members' messages then go to
    /// [`RoomPlugin::message`] one at a time).
    pub tick_hz: u32,
    /// Lock the room once it holds `max_members` (unlocked again when one leaves).
    pub lock_when_full: bool,
    /// The room's label (`key=value` pairs, see [`Label`](crate::protocol::Label)), for listing and quick join.
    pub label: String,
    /// Left out of `ListRooms` and `QuickJoin`: joined by name only.
    pub private: bool,
}

/// A member's message to a ticked room, kept for its next tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Who sent it.
    pub from: Member,
    /// The plugin's opcode.
    pub op: u32,
    /// The plugin's bytes.
    pub data: Bytes,
}

/// Why a member left a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaveReason {
    /// It asked to (`LeaveRoom`).
    Left,
    /// Its connection ended.
    Disconnected,
    /// It could not keep up and was closed with `SLOW_CONSUMER`.
    SlowConsumer,
    /// The plugin kicked it, saying why.
    Kicked(String),
}

impl LeaveReason {
    /// The reason as `RoomLeft` and `MemberLeft` logs say it.
    pub fn as_str(&self) -> &str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Disconnected => "disconnected",
            LeaveReason::SlowConsumer => "slow consumer",
            LeaveReason::Kicked(reason) => reason,
        }
    }
}

/// Makes a room's plugin: [`RoomPlugin::create`] behind a box.
pub type Factory = Arc<dyn Fn(&RoomName, &[u8]) -> Result<(Box<dyn RoomPlugin>, RoomSettings), String> + Send + Sync>;

/// The factory of plugin type `P`.
pub fn factory<P: RoomPlugin>() -> Factory {
    Arc::new(|room, params| {
        let (plugin, settings) = P::create(room, params)?;
        let plugin: Box<dyn RoomPlugin> = Box::new(plugin);
        Ok((plugin, settings))
    })
}

/// Plain chat, the default kind: every text goes to every member as sent.
#[derive(Debug, Default)]
pub struct Chat;

/// The default kind's name.
pub const CHAT: &str = "chat";

impl RoomPlugin for Chat {
    fn create(_room: &RoomName, _params: &[u8]) -> Result<(Self, RoomSettings), String> {
        Ok((Chat, RoomSettings::default()))
    }
}
