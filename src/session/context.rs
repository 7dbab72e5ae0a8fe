//! What every session shares: the settings, the actors it talks to, the
//! figures it keeps, and the shutdown signals.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::resume::ResumeTokens;
use crate::auth::Authority;
use crate::config::Config;
use crate::directory::{DirectoryHandle, Names};
use crate::lifecycle::Hooks;
use crate::stats::Stats;
use crate::world::Worlds;

/// What every session shares; built once by the server.
pub struct SessionContext {
    /// The settings.
    pub config: Config,
    /// The room directory.
    pub directory: DirectoryHandle,
    /// The game worlds.
    pub worlds: Worlds,
    /// Player names in use.
    pub names: Names,
    /// This node's place in a cluster (names are claimed there too), if it is in one.
    pub cluster: Option<crate::cluster::Cluster>,
    /// Server-wide figures.
    pub stats: Arc<Stats>,
    /// Lifecycle events.
    pub hooks: Hooks,
    /// Checks Hello's token, with `--auth token`.
    pub authority: Option<Authority>,
    /// Cancelled first at shutdown: sessions stop reading.
    pub stop_reading: CancellationToken,
    /// Cancelled once rooms are drained: sessions send ServerShutdown and close.
    pub closing: CancellationToken,
    /// Tracks every connection's writer, to wait for them at shutdown.
    pub tracker: TaskTracker,
    /// The end of the shutdown grace period, once shutdown began: closing
    /// connections take at most what is left of it.
    pub shutdown_deadline: Arc<OnceLock<Instant>>,
    /// Room commands still on their way at shutdown.
    pub late_sends: LateSends,
    /// The sessions a resume token can take over.
    pub resume: ResumeTokens,
}

/// What stands between the start of shutdown and draining the rooms:
/// sessions still reading (a frame they read may still become a room
/// command), and commands waiting for space in a room's full inbox. The
/// rooms are drained once neither is left, so that no command a session
/// took lands after its room's drain, when its members are gone.
#[derive(Debug, Default)]
pub struct LateSends {
    /// Sessions whose reader still runs.
    reading: AtomicUsize,
    /// Commands waiting for space in a room's inbox.
    waiting: AtomicUsize,
    /// Commands that have waited, ever.
    waited: AtomicU64,
    settled: Notify,
}

impl LateSends {
    /// A session's reader started.
    pub fn reading_starts(&self) {
        self.reading.fetch_add(1, Ordering::AcqRel);
    }

    /// A session's reader stopped for good.
    pub fn reading_stops(&self) {
        if self.reading.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.settled.notify_waiters();
        }
    }

    /// A command waits for space in a room's inbox.
    pub fn wait_begins(&self) {
        self.waited.fetch_add(1, Ordering::AcqRel);
        self.waiting.fetch_add(1, Ordering::AcqRel);
    }

    /// The waiting command is in the inbox (or its room is gone).
    pub fn wait_ends(&self) {
        if self.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.settled.notify_waiters();
        }
    }

    /// Commands that have waited so far.
    pub fn waited(&self) -> u64 {
        self.waited.load(Ordering::Acquire)
    }

    /// Whether no session reads and no command waits.
    pub fn is_settled(&self) -> bool {
        self.reading.load(Ordering::Acquire) == 0 && self.waiting.load(Ordering::Acquire) == 0
    }

    /// Resolves once no session reads and no command waits.
    pub async fn settled(&self) {
        loop {
            let settled = self.settled.notified();
            if self.is_settled() {
                return;
            }
            settled.await;
        }
    }
}
