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

/// Bytes of the length prefix before each frame.
const PREFIX: usize = 4;

/// See the module documentation.
pub struct SinkWriter<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
    /// The prefix of the frame being read from the writer, as far as it came.
    prefix: [u8; PREFIX],
    prefix_len: usize,
    /// The body being gathered, and how much of it is still to come.
    body: BytesMut,
    body_left: usize,
    /// A whole message the sink had no room for yet.
    pending: Option<Bytes>,
    closing: bool,
}

impl<S> SinkWriter<S> {
    /// Writes to `sink`.
    pub fn new(sink: SplitSink<WebSocketStream<S>, Message>) -> Self {
        SinkWriter {
            sink,
            prefix: [0; PREFIX],
            prefix_len: 0,
            body: BytesMut::new(),
            body_left: 0,
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
        if self.prefix_len < PREFIX {
            let n = (PREFIX - self.prefix_len).min(buf.len());
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&buf[..n]);
            self.prefix_len += n;
            if self.prefix_len == PREFIX {
                let len = usize::try_from(u32::from_be_bytes(self.prefix)).unwrap_or(usize::MAX);
                self.body = BytesMut::with_capacity(len);
                self.body_left = len;
                self.finish_if_whole();
            }
            return n;
        }
        let n = self.body_left.min(buf.len());
        self.body.extend_from_slice(&buf[..n]);
        self.body_left -= n;
        self.finish_if_whole();
        n
    }

    fn finish_if_whole(&mut self) {
        if self.prefix_len == PREFIX && self.body_left == 0 {
            self.pending = Some(std::mem::take(&mut self.body).freeze());
            self.prefix_len = 0;
        }
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
