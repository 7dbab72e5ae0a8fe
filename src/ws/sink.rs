//! A client's writes to a WebSocket: the length-prefixed frames the library
//! client writes, each sent as one binary message through tungstenite (which
//! masks them, as a client must).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures_util::Sink;
use futures_util::stream::SplitSink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::prefixes::{Piece, Prefixes};

/// See the module documentation.
pub struct SinkWriter<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
    /// Where the frame stream is.
    prefixes: Prefixes,
    /// The body being gathered.
    body: BytesMut,
    /// A whole message the sink had no room for yet.
    pending: Option<Bytes>,
    closing: bool,
}

impl<S> SinkWriter<S> {
    /// Writes to `sink`.
    pub fn new(sink: SplitSink<WebSocketStream<S>, Message>) -> Self {
        SinkWriter {
            sink,
            prefixes: Prefixes::default(),
            body: BytesMut::new(),
            pending: None,
            closing: false,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> SinkWriter<S> {
    /// Hands the pending message to the sink once it has room.
    fn poll_send_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pending.is_some() {
            ready!(Pin::new(&mut self.sink).poll_ready(cx)).map_err(io_error)?;
            if let Some(body) = self.pending.take() {
                Pin::new(&mut self.sink)
                    .start_send(Message::Binary(body))
                    .map_err(io_error)?;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes bytes of the frame stream from `buf`, up to the end of the next
    /// whole frame; returns how many. A whole frame becomes the pending message.
    fn take(&mut self, buf: &[u8]) -> usize {
        let (piece, n) = self.prefixes.next(buf);
        match piece {
            Some(Piece::Start(len)) => self.body = BytesMut::with_capacity(len),
            Some(Piece::Body(body)) => self.body.extend_from_slice(body),
            None => return n,
        }
        if self.prefixes.between_frames() {
            self.pending = Some(std::mem::take(&mut self.body).freeze());
        }
        n
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for SinkWriter<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut taken = 0;
        for buf in bufs {
            let mut rest: &[u8] = buf;
            while !rest.is_empty() {
                match this.poll_send_pending(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending if taken == 0 => return Poll::Pending,
                    Poll::Pending => return Poll::Ready(Ok(taken)),
                }
                let n = this.take(rest);
                rest = &rest[n..];
                taken += n;
            }
        }
        // The last whole frame goes to the sink now if it can, else on the next write or flush.
        match this.poll_send_pending(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(taken)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_pending(cx))?;
        Pin::new(&mut this.sink).poll_flush(cx).map_err(io_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_pending(cx))?;
        if !this.closing {
            ready!(Pin::new(&mut this.sink).poll_ready(cx)).map_err(io_error)?;
            let close = CloseFrame {
                code: CloseCode::Normal,
                reason: "goodbye".into(),
            };
            Pin::new(&mut this.sink)
                .start_send(Message::Close(Some(close)))
                .map_err(io_error)?;
            this.closing = true;
        }
        match ready!(Pin::new(&mut this.sink).poll_flush(cx)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(io_error(e))),
        }
    }
}

fn io_error(error: WsError) -> io::Error {
    match error {
        WsError::Io(e) => e,
        e => io::Error::other(e),
    }
}
