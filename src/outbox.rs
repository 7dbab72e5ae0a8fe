//! A session's outbound queue and the writer that empties it.
//!
//! The queue is bounded twice, in frames ([`Config::outbound_queue_frames`])
//! and in bytes ([`Config::outbound_queue_bytes`]). Producers (rooms, the
//! session itself) never wait: [`Outbox::try_send`] either queues the frame or
//! says the queue is full or closed, and the producer decides what that means.
//! The writer task gathers every ready frame into one buffer of at most
//! [`Config::write_batch_bytes`] and writes it with as few syscalls as the
//! socket allows.
//!
//! [`Config::outbound_queue_frames`]: crate::Config::outbound_queue_frames
//! [`Config::outbound_queue_bytes`]: crate::Config::outbound_queue_bytes
//! [`Config::write_batch_bytes`]: crate::Config::write_batch_bytes

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The queue is at its frame or byte bound: the client is not keeping up.
    #[error("outbound queue full (see Config::outbound_queue_frames and Config::outbound_queue_bytes)")]
    Full,
    /// The connection is closing or closed.
    #[error("connection closed")]
    Closed,
}

/// What happens to the frames still queued when a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Write them, then the final frame (graceful close).
    Flush,
    /// Drop them and write only the final frame (a client that cannot keep up).
    Discard,
}

/// The sending side of a session's outbound queue; cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    frames: mpsc::Sender<Bytes>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    closing: CancellationToken,
    ending: OnceLock<(Queued, Option<Bytes>)>,
}

/// The receiving side, owned by the session's writer.
#[derive(Debug)]
pub struct OutboxReceiver {
    frames: mpsc::Receiver<Bytes>,
    shared: Arc<Shared>,
}

/// A new queue holding at most `max_frames` frames and `max_bytes` bytes.
pub fn outbox(max_frames: usize, max_bytes: usize) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(max_frames);
    let shared = Arc::new(Shared {
        queued_bytes: AtomicUsize::new(0),
        max_bytes,
        closing: CancellationToken::new(),
        ending: OnceLock::new(),
    });
    (
        Outbox {
            frames: tx,
            shared: shared.clone(),
        },
        OutboxReceiver { frames: rx, shared },
    )
}

impl Outbox {
    /// Queues one complete frame without waiting.
    ///
    /// # Errors
    /// [`SendError::Full`] at either bound, [`SendError::Closed`] once the
    /// connection is closing.
    pub fn try_send(&self, frame: Bytes) -> Result<(), SendError> {
        if self.shared.closing.is_cancelled() {
            return Err(SendError::Closed);
        }
        let len = frame.len();
        let before = self.shared.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before + len > self.shared.max_bytes {
            self.shared.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(SendError::Full);
        }
        self.frames.try_send(frame).map_err(|e| {
            self.shared.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(_) => SendError::Full,
                mpsc::error::TrySendError::Closed(_) => SendError::Closed,
            }
        })
    }

    /// Closes the connection: the writer handles the queued frames as
    /// `queued` says, writes `last` if given, and shuts the socket down. The
    /// first close wins; later calls change nothing.
    pub fn close(&self, queued: Queued, last: Option<Bytes>) {
        if self.shared.ending.set((queued, last)).is_ok() {
            self.shared.closing.cancel();
        }
    }

    /// Whether [`Outbox::close`] was called (or the writer stopped).
    pub fn is_closed(&self) -> bool {
        self.shared.closing.is_cancelled()
    }

    /// Resolves once the connection is closing.
    pub fn closed(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.shared.closing.clone().cancelled_owned()
    }
}

/// How a writer ended.
#[derive(Debug)]
pub enum WriterEnd {
    /// The connection was closed by [`Outbox::close`] and everything due was written.
    Closed,
    /// Writing failed or timed out (the client went away or stopped reading).
    Failed(io::Error),
}

impl OutboxReceiver {
    /// Writes queued frames to `socket` until the outbox is closed, then ends
    /// the connection as the close asked, within `close_timeout`.
    pub async fn write_to<W: AsyncWrite + Unpin>(
        mut self,
        mut socket: W,
        batch_bytes: usize,
        close_timeout: Duration,
    ) -> WriterEnd {
        let mut buf = BytesMut::with_capacity(batch_bytes);
        let closing = self.shared.closing.clone();
        loop {
            if buf.is_empty() {
                tokio::select! {
                    biased;
                    () = closing.cancelled() => break,
                    frame = self.frames.recv() => match frame {
                        Some(frame) => self.take(&mut buf, &frame),
                        None => break,
                    },
                }
                self.gather(&mut buf, batch_bytes);
            }
            tokio::select! {
                biased;
                () = closing.cancelled() => break,
                written = socket.write_all_buf(&mut buf) => if let Err(e) = written {
                    self.stop();
                    return WriterEnd::Failed(e);
                },
            }
        }
        // Any partly written batch is finished first, so the stream stays framed.
        let ending = tokio::time::timeout(close_timeout, self.finish(&mut socket, &mut buf)).await;
        self.stop();
        match ending {
            Ok(Ok(())) => WriterEnd::Closed,
            Ok(Err(e)) => WriterEnd::Failed(e),
            Err(_) => WriterEnd::Failed(io::ErrorKind::TimedOut.into()),
        }
    }

