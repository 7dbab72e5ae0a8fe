//! The start of a connection: its socket options, and Hello, which claims a
//! name (after its token, with `--auth token`) and is answered by Welcome.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};
use tokio::net::TcpStream;
use tracing::debug;

use super::resume::Handed;
use super::{Phase, Session};
use crate::config::Config;
use crate::ids::DisconnectReason;
use crate::lifecycle::LifecycleEvent;
use crate::protocol::pb::{self, server_message::Body};
use crate::protocol::{self, ErrorCode, PlayerName};
use crate::room::Member;

/// Tunes a client's socket as the configuration asks (no Nagle delay; the
/// kernel send buffer).
pub(crate) fn tune(stream: &TcpStream, peer: SocketAddr, config: &Config) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%peer, error = %e, "could not set TCP_NODELAY");
    }
    if config.socket_send_buffer > 0
        && let Err(e) = socket2::SockRef::from(stream).set_send_buffer_size(config.socket_send_buffer)
    {
        debug!(%peer, error = %e, "could not set SO_SNDBUF");
    }
}

impl Session {
    /// Counts a Hello before Welcome; past [`Config::max_hello_attempts`] the
    /// connection is closed with TOO_MANY_HELLOS and this returns false.
    pub(super) fn may_say_hello(&mut self, ctx: &mut Context<Self>, request_id: u64) -> bool {
        self.hellos = self.hellos.saturating_add(1);
        let max = self.server.config.max_hello_attempts;
        if self.hellos <= max {
            return true;
        }
        let message = format!("more than {max} Hellos on one connection (see Config::max_hello_attempts)");
        self.fail(
            ctx,
            request_id,
            ErrorCode::TooManyHellos,
            message,
            DisconnectReason::ProtocolError,
        );
        false
    }

    /// Notes when the session's token expires (`exp`, Unix seconds): the
    /// heartbeat check closes it then with TOKEN_EXPIRED, unless
    /// [`AuthConfig::close_at_expiry`] is off.
    ///
    /// [`AuthConfig::close_at_expiry`]: crate::config::AuthConfig::close_at_expiry
    fn close_at_expiry(&mut self, exp: u64) {
        if self.server.config.auth.close_at_expiry {
            self.token_expires = Some(UNIX_EPOCH + Duration::from_secs(exp));
        }
    }

    /// Answers Hello: checks its token (with `--auth token`), then resumes
    /// the session its resume token names, or claims the name for a new one.
    pub(super) fn hello(
        &mut self,
        ctx: &mut Context<Self>,
        request_id: u64,
        name: PlayerName,
        (token, resume_token): (&str, &str),
    ) {
        if self.member.is_some() {
            return self.reply_error(
                ctx,
                request_id,
                ErrorCode::AlreadyWelcomed,
                "Hello was already answered",
            );
        }
        if let Some(authority) = &self.server.authority {
            match authority.verify(token, name.as_str(), SystemTime::now()) {
                Ok(claims) => self.close_at_expiry(claims.exp),
                Err(e) => {
                    debug!(session = %self.id, peer = %self.peer, error = %e, "token refused");
                    let message = format!("{e}");
                    let reason = DisconnectReason::Unauthenticated;
                    return self.fail(ctx, request_id, ErrorCode::Unauthenticated, message, reason);
                }
            }
        }
        if resume_token.is_empty() {
            return self.claim_then_welcome(ctx, request_id, name);
        }
        self.take_over(
            ctx,
            (resume_token, name.clone()),
            move |act, ctx, handed| match handed {
                Some(handed) => act.welcome(ctx, request_id, name, Some(handed)),
                None => act.claim_then_welcome(ctx, request_id, name),
            },
        );
    }

    /// Claims `name` here and, in a cluster, on every node (the session
    /// waits for the answer), then welcomes the session under it.
    pub(super) fn claim_then_welcome(&mut self, ctx: &mut Context<Self>, request_id: u64, name: PlayerName) {
        if !self.server.names.claim(&name, self.id) {
            let message = format!("the name {name:?} is taken");
            return self.reply_error(ctx, request_id, ErrorCode::NameTaken, message);
        }
        let Some(cluster) = self.server.cluster.clone() else {
            return self.welcome(ctx, request_id, name, None);
        };
        let (wanted, session) = (name.clone(), self.id.get());
        let claimed = async move { cluster.claim_name(wanted.as_str(), session).await };
        ctx.wait(claimed.into_actor(self).map(move |claimed, act, ctx| {
            let (code, message) = match claimed {
                Ok(true) => return act.welcome(ctx, request_id, name, None),
                Ok(false) => (ErrorCode::NameTaken, format!("the name {name:?} is taken")),
                Err(e) => (
                    ErrorCode::ClusterUnavailable,
                    format!("the name {name:?} cannot be claimed: {e}"),
                ),
            };
            act.server.names.release(&name, act.id);
            act.reply_error(ctx, request_id, code, message);
        }));
    }

    /// Welcomes the session: the one `handed` over by a resume, or a new one
    /// under `name`, claimed already.
    fn welcome(&mut self, ctx: &mut Context<Self>, request_id: u64, name: PlayerName, handed: Option<Handed>) {
        let resumed = handed.is_some();
        match handed {
            Some(handed) => self.adopt(handed),
            None => self.member = Some(Member { id: self.id, name }),
        }
        let stats = &self.server.stats;
        stats.sessions_handshake.dec();
        stats.sessions_active.inc();
        self.phase = Phase::Active;
        let Some(member) = &self.member else { return };
        self.server.hooks.emit(LifecycleEvent::SessionAuthenticated {
            session: self.id,
            name: member.name.clone(),
        });
        let config = &self.server.config;
        self.frame_limit.set(config.max_frame_len);
        let welcome = pb::Welcome {
            session_id: self.id.get(),
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            max_frame_len: u32::try_from(config.max_frame_len).unwrap_or(u32::MAX),
            resume_token: self.issue_resume_token(ctx),
            resumed,
            resume_grace_ms: config.resume_grace_ms,
        };
        self.send(ctx, &protocol::server_message(request_id, Body::Welcome(welcome)));
        if resumed {
            self.after_resume(ctx);
        }
    }
}
