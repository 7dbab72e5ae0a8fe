//! A room's members and order, without its plugin: the member list, the
//! sequence number, the frames every member or some members get, and who
//! refused one. The [`Room`](super::Room) actor drives it; the plugin's
//! [`RoomCtx`](super::RoomCtx) borrows it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tracing::warn;

use super::context::Effects;
use super::history::History;
use super::relay::{Relay, Relayed, Route};
use super::seat::Seat;
use super::{Kind, Member, RoomContext};
use crate::broadcast::{Recipient, Refusal};
use crate::ids::{DisconnectReason, RoomId, SessionId};
use crate::outbox::{Outbox, Queued, SendError};
use crate::protocol::pb::server_message::Body;
use crate::protocol::{self, ErrorCode, RoomName, encode_frame, pb};

/// A member that refused a frame, and why.
pub(super) type Refused = (SessionId, SendError);

/// A member and where its frames go.
pub(super) struct MemberEntry {
    pub(super) member: Member,
    pub(super) route: Route,
    /// Vacated when the member leaves, so its session knows.
    pub(super) seat: Seat,
}

impl MemberEntry {
    fn is_relayed(&self) -> bool {
        matches!(self.route, Route::Relayed)
    }
}

impl Recipient for MemberEntry {
    fn outbox(&self) -> Option<&Outbox> {
        self.route.outbox()
    }
}

/// What the plugin set about the room, and what follows from it.
#[derive(Debug, Clone, Default)]
pub(super) struct Settings {
    /// Most members (already capped by the server's limit).
    pub(super) max_members: usize,
    /// Ticks per second, 0 for none.
    pub(super) tick_hz: u32,
    pub(super) lock_when_full: bool,
    pub(super) label: String,
    /// Published in `RoomInfo.metadata`.
    pub(super) metadata: bytes::Bytes,
    pub(super) private: bool,
    /// Locked by the plugin: no joiners.
    pub(super) locked: bool,
}

/// A room's members and order. See the module documentation.
pub(super) struct RoomCore {
    pub(super) name: RoomName,
    pub(super) id: RoomId,
    pub(super) kind: Kind,
    /// The seq of the last sequenced frame.
    pub(super) seq: u64,
    /// This incarnation of the room (random, never 0).
    pub(super) epoch: u64,
    /// The last sequenced frames, for recovery.
    pub(super) history: History,
    /// The members with a connection: the fan-out list.
    pub(super) members: Vec<MemberEntry>,
    index: HashMap<SessionId, usize>,
    /// Members whose session is held for a resume: counted and listed, sent nothing.
    pub(super) held: Vec<MemberEntry>,
    pub(super) settings: Settings,
    /// Members that refused a frame since the room last looked.
    pub(super) refused: Vec<Refused>,
    /// What the plugin asked for that the room does after its hook.
    pub(super) effects: Effects,
    /// Ticks run so far.
    pub(super) tick: u64,
    /// When the room was made.
    pub(super) born: Instant,
    /// Shared by every room (one pointer a room, not a copy).
    pub(super) context: Arc<RoomContext>,
    /// Frames for members on other nodes (a room owned here, in a cluster).
    pub(super) relay: Option<Relay>,
    /// Members elsewhere in `members`, and in `held`.
    remote: (usize, usize),
}

impl RoomCore {
    pub(super) fn new(name: RoomName, id: RoomId, kind: Kind, context: Arc<RoomContext>) -> RoomCore {
        RoomCore {
            name,
            id,
            kind,
            seq: 0,
            epoch: fastrand::u64(1..),
            history: History::new(context.history_size, context.history_ttl),
            members: Vec::new(),
            index: HashMap::new(),
            held: Vec::new(),
            settings: Settings::default(),
            refused: Vec::new(),
            effects: Effects::default(),
            tick: 0,
            born: Instant::now(),
            context,
            relay: None,
            remote: (0, 0),
        }
    }

    /// The index of `session` in the member list.
    pub(super) fn position(&self, session: SessionId) -> Option<usize> {
        self.index.get(&session).copied()
    }

    /// Whether `session` is a member (held or not).
    pub(super) fn contains(&self, session: SessionId) -> bool {
        self.index.contains_key(&session) || self.held_position(session).is_some()
    }

    /// The index of `session` among the held members.
    pub(super) fn held_position(&self, session: SessionId) -> Option<usize> {
        self.held.iter().position(|entry| entry.member.id == session)
    }

    /// Everyone with a seat: members, and members held for a resume.
    pub(super) fn everyone(&self) -> impl Iterator<Item = &MemberEntry> {
        self.members.iter().chain(&self.held)
    }

    /// How many have a seat.
    pub(super) fn member_count(&self) -> usize {
        self.members.len() + self.held.len()
    }

