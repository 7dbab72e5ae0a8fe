//! The Room actor: a room's membership, presence and order.
//!
//! A room reads commands from a bounded inbox ([`Config::room_inbox`]) and
//! handles them one at a time, so its sequence number orders everything its
//! members see: each `ChatMessage`, `MemberJoined` and `MemberLeft` takes the
//! next `seq`, is encoded once, and is pushed to every member's outbox. A
//! member whose outbox is full is a slow consumer: it is closed with
//! SLOW_CONSUMER and removed, and the others lose nothing.
//!
//! A room lives while anyone holds its [`RoomHandle`]. When its last member
//! leaves it stops taking joins and reports itself empty through the
//! [`OnEmpty`] callback its owner gave it (the room directory, which then
//! forgets it); once the last handle is dropped its inbox ends and the actor
//! stops.
//!
//! [`Config::room_inbox`]: crate::Config::room_inbox

mod behaviour;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, ActorContext, AsyncContext, Context, StreamHandler};
use bytes::Bytes;
use tracing::{debug, warn};

pub use behaviour::{BehaviourFactory, Chat, RoomBehaviour, chat_rooms};

use crate::broadcast::{Broadcaster, Recipient, Refusal};
use crate::ids::{DisconnectReason, OverloadLevel, RoomId, SessionId};
use crate::inbox::{Inbox, Mailbox, Reply, watched_inbox};
use crate::lifecycle::{Hooks, LifecycleEvent};
use crate::outbox::{Outbox, Queued, SendError};
use crate::protocol::pb::server_message::Body;
use crate::protocol::{self, ChatText, ErrorCode, PlayerName, RoomName, encode_frame, pb};
use crate::stats::Stats;

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
/// `RoomJoined` reply goes to `outbox`.
#[derive(Debug)]
pub struct Join {
    /// Echoed by `RoomJoined`.
    pub request_id: u64,
    /// Who joins.
    pub member: Member,
    /// Where the joiner's frames go.
    pub outbox: Outbox,
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

/// A room's answer to [`Join`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// In; `RoomJoined` was queued.
    Joined,
    /// The room is closing (it emptied): the directory has a fresh one.
    Closing,
    /// Not taken: the joiner's connection is closing, or it is a member already.
    Refused,
    /// The room holds as many members as allowed ([`Config::max_room_members`]).
    ///
    /// [`Config::max_room_members`]: crate::Config::max_room_members
    Full,
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
    /// Sent by the directory at shutdown: answered once everything queued before it is handled.
    Drain(Reply<()>),
}

/// A room's address: its bounded inbox and which room of its name it is; cheap to clone.
#[derive(Debug, Clone)]
pub struct RoomHandle {
    inbox: Inbox<RoomCommand>,
    id: RoomId,
}

impl RoomHandle {
    /// Identifies this room among all rooms ever created with its name.
    pub fn id(&self) -> RoomId {
        self.id
    }

    /// The room's inbox.
    pub fn inbox(&self) -> &Inbox<RoomCommand> {
        &self.inbox
    }
}

/// Told, once, that a room emptied: its name and id. The room's owner (the
/// room directory) provides it, so that rooms need not know their owner.
pub type OnEmpty = Arc<dyn Fn(RoomName, RoomId) + Send + Sync>;

/// Everything a room needs from the server around it.
#[derive(Clone)]
pub struct RoomContext {
    /// Where the room reports that it is empty.
    pub on_empty: OnEmpty,
    /// Fans frames out to members.
    pub broadcaster: Arc<Broadcaster>,
    /// Gives each new room its behaviour.
    pub behaviours: BehaviourFactory,
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
}

/// The room actor. See the module documentation.
pub struct Room {
    name: RoomName,
    id: RoomId,
    seq: u64,
    members: Vec<MemberEntry>,
    index: HashMap<SessionId, usize>,
    behaviour: Box<dyn RoomBehaviour>,
    /// Set when the room became empty and said so: joins are refused.
    closing: bool,
    /// Departures not announced yet: presence is paused while the server is overloaded.
    unannounced: Vec<Member>,
    context: RoomContext,
}

/// A member that refused a frame, and why.
type Refused = (SessionId, SendError);

struct MemberEntry {
    member: Member,
    outbox: Outbox,
}

impl Recipient for MemberEntry {
    fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}

impl Actor for Room {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.context.stats.rooms_open.dec();
        self.context.hooks.emit(LifecycleEvent::RoomDisposed {
            room: self.name.clone(),
        });
    }
}

impl Room {
    /// Starts room `name` (the `id`-th of that name) on `arbiter`.
    pub fn start(name: RoomName, id: RoomId, context: RoomContext, arbiter: &actix::ArbiterHandle) -> RoomHandle {
        let (inbox, mailbox): (_, Mailbox<RoomCommand>) =
            watched_inbox(context.inbox, context.stats.inbox_fill.clone());
        Room::start_in_arbiter(arbiter, move |ctx| {
            ctx.add_stream(mailbox);
            let behaviour = (context.behaviours)(&name);
            Room {
                name,
                id,
                seq: 0,
                members: Vec::new(),
                index: HashMap::new(),
                behaviour,
                closing: false,
                unannounced: Vec::new(),
                context,
            }
        });
        RoomHandle { inbox, id }
    }

