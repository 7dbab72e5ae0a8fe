//! A session's outbound queue (here) and the writer that empties it (`writer`).
//!
//! The queue is bounded twice, in frames ([`Config::outbound_queue_frames`])
//! and in bytes ([`Config::outbound_queue_bytes`]). Producers (rooms, the
//! session itself) never wait: [`Outbox::try_send`] either queues the frame or
//! says the queue is full or closed, and the producer decides what that means.
//! The writer task writes a lone frame as it is (no copy) and gathers
//! several ready frames into one buffer of at most [`Config::write_batch_bytes`],
//! written with as few syscalls as the socket allows. It holds no buffer
//! between batches, so an idle session's writer costs no memory.
//!
//! [`Config::outbound_queue_frames`]: crate::Config::outbound_queue_frames
//! [`Config::outbound_queue_bytes`]: crate::Config::outbound_queue_bytes
//! [`Config::write_batch_bytes`]: crate::Config::write_batch_bytes

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use linger::SharedReader;
pub use writer::{WriterEnd, WriterSettings};

use crate::ids::DisconnectReason;

mod batch;
mod linger;
mod writer;

/// What the writer waits for.
enum Ready {
    /// Frames to write; the first arrived at this time.
    Frames(Option<quanta::Instant>),
    Closed,
}

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

/// How long a closing connection may take to flush its last frames, and
/// then again to linger: [`Config::close_timeout_ms`], or once the server is
/// shutting down, what is left of [`Config::shutdown_grace_ms`].
///
/// [`Config::close_timeout_ms`]: crate::Config::close_timeout_ms
/// [`Config::shutdown_grace_ms`]: crate::Config::shutdown_grace_ms
#[derive(Debug, Clone)]
pub struct CloseBudget {
    timeout: Duration,
    shutdown: Arc<OnceLock<Instant>>,
}

impl CloseBudget {
    /// `timeout`, until `shutdown` holds the end of the grace period.
    pub fn new(timeout: Duration, shutdown: Arc<OnceLock<Instant>>) -> Self {
        CloseBudget { timeout, shutdown }
    }

    /// Always `timeout`.
    pub fn fixed(timeout: Duration) -> Self {
        CloseBudget::new(timeout, Arc::default())
    }

    /// The time a close starting now may take.
    pub fn limit(&self) -> Duration {
        match self.shutdown.get() {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => self.timeout,
        }
    }

    /// The time lingering after the final frame may take: `timeout`, and
    /// at shutdown no more than what is left of the grace period.
    pub fn linger_limit(&self) -> Duration {
        self.limit().min(self.timeout)
    }
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
    shared: Arc<Shared>,
}

/// What the session's producers and its writer share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    max_frames: usize,
    max_bytes: usize,
    /// Checked on every send; set once by the first close.
    closed: AtomicBool,
    /// The same event for those who wait for it (the session actor).
    closing: CancellationToken,
    ending: OnceLock<(Queued, Option<Bytes>, DisconnectReason)>,
    /// The writer, when it waits for frames or for the socket.
    writer: AtomicWaker,
}

/// The queue, behind one lock: a push is one short critical section, and the
/// writer takes everything queued in another, however many frames that is.
/// An idle session's queue holds no allocation beyond the few slots its last
/// frames used.
#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Bytes>,
    /// Frames and bytes queued or taken by the writer and not yet written:
    /// what the bounds limit, so a batch being written still counts.
    held_frames: usize,
    held_bytes: usize,
    /// The one latest-state frame (a WorldUpdate) waiting for the writer, and
    /// how many frames had been pushed before it; see [`Outbox::try_send_latest`].
    latest: Option<(Bytes, u64)>,
    /// Frames ever pushed, and ever taken by the writer.
    pushed: u64,
    taken: u64,
    /// When the first frame the writer has not taken arrived (a cheap
    /// clock: it is read at every push into an empty queue).
    since: Option<quanta::Instant>,
    /// The writer waits for a frame: the next push must wake it.
    writer_idle: bool,
}

/// The receiving side, owned by the session's writer.
#[derive(Debug)]
pub struct OutboxReceiver {
    shared: Arc<Shared>,
}

/// A new queue holding at most `max_frames` frames and `max_bytes` bytes.
pub fn outbox(max_frames: usize, max_bytes: usize) -> (Outbox, OutboxReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::default(),
        max_frames,
        max_bytes,
        closed: AtomicBool::new(false),
        closing: CancellationToken::new(),
        ending: OnceLock::new(),
        writer: AtomicWaker::new(),
    });
    (Outbox { shared: shared.clone() }, OutboxReceiver { shared })
}

impl Outbox {
    /// Queues one complete frame without waiting.
    ///
    /// # Errors
    /// [`SendError::Full`] at either bound, [`SendError::Closed`] once the
    /// connection is closing.
    pub fn try_send(&self, frame: Bytes) -> Result<(), SendError> {
        let shared = &*self.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        let mut state = shared.lock();
        if state.held_frames >= shared.max_frames || state.held_bytes + frame.len() > shared.max_bytes {
            return Err(SendError::Full);
        }
        state.held_frames += 1;
        state.held_bytes += frame.len();
        state.pushed += 1;
        if state.since.is_none() {
            state.since = Some(quanta::Instant::now());
        }
        state.frames.push_back(frame);
        let wake = std::mem::take(&mut state.writer_idle);
        drop(state);
        if wake {
            shared.writer.wake();
        }
        Ok(())
    }

