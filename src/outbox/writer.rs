//! The writer: the task that empties a session's outbound queue into its
//! socket, and ends the connection as [`Outbox::close`] asked.
//!
//! Writes grow with load. A writer woken by a frame first lets its thread
//! run the rest of its ready work (one scheduler round, at most
//! [`WriterSettings::coalesce`] after the frame arrived), then takes
//! everything queued at once and writes it with as few `writev` calls as the
//! socket takes: one frame when the server is quiet, dozens when it is busy.

use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use quanta::Instant;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Sleep;

#[cfg(doc)]
use super::Outbox;
use super::batch::{Batch, MAX_SLICES, Written};
use super::{CloseBudget, OutboxReceiver, Queued, Ready, Shared};
use crate::ids::DisconnectReason;
use crate::stats::Stats;

/// How a writer writes.
#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    /// Most bytes per write ([`Config::write_batch_bytes`]).
    ///
    /// [`Config::write_batch_bytes`]: crate::Config::write_batch_bytes
    pub batch_bytes: usize,
    /// Longest a frame waits for others to share its write
    /// ([`Config::write_coalesce_us`]); zero writes at once.
    ///
    /// [`Config::write_coalesce_us`]: crate::Config::write_coalesce_us
    pub coalesce: Duration,
    /// A socket that takes no byte for this long ends the connection.
    pub write_timeout: Duration,
}

/// How a writer ended.
#[derive(Debug)]
pub enum WriterEnd {
    /// The connection was closed by [`Outbox::close`] and everything due was written.
    Closed,
    /// Writing failed or timed out (the client went away or stopped reading).
    Failed(io::Error),
}

/// A writer's socket and what it is writing.
struct Writer<'a, W> {
    shared: &'a Shared,
    socket: W,
    /// Frames taken from the queue and not yet written.
    batch: Batch,
    /// For a socket without vectored writes: frames copied into one buffer, being written.
    copy: Bytes,
    vectored: bool,
    /// The last take found at most one frame: the batch's slots go back to
    /// the allocator once written (a busy writer keeps a few for the next).
    quiet: bool,
    settings: WriterSettings,
    stats: &'a Stats,
}

impl OutboxReceiver {
    /// Writes queued frames to `socket` until the outbox is closed, then ends
    /// the connection as the close asked, within the `close` budget.
    /// Frames, bytes and writes go to `stats`, and the queue depth each take found.
    pub async fn write_to<W: AsyncWrite + Unpin>(
        self,
        socket: W,
        settings: WriterSettings,
        close: CloseBudget,
        stats: Arc<Stats>,
    ) -> WriterEnd {
        let shared = &*self.shared;
        let mut writer = Writer {
            shared,
            vectored: socket.is_write_vectored(),
            socket,
            batch: Batch::default(),
            copy: Bytes::new(),
            quiet: true,
            settings,
            stats: &stats,
        };
        loop {
            if writer.batch.is_empty() && writer.copy.is_empty() {
                // A transport that gathers writes (WebSocket) sends them before the writer waits.
                if let Err(e) = writer.flush().await {
                    writer.stop(failure_reason(&e));
                    return WriterEnd::Failed(e);
                }
                writer.batch.release_memory(writer.quiet);
                match poll_fn(|cx| shared.poll_ready(cx)).await {
                    Ready::Closed => break,
                    Ready::Frames(since) => writer.take(since).await,
                }
            }
            tokio::select! {
                biased;
                () = poll_fn(|cx| shared.poll_closed(cx)) => break,
                written = writer.write_some() => if let Err(e) = written {
                    writer.stop(failure_reason(&e));
                    return WriterEnd::Failed(e);
                },
            }
        }
        let ending = tokio::time::timeout(close.limit(), writer.finish()).await;
        writer.stop(DisconnectReason::WriteError);
        match ending {
            Ok(Ok(())) => WriterEnd::Closed,
            Ok(Err(e)) => WriterEnd::Failed(e),
            Err(_) => WriterEnd::Failed(io::ErrorKind::TimedOut.into()),
        }
    }
}

