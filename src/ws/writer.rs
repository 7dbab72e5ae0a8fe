//! The session's outbox, written to a WebSocket connection. The writer
//! writes length-prefixed frames as on the game port; this rewrites each
//! length prefix as the header of one binary WebSocket frame (formatted by
//! tungstenite) and passes the body through, straight to the socket: no
//! message objects, no second buffer per frame. What one write takes is
//! rewritten into one buffer (at most a write batch, the writer's bound)
//! and written before the next is taken, so the writer's backpressure and
//! write deadline hold as on the game port. A pong the client asked for goes
//! out between two frames; shutting down sends a Close frame whose code and
//! reason say why the session ended, then closes the TCP write side.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

use super::prefixes::{Piece, Prefixes};
use crate::ids::DisconnectReason;
use crate::outbox::Outbox;

/// The frame that wakes the writer for a control frame: empty, which no
/// server message is.
pub(super) const WAKE: &[u8] = &[0; 4];

/// Control frames the read side asks the writer to send: the latest pong.
#[derive(Debug, Default)]
pub struct Control {
    pong: Mutex<Option<Bytes>>,
}

impl Control {
    /// Asks for a pong carrying `payload` (a newer ping's replaces an unsent one).
    pub fn pong(&self, payload: Bytes) {
        *self.pong.lock().unwrap_or_else(PoisonError::into_inner) = Some(payload);
    }

    fn take_pong(&self) -> Option<Bytes> {
        self.pong.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// See the module documentation.
pub struct WsWriter<W> {
    socket: W,
    /// Why the session ended, for the Close frame.
    outbox: Outbox,
    control: Arc<Control>,
    /// Rewritten bytes not yet written, from `at`.
    out: Vec<u8>,
    at: usize,
    /// Where the frame stream is.
    prefixes: Prefixes,
    closed: bool,
}

impl<W> WsWriter<W> {
    /// Writes to `socket`; `outbox` is the session's, whose close reason the
    /// Close frame gives; `control` carries the pongs to send.
    pub fn new(socket: W, outbox: &Outbox, control: Arc<Control>) -> Self {
        WsWriter {
            socket,
            outbox: outbox.clone(),
            control,
            out: Vec::new(),
            at: 0,
            prefixes: Prefixes::default(),
            closed: false,
        }
    }

    /// Rewrites `buf`, the next bytes of the frame stream, into `out`.
    fn rewrite(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            let (piece, n) = self.prefixes.next(buf);
            match piece {
                Some(Piece::Body(body)) => self.out.extend_from_slice(body),
                // An empty frame only wakes the writer (see WAKE).
                Some(Piece::Start(len)) if len > 0 => {
                    let header = FrameHeader {
                        opcode: OpCode::Data(Data::Binary),
                        ..FrameHeader::default()
                    };
                    // Writing into a Vec cannot fail.
                    let _ = header.format(u64::try_from(len).unwrap_or(u64::MAX), &mut self.out);
                }
                Some(Piece::Start(_)) | None => {}
            }
            buf = &buf[n..];
        }
    }

    /// Between two frames, adds the pong asked for, if any.
    fn add_control(&mut self) {
        if self.prefixes.between_frames()
            && let Some(payload) = self.control.take_pong()
        {
            let _ = Frame::pong(payload).format(&mut self.out);
        }
    }
}

impl<W: AsyncWrite + Unpin> WsWriter<W> {
    /// Writes what was rewritten.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.at < self.out.len() {
            let n = ready!(Pin::new(&mut self.socket).poll_write(cx, &self.out[self.at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.at += n;
        }
        self.out.clear();
        self.at = 0;
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for WsWriter<W> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        this.add_control();
        let mut taken = 0;
        for buf in bufs {
            this.rewrite(buf);
            taken += buf.len();
        }
        // Written now if the socket takes it, else before the next write or on flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.add_control();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if !this.closed {
            this.closed = true;
            let close = close_frame(this.outbox.close_reason());
            let _ = Frame::close(Some(close)).format(&mut this.out);
            ready!(this.poll_drain(cx))?;
        }
        Pin::new(&mut this.socket).poll_shutdown(cx)
    }
}

/// The Close frame for a session that ended for `reason`.
pub fn close_frame(reason: Option<DisconnectReason>) -> CloseFrame {
    let reason = reason.unwrap_or(DisconnectReason::ClientClosed);
    let code = match reason {
        DisconnectReason::ServerShutdown => CloseCode::Away,
        DisconnectReason::ProtocolError => CloseCode::Protocol,
        DisconnectReason::SlowConsumer
        | DisconnectReason::RateLimited
        | DisconnectReason::Unauthenticated
        | DisconnectReason::HelloTimeout
        | DisconnectReason::IdleTimeout => CloseCode::Policy,
        DisconnectReason::Internal => CloseCode::Error,
        DisconnectReason::Resumed => CloseCode::Library(4000),
        DisconnectReason::ClientClosed
        | DisconnectReason::ReadError
        | DisconnectReason::WriteError
        | DisconnectReason::WriteTimeout
        | DisconnectReason::Goodbye => CloseCode::Normal,
    };
    CloseFrame {
        code,
        reason: reason.as_str().into(),
    }
}
