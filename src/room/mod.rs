//! Rooms: a room's membership, presence and order ([`Room`]), and the room
//! plugin it runs ([`RoomPlugin`]), chosen by kind when the room is created.
//!
//! A room reads commands from a bounded inbox ([`Config::room_inbox`]) and
//! handles them one at a time, so its sequence number orders everything its
//! members see: each `ChatMessage`, `MemberJoined`, `MemberLeft` and
//! broadcast `RoomEvent` takes the next `seq`, is encoded once, and is pushed
//! to every member's outbox. A member whose outbox is full is a slow
//! consumer: it is closed with SLOW_CONSUMER and removed, and the others lose
//! nothing.
//!
//! A room lives while anyone holds its [`RoomHandle`]. When its last member
//! leaves (or its plugin closes it) it stops taking joins and reports itself
//! empty through the [`OnEmpty`] callback its owner gave it (the room
//! directory, which then forgets it); once the last handle is dropped its
//! inbox ends and the actor stops. Public rooms are listed in a shared
//! [`Listing`] for `ListRooms` and `QuickJoin`.
//!
//! [`Config::room_inbox`]: crate::Config::room_inbox

mod actor;
mod context;
mod core;
mod held;
mod history;
mod hooks;
mod kinds;
mod listing;
mod membership;
mod plugin;
mod relay;
mod seat;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use self::actor::Room;
pub use self::context::RoomCtx;
pub use self::core::{room_left, slow_consumer};
pub use self::kinds::Kinds;
pub use self::listing::{Listed, Listing, room_info};
pub use self::plugin::{CHAT, Chat, Factory, Input, LeaveReason, RoomPlugin, RoomSettings, factory};
pub use self::relay::{Relay, RelayReader, Relayed, Route, WeakRelay, relay};
pub use self::seat::Seat;
use crate::broadcast::Broadcaster;
use crate::ids::{RoomId, SessionId};
use crate::inbox::{Inbox, Reply};
use crate::lifecycle::Hooks;
use crate::protocol::{ChatText, PlayerName, Recover, pb};
use crate::stats::Stats;

/// A room kind's name, as registered.
pub type Kind = Arc<str>;

/// A room member as others see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's session.
    pub id: SessionId,
    /// The member's player name.
    pub name: PlayerName,
}

impl Member {
    fn to_pb(&self) -> pb::Member {
        pb::Member {
            session_id: self.id.get(),
            name: self.name.as_str().to_owned(),
        }
    }
}

/// Sent on a session's behalf to join; answered on `accepted`. The
/// `RoomJoined` reply goes by `route`.
#[derive(Debug)]
pub struct Join {
    /// Echoed by `RoomJoined`.
    pub request_id: u64,
    /// Who joins.
    pub member: Member,
    /// Where the joiner's frames go.
    pub route: Route,
    /// The joiner's seat, vacated when it leaves.
    pub seat: Seat,
    /// For the plugin's join attempt.
    pub metadata: Bytes,
    /// Recover from this seq of this epoch, if the room can.
    pub recover: Option<Recover>,
    /// Whether the room took the member.
    pub accepted: Reply<Admission>,
}

/// Sent by a Session leaving the room, on request (`request_id` set, answered
/// with `RoomLeft`) or because it is going away (`request_id` 0).
#[derive(Debug)]
pub struct Leave {
    /// Echoed by `RoomLeft`; 0 sends no `RoomLeft`.
    pub request_id: u64,
    /// Who leaves.
    pub session: SessionId,
}

/// Sent by a Session with a member's chat text.
#[derive(Debug)]
pub struct ChatSent {
    /// Echoed by the sender's copy.
    pub request_id: u64,
    /// The sender, who must be a member.
    pub session: SessionId,
    /// The text.
    pub text: ChatText,
}

/// Sent by a Session with a member's `RoomSend`.
#[derive(Debug)]
pub struct PluginSent {
    /// Echoed by an error about it.
    pub request_id: u64,
    /// The sender, who must be a member.
    pub session: SessionId,
    /// The plugin's opcode.
    pub op: u32,
    /// The plugin's bytes.
    pub data: Bytes,
}

