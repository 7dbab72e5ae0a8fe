//! The messages a WebSocket client sends, as the session's frames: each
//! binary message is one `ClientMessage`, held to the session's frame limit
//! (small until Welcome). A text message, a broken frame or a flood of
//! control frames ends the connection with the error that says so.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::writer::{Control, WAKE};
use crate::outbox::Outbox;
use crate::protocol::pb::ClientMessage;
use crate::protocol::{CodecError, ErrorCode, FrameLimit};

/// One frame as the session reads it.
type Frame = Result<Result<ClientMessage, prost::DecodeError>, CodecError>;

/// Pings and pongs a client may send per second, across one-second windows.
#[derive(Debug)]
struct ControlBudget {
    per_second: u32,
    window: Instant,
    used: u32,
}

impl ControlBudget {
    /// Counts one control frame; false once the window's budget is spent.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.used = 0;
        }
        self.used = self.used.saturating_add(1);
        self.used <= self.per_second
    }
}

/// Where the pongs a client asks for go: the writer's control slot, and
/// the outbox, to wake the writer.
pub struct Pongs {
    /// The writer's control slot.
    pub control: Arc<Control>,
    /// The session's outbox.
    pub outbox: Outbox,
}

impl Pongs {
    fn send(&self, payload: Bytes) {
        self.control.pong(payload);
        // Best effort: a full queue will be written soon anyway, and the pong with it.
        let _ = self.outbox.try_send(Bytes::from_static(WAKE));
    }
}

/// See the module documentation.
pub struct WsFrames<S> {
    messages: WebSocketStream<S>,
    limit: FrameLimit,
    control: ControlBudget,
    pongs: Pongs,
    ended: bool,
}

impl<S> WsFrames<S> {
    /// Reads `messages`, each held to `limit`; at most `control_per_second`
    /// pings and pongs a second are taken, each ping answered through `pongs`.
    pub fn new(messages: WebSocketStream<S>, limit: FrameLimit, control_per_second: u32, pongs: Pongs) -> Self {
        WsFrames {
            messages,
            limit,
            control: ControlBudget {
                per_second: control_per_second,
                window: Instant::now(),
                used: 0,
            },
            pongs,
            ended: false,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WsFrames<S> {
    type Item = Frame;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            let message = match Pin::new(&mut self.messages).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(message)) => message,
            };
            let frame = match message {
                Ok(Message::Binary(data)) => {
                    let max = self.limit.get();
                    if data.len() > max {
                        Err(CodecError::FrameTooLarge { max })
                    } else {
                        Ok(ClientMessage::decode(data))
                    }
                }
                Ok(Message::Text(_)) => Err(violation(
                    ErrorCode::BadFrame,
                    "a text message: Tavern's messages are binary protobuf",
                )),
                Ok(message @ (Message::Ping(_) | Message::Pong(_))) => {
                    if self.control.take() {
                        if let Message::Ping(payload) = message {
                            self.pongs.send(payload);
                        }
                        continue;
                    }
                    let message = format!(
                        "more than {} pings and pongs a second (see Config::ws_max_control_per_s)",
                        self.control.per_second
                    );
                    Err(violation(ErrorCode::RateLimited, message))
                }
                Ok(Message::Close(_) | Message::Frame(_)) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                    return Poll::Ready(None);
                }
                Err(WsError::Capacity(_)) => Err(CodecError::FrameTooLarge { max: self.limit.get() }),
                // The connection dropped (no Close came first): a drop, like a reset socket.
                Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                    let reset = io::Error::new(io::ErrorKind::ConnectionReset, "reset without a closing handshake");
                    Err(CodecError::Io(reset))
                }
                Err(WsError::Io(e)) => Err(CodecError::Io(e)),
                Err(e) => Err(violation(
                    ErrorCode::BadFrame,
                    format!("not a valid WebSocket stream: {e}"),
                )),
            };
            self.ended = frame.is_err();
            return Poll::Ready(Some(frame));
        }
    }
}

fn violation(code: ErrorCode, message: impl Into<String>) -> CodecError {
    CodecError::Violation {
        code,
        message: message.into(),
    }
}
