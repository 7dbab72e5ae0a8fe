//! Who is in a room: joining (the room's checks, then the plugin's), leaving
//! for any reason, kicks, and closing. After every hook the room
//! [settles](Room::settle): members that refused a frame or were kicked go,
//! the timers asked for start, and a room asked to close (or whose plugin
//! panicked) closes.

use std::mem;

use actix::Context;
use bytes::Bytes;
use tracing::debug;

use super::actor::Room;
use super::core::MemberEntry;
use super::hooks::Hook;
use super::plugin::LeaveReason;
use super::{Admission, Join, Leave, Member};
use crate::ids::{OverloadLevel, SessionId};
use crate::outbox::SendError;
use crate::protocol::Recover;

/// Why members leave when the room closes because its plugin panicked.
pub(super) const PLUGIN_FAILED: &str = "plugin failed";

impl Room {
    pub(super) fn join(&mut self, join: Join, ctx: &mut Context<Self>) {
        if self.is_reclaim(&join) {
            return self.reclaim(join, ctx);
        }
        if let Some(refusal) = self.refusal(&join) {
            join.accepted.send(refusal);
            // A room that refuses its very first joiner has nobody: it closes like any emptied room.
            return self.close_if_empty(ctx);
        }
        let Join {
            request_id,
            member,
            route,
            seat,
            metadata,
            recover,
            accepted,
        } = join;
        let attempt = self.plugin.call(Hook::JoinAttempt, &mut self.core, |plugin, room| {
            plugin.join_attempt(room, &member, &metadata)
        });
        let state = match attempt {
            Some(Ok(())) => self.plugin.call(Hook::Snapshot, &mut self.core, |plugin, room| {
                plugin.snapshot(room, &member)
            }),
            Some(Err(reason)) => {
                accepted.send(Admission::Rejected(reason));
                return self.settle(ctx);
            }
            None => None,
        };
        let Some(state) = state else {
            accepted.send(Admission::Rejected(PLUGIN_FAILED.to_owned()));
            return self.settle(ctx);
        };
        let greeting = self.greeting(&member, (request_id, self.core.seq + 1), state, recover);
        if !greeting.fits(&route, 1) {
            // Refused before anyone hears of the joiner: its queue cannot take the member list.
            self.core.slow_consumer(&member, &route);
            accepted.send(Admission::Refused);
            return self.settle(ctx);
        }
        let own = self.core.member_joined(&member);
        self.core.push(MemberEntry {
            member: member.clone(),
            route,
            seat,
        });
        accepted.send(Admission::Joined);
        let joiner = self.core.members.len() - 1;
        // Recovered: the missed events, then the joiner's own MemberJoined, so its seqs run on unbroken.
        self.greet(joiner, greeting, Some(own));
        if self.core.settings.lock_when_full && self.core.is_full() && !self.core.settings.locked {
            self.core.settings.locked = true;
            self.auto_locked = true;
        }
        self.core.effects.relist = true;
        self.plugin
            .call(Hook::Join, &mut self.core, |plugin, room| plugin.join(room, &member));
        self.settle(ctx);
    }

    /// What a joiner gets first: its member list (`RoomJoined` as of `seq`,
    /// answering `request_id`), and the events it missed if it asked to
    /// recover and the room's history still holds them all.
    pub(super) fn greeting(
        &mut self,
        member: &Member,
        (request_id, seq): (u64, u64),
        state: Bytes,
        recover: Option<Recover>,
    ) -> Greeting {
        let missed = recover
            .filter(|recover| recover.epoch == self.core.epoch)
            .and_then(|recover| self.core.history.since(recover.since_seq, self.core.seq));
        let list = self
            .core
            .member_list(member, (request_id, seq), state, missed.is_some());
        Greeting { list, missed }
    }

    /// Queues `greeting` for the member at `i`; when it recovers, `own` (its
    /// own MemberJoined, already published) follows the missed events so
    /// that its seqs run on unbroken.
    pub(super) fn greet(&mut self, i: usize, greeting: Greeting, own: Option<Bytes>) {
        let Greeting { list, missed } = greeting;
        let recovered = missed.is_some();
        let replay = missed.into_iter().flatten().chain(own.filter(|_| recovered));
        for frame in list.into_iter().chain(replay) {
            if !self.core.send(i, frame) {
                break;
            }
        }
    }

    /// Why `join` is refused before the plugin is asked, if it is.
    fn refusal(&self, join: &Join) -> Option<Admission> {
        if self.closing {
            Some(Admission::Closing)
        } else if let Some(reason) = &self.unmade {
            Some(Admission::Rejected(reason.clone()))
        } else if join.route.is_closed() {
            Some(Admission::Refused)
        } else if self.core.contains(join.member.id) {
            Some(Admission::AlreadyMember)
        } else if self.core.is_full() {
            Some(Admission::Full)
        } else if self.core.settings.locked {
            Some(Admission::Locked)
        } else {
            None
        }
    }

    pub(super) fn leave(&mut self, leave: Leave, ctx: &mut Context<Self>) {
        let reason = match leave.request_id {
            0 => LeaveReason::Disconnected,
            _ => LeaveReason::Left,
        };
        self.depart(vec![(leave.session, reason)], leave.request_id);
        self.settle(ctx);
    }