/// A room's answer to [`Join`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// In; `RoomJoined` was queued.
    Joined,
    /// The room is closing (it emptied): the directory has a fresh one.
    Closing,
    /// Not taken: the joiner's connection is closing.
    Refused,
    /// The joiner is a member already.
    AlreadyMember,
    /// The room holds as many members as allowed.
    Full,
    /// The room's plugin locked it.
    Locked,
    /// The room's plugin refused the joiner (or could not make the room), saying why.
    Rejected(String),
    /// The room is owned by another node, which could not be reached.
    Unavailable(String),
}

/// What a room's inbox carries.
#[derive(Debug)]
pub enum RoomCommand {
    /// See [`Join`].
    Join(Join),
    /// See [`Leave`].
    Leave(Leave),
    /// See [`ChatSent`].
    Chat(ChatSent),
    /// See [`PluginSent`].
    Send(PluginSent),
    /// Sent by a session whose connection is going while it is held for a
    /// resume (its seats held): the room keeps the member but sends it nothing.
    Hold(SessionId),
    /// Sent by the directory at shutdown: answered once everything queued before it is handled.
    Drain(Reply<()>),
    /// Closes the room: every member gets `RoomLeft` with this reason.
    Close(String),
}

/// A room's address: its bounded inbox, which room of its name it is, and its kind; cheap to clone.
#[derive(Debug, Clone)]
pub struct RoomHandle {
    inbox: Inbox<RoomCommand>,
    id: RoomId,
    kind: Kind,
}

impl RoomHandle {
    /// The handle of a room that reads `inbox`: room `id` of its name, of `kind`.
    pub fn new(inbox: Inbox<RoomCommand>, id: RoomId, kind: Kind) -> RoomHandle {
        RoomHandle { inbox, id, kind }
    }

    /// Identifies this room among all rooms ever created with its name.
    pub fn id(&self) -> RoomId {
        self.id
    }

    /// The room's inbox.
    pub fn inbox(&self) -> &Inbox<RoomCommand> {
        &self.inbox
    }

    /// The room's kind.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }
}

/// Told, once, that a room emptied: its name and id. The room's owner (the
/// room directory) provides it, so that rooms need not know their owner.
pub type OnEmpty = Arc<dyn Fn(crate::protocol::RoomName, RoomId) + Send + Sync>;

/// Identifies a timer a plugin set, to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(u64);

/// What the server allows plugins, and which kinds it has.
#[derive(Clone)]
pub struct PluginLimits {
    /// The registered kinds.
    pub kinds: Arc<Kinds>,
    /// [`Config::plugin_hook_budget_us`](crate::Config::plugin_hook_budget_us).
    pub hook_budget: Duration,
    /// [`Config::plugin_max_timers`](crate::Config::plugin_max_timers).
    pub max_timers: usize,
    /// [`Config::plugin_max_inputs`](crate::Config::plugin_max_inputs).
    pub max_inputs: usize,
    /// [`Config::plugin_max_tick_hz`](crate::Config::plugin_max_tick_hz).
    pub max_tick_hz: u32,
}

/// Everything a room needs from the server around it.
#[derive(Clone)]
pub struct RoomContext {
    /// Where the room reports that it is empty.
    pub on_empty: OnEmpty,
    /// Fans frames out to members.
    pub broadcaster: Arc<Broadcaster>,
    /// The kinds, and what plugins may use.
    pub plugins: PluginLimits,
    /// Public rooms, for `ListRooms` and `QuickJoin`.
    pub listing: Arc<Listing>,
    /// Server-wide figures.
    pub stats: Arc<Stats>,
    /// Where the room reports its end.
    pub hooks: Hooks,
    /// [`Config::room_inbox`](crate::Config::room_inbox).
    pub inbox: usize,
    /// [`Config::max_room_members`](crate::Config::max_room_members).
    pub max_members: usize,
    /// Members per member list frame ([`Config::members_per_frame`](crate::Config::members_per_frame)).
    pub members_per_frame: usize,
    /// [`Config::room_history_size`](crate::Config::room_history_size).
    pub history_size: usize,
    /// [`Config::room_history_ttl_ms`](crate::Config::room_history_ttl_ms).
    pub history_ttl: Duration,
    /// [`Config::resume_grace_ms`](crate::Config::resume_grace_ms); zero when sessions are not held.
    pub resume_grace: Duration,
}