    /// Adds a member at the end of the list.
    pub(super) fn push(&mut self, entry: MemberEntry) {
        self.remote.0 += usize::from(entry.is_relayed());
        self.index.insert(entry.member.id, self.members.len());
        self.members.push(entry);
    }

    /// Takes `session` out of the room (held or not), if it is in, and vacates its seat.
    pub(super) fn take(&mut self, session: SessionId) -> Option<MemberEntry> {
        let entry = match self.detach(session) {
            Some(entry) => entry,
            None => {
                let i = self.held_position(session)?;
                let entry = self.held.swap_remove(i);
                self.remote.1 -= usize::from(entry.is_relayed());
                entry
            }
        };
        entry.seat.vacate();
        Some(entry)
    }

    /// Takes `session` out of the fan-out list, leaving its seat as it is.
    fn detach(&mut self, session: SessionId) -> Option<MemberEntry> {
        let i = self.index.remove(&session)?;
        let entry = self.members.swap_remove(i);
        self.remote.0 -= usize::from(entry.is_relayed());
        if let Some(moved) = self.members.get(i) {
            self.index.insert(moved.member.id, i);
        }
        Some(entry)
    }

    /// Moves `session` from the fan-out list to the held members: it keeps
    /// its seat but is sent nothing. Returns whether it was moved now.
    pub(super) fn hold(&mut self, session: SessionId) -> bool {
        let Some(entry) = self.detach(session) else {
            return false;
        };
        self.remote.1 += usize::from(entry.is_relayed());
        self.held.push(entry);
        true
    }

    /// Why the connection of `session` (a member with a connection) closed, if it did.
    pub(super) fn close_reason(&self, session: SessionId) -> Option<crate::ids::DisconnectReason> {
        let i = self.position(session)?;
        self.members.get(i)?.route.outbox()?.close_reason()
    }

    /// Puts back a held member that `unhold` took out.
    pub(super) fn hold_again(&mut self, entry: MemberEntry) {
        self.remote.1 += usize::from(entry.is_relayed());
        self.held.push(entry);
    }

    /// Takes `session` out of the held members.
    pub(super) fn unhold(&mut self, session: SessionId) -> Option<MemberEntry> {
        let i = self.held_position(session)?;
        let entry = self.held.swap_remove(i);
        self.remote.1 -= usize::from(entry.is_relayed());
        Some(entry)
    }

    /// Whether the room holds as many members as it may.
    pub(super) fn is_full(&self) -> bool {
        self.member_count() >= self.settings.max_members
    }

    /// Takes the next seq.
    pub(super) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Keeps `frame`, sent with `seq`, in the history, and queues it for
    /// every member but `skip`; those that refuse it are kept in `refused`.
    /// Returns how many on this node took it.
    pub(super) fn publish(&mut self, seq: u64, frame: &Bytes, skip: Option<usize>) -> usize {
        self.history.push(seq, frame);
        let stats = &self.context.stats;
        let started = stats.detailed().then(Instant::now);
        let refusals = self.context.broadcaster.send(frame, &self.members, skip);
        if let Some(started) = started {
            stats.fanout(self.members.len(), started.elapsed());
        }
        let skipped_here = skip
            .and_then(|i| self.members.get(i))
            .is_some_and(|entry| !entry.is_relayed());
        let sent = self.members.len() - self.remote.0 - usize::from(skipped_here) - refusals.len();
        let members = &self.members;
        self.refused
            .extend(refusals.into_iter().map(|(i, e): Refusal| (members[i].member.id, e)));
        if self.remote != (0, 0) {
            let skip = skip.and_then(|i| self.members.get(i)).map(|entry| entry.member.id);
            self.relay(None, skip, (true, false), frame.clone());
        }
        sent
    }

    /// Queues `frame` on the relay, for `to` or for everyone elsewhere but
    /// `skip`; a full relay drops every member elsewhere (they are told by their nodes).
    fn relay(&mut self, to: Option<SessionId>, skip: Option<SessionId>, (sequenced, ends): (bool, bool), frame: Bytes) {
        let Some(relay) = &self.relay else { return };
        let relayed = Relayed {
            epoch: self.epoch,
            seq: self.seq,
            sequenced,
            to,
            skip,
            ends,
            frame,
        };
        if relay.push(relayed) == Err(SendError::Full) {
            let elsewhere = self.members.iter().filter(|entry| entry.is_relayed());
            let ids: Vec<SessionId> = elsewhere.map(|entry| entry.member.id).collect();
            self.refused.extend(ids.into_iter().map(|id| (id, SendError::Full)));
        }
    }

    /// Queues `frame` for the member at `i`; returns whether it took it.
    pub(super) fn send(&mut self, i: usize, frame: Bytes) -> bool {
        let Some(entry) = self.members.get(i) else { return false };
        let Some(outbox) = entry.route.outbox() else {
            let to = Some(entry.member.id);
            self.relay(to, None, (false, false), frame);
            return true;
        };
        match outbox.try_send(frame) {
            Ok(()) => true,
            Err(e) => {
                self.refused.push((entry.member.id, e));
                false
            }
        }
    }