    /// Takes every one of `gone` out first, then tells each and the others
    /// (so a crowd leaving at once costs one pass over the room per member,
    /// not one refusal per member per departure), then runs the leave hook.
    /// `request_id` is echoed by the `RoomLeft` of a member that asked to leave.
    pub(super) fn depart(&mut self, gone: Vec<(SessionId, LeaveReason)>, request_id: u64) {
        let taken: Vec<(MemberEntry, LeaveReason)> = gone
            .into_iter()
            .filter_map(|(session, reason)| Some((self.core.take(session)?, reason)))
            .collect();
        for (entry, reason) in taken {
            debug!(room = %self.core.name, session = %entry.member.id, reason = reason.as_str(), "member left");
            match &reason {
                LeaveReason::SlowConsumer => self.core.slow_consumer(&entry.member, &entry.route),
                LeaveReason::Disconnected => {}
                LeaveReason::Left | LeaveReason::Kicked(_) => {
                    // A reply that finds the queue full marks the member a slow consumer, as any frame does.
                    let frame = self.core.room_left(request_id, reason.as_str());
                    self.core.send_last(&entry, frame);
                }
            }
            if self.auto_locked && !self.core.is_full() {
                self.auto_locked = false;
                self.core.settings.locked = false;
            }
            self.core.effects.relist = true;
            self.announce_left(&entry.member);
            self.plugin.call(Hook::Leave, &mut self.core, |plugin, room| {
                plugin.leave(room, &entry.member, reason)
            });
        }
    }

    /// Tells the remaining members that `member` left (later, while presence is paused).
    fn announce_left(&mut self, member: &Member) {
        if self.core.member_count() == 0 {
            self.unannounced.clear();
        } else if self.core.context.stats.overload() == OverloadLevel::PresencePaused {
            self.unannounced.push(member.clone());
        } else {
            self.core.member_left(member);
        }
    }

    /// Announces the departures held back while presence was paused, once it is not.
    pub(super) fn announce_held_back(&mut self, ctx: &mut Context<Self>) {
        if self.unannounced.is_empty() || self.core.context.stats.overload() == OverloadLevel::PresencePaused {
            return;
        }
        for member in mem::take(&mut self.unannounced) {
            self.core.member_left(&member);
        }
        self.settle(ctx);
    }

    /// Does what the last hook asked for and what its frames caused: see the
    /// module documentation. Leave hooks may cause more, so this runs until
    /// nothing is left to do.
    pub(super) fn settle(&mut self, ctx: &mut Context<Self>) {
        loop {
            if self.plugin.failure.take().is_some() {
                return self.close(PLUGIN_FAILED, ctx);
            }
            if let Some(reason) = self.core.effects.close.take() {
                return self.close(&reason, ctx);
            }
            let mut refused = Vec::new();
            for (session, error) in mem::take(&mut self.core.refused) {
                match error {
                    SendError::Full => refused.push((session, LeaveReason::SlowConsumer)),
                    // A connection that dropped under a session that may resume: the member stays.
                    SendError::Closed if self.held_on_close(session, ctx) => {}
                    SendError::Closed => refused.push((session, LeaveReason::Disconnected)),
                }
            }
            let kicked = mem::take(&mut self.core.effects.kicks)
                .into_iter()
                .map(|(session, reason)| (session, LeaveReason::Kicked(reason)));
            let gone: Vec<_> = refused.into_iter().chain(kicked).collect();
            if gone.is_empty() {
                break;
            }
            self.depart(gone, 0);
        }
        self.apply_timers(ctx);
        self.close_if_empty(ctx);
        if self.core.effects.relist {
            self.relist();
        }
    }

    /// Closes the room: every member gets `RoomLeft { reason }`.
    pub(super) fn close(&mut self, reason: &str, ctx: &mut Context<Self>) {
        debug!(room = %self.core.name, reason, "room closing");
        let everyone: Vec<SessionId> = self.core.everyone().map(|entry| entry.member.id).collect();
        for session in everyone {
            if let Some(entry) = self.core.take(session) {
                let frame = self.core.room_left(0, reason);
                self.core.send_last(&entry, frame);
            }
        }
        self.unannounced.clear();
        self.close_if_empty(ctx);
    }

    /// With nobody in it, the room refuses further joins, reports itself
    /// empty (once), stops its clock and disposes of its plugin.
    pub(super) fn close_if_empty(&mut self, ctx: &mut Context<Self>) {
        if self.core.member_count() > 0 || self.closing {
            return;
        }
        self.closing = true;
        self.core.context.listing.remove(&self.core.name, self.core.id);
        (self.core.context.on_empty)(self.core.name.clone(), self.core.id);
        self.stop_clock(ctx);
        self.plugin
            .call(Hook::Dispose, &mut self.core, |plugin, room| plugin.dispose(room));
        // Nothing a disposing plugin asks for can happen any more.
        self.core.effects = super::context::Effects::default();
        self.core.refused.clear();
        self.plugin.failure = None;
    }
}

/// What a joiner gets first: see [`Room::greeting`].
pub(super) struct Greeting {
    list: Vec<Bytes>,
    missed: Option<Vec<Bytes>>,
}

impl Greeting {
    /// Whether the member's queue has room for it all, and for `own` more
    /// frames after a recovery (a member elsewhere: its relay decides).
    pub(super) fn fits(&self, route: &super::Route, own: usize) -> bool {
        let Some(outbox) = route.outbox() else { return true };
        let frames = self.list.len() + self.missed.as_ref().map_or(0, |missed| missed.len() + own);
        let bytes = self
            .list
            .iter()
            .chain(self.missed.iter().flatten())
            .map(Bytes::len)
            .sum();
        outbox.has_room_for(frames, bytes)
    }
}