    async fn finish<W: AsyncWrite + Unpin>(&mut self, socket: &mut W, buf: &mut BytesMut) -> io::Result<()> {
        let (queued, last) = self.shared.ending.get().cloned().unwrap_or((Queued::Flush, None));
        socket.write_all_buf(buf).await?;
        if queued == Queued::Flush {
            while let Ok(frame) = self.frames.try_recv() {
                self.release(&frame);
                socket.write_all(&frame).await?;
            }
        }
        if let Some(last) = last {
            socket.write_all(&last).await?;
        }
        socket.shutdown().await
    }

    /// Moves ready frames into `buf` until it holds `batch_bytes` or the queue is empty.
    fn gather(&mut self, buf: &mut BytesMut, batch_bytes: usize) {
        while buf.len() < batch_bytes {
            match self.frames.try_recv() {
                Ok(frame) => self.take(buf, &frame),
                Err(_) => break,
            }
        }
    }

    fn take(&self, buf: &mut BytesMut, frame: &Bytes) {
        self.release(frame);
        buf.extend_from_slice(frame);
    }

    fn release(&self, frame: &Bytes) {
        self.shared.queued_bytes.fetch_sub(frame.len(), Ordering::AcqRel);
    }

    /// Marks the connection closed for every producer and drops what is queued.
    fn stop(&mut self) {
        let _ = self.shared.ending.set((Queued::Discard, None));
        self.shared.closing.cancel();
        self.frames.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn frame(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    #[test]
    fn bounded_in_frames_and_bytes() {
        let (tx, _rx) = outbox(3, 100);
        tx.try_send(frame(1, 40)).unwrap();
        tx.try_send(frame(2, 40)).unwrap();
        assert_eq!(tx.try_send(frame(3, 40)), Err(SendError::Full), "byte bound");
        tx.try_send(frame(3, 20)).unwrap();
        assert_eq!(tx.try_send(frame(4, 0)), Err(SendError::Full), "frame bound");
        tx.close(Queued::Flush, None);
        assert_eq!(tx.try_send(frame(5, 1)), Err(SendError::Closed));
    }

    #[tokio::test]
    async fn writes_everything_then_the_last_frame_on_flush() {
        let (tx, rx) = outbox(16, 1 << 16);
        let (client, server) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(rx.write_to(server, 8, Duration::from_secs(5)));
        for b in 1..=5 {
            tx.try_send(frame(b, 3)).unwrap();
        }
        tx.close(Queued::Flush, Some(frame(9, 2)));
        assert!(matches!(writer.await.unwrap(), WriterEnd::Closed));
        let mut got = Vec::new();
        let mut client = client;
        client.read_to_end(&mut got).await.unwrap();
        let expected: Vec<u8> = (1..=5).flat_map(|b| vec![b; 3]).chain([9, 9]).collect();
        assert_eq!(got, expected);
        assert_eq!(tx.shared.queued_bytes.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn discard_drops_the_queue_but_keeps_the_last_frame() {
        let (tx, rx) = outbox(16, 1 << 16);
        for b in 1..=5 {
            tx.try_send(frame(b, 3)).unwrap();
        }
        tx.close(Queued::Discard, Some(frame(9, 2)));
        let (mut client, server) = tokio::io::duplex(1 << 16);
        assert!(matches!(
            rx.write_to(server, 8, Duration::from_secs(5)).await,
            WriterEnd::Closed
        ));
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, vec![9, 9]);
    }

    #[tokio::test]
    async fn a_reader_that_never_reads_times_the_close_out() {
        let (tx, rx) = outbox(16, 1 << 16);
        let (_client, server) = tokio::io::duplex(4);
        tx.try_send(frame(1, 64)).unwrap();
        tx.close(Queued::Flush, None);
        let end = rx.write_to(server, 1024, Duration::from_millis(50)).await;
        assert!(matches!(end, WriterEnd::Failed(e) if e.kind() == io::ErrorKind::TimedOut));
        assert_eq!(tx.try_send(frame(1, 1)), Err(SendError::Closed));
    }
}
