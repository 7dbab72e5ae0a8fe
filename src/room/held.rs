//! Members held for a resume: a member whose session's connection dropped
//! keeps its seat (it is counted and listed, and the others are told
//! nothing) but is sent nothing, until its session takes the seat back with
//! a join on its new connection, or ends (and the member leaves as usual).
//!
//! The session says so ([`RoomCommand::Hold`](super::RoomCommand::Hold)),
//! but the room may find the connection closed first (a write failed): when
//! the close was a drop and sessions are held, it holds the member at once
//! and waits for the session's word, a hold or a leave. In case that word
//! never comes (a session gone mid-join, say), a member whose seat its
//! session did not hold leaves once the grace period is over.

use std::time::Duration;

use actix::{AsyncContext, Context};

use super::actor::Room;
use super::core::MemberEntry;
use super::hooks::Hook;
use super::plugin::LeaveReason;
use super::{Admission, Join};
use crate::ids::{DisconnectReason, SessionId};

/// How long past the grace period the room waits for the session's word.
const UNCONFIRMED_MARGIN: Duration = Duration::from_secs(1);

impl Room {
    /// Sent by a session whose connection is going, its seats held: the
    /// member stays, is sent nothing, and the plugin is told.
    pub(super) fn hold_command(&mut self, session: SessionId, ctx: &mut Context<Self>) {
        self.mark_dropped(session);
        self.settle(ctx);
    }

    /// Holds `session` if its session holds its seat, and tells the plugin.
    /// A member that took its seat back already (this word came late) stays.
    fn mark_dropped(&mut self, session: SessionId) {
        let held = match self.core.position(session) {
            Some(i) if self.core.members[i].seat.is_held() => self.core.hold(session),
            Some(_) => false,
            None => self.core.held_position(session).is_some(),
        };
        let entry = self.core.held_position(session).and_then(|i| self.core.held.get(i));
        if let Some(member) = entry.filter(|_| held).map(|entry| entry.member.clone()) {
            self.plugin.call(Hook::Dropped, &mut self.core, |plugin, room| {
                plugin.dropped(room, &member)
            });
        }
    }

    /// Whether `join` takes back a held seat: its member is held, or its
    /// session held the seat and this join came before the session's word.
    pub(super) fn is_reclaim(&mut self, join: &Join) -> bool {
        let id = join.member.id;
        if self
            .core
            .position(id)
            .is_some_and(|i| self.core.members[i].seat.is_held())
        {
            self.mark_dropped(id);
        }
        self.core.held_position(id).is_some()
    }

    /// The connection of `session` refused a frame because it is closed:
    /// returns whether the member is held (its session holds its seat, or
    /// the connection dropped and its session may hold it) rather than gone.
    pub(super) fn held_on_close(&mut self, session: SessionId, ctx: &mut Context<Self>) -> bool {
        if self.core.held_position(session).is_some() {
            return true;
        }
        let Some(i) = self.core.position(session) else {
            return false;
        };
        // Held by its session already (its connection closed after it said so, for whatever reason).
        if self.core.members[i].seat.is_held() {
            return self.core.hold(session);
        }
        let grace = self.core.context.resume_grace;
        let dropped = self.core.close_reason(session).is_some_and(DisconnectReason::is_drop);
        if grace.is_zero() || !dropped || !self.core.hold(session) {
            return false;
        }
        ctx.run_later(grace + UNCONFIRMED_MARGIN, move |room, ctx| {
            let unconfirmed = room
                .core
                .held_position(session)
                .and_then(|i| room.core.held.get(i))
                .is_some_and(|entry| entry.seat.is_taken());
            if unconfirmed {
                room.depart(vec![(session, LeaveReason::Disconnected)], 0);
                room.settle(ctx);
            }
        });
        true
    }

    /// A held member's session, resumed, takes its seat back: `RoomJoined`
    /// (as of the room's seq: the member never left, so there is no
    /// MemberJoined) and the events it missed, when it asked to recover and
    /// the history holds them; the others are told nothing.
    pub(super) fn reclaim(&mut self, join: Join, ctx: &mut Context<Self>) {
        let Join {
            request_id,
            member,
            route,
            seat,
            recover,
            accepted,
            ..
        } = join;
        if route.is_closed() {
            return accepted.send(Admission::Refused);
        }
        let state = self.plugin.call(Hook::Snapshot, &mut self.core, |plugin, room| {
            plugin.snapshot(room, &member)
        });
        let Some(state) = state else {
            accepted.send(Admission::Rejected(super::membership::PLUGIN_FAILED.to_owned()));
            return self.settle(ctx);
        };
        let Some(held) = self.core.unhold(member.id) else {
            return accepted.send(Admission::Refused);
        };
        let greeting = self.greeting(&member, (request_id, self.core.seq), state, recover);
        if !greeting.fits(&route, 0) {
            // Its new connection cannot take the member list: the seat stays held.
            self.core.hold_again(held);
            self.core.slow_consumer(&member, &route);
            accepted.send(Admission::Refused);
            return self.settle(ctx);
        }
        seat.retake();
        self.core.push(MemberEntry {
            member: held.member,
            route,
            seat,
        });
        accepted.send(Admission::Joined);
        self.greet(self.core.members.len() - 1, greeting, None);
        self.plugin.call(Hook::Reconnected, &mut self.core, |plugin, room| {
            plugin.reconnected(room, &member);
        });
        self.settle(ctx);
    }
}
