//! A session's limits on its client: the inbound rate limit, and the
//! heartbeat that closes a silent connection.

use std::num::NonZeroU32;
use std::time::Duration;

use actix::Context;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use super::{Phase, Session};
use crate::config::Config;
use crate::ids::DisconnectReason;
use crate::protocol::pb::{self, server_message::Body};
use crate::protocol::{self, ErrorCode};

/// The window in which dropped messages add up to a disconnect.
const DROP_WINDOW: Duration = Duration::from_secs(1);

/// The inbound rate limit and the messages it dropped lately.
pub(super) struct RateLimit {
    /// `None`: no limit.
    limiter: Option<DefaultDirectRateLimiter>,
    /// Messages dropped in the second that began at `dropping_since`.
    dropped: u32,
    dropping_since: Instant,
}

impl RateLimit {
    /// The limit the configuration sets, if any.
    pub(super) fn new(config: &Config) -> RateLimit {
        let limiter = NonZeroU32::new(config.rate_limit_per_s).map(|rate| {
            let burst = NonZeroU32::new(config.rate_limit_burst).unwrap_or(rate);
            RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
        });
        RateLimit {
            limiter,
            dropped: 0,
            dropping_since: Instant::now(),
        }
    }
}

impl Session {
    /// Whether a message may pass the rate limit. A dropped one is answered
    /// RATE_LIMITED; `rate_limit_disconnect_after` of them within one second
    /// close the session.
    pub(super) fn within_rate(&mut self, ctx: &mut Context<Self>, request_id: u64) -> bool {
        let rate = &mut self.rate;
        let Some(limiter) = &rate.limiter else { return true };
        if limiter.check().is_ok() {
            return true;
        }
        if rate.dropping_since.elapsed() > DROP_WINDOW {
            rate.dropping_since = Instant::now();
            rate.dropped = 0;
        }
        rate.dropped = rate.dropped.saturating_add(1);
        let dropped = rate.dropped;
        let config = &self.server.config;
        if dropped >= config.rate_limit_disconnect_after {
            let message = format!(
                "{dropped} messages over the rate limit within a second (see Config::rate_limit_disconnect_after)"
            );
            self.fail(
                ctx,
                request_id,
                ErrorCode::RateLimited,
                message,
                DisconnectReason::RateLimited,
            );
        } else {
            let message = format!(
                "over the rate limit of {}/s (see Config::rate_limit_per_s); message dropped",
                config.rate_limit_per_s
            );
            self.reply_error(ctx, request_id, ErrorCode::RateLimited, message);
        }
        false
    }

    /// Runs every heartbeat interval: a session whose token expired is
    /// closed; one silent for one interval gets a Heartbeat to answer;
    /// silent for three, it is closed.
    pub(super) fn check_idle(&mut self, ctx: &mut Context<Self>) {
        // A held session has no connection to watch.
        if self.phase == Phase::Held {
            return;
        }
        if self
            .token_expires
            .is_some_and(|expires| expires <= std::time::SystemTime::now())
        {
            let message = "the session's token expired; reconnect with a fresh one";
            return self.fail(
                ctx,
                0,
                ErrorCode::TokenExpired,
                message,
                DisconnectReason::Unauthenticated,
            );
        }
        let silent = self.last_heard.elapsed();
        if silent > self.server.config.idle_timeout() {
            self.fail(
                ctx,
                0,
                ErrorCode::IdleTimeout,
                "silent for three heartbeat intervals (see Config::heartbeat_interval_ms)",
                DisconnectReason::IdleTimeout,
            );
        } else if self.member.is_some() && silent >= self.server.config.heartbeat_interval() {
            let heartbeat = pb::Heartbeat {
                server_time_us: protocol::now_us(),
            };
            self.send(ctx, &protocol::server_message(0, Body::Heartbeat(heartbeat)));
        }
    }
}
