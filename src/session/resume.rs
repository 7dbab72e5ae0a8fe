//! Resuming a session from another connection.
//!
//! Every Welcome carries a resume token (unless [`Config::resume_grace_ms`]
//! is 0): the session's id and a random secret, kept in [`ResumeTokens`].
//! When the connection drops (a reset, a close without Goodbye, silence past
//! the idle timeout) the session is *held* instead of ending: the actor stays,
//! without a connection, keeping its name, its rooms' seats (each room holds
//! the member without announcing it left) and its world entity, for the grace
//! period. A Hello with the token takes the session over, whether it is held
//! or its old connection is still open (a client that switched networks often
//! comes back before the server notices the old socket is gone): the old actor
//! hands its state over and stops, and the new connection's session carries
//! on under the same id. A token works once; each Welcome brings a new one.
//! When the grace period ends, the session ends as any other: its name is
//! freed, and its rooms and world announce that it left.
//!
//! [`Config::resume_grace_ms`]: crate::Config::resume_grace_ms

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::{ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, WrapFuture};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use subtle::ConstantTimeEq;
use tracing::{debug, info, warn};

use super::rooms::JoinedRooms;
use super::world::InWorld;
use super::{Phase, Session};
use crate::ids::{DisconnectReason, SessionId};
use crate::lifecycle::LifecycleEvent;
use crate::outbox::Queued;
use crate::protocol::{self, ErrorCode, PlayerName, encode_frame};
use crate::room::Member;

/// Bytes of randomness in a token.
const SECRET_LEN: usize = 16;

/// The sessions a resume token can take over, and how many are held.
#[derive(Default)]
pub struct ResumeTokens {
    sessions: DashMap<SessionId, Resumable>,
    held: AtomicUsize,
}

struct Resumable {
    secret: [u8; SECRET_LEN],
    session: Addr<Session>,
}

impl ResumeTokens {
    /// A new token for `session` (replacing its last one); `None` if the
    /// system's random generator failed.
    fn issue(&self, id: SessionId, session: Addr<Session>) -> Option<String> {
        let mut secret = [0; SECRET_LEN];
        if let Err(e) = getrandom::fill(&mut secret) {
            warn!(session = %id, error = %e, "no randomness for a resume token; this session cannot be resumed");
            return None;
        }
        self.sessions.insert(id, Resumable { secret, session });
        Some(format!("{id}.{}", URL_SAFE_NO_PAD.encode(secret)))
    }

    /// The session `token` names, taken (so the token works once), with its
    /// secret; `None` for a malformed, unknown or used token.
    fn take(&self, token: &str) -> Option<(SessionId, Addr<Session>, [u8; SECRET_LEN])> {
        let (id, secret) = token.split_once('.')?;
        let id = SessionId::new(id.parse().ok()?);
        let secret = URL_SAFE_NO_PAD.decode(secret).ok()?;
        let (_, resumable) = self
            .sessions
            .remove_if(&id, |_, resumable| bool::from(resumable.secret.ct_eq(&secret)))?;
        Some((id, resumable.session, resumable.secret))
    }

    /// Puts back a token taken by a Hello that could not use it (another name).
    fn restore(&self, id: SessionId, secret: [u8; SECRET_LEN], session: Addr<Session>) {
        self.sessions.entry(id).or_insert(Resumable { secret, session });
    }

    /// `session` ends: its token works no more.
    fn forget(&self, id: SessionId) {
        self.sessions.remove(&id);
    }

