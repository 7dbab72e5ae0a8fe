//! A connection's two halves as one stream, for the WebSocket handshake and
//! reading, which want one: the read half stays shared for the lingering
//! close, as on the game port. After the handshake the write half is taken
//! out for the session's writer; what tungstenite's reader would write
//! then (pongs, close replies) is discarded, since the writer sends those.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::outbox::SharedReader;

/// See the module documentation.
pub struct Duplex<R, W> {
    read: SharedReader<R>,
    write: Option<W>,
}

impl<R, W> Duplex<R, W> {
    /// Joins `read` (shared) and `write`.
    pub fn new(read: SharedReader<R>, write: W) -> Self {
        Duplex {
            read,
            write: Some(write),
        }
    }

    /// Takes the write half out; writes to this stream are discarded from now on.
    pub fn take_writer(&mut self) -> Option<W> {
        self.write.take()
    }
}

impl<R: AsyncRead + Unpin, W: Unpin> AsyncRead for Duplex<R, W> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<R: Unpin, W: AsyncWrite + Unpin> AsyncWrite for Duplex<R, W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.write {
            Some(write) => Pin::new(write).poll_write(cx, buf),
            None => Poll::Ready(Ok(buf.len())),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.write {
            Some(write) => Pin::new(write).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Ok(bufs.iter().map(|buf| buf.len()).sum())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.write.as_ref().is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.write {
            Some(write) => Pin::new(write).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.write {
            Some(write) => Pin::new(write).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}
