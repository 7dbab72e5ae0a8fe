//! The writer: the task that empties a session's outbound queue into its
//! socket, a lone frame as it is and several gathered into one buffer, and
//! ends the connection as [`Outbox::close`] asked.

use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

#[cfg(doc)]
use super::Outbox;
use super::{CloseBudget, OutboxReceiver, Queued};
use crate::ids::DisconnectReason;
use crate::stats::Stats;

/// Writes all of `buf`, failing with `TimedOut` if the socket takes no byte
/// for `deadline`.
async fn write_with_deadline<W: AsyncWrite + Unpin>(
    socket: &mut W,
    buf: &mut Bytes,
    deadline: Duration,
) -> io::Result<()> {
    while !buf.is_empty() {
        match tokio::time::timeout(deadline, socket.write_buf(buf)).await {
            Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        }
    }
    Ok(())
}

/// How a writer ended.
#[derive(Debug)]
pub enum WriterEnd {
    /// The connection was closed by [`Outbox::close`] and everything due was written.
    Closed,
    /// Writing failed or timed out (the client went away or stopped reading).
    Failed(io::Error),
}

/// What the writer waits for.
enum Ready {
    Frames,
    Closed,
}

impl OutboxReceiver {
    /// Writes queued frames to `socket` until the outbox is closed, then ends
    /// the connection as the close asked, within the `close` budget.
    /// A socket that takes no bytes for `write_timeout` while a batch waits
    /// ends the connection. Frames and bytes written, and the queue depth
    /// each batch found, go to `stats`.
    pub async fn write_to<W: AsyncWrite + Unpin>(
        self,
        mut socket: W,
        batch_bytes: usize,
        write_timeout: Duration,
        close: CloseBudget,
        stats: Arc<Stats>,
    ) -> WriterEnd {
        let mut buf = Bytes::new();
        loop {
            if buf.is_empty() {
                match poll_fn(|cx| self.poll_ready(cx)).await {
                    Ready::Closed => break,
                    Ready::Frames => buf = self.gather(batch_bytes, &stats),
                }
            }
            tokio::select! {
                biased;
                () = poll_fn(|cx| self.poll_closed(cx)) => break,
                written = write_with_deadline(&mut socket, &mut buf, write_timeout) => if let Err(e) = written {
                    let reason = if e.kind() == io::ErrorKind::TimedOut {
                        DisconnectReason::WriteTimeout
                    } else {
                        DisconnectReason::WriteError
                    };
                    self.stop(&stats, reason);
                    return WriterEnd::Failed(e);
                },
            }
        }
        // Any partly written batch is finished first, so the stream stays framed.
        let ending = tokio::time::timeout(close.limit(), self.finish(&mut socket, &mut buf)).await;
        self.stop(&stats, DisconnectReason::WriteError);
        match ending {
            Ok(Ok(())) => WriterEnd::Closed,
            Ok(Err(e)) => WriterEnd::Failed(e),
            Err(_) => WriterEnd::Failed(io::ErrorKind::TimedOut.into()),
        }
    }

    /// Ready when the outbox closed or holds a frame. The waker is registered
    /// before the second look, so a frame pushed in between is not missed.
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Ready> {
        let shared = &*self.shared;
        for attempt in 0..2 {
            if shared.closed.load(Ordering::Acquire) {
                return Poll::Ready(Ready::Closed);
            }
            if shared.has_frames() {
                return Poll::Ready(Ready::Frames);
            }
            if attempt == 0 {
                shared.writer.register(cx.waker());
            }
        }
        Poll::Pending
    }

    fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let shared = &*self.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        shared.writer.register(cx.waker());
        if shared.closed.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    async fn finish<W: AsyncWrite + Unpin>(&self, socket: &mut W, buf: &mut Bytes) -> io::Result<()> {
        let (queued, last) = match self.shared.ending.get() {
            Some((queued, last, _)) => (*queued, last.clone()),
            None => (Queued::Flush, None),
        };
        socket.write_all_buf(buf).await?;
        if queued == Queued::Flush {
            while let Some(frame) = self.shared.next_frame() {
                socket.write_all(&frame).await?;
            }
        }
        if let Some(last) = last {
            socket.write_all(&last).await?;
        }
        socket.shutdown().await
    }