    /// Counts a session held, unless `max` are already.
    fn try_hold(&self, max: usize) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < max).then_some(held + 1)
            })
            .is_ok()
    }

    fn release_hold(&self) {
        self.held.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Asks a session to hand itself over to the connection that resumes it.
pub(super) struct Handover {
    /// The name the resuming Hello gave: it must be the session's.
    name: PlayerName,
    /// The token's secret, put back if the name is not the session's.
    secret: [u8; SECRET_LEN],
}

impl Message for Handover {
    type Result = Option<Handed>;
}

/// What a session hands over.
pub(super) struct Handed {
    id: SessionId,
    member: Member,
    rooms: JoinedRooms,
    world: Option<Box<InWorld>>,
    /// Where its last connection came from.
    peer: SocketAddr,
}

impl Handler<Handover> for Session {
    type Result = Option<Handed>;

    fn handle(&mut self, handover: Handover, ctx: &mut Context<Self>) -> Option<Handed> {
        let Some(member) = &self.member else { return None };
        if member.name != handover.name {
            // Not this player's: the token stays good for the one it was given to.
            self.server.resume.restore(self.id, handover.secret, ctx.address());
            return None;
        }
        match self.phase {
            Phase::Active => {
                // Its old connection is still open: close it, holding the seats for the new one.
                self.detach(ctx);
                let error = protocol::error_message(0, ErrorCode::ResumedElsewhere, "resumed by another connection");
                self.server.stats.error_sent(ErrorCode::ResumedElsewhere);
                self.close(Queued::Discard, Some(encode_frame(&error)), DisconnectReason::Resumed);
                self.server.stats.sessions_active.dec();
            }
            Phase::Held => self.end_hold(),
            Phase::Handshake | Phase::Gone => return None,
        }
        self.phase = Phase::Gone;
        ctx.stop();
        let member = self.member.take()?;
        Some(Handed {
            id: self.id,
            member,
            rooms: std::mem::take(&mut self.rooms),
            world: self.world.take(),
            peer: self.peer,
        })
    }
}

impl Session {
    /// The token for this session's Welcome (a new one each time), if it can be resumed.
    pub(super) fn issue_resume_token(&self, ctx: &Context<Self>) -> String {
        if self.server.config.resume_grace_ms == 0 {
            return String::new();
        }
        self.server.resume.issue(self.id, ctx.address()).unwrap_or_default()
    }

    /// Takes over the session `token` names, if it is `name`'s and can be
    /// taken; `on_welcome` then runs with what it handed over (or `None`,
    /// for a fresh session).
    pub(super) fn take_over(
        &mut self,
        ctx: &mut Context<Self>,
        (token, name): (&str, PlayerName),
        on_welcome: impl FnOnce(&mut Self, &mut Context<Self>, Option<Handed>) + 'static,
    ) {
        let taken = match self.server.config.resume_grace_ms {
            0 => None,
            _ => self.server.resume.take(token),
        };
        let Some((id, session, secret)) = taken else {
            debug!(session = %self.id, "resume token not taken: unknown, used or expired");
            return on_welcome(self, ctx, None);
        };
        let asked = async move { session.send(Handover { name, secret }).await.ok().flatten() };
        ctx.wait(asked.into_actor(self).map(move |handed, act, ctx| {
            if handed.is_none() {
                debug!(session = %act.id, resumed = %id, "the session to resume was gone or not this player's");
            }
            on_welcome(act, ctx, handed)
        }));
    }

    /// Carries on the session `handed` over, under its id.
    pub(super) fn adopt(&mut self, handed: Handed) {
        let Handed {
            id,
            member,
            rooms,
            world,
            peer,
        } = handed;
        if peer.ip() == self.peer.ip() {
            info!(session = %id, connection = %self.id, peer = %self.peer, "session resumed");
        } else {
            info!(session = %id, connection = %self.id, peer = %self.peer, previous_peer = %peer, "session resumed from a different address");
        }
        self.server.hooks.emit(LifecycleEvent::SessionResumed {
            session: id,
            connection: self.id,
            peer: self.peer,
        });
        self.id = id;
        self.member = Some(member);
        self.rooms = rooms;
        self.world = world;
    }

    /// Once the resumed session's Welcome is queued: its world sends a fresh
    /// view, and its rooms wait for the client's JoinRoom (seats not taken
    /// back within the grace period are given up).
    pub(super) fn after_resume(&mut self, ctx: &mut Context<Self>) {
        self.rejoin_world(ctx);
        ctx.run_later(self.server.config.resume_grace(), |act, _| act.leave_unclaimed_rooms());
    }

    /// Holds the session for a resume instead of ending it, if it may be: it
    /// was welcomed, resuming is on, the server is not shutting down, and the
    /// connection dropped (rather than being closed by the client's Goodbye
    /// or by the server). Returns whether it is held.
    pub(super) fn hold(&mut self, ctx: &mut Context<Self>) -> bool {
        let server = self.server.clone();
        let dropped = self
            .outbox
            .close_reason()
            .or(self.read_failed)
            .is_none_or(DisconnectReason::is_drop);
        if self.phase != Phase::Active
            || !dropped
            || server.config.resume_grace_ms == 0
            || server.stop_reading.is_cancelled()
            || !server.resume.try_hold(server.config.max_held_sessions)
        {
            return false;
        }
        self.detach(ctx);
        self.close(
            Queued::Discard,
            None,
            self.read_failed.unwrap_or(DisconnectReason::ClientClosed),
        );
        self.phase = Phase::Held;
        server.stats.sessions_active.dec();
        server.stats.sessions_held.inc();
        debug!(session = %self.id, peer = %self.peer, "connection dropped; session held for a resume");
        ctx.run_later(server.config.resume_grace(), |act, ctx| {
            if act.phase == Phase::Held {
                debug!(session = %act.id, "resume grace period over");
                act.end_hold();
                ctx.stop();
            }
        });
        true
    }

    /// The held session ends (its grace period is over, it was resumed, or the server stops).
    pub(super) fn end_hold(&mut self) {
        if self.phase == Phase::Held {
            self.server.resume.release_hold();
            self.server.stats.sessions_held.dec();
            self.phase = Phase::Gone;
        }
    }

    /// Leaves the connection without leaving anything else: every room and
    /// the world hold this member for the connection that resumes it.
    fn detach(&mut self, ctx: &mut Context<Self>) {
        if let Some(reader) = self.reader.take() {
            ctx.cancel_future(reader);
            self.server.late_sends.reading_stops();
        }
        self.hold_rooms();
        self.hold_world();
    }

    /// The session ends for good: its token works no more.
    pub(super) fn forget_resume_token(&self) {
        self.server.resume.forget(self.id);
    }
}
