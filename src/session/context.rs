//! What every session shares: the settings, the actors it talks to, the
//! figures it keeps, and the shutdown signals.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
}
