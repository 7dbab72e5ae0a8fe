//! Fan-out of one encoded frame to many outbound queues.
//!
//! The frame is encoded once by the caller; each recipient gets a `Bytes`
//! clone (a reference count). Nothing here waits: a full or closed queue is
//! reported back for the caller to act on. Below
//! [`Config::broadcast_parallel_threshold`] recipients the loop runs inline on
//! the caller's thread; from there on it is split over a rayon pool. Either way
//! every recipient receives the caller's frames in the order of the calls.
//!
//! [`Config::broadcast_parallel_threshold`]: crate::Config::broadcast_parallel_threshold

use bytes::Bytes;
use rayon::prelude::*;

use crate::outbox::{Outbox, SendError};
use crate::sched::SchedPolicy;

/// Smallest slice of recipients one rayon job handles: below this, splitting
/// costs more than it saves.
const MIN_CHUNK: usize = 1024;

/// Something that has an outbound queue.
pub trait Recipient: Sync {
    /// The queue to push into; none for a recipient served some other way.
    fn outbox(&self) -> Option<&Outbox>;
}

/// Pushes frames into many outboxes, inline or on its thread pool.
#[derive(Debug)]
pub struct Broadcaster {
    pool: rayon::ThreadPool,
    parallel_threshold: usize,
}

/// A recipient whose queue refused the frame: its index in the slice and why.
pub type Refusal = (usize, SendError);

impl Broadcaster {
    /// A broadcaster with `threads` pool threads under `policy`, going
    /// parallel from `parallel_threshold` recipients.
    ///
    /// # Errors
    /// The pool's threads could not be started.
    pub fn new(
        threads: usize,
        parallel_threshold: usize,
        policy: SchedPolicy,
    ) -> Result<Broadcaster, rayon::ThreadPoolBuildError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("tavern-broadcast-{i}"))
            .start_handler(move |_| policy.apply_or_warn("broadcast"))
            .build()?;
        Ok(Broadcaster {
            pool,
            parallel_threshold,
        })
    }

    /// Runs `work` on the broadcaster's thread pool (rayon's parallel
    /// iterators inside it use the pool).
    pub fn install<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        self.pool.install(work)
    }

    /// Queues `frame` for every recipient except the one at index `skip`;
    /// returns the recipients that refused it, in no particular order.
    pub fn send<R: Recipient>(&self, frame: &Bytes, recipients: &[R], skip: Option<usize>) -> Vec<Refusal> {
        let push = |(i, r): (usize, &R)| {
            if skip == Some(i) {
                return None;
            }
            r.outbox()?.try_send(frame.clone()).err().map(|e| (i, e))
        };
        if recipients.len() < self.parallel_threshold {
            recipients.iter().enumerate().filter_map(push).collect()
        } else {
            self.pool.install(|| {
                recipients
                    .par_iter()
                    .enumerate()
                    .with_min_len(MIN_CHUNK)
                    .filter_map(push)
                    .collect()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{Queued, outbox};

    struct R(Outbox);
    impl Recipient for R {
        fn outbox(&self) -> Option<&Outbox> {
            Some(&self.0)
        }
    }

    fn check(threshold: usize) {
        let broadcaster = Broadcaster::new(2, threshold, SchedPolicy::Other).unwrap();
        let mut receivers = Vec::new();
        let recipients: Vec<R> = (0..3000)
            .map(|i| {
                let (tx, rx) = outbox(if i == 7 { 1 } else { 8 }, 1 << 20);
                receivers.push(rx);
                R(tx)
            })
            .collect();
        recipients[9]
            .0
            .close(Queued::Flush, None, crate::ids::DisconnectReason::ClientClosed);
        let frame = Bytes::from_static(b"frame");
        // Skipping the closed one: everyone else takes the frame (7 is now full).
        assert_eq!(broadcaster.send(&frame, &recipients, Some(9)), vec![]);
        let mut refused = broadcaster.send(&frame, &recipients, None);
        refused.sort_unstable_by_key(|&(i, _)| i);
        assert_eq!(refused, vec![(7, SendError::Full), (9, SendError::Closed)]);
    }

    #[test]
    fn inline_reports_full_and_closed() {
        check(usize::MAX);
    }

    #[test]
    fn parallel_reports_full_and_closed() {
        check(1);
    }
}