    fn join(&mut self, join: Join) {
        if let Some(refusal) = self.refusal(&join) {
            join.accepted.send(refusal);
            // A room that refuses its very first joiner has nobody: it closes like any emptied room.
            self.close_if_empty();
            return;
        }
        let list = self.member_list(&join.member, join.request_id, self.seq + 1);
        let bytes = list.iter().map(Bytes::len).sum();
        if !join.outbox.has_room_for(list.len(), bytes) {
            // Refused before anyone hears of the joiner: its queue cannot take the member list.
            self.slow_consumer(&join.member, &join.outbox);
            join.accepted.send(Admission::Refused);
            self.close_if_empty();
            return;
        }
        self.seq += 1;
        let joined = Body::MemberJoined(pb::MemberJoined {
            room: self.name.to_string(),
            member: Some(join.member.to_pb()),
            seq: self.seq,
        });
        let mut refused = self.broadcast(&encode(0, joined), None);
        self.index.insert(join.member.id, self.members.len());
        self.members.push(MemberEntry {
            member: join.member.clone(),
            outbox: join.outbox,
        });
        join.accepted.send(Admission::Joined);
        if let Some(joiner) = self.members.last()
            && let Some(Err(e)) = list
                .into_iter()
                .map(|frame| joiner.outbox.try_send(frame))
                .find(Result::is_err)
        {
            refused.push((join.member.id, e));
        }
        self.behaviour.on_join(&self.name, &join.member);
        self.remove_refused(refused);
    }

    /// Why `join` is refused, if it is.
    fn refusal(&self, join: &Join) -> Option<Admission> {
        if self.closing {
            Some(Admission::Closing)
        } else if join.outbox.is_closed() || self.index.contains_key(&join.member.id) {
            Some(Admission::Refused)
        } else if self.members.len() >= self.context.max_members {
            Some(Admission::Full)
        } else {
            None
        }
    }

    /// The member list a joiner gets (everyone, `joiner` last) as of `seq`:
    /// `RoomJoined` with the first members and `RoomMembers` with the rest,
    /// each frame holding at most [`RoomContext::members_per_frame`].
    fn member_list(&self, joiner: &Member, request_id: u64, seq: u64) -> Vec<Bytes> {
        let everyone: Vec<pb::Member> = self
            .members
            .iter()
            .map(|m| m.member.to_pb())
            .chain(std::iter::once(joiner.to_pb()))
            .collect();
        let count = u32::try_from(everyone.len()).unwrap_or(u32::MAX);
        let room = self.name.to_string();
        let mut frames = Vec::new();
        for (i, members) in everyone.chunks(self.context.members_per_frame.max(1)).enumerate() {
            let (room, members) = (room.clone(), members.to_vec());
            let body = if i == 0 {
                Body::RoomJoined(pb::RoomJoined {
                    room,
                    members,
                    seq,
                    member_count: count,
                })
            } else {
                Body::RoomMembers(pb::RoomMembers { room, members, seq })
            };
            frames.push(encode(request_id, body));
        }
        frames
    }

    fn leave(&mut self, leave: Leave) {
        let Some(entry) = self.take(leave.session) else { return };
        if leave.request_id != 0 {
            let left = Body::RoomLeft(pb::RoomLeft {
                room: self.name.to_string(),
                reason: "left".into(),
            });
            // A reply that finds the queue full marks the member a slow consumer, as any frame does.
            if let Err(SendError::Full) = entry.outbox.try_send(encode(leave.request_id, left)) {
                self.slow_consumer(&entry.member, &entry.outbox);
            }
        }
        let refused = self.announce_left(&entry, "left");
        self.remove_refused(refused);
    }

    fn chat(&mut self, chat: ChatSent) {
        let Some(&i) = self.index.get(&chat.session) else {
            return;
        };
        let from = self.members[i].member.clone();
        let Some(text) = self.behaviour.on_chat(&self.name, &from, chat.text) else {
            return;
        };
        self.seq += 1;
        // Counted before anyone can see it, so that the count never lags what members saw.
        self.context.stats.chat_messages.inc();
        let mut message = protocol::server_message(
            0,
            Body::Chat(pb::ChatMessage {
                room: self.name.to_string(),
                seq: self.seq,
                from_session: from.id.get(),
                from_name: from.name.to_string(),
                text: text.into_string(),
                server_time_us: protocol::now_us(),
            }),
        );
        let mut refused = self.broadcast(&encode_frame(&message), Some(i));
        message.request_id = chat.request_id;
        if let Err(e) = self.members[i].outbox.try_send(encode_frame(&message)) {
            refused.push((from.id, e));
        }
        let delivered = self.members.len().saturating_sub(refused.len());
        self.context
            .stats
            .deliveries
            .inc_by(u64::try_from(delivered).unwrap_or(u64::MAX));
        self.remove_refused(refused);
    }

