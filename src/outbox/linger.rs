//! The lingering close. When the server closes a connection while the
//! client's bytes are still unread, closing the socket at once makes the
//! kernel send a reset, and the client may lose the last frames and the
//! error that says why. So the read half is shared between the session and
//! the writer: after the final frame and the shutdown of the write side, the
//! writer takes the read half and discards what comes, until the client
//! closes, sends nothing for [`LINGER_IDLE`], or [`Config::close_timeout_ms`]
//! passes; then the socket closes.
//!
//! [`Config::close_timeout_ms`]: crate::Config::close_timeout_ms

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// Bytes read per call while discarding.
const DISCARD_CHUNK: usize = 4096;

/// How long the writer waits for more input while lingering: a client that
/// sends nothing for this long has nothing in flight, and the socket closes.
pub const LINGER_IDLE: Duration = Duration::from_millis(500);

/// A connection's read half, readable by the session until the writer takes it to linger.
pub struct SharedReader<R>(Arc<Mutex<Option<R>>>);

impl<R> SharedReader<R> {
    /// Shares `read`.
    pub fn new(read: R) -> Self {
        SharedReader(Arc::new(Mutex::new(Some(read))))
    }

    /// Another handle to the same read half.
    #[must_use]
    pub fn share(&self) -> Self {
        SharedReader(self.0.clone())
    }

    fn take_read_half(&self) -> Option<R> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl<R: AsyncRead + Unpin> SharedReader<R> {
    /// Takes the read half (the session's reads now end) and discards what
    /// the client sends until it closes, the read fails, nothing comes for
    /// [`LINGER_IDLE`], or `limit` passes.
    pub async fn linger(self, limit: Duration) {
        let Some(mut read) = self.take_read_half() else { return };
        let mut discard = vec![0; DISCARD_CHUNK];
        let _ = tokio::time::timeout(limit, async {
            while let Ok(Ok(n)) = tokio::time::timeout(LINGER_IDLE, read.read(&mut discard)).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for SharedReader<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut *self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(read) => Pin::new(read).poll_read(cx, buf),
            // Taken to linger: the session sees the end of the stream.
            None => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn the_session_reads_until_the_writer_takes_it_then_input_is_discarded_to_the_end() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut session = SharedReader::new(server);
        let writer = session.share();
        client.write_all(b"hi").await.unwrap();
        let mut got = [0; 2];
        session.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hi");
        let lingering = tokio::spawn(writer.linger(Duration::from_secs(5)));
        client.write_all(&[7; 1000]).await.unwrap();
        drop(client);
        lingering.await.unwrap();
        assert_eq!(
            session.read(&mut got).await.unwrap(),
            0,
            "the session's reads have ended"
        );
    }
}