    /// The next batch: a lone ready frame as it is, or ready frames copied
    /// into one buffer until it holds `batch_bytes` or the queue is empty.
    /// The latest-state frame takes its place in order (see [`Outbox::try_send_latest`]).
    fn gather(&self, batch_bytes: usize, stats: &Stats) -> Bytes {
        stats.queue_depth(self.shared.queued_frames.load(Ordering::Relaxed));
        let Some(first) = self.shared.next_frame() else {
            return Bytes::new();
        };
        let batch = if !self.shared.has_frames() || first.len() >= batch_bytes {
            stats.messages_out.inc();
            first
        } else {
            let ready = first.len() + self.shared.queued_bytes.load(Ordering::Acquire);
            let mut buf = BytesMut::with_capacity(ready.min(batch_bytes));
            buf.extend_from_slice(&first);
            let mut frames = 1;
            while buf.len() < batch_bytes {
                match self.shared.next_frame() {
                    Some(frame) => {
                        buf.extend_from_slice(&frame);
                        frames += 1;
                    }
                    None => break,
                }
            }
            stats.messages_out.inc_by(frames);
            buf.freeze()
        };
        stats.bytes_out.inc_by(u64::try_from(batch.len()).unwrap_or(u64::MAX));
        batch
    }

    /// Marks the connection closed for every producer (for `reason`, unless
    /// it was closed already) and drops what is queued.
    fn stop(&self, stats: &Stats, reason: DisconnectReason) {
        if self.shared.close(Queued::Discard, None, reason) {
            stats.disconnected(reason);
        }
        while self.shared.pop().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::outbox::{SendError, outbox};

    fn frame(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    #[tokio::test]
    async fn writes_everything_then_the_last_frame_on_flush() {
        let (tx, rx) = outbox(16, 1 << 16);
        let (client, server) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(rx.write_to(
            server,
            8,
            Duration::from_secs(5),
            CloseBudget::fixed(Duration::from_secs(5)),
            Arc::default(),
        ));
        for b in 1..=5 {
            tx.try_send(frame(b, 3)).unwrap();
        }
        tx.close(Queued::Flush, Some(frame(9, 2)), DisconnectReason::ServerShutdown);
        assert!(matches!(writer.await.unwrap(), WriterEnd::Closed));
        let mut got = Vec::new();
        let mut client = client;
        client.read_to_end(&mut got).await.unwrap();
        let expected: Vec<u8> = (1..=5).flat_map(|b| vec![b; 3]).chain([9, 9]).collect();
        assert_eq!(got, expected);
        assert_eq!(tx.shared.queued_bytes.load(Ordering::Relaxed), 0);
        assert_eq!(tx.shared.queued_frames.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn discard_drops_the_queue_but_keeps_the_last_frame() {
        let (tx, rx) = outbox(16, 1 << 16);
        for b in 1..=5 {
            tx.try_send(frame(b, 3)).unwrap();
        }
        tx.close(Queued::Discard, Some(frame(9, 2)), DisconnectReason::SlowConsumer);
        let (mut client, server) = tokio::io::duplex(1 << 16);
        assert!(matches!(
            rx.write_to(
                server,
                8,
                Duration::from_secs(5),
                CloseBudget::fixed(Duration::from_secs(5)),
                Arc::default()
            )
            .await,
            WriterEnd::Closed
        ));
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, vec![9, 9]);
    }

    #[tokio::test]
    async fn one_latest_frame_waits_at_a_time_beside_the_queue_in_order() {
        let (tx, rx) = outbox(1, 100);
        tx.try_send(frame(1, 2)).unwrap();
        tx.try_send_latest(frame(7, 3)).unwrap();
        assert!(tx.latest_pending());
        assert_eq!(tx.try_send_latest(frame(8, 3)), Err(SendError::Full), "one at a time");
        assert_eq!(
            tx.try_send(frame(2, 2)),
            Err(SendError::Full),
            "outside the queue's bounds"
        );
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(rx.write_to(
            server,
            1024,
            Duration::from_secs(5),
            CloseBudget::fixed(Duration::from_secs(5)),
            Arc::default(),
        ));
        let mut got = [0; 5];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [1, 1, 7, 7, 7], "the latest state after what was queued before it");
        assert!(!tx.latest_pending());
        tx.try_send_latest(frame(9, 1)).unwrap();
        tx.try_send(frame(3, 2)).unwrap();
        tx.close(Queued::Flush, None, DisconnectReason::ClientClosed);
        assert!(matches!(writer.await.unwrap(), WriterEnd::Closed));
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert_eq!(
            rest,
            [9, 3, 3],
            "before what was queued after it, and flushed at a graceful close"
        );
    }

    #[tokio::test]
    async fn a_reader_that_never_reads_times_the_close_out() {
        let (tx, rx) = outbox(16, 1 << 16);
        let (_client, server) = tokio::io::duplex(4);
        tx.try_send(frame(1, 64)).unwrap();
        tx.close(Queued::Flush, None, DisconnectReason::ClientClosed);
        let end = rx
            .write_to(
                server,
                1024,
                Duration::from_secs(5),
                CloseBudget::fixed(Duration::from_millis(50)),
                Arc::default(),
            )
            .await;
        assert!(matches!(end, WriterEnd::Failed(e) if e.kind() == io::ErrorKind::TimedOut));
        assert_eq!(tx.try_send(frame(1, 1)), Err(SendError::Closed));
    }
}