    /// Sends a member that is out of the room (taken out already) its last
    /// frame; a full queue makes it a slow consumer.
    pub(super) fn send_last(&mut self, entry: &MemberEntry, frame: Bytes) {
        match &entry.route {
            Route::Local(outbox) => {
                if let Err(SendError::Full) = outbox.try_send(frame) {
                    self.slow_consumer(&entry.member, &entry.route);
                }
            }
            Route::Relayed => self.relay(Some(entry.member.id), None, (false, true), frame),
        }
    }

    /// Closes a member's connection with SLOW_CONSUMER: it refused a frame
    /// for a full queue. (A member elsewhere is told by its node.)
    pub(super) fn slow_consumer(&self, member: &Member, route: &Route) {
        if let Some(outbox) = route.outbox() {
            slow_consumer(&self.name, member, outbox, &self.context.stats);
        }
    }

    /// Tells everyone that `member` joined, with the next seq; returns the frame.
    pub(super) fn member_joined(&mut self, member: &Member) -> Bytes {
        let seq = self.next_seq();
        let joined = Body::MemberJoined(pb::MemberJoined {
            room: self.name.to_string(),
            member: Some(member.to_pb()),
            seq,
        });
        let frame = encode(0, joined);
        self.publish(seq, &frame, None);
        frame
    }

    /// Tells everyone that `member` left, with the next seq.
    pub(super) fn member_left(&mut self, member: &Member) {
        let seq = self.next_seq();
        let left = Body::MemberLeft(pb::MemberLeft {
            room: self.name.to_string(),
            member: Some(member.to_pb()),
            seq,
        });
        self.publish(seq, &encode(0, left), None);
    }

    /// The member list a joiner gets (everyone, `joiner` last) as of `seq`:
    /// `RoomJoined` with the first members, the kind and `state`, and
    /// `RoomMembers` with the rest, each frame holding at most
    /// [`RoomContext::members_per_frame`]. `recovered` says the missed events follow.
    pub(super) fn member_list(
        &self,
        joiner: &Member,
        (request_id, seq): (u64, u64),
        state: Bytes,
        recovered: bool,
    ) -> Vec<Bytes> {
        let everyone: Vec<pb::Member> = self
            .everyone()
            .map(|m| m.member.to_pb())
            .chain(std::iter::once(joiner.to_pb()))
            .collect();
        let count = u32::try_from(everyone.len()).unwrap_or(u32::MAX);
        let room = self.name.to_string();
        let mut state = Some(state);
        let mut frames = Vec::new();
        for members in everyone.chunks(self.context.members_per_frame.max(1)) {
            let (room, members) = (room.clone(), members.to_vec());
            let body = match state.take() {
                Some(state) => Body::RoomJoined(pb::RoomJoined {
                    room,
                    members,
                    seq,
                    member_count: count,
                    kind: self.kind.to_string(),
                    state,
                    epoch: self.epoch,
                    recovered,
                }),
                None => Body::RoomMembers(pb::RoomMembers { room, members, seq }),
            };
            frames.push(encode(request_id, body));
        }
        frames
    }

    /// A `RoomLeft` for this room, answering `request_id`.
    pub(super) fn room_left(&self, request_id: u64, reason: &str) -> Bytes {
        room_left(&self.name, request_id, reason)
    }
}

/// One server frame: `body` answering `request_id`.
pub(super) fn encode(request_id: u64, body: Body) -> Bytes {
    encode_frame(&protocol::server_message(request_id, body))
}

/// Closes the connection of `member` of `room` with SLOW_CONSUMER: its
/// `outbox` refused a frame for a full queue.
pub fn slow_consumer(room: &RoomName, member: &Member, outbox: &Outbox, stats: &crate::stats::Stats) {
    warn!(room = %room, session = %member.id, name = %member.name, "slow consumer: outbound queue full, disconnecting");
    stats.error_sent(ErrorCode::SlowConsumer);
    let error = protocol::error_message(
        0,
        ErrorCode::SlowConsumer,
        "outbound queue full (see Config::outbound_queue_frames and Config::outbound_queue_bytes)",
    );
    let reason = DisconnectReason::SlowConsumer;
    if outbox.close(Queued::Discard, Some(encode_frame(&error)), reason) {
        stats.disconnected(reason);
    }
}

/// A `RoomLeft` for `room`, answering `request_id`.
pub fn room_left(room: &RoomName, request_id: u64, reason: &str) -> Bytes {
    let left = Body::RoomLeft(pb::RoomLeft {
        room: room.to_string(),
        reason: reason.to_owned(),
    });
    encode(request_id, left)
}