impl<W: AsyncWrite + Unpin> Writer<'_, W> {
    /// Takes everything queued, after letting the thread's other ready work
    /// run first, so that frames it queues share this write: unless
    /// coalescing is off, the first frame has waited its budget already, or
    /// a full write is queued.
    async fn take(&mut self, since: Option<Instant>) {
        let settings = &self.settings;
        if !settings.coalesce.is_zero()
            && since.is_some_and(|at| at.elapsed() < settings.coalesce)
            && self.shared.held_bytes() < settings.batch_bytes
        {
            tokio::task::yield_now().await;
        }
        let frames = self.shared.take(self.batch.slots());
        self.quiet = frames <= 1;
        self.stats.queue_depth(frames);
    }

    /// One write of what is taken: vectored from the frames themselves, or
    /// (for a socket without vectored writes) from a copy of several.
    async fn write_some(&mut self) -> io::Result<()> {
        let deadline = self.settings.write_timeout;
        if self.vectored {
            let (socket, batch, max) = (&mut self.socket, &self.batch, self.settings.batch_bytes);
            // The slice array is made per poll, as large as the batch needs:
            // a lone frame's write does not clear a 16 KiB array first.
            let n = within(deadline, |cx| match batch.len() {
                0..=8 => poll_write_batch::<W, 8>(socket, batch, max, cx),
                9..=64 => poll_write_batch::<W, 64>(socket, batch, max, cx),
                _ => poll_write_batch::<W, MAX_SLICES>(socket, batch, max, cx),
            })
            .await?;
            let done = self.batch.advance(n);
            self.wrote(n, done);
        } else {
            if self.copy.is_empty() {
                let (copy, done) = self.batch.coalesce(self.settings.batch_bytes);
                self.copy = copy;
                self.wrote(0, done);
            }
            let (socket, copy) = (&mut self.socket, &self.copy);
            let n = within(deadline, |cx| Pin::new(&mut *socket).poll_write(cx, copy)).await?;
            self.copy.advance(n);
            self.wrote(n, Written::default());
        }
        Ok(())
    }

    /// Sends what the socket gathered (nothing, for a plain socket), within the write deadline.
    async fn flush(&mut self) -> io::Result<()> {
        let socket = &mut self.socket;
        within(self.settings.write_timeout, |cx| Pin::new(&mut *socket).poll_flush(cx)).await
    }

    /// Counts `n` bytes written, and frees the bounds' share of the frames `done`.
    fn wrote(&self, n: usize, done: Written) {
        let stats = self.stats;
        if n > 0 {
            stats.socket_writes.inc();
            stats.bytes_out.inc_by(u64::try_from(n).unwrap_or(u64::MAX));
        }
        if done != Written::default() {
            stats
                .messages_out
                .inc_by(u64::try_from(done.all_frames()).unwrap_or(u64::MAX));
            self.shared.release(done.frames, done.bytes);
        }
    }

    /// Writes what a close leaves due: a part-written frame always (the
    /// stream stays framed), the queue too on a graceful close, then the
    /// final frame; then shuts the socket's write side.
    async fn finish(&mut self) -> io::Result<()> {
        let (queued, last) = match self.shared.ending.get() {
            Some((queued, last, _)) => (*queued, last.clone()),
            None => (Queued::Flush, None),
        };
        if queued == Queued::Discard {
            let dropped = self.batch.keep_mid_frame();
            self.shared.release(dropped.frames, dropped.bytes);
        }
        loop {
            while !self.batch.is_empty() || !self.copy.is_empty() {
                self.write_some().await?;
            }
            if queued == Queued::Discard || self.shared.take(self.batch.slots()) == 0 {
                break;
            }
        }
        if let Some(last) = last {
            self.socket.write_all(&last).await?;
        }
        self.socket.shutdown().await
    }

    /// Marks the connection closed for every producer (for `reason`, unless
    /// it was closed already) and drops what is queued.
    fn stop(&mut self, reason: DisconnectReason) {
        if self.shared.close(Queued::Discard, None, reason) {
            self.stats.disconnected(reason);
        }
        self.shared.clear();
        self.batch = Batch::default();
    }
}

/// Why a connection whose write failed with `error` ended.
fn failure_reason(error: &io::Error) -> DisconnectReason {
    if error.kind() == io::ErrorKind::TimedOut {
        DisconnectReason::WriteTimeout
    } else {
        DisconnectReason::WriteError
    }
}

