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

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use crossbeam_queue::SegQueue;
use futures_util::task::AtomicWaker;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use linger::SharedReader;
pub use writer::WriterEnd;

use crate::ids::DisconnectReason;

mod linger;
mod writer;

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

/// The queue itself: a lock-free segmented queue (segments are allocated as
/// frames arrive, so an idle session holds almost nothing), bounded by the two
/// counters, which are reserved before a frame is pushed.
#[derive(Debug)]
struct Shared {
    frames: SegQueue<Bytes>,
    queued_frames: AtomicUsize,
    queued_bytes: AtomicUsize,
    max_frames: usize,
    max_bytes: usize,
    /// Checked on every send; set once by the first close.
    closed: AtomicBool,
    /// The same event for those who wait for it (the session actor).
    closing: CancellationToken,
    ending: OnceLock<(Queued, Option<Bytes>, DisconnectReason)>,
    /// The writer, when it waits for frames or for the socket.
    writer: AtomicWaker,
    /// The one latest-state frame (a WorldUpdate) waiting for the writer, and
    /// how many queued frames were pushed before it; see [`Outbox::try_send_latest`].
    latest: Mutex<Option<(Bytes, u64)>>,
    /// Whether `latest` holds a frame.
    latest_pending: AtomicBool,
    /// Frames ever pushed into the queue (counted as each push begins).
    pushed: AtomicU64,
    /// Frames ever popped from the queue (by the writer alone).
    popped: AtomicU64,
}

/// The receiving side, owned by the session's writer.
#[derive(Debug)]
pub struct OutboxReceiver {
    shared: Arc<Shared>,
}

/// A new queue holding at most `max_frames` frames and `max_bytes` bytes.
pub fn outbox(max_frames: usize, max_bytes: usize) -> (Outbox, OutboxReceiver) {
    let shared = Arc::new(Shared {
        frames: SegQueue::new(),
        queued_frames: AtomicUsize::new(0),
        queued_bytes: AtomicUsize::new(0),
        max_frames,
        max_bytes,
        closed: AtomicBool::new(false),
        closing: CancellationToken::new(),
        ending: OnceLock::new(),
        writer: AtomicWaker::new(),
        latest: Mutex::new(None),
        latest_pending: AtomicBool::new(false),
        pushed: AtomicU64::new(0),
        popped: AtomicU64::new(0),
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
        if !reserve(&shared.queued_frames, 1, shared.max_frames) {
            return Err(SendError::Full);
        }
        if !reserve(&shared.queued_bytes, frame.len(), shared.max_bytes) {
            shared.queued_frames.fetch_sub(1, Ordering::AcqRel);
            return Err(SendError::Full);
        }
        shared.pushed.fetch_add(1, Ordering::AcqRel);
        shared.frames.push(frame);
        shared.writer.wake();
        Ok(())
    }

    /// Whether `frames` more frames of `bytes` in all would fit the queue now.
    pub fn has_room_for(&self, frames: usize, bytes: usize) -> bool {
        let shared = &*self.shared;
        shared.queued_frames.load(Ordering::Acquire) + frames <= shared.max_frames
            && shared.queued_bytes.load(Ordering::Acquire) + bytes <= shared.max_bytes
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
        let mut latest = shared.latest.lock().unwrap_or_else(PoisonError::into_inner);
        if latest.is_some() {
            return Err(SendError::Full);
        }
        *latest = Some((frame, shared.pushed.load(Ordering::Acquire)));
        shared.latest_pending.store(true, Ordering::Release);
        drop(latest);
        shared.writer.wake();
        Ok(())
    }

    /// Whether a frame given to [`Outbox::try_send_latest`] is still unsent.
    pub fn latest_pending(&self) -> bool {
        self.shared.latest_pending.load(Ordering::Acquire)
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

/// Adds `n` to `counter` unless that would pass `max`.
fn reserve(counter: &AtomicUsize, n: usize, max: usize) -> bool {
    let before = counter.fetch_add(n, Ordering::AcqRel);
    if before + n > max {
        counter.fetch_sub(n, Ordering::AcqRel);
        return false;
    }
    true
}

impl Shared {
    fn close(&self, queued: Queued, last: Option<Bytes>, reason: DisconnectReason) -> bool {
        if self.ending.set((queued, last, reason)).is_err() {
            return false;
        }
        self.closed.store(true, Ordering::Release);
        self.closing.cancel();
        self.writer.wake();
        true
    }

    /// The latest-state frame, if it is due: every frame queued before it was popped.
    fn take_latest_due(&self) -> Option<Bytes> {
        if !self.latest_pending.load(Ordering::Acquire) {
            return None;
        }
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let due = latest
            .as_ref()
            .is_some_and(|(_, after)| *after <= self.popped.load(Ordering::Acquire));
        if !due {
            return None;
        }
        self.latest_pending.store(false, Ordering::Release);
        latest.take().map(|(frame, _)| frame)
    }

    /// Whether the writer has a frame to write now.
    fn has_frames(&self) -> bool {
        if !self.frames.is_empty() {
            return true;
        }
        // With the queue empty, a pending latest frame is due unless a push before it is still under way.
        self.latest_pending.load(Ordering::Acquire)
            && self
                .latest
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .is_some_and(|(_, after)| *after <= self.popped.load(Ordering::Acquire))
    }

    /// The next frame in order: the latest-state frame when it is due, else the queue's next.
    fn next_frame(&self) -> Option<Bytes> {
        self.take_latest_due().or_else(|| self.pop())
    }

    fn pop(&self) -> Option<Bytes> {
        let frame = self.frames.pop()?;
        self.popped.fetch_add(1, Ordering::AcqRel);
        self.queued_frames.fetch_sub(1, Ordering::AcqRel);
        self.queued_bytes.fetch_sub(frame.len(), Ordering::AcqRel);
        Some(frame)
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