    /// Queues `frame` for every member but `skip`; returns who refused it.
    /// (Indices shift as members go, so refusals are named by session.)
    fn broadcast(&self, frame: &Bytes, skip: Option<usize>) -> Vec<Refused> {
        let stats = &self.context.stats;
        let started = stats.detailed().then(Instant::now);
        let refused = self.context.broadcaster.send(frame, &self.members, skip);
        if let Some(started) = started {
            stats.fanout(self.members.len(), started.elapsed());
        }
        refused
            .into_iter()
            .map(|(i, e): Refusal| (self.members[i].member.id, e))
            .collect()
    }

    /// Removes every member that refused a frame and tells the others; then
    /// the same for those that refused that, until everyone left took every
    /// frame. All refusing members go before any presence is sent, so a crowd
    /// leaving at once costs one pass over the room per member, not one
    /// refusal per member per departure.
    fn remove_refused(&mut self, mut refused: Vec<Refused>) {
        while !refused.is_empty() {
            let mut gone = Vec::new();
            for (session, error) in refused.drain(..) {
                let Some(entry) = self.take(session) else { continue };
                let reason = match error {
                    SendError::Full => {
                        self.slow_consumer(&entry.member, &entry.outbox);
                        "slow consumer"
                    }
                    SendError::Closed => "disconnected",
                };
                gone.push((entry, reason));
            }
            for (entry, reason) in gone {
                refused.extend(self.announce_left(&entry, reason));
            }
        }
    }

    fn slow_consumer(&self, member: &Member, outbox: &Outbox) {
        warn!(room = %self.name, session = %member.id, name = %member.name, "slow consumer: outbound queue full, disconnecting");
        self.context.stats.error_sent(ErrorCode::SlowConsumer);
        let error = protocol::error_message(
            0,
            ErrorCode::SlowConsumer,
            "outbound queue full (see Config::outbound_queue_frames and Config::outbound_queue_bytes)",
        );
        let reason = DisconnectReason::SlowConsumer;
        if outbox.close(Queued::Discard, Some(encode_frame(&error)), reason) {
            self.context.stats.disconnected(reason);
        }
    }

    /// Takes `session` out of the member list, if it is in.
    fn take(&mut self, session: SessionId) -> Option<MemberEntry> {
        let i = self.index.remove(&session)?;
        let entry = self.members.swap_remove(i);
        if let Some(moved) = self.members.get(i) {
            self.index.insert(moved.member.id, i);
        }
        Some(entry)
    }

    /// Tells the remaining members that `entry` left (later, while presence
    /// is paused); returns who refused that. The room starts closing when it is empty.
    fn announce_left(&mut self, entry: &MemberEntry, reason: &'static str) -> Vec<Refused> {
        debug!(room = %self.name, session = %entry.member.id, reason, "member left");
        self.behaviour.on_leave(&self.name, &entry.member);
        if self.members.is_empty() {
            self.unannounced.clear();
            self.close_if_empty();
            return Vec::new();
        }
        if self.context.stats.overload() == OverloadLevel::PresencePaused {
            self.unannounced.push(entry.member.clone());
            return Vec::new();
        }
        self.member_left(&entry.member)
    }

    /// With nobody in it, the room refuses further joins and reports itself empty, once.
    fn close_if_empty(&mut self) {
        if self.members.is_empty() && !self.closing {
            self.closing = true;
            (self.context.on_empty)(self.name.clone(), self.id);
        }
    }

    fn member_left(&mut self, member: &Member) -> Vec<Refused> {
        self.seq += 1;
        let left = Body::MemberLeft(pb::MemberLeft {
            room: self.name.to_string(),
            member: Some(member.to_pb()),
            seq: self.seq,
        });
        self.broadcast(&encode(0, left), None)
    }

    /// Announces the departures held back while presence was paused, once it is not.
    fn announce_held_back(&mut self) {
        if self.unannounced.is_empty() || self.context.stats.overload() == OverloadLevel::PresencePaused {
            return;
        }
        let mut refused = Vec::new();
        for member in std::mem::take(&mut self.unannounced) {
            refused.extend(self.member_left(&member));
        }
        self.remove_refused(refused);
    }
}

fn encode(request_id: u64, body: Body) -> Bytes {
    encode_frame(&protocol::server_message(request_id, body))
}

impl StreamHandler<RoomCommand> for Room {
    fn handle(&mut self, command: RoomCommand, _ctx: &mut Context<Self>) {
        self.announce_held_back();
        match command {
            RoomCommand::Join(join) => self.join(join),
            RoomCommand::Leave(leave) => self.leave(leave),
            RoomCommand::Chat(chat) => self.chat(chat),
            RoomCommand::Drain(done) => done.send(()),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        debug!(room = %self.name, "room closed");
        ctx.stop();
    }
}
