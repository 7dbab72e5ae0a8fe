//! [`RoomCtx`]: what a plugin's hook can do to its room. Sends happen at
//! once, in the room's order; kicks, timers and closing happen when the hook
//! returns, so a hook never sees the member list change under it.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::core::{RoomCore, encode};
use super::{Member, TimerId};
use crate::ids::SessionId;
use crate::protocol::pb::server_message::Body;
use crate::protocol::{RoomName, pb};

/// What a hook asked for that the room does once the hook returns.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Members to remove, and the reason each is told.
    pub(super) kicks: Vec<(SessionId, String)>,
    /// Timers to start.
    pub(super) timers: Vec<(TimerId, Duration, u64)>,
    /// Timers to stop.
    pub(super) cancelled: Vec<TimerId>,
    /// Timers running or asked for.
    pub(super) live_timers: usize,
    /// The last timer id handed out.
    pub(super) last_timer: u64,
    /// Close the room, telling its members this.
    pub(super) close: Option<String>,
    /// The label, lock or settings changed: the listing is out of date.
    pub(super) relist: bool,
}

/// A plugin's handle on its room during one hook. See the module documentation.
pub struct RoomCtx<'a> {
    pub(super) core: &'a mut RoomCore,
}

impl RoomCtx<'_> {
    /// The room's name.
    pub fn name(&self) -> &RoomName {
        &self.core.name
    }

    /// The room's kind.
    pub fn kind(&self) -> &str {
        &self.core.kind
    }

    /// The members, in no particular order: everyone with a seat, those
    /// held for a resume included (see [`RoomCtx::is_connected`]).
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.core.everyone().map(|entry| &entry.member)
    }

    /// How many members the room has (held ones included).
    pub fn member_count(&self) -> usize {
        self.core.member_count()
    }

    /// The member with session `session`, if it is in the room (held or not).
    pub fn member(&self, session: SessionId) -> Option<&Member> {
        let entry = match self.core.position(session) {
            Some(i) => self.core.members.get(i),
            None => self.core.held.get(self.core.held_position(session)?),
        };
        entry.map(|entry| &entry.member)
    }

    /// Whether `session` is a member with a connection: false for one held
    /// for a resume (see [`RoomPlugin::dropped`](super::RoomPlugin::dropped)),
    /// which frames sent to it do not reach.
    pub fn is_connected(&self, session: SessionId) -> bool {
        self.core.position(session).is_some()
    }

    /// The seq of the room's last sequenced frame.
    pub fn seq(&self) -> u64 {
        self.core.seq
    }

    /// Ticks run so far (0 in a room without a tick, and before the first).
    pub fn tick(&self) -> u64 {
        self.core.tick
    }

    /// Now, on the monotonic clock.
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// How long the room has existed.
    pub fn age(&self) -> Duration {
        self.core.born.elapsed()
    }

    /// Sends a `RoomEvent` to every member with the room's next seq, in the
    /// one order of chat and presence; `from` names the member it is about
    /// or from, if any. Returns the seq.
    pub fn broadcast(&mut self, op: u32, data: Bytes, from: Option<SessionId>) -> u64 {
        let seq = self.core.next_seq();
        let frame = self.event(seq, op, data, from);
        let sent = self.core.publish(seq, &frame, None);
        self.count_events(sent);
        seq
    }

    /// Sends a `RoomEvent` to one member, unsequenced (`seq` 0: the others
    /// never see it, so it cannot take a place in their order). Returns
    /// whether it is a member that took it.
    pub fn send_to(&mut self, to: SessionId, op: u32, data: Bytes, from: Option<SessionId>) -> bool {
        let Some(i) = self.core.position(to) else { return false };
        let frame = self.event(0, op, data, from);
        let sent = self.core.send(i, frame);
        self.count_events(usize::from(sent));
        sent
    }

    /// Sends a `RoomEvent` to each of `to` that is a member, unsequenced,
    /// encoded once. Returns how many took it.
    pub fn send_to_many(&mut self, to: &[SessionId], op: u32, data: Bytes, from: Option<SessionId>) -> usize {
        let frame = self.event(0, op, data, from);
        let mut sent = 0;
        for &session in to {
            if let Some(i) = self.core.position(session) {
                sent += usize::from(self.core.send(i, frame.clone()));
            }
        }
        self.count_events(sent);
        sent
    }

    /// Removes a member once the hook returns: it gets `RoomLeft { reason }`,
    /// the others `MemberLeft`, and the plugin's leave hook runs.
    pub fn kick(&mut self, session: SessionId, reason: &str) {
        self.core.effects.kicks.push((session, reason.to_owned()));
    }

    /// Sets the room's label (`key=value` pairs; see [`Label`](crate::protocol::Label)).
    pub fn set_label(&mut self, label: &str) {
        label.clone_into(&mut self.core.settings.label);
        self.core.effects.relist = true;
    }

    /// Publishes `metadata` about the room (its schema is the plugin's) in
    /// `RoomInfo.metadata`, for `ListRooms`.
    pub fn set_metadata(&mut self, metadata: Bytes) {
        self.core.settings.metadata = metadata;
        self.core.effects.relist = true;
    }

    /// The room's label.
    pub fn label(&self) -> &str {
        &self.core.settings.label
    }

    /// Takes no more joiners (they get `ROOM_LOCKED`) until unlocked.
    pub fn lock(&mut self) {
        self.core.settings.locked = true;
        self.core.effects.relist = true;
    }

    /// Takes joiners again.
    pub fn unlock(&mut self) {
        self.core.settings.locked = false;
        self.core.effects.relist = true;
    }

    /// Whether the room is locked.
    pub fn is_locked(&self) -> bool {
        self.core.settings.locked
    }

    /// Calls the plugin's timer hook with `tag` once `after` has passed;
    /// `None` when the room already has as many timers as
    /// [`Config::plugin_max_timers`](crate::Config::plugin_max_timers) allows.
    pub fn set_timer(&mut self, after: Duration, tag: u64) -> Option<TimerId> {
        let effects = &mut self.core.effects;
        if effects.live_timers >= self.core.context.plugins.max_timers {
            return None;
        }
        effects.live_timers += 1;
        effects.last_timer += 1;
        let id = TimerId(effects.last_timer);
        effects.timers.push((id, after, tag));
        Some(id)
    }

    /// Stops a timer that has not gone off.
    pub fn cancel_timer(&mut self, timer: TimerId) {
        self.core.effects.cancelled.push(timer);
    }

    /// Closes the room once the hook returns: every member gets
    /// `RoomLeft { reason }`, then the dispose hook runs.
    pub fn close(&mut self, reason: &str) {
        self.core.effects.close.get_or_insert_with(|| reason.to_owned());
    }

    /// Counts `sent` event copies queued.
    fn count_events(&self, sent: usize) {
        let sent = u64::try_from(sent).unwrap_or(u64::MAX);
        self.core.context.stats.plugins.events.inc_by(sent);
    }

    fn event(&self, seq: u64, op: u32, data: Bytes, from: Option<SessionId>) -> Bytes {
        let event = Body::RoomEvent(pb::RoomEvent {
            room: self.core.name.to_string(),
            seq,
            op,
            data,
            from_session: from.map_or(0, SessionId::get),
        });
        encode(0, event)
    }
}