/// One vectored write of up to `N` of `batch`'s frames.
fn poll_write_batch<W: AsyncWrite + Unpin, const N: usize>(
    socket: &mut W,
    batch: &Batch,
    max_bytes: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let mut slices = [IoSlice::new(&[]); N];
    let count = batch.slices(&mut slices, max_bytes);
    Pin::new(socket).poll_write_vectored(cx, &slices[..count])
}

/// Polls `write` until it is ready; fails with `TimedOut` if it stays
/// pending for `deadline` (a timer is made only then).
async fn within<T>(
    deadline: Duration,
    mut write: impl FnMut(&mut Context<'_>) -> Poll<io::Result<T>>,
) -> io::Result<T> {
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    poll_fn(|cx| {
        if let Poll::Ready(done) = write(cx) {
            return Poll::Ready(done);
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::outbox::{SendError, outbox};

    fn frame(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    fn settings(batch_bytes: usize) -> WriterSettings {
        WriterSettings {
            batch_bytes,
            coalesce: Duration::from_micros(200),
            write_timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn writes_everything_then_the_last_frame_on_flush() {
        let (tx, rx) = outbox(16, 1 << 16);
        let (client, server) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(rx.write_to(
            server,
            settings(8),
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
        let state = tx.shared.lock();
        assert_eq!(
            (state.held_frames, state.held_bytes),
            (0, 0),
            "written frames free the bounds"
        );
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
                settings(8),
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
            settings(1024),
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
                settings(1024),
                CloseBudget::fixed(Duration::from_millis(50)),
                Arc::default(),
            )
            .await;
        assert!(matches!(end, WriterEnd::Failed(e) if e.kind() == io::ErrorKind::TimedOut));
        assert_eq!(tx.try_send(frame(1, 1)), Err(SendError::Closed));
    }

    async fn tcp_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn a_tcp_socket_gets_every_frame_in_order_through_vectored_writes() {
        let (mut client, server) = tcp_pair().await;
        assert!(server.is_write_vectored());
        let (tx, rx) = outbox(100_000, 1 << 30);
        let stats = Arc::new(Stats::new(true));
        let writer = tokio::spawn(rx.write_to(
            server,
            settings(1 << 16),
            CloseBudget::fixed(Duration::from_secs(5)),
            stats.clone(),
        ));
        let mut expected = Vec::new();
        for i in 0..20_000_u32 {
            if i == 10_000 {
                tx.try_send_latest(frame(0xEE, 5)).unwrap();
                expected.extend_from_slice(&[0xEE; 5]);
            }
            let f = frame(
                u8::try_from(i % 251).unwrap(),
                1 + usize::try_from(i * 7 % 300).unwrap(),
            );
            expected.extend_from_slice(&f);
            tx.try_send(f).unwrap();
        }
        tx.close(Queued::Flush, None, DisconnectReason::ServerShutdown);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert!(matches!(writer.await.unwrap(), WriterEnd::Closed));
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "every frame, in order, the latest one in its place");
        assert_eq!(stats.messages_out.get(), 20_001);
        assert!(stats.socket_writes.get() < 20_001, "frames shared writes");
    }

    #[test]
    fn coalescing_never_holds_a_lone_frame_past_one_round_of_a_busy_thread() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            // A task that is always ready: the thread never runs out of work.
            let busy = tokio::task::spawn_local(async {
                loop {
                    tokio::task::yield_now().await;
                }
            });
            let (mut client, server) = tcp_pair().await;
            let (tx, rx) = outbox(16, 1 << 16);
            let coalesce_for_an_hour = WriterSettings {
                coalesce: Duration::from_secs(3600),
                ..settings(1 << 16)
            };
            tokio::task::spawn_local(rx.write_to(
                server,
                coalesce_for_an_hour,
                CloseBudget::fixed(Duration::from_secs(5)),
                Arc::default(),
            ));
            for round in 1..=3_u8 {
                tx.try_send(frame(round, 3)).unwrap();
                let mut got = [0; 3];
                tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut got))
                    .await
                    .expect("a lone frame is written after one round, not after the budget")
                    .unwrap();
                assert_eq!(got, [round; 3]);
            }
            busy.abort();
        });
    }
}