    /// Whether `frames` more frames of `bytes` in all would fit the queue now.
    pub fn has_room_for(&self, frames: usize, bytes: usize) -> bool {
        let state = self.shared.lock();
        state.held_frames + frames <= self.shared.max_frames && state.held_bytes + bytes <= self.shared.max_bytes
    }

    /// Hands the writer `frame` as the session's latest state (a
    /// WorldUpdate), beside the queue and outside its bounds. At most one
    /// such frame waits at a time: while one is pending this refuses with
    /// [`SendError::Full`], and the producer skips this one and sends a
    /// newer state later, so a slow client never builds a backlog of them.
    /// It is written after every frame queued before it and before those
    /// queued after it, so it never overtakes a reply (a `WorldEntered`).
    ///
    /// # Errors
    /// [`SendError::Full`] while the last one is unsent, [`SendError::Closed`]
    /// once the connection is closing.
    pub fn try_send_latest(&self, frame: Bytes) -> Result<(), SendError> {
        let shared = &*self.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        let mut state = shared.lock();
        if state.latest.is_some() {
            return Err(SendError::Full);
        }
        state.latest = Some((frame, state.pushed));
        if state.since.is_none() {
            state.since = Some(quanta::Instant::now());
        }
        let wake = std::mem::take(&mut state.writer_idle);
        drop(state);
        if wake {
            shared.writer.wake();
        }
        Ok(())
    }

    /// Whether a frame given to [`Outbox::try_send_latest`] is still unsent.
    pub fn latest_pending(&self) -> bool {
        self.shared.lock().latest.is_some()
    }

    /// Closes the connection for `reason`: the writer handles the queued
    /// frames as `queued` says, writes `last` if given, and shuts the socket
    /// down. The first close wins; later calls change nothing. Returns
    /// whether this call closed it (so its caller counts the disconnect).
    pub fn close(&self, queued: Queued, last: Option<Bytes>, reason: DisconnectReason) -> bool {
        self.shared.close(queued, last, reason)
    }

    /// Why the connection was closed, once it was.
    pub fn close_reason(&self) -> Option<DisconnectReason> {
        self.shared.ending.get().map(|(_, _, reason)| *reason)
    }

    /// Whether [`Outbox::close`] was called (or the writer stopped).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Resolves once the connection is closing.
    pub fn closed(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.shared.closing.clone().cancelled_owned()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close(&self, queued: Queued, last: Option<Bytes>, reason: DisconnectReason) -> bool {
        if self.ending.set((queued, last, reason)).is_err() {
            return false;
        }
        self.closed.store(true, Ordering::Release);
        self.closing.cancel();
        self.writer.wake();
        true
    }

    /// Moves everything queued into `slots` (which must be empty), the
    /// latest-state frame in its place among the rest (its index goes to
    /// `latest_at`); returns the frames moved.
    fn take(&self, (slots, latest_at): (&mut VecDeque<Bytes>, &mut Option<usize>)) -> usize {
        let mut state = self.lock();
        let queued = state.frames.len();
        *latest_at = None;
        if let Some((frame, after)) = state.latest.take() {
            let at = usize::try_from(after.saturating_sub(state.taken)).map_or(queued, |at| at.min(queued));
            state.frames.insert(at, frame);
            *latest_at = Some(at);
        }
        std::mem::swap(&mut state.frames, slots);
        state.taken += u64::try_from(queued).unwrap_or(u64::MAX);
        state.since = None;
        slots.len()
    }

    /// Ready with the time the first untaken frame arrived when there is one
    /// (or the connection closed); else the writer is woken by the next push.
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Ready> {
        if self.closed.load(Ordering::Acquire) {
            return Poll::Ready(Ready::Closed);
        }
        let mut state = self.lock();
        if !state.frames.is_empty() || state.latest.is_some() {
            return Poll::Ready(Ready::Frames(state.since));
        }
        // Registered under the lock that pushes take, so no push is missed.
        self.writer.register(cx.waker());
        state.writer_idle = true;
        drop(state);
        // A close sets `closed` before it wakes; one that woke before the registration is seen here.
        if self.closed.load(Ordering::Acquire) {
            return Poll::Ready(Ready::Closed);
        }
        Poll::Pending
    }

    /// Ready once the connection is closing.
    fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.closed.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.writer.register(cx.waker());
        if self.closed.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Bytes queued and being written.
    fn held_bytes(&self) -> usize {
        self.lock().held_bytes
    }

    /// Frees the bounds' share of `frames` frames of `bytes` bytes, written or dropped.
    fn release(&self, frames: usize, bytes: usize) {
        let mut state = self.lock();
        state.held_frames = state.held_frames.saturating_sub(frames);
        state.held_bytes = state.held_bytes.saturating_sub(bytes);
    }

    /// Drops everything queued (the writer stopped).
    fn clear(&self) {
        let mut state = self.lock();
        state.frames = VecDeque::new();
        state.latest = None;
        state.held_frames = 0;
        state.held_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        tx.close(Queued::Flush, None, DisconnectReason::ClientClosed);
        assert_eq!(tx.try_send(frame(5, 1)), Err(SendError::Closed));
    }
}
