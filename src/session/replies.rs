//! What a session sends of its own: replies, errors, and the last frame of a
//! connection it closes.

use actix::{ActorContext, Context};
use bytes::Bytes;
use tracing::{info, warn};

use super::Session;
use crate::ids::DisconnectReason;
use crate::outbox::{Queued, SendError};
use crate::protocol::pb::{self, ServerMessage, server_message::Body};
use crate::protocol::{self, ErrorCode, encode_frame};

impl Session {
    /// Queues a reply; a client too slow to take its own replies is closed.
    pub(super) fn send(&mut self, ctx: &mut Context<Self>, message: &ServerMessage) {
        match self.outbox.try_send(encode_frame(message)) {
            Ok(()) => {}
            Err(SendError::Full) => {
                warn!(session = %self.id, peer = %self.peer, "slow consumer: outbound queue full, disconnecting");
                self.server.stats.error_sent(ErrorCode::SlowConsumer);
                let error = protocol::error_message(0, ErrorCode::SlowConsumer, SendError::Full.to_string());
                self.close(
                    Queued::Discard,
                    Some(encode_frame(&error)),
                    DisconnectReason::SlowConsumer,
                );
                ctx.stop();
            }
            Err(SendError::Closed) => ctx.stop(),
        }
    }

    /// Answers request `request_id` with error `code`; the connection stays open.
    pub(super) fn reply_error(
        &mut self,
        ctx: &mut Context<Self>,
        request_id: u64,
        code: ErrorCode,
        message: impl Into<String>,
    ) {
        self.server.stats.error_sent(code);
        self.send(ctx, &protocol::error_message(request_id, code, message));
    }

    /// Ends the connection for `reason` after what is queued and a last error frame.
    pub(super) fn fail(
        &mut self,
        ctx: &mut Context<Self>,
        request_id: u64,
        code: ErrorCode,
        message: impl Into<String>,
        reason: DisconnectReason,
    ) {
        let message = message.into();
        info!(session = %self.id, peer = %self.peer, code = code.as_str_name(), error = %message, "closing session");
        self.server.stats.error_sent(code);
        let error = protocol::error_message(request_id, code, message);
        self.close(Queued::Flush, Some(encode_frame(&error)), reason);
        ctx.stop();
    }

    /// Closes the outbox; the first close counts the disconnect under its reason.
    pub(super) fn close(&self, queued: Queued, last: Option<Bytes>, reason: DisconnectReason) {
        if self.outbox.close(queued, last, reason) {
            self.server.stats.disconnected(reason);
        }
    }

    /// Closes the connection after everything queued and `ServerShutdown`.
    pub(super) fn say_goodbye(&mut self) {
        let goodbye = pb::ServerShutdown {
            reason: "server shutting down".into(),
            reconnect_after_ms: self.server.config.reconnect_after_ms,
        };
        let frame = encode_frame(&protocol::server_message(0, Body::Shutdown(goodbye)));
        self.close(Queued::Flush, Some(frame), DisconnectReason::ServerShutdown);
    }
}
