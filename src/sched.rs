//! The scheduling policy of the server's own threads ([`Config::sched_policy`]).
//!
//! `SCHED_BATCH` tells Linux that a thread is throughput-bound: a thread
//! woken by another no longer preempts the one that woke it, so a room
//! thread handing frames to a session thread on the same core finishes its
//! fan-out before the session runs. Niceness is left as it is, and threads
//! the server did not start (the one that calls `Server::run`) are left alone.
//!
//! [`Config::sched_policy`]: crate::Config::sched_policy

use std::io;

/// A thread scheduling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SchedPolicy {
    /// The system's default (`SCHED_OTHER`): threads are left as they start.
    #[default]
    Other,
    /// `SCHED_BATCH` (Linux only; no privileges needed).
    Batch,
}

impl SchedPolicy {
    /// Puts the calling thread under this policy.
    ///
    /// # Errors
    /// The system refused, or does not have the policy.
    pub fn apply_to_this_thread(self) -> io::Result<()> {
        match self {
            SchedPolicy::Other => Ok(()),
            SchedPolicy::Batch => batch(),
        }
    }

    /// [`SchedPolicy::apply_to_this_thread`], logging a failure (the thread
    /// runs on under the default policy).
    pub fn apply_or_warn(self, thread: &str) {
        if let Err(e) = self.apply_to_this_thread() {
            tracing::warn!(policy = ?self, thread, error = %e, "could not set the scheduling policy");
        }
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn batch() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread.
    let done = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &raw const param) };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn batch() -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "SCHED_BATCH is Linux only"))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn batch_applies_to_the_calling_thread_only() {
        // SAFETY: reads the calling thread's policy; no pointers.
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let inside = std::thread::spawn(move || {
            SchedPolicy::Batch.apply_to_this_thread().unwrap();
            policy()
        })
        .join()
        .unwrap();
        assert_eq!(inside, libc::SCHED_BATCH);
        assert_eq!(policy(), libc::SCHED_OTHER, "other threads keep theirs");
    }
}
