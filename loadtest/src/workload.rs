//! What the engine runs: a [`Workload`] is what each process's share of bots
//! does in one step. It crosses to worker processes as a JSON line, so a
//! runner and its workers share one workload type. The binary's type names
//! every scenario's workload; the engine knows none of them.

use std::fmt::Debug;
use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::share::Share;
use crate::tally::Tally;

/// What every process runs in one step.
pub trait Workload: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Runs this process's share of the step and returns what it counted.
    ///
    /// # Errors
    /// The setup timed out or the coordinator went away.
    fn run_share(&self, share: Share) -> impl Future<Output = anyhow::Result<Tally>> + Send;

    /// Connections the step holds at once, at most (for the open-files check).
    fn connections(&self) -> u64;
}
