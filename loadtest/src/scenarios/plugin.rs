//! The `plugin` scenario: rooms of a room plugin's kind (`echo` by default),
//! whose publishers send `RoomSend` ops stamped as chat texts are and whose
//! members read the `RoomEvent`s the plugin broadcasts for them: op-to-event
//! latency, events per second, loss and the room's order. One step at the
//! given rate, or a search for the highest rate they sustain (`--find-max`).

use super::rooms::{self, RoomsWorkload};
use super::{Findings, Scenario};
use crate::findmax::FindMaxOptions;
use crate::runner::Runner;
use crate::workload::Workload;

/// The `plugin` command: one step at the given rate, or a search for the
/// highest sustainable rate (`--find-max`).
pub struct PluginScenario {
    /// The rooms and load, carrying a plugin's ops and events.
    pub workload: RoomsWorkload,
    /// Set for `--find-max`.
    pub find_max: Option<FindMaxOptions>,
}

impl<W: Workload + From<RoomsWorkload>> Scenario<W> for PluginScenario {
    fn name(&self) -> &'static str {
        "plugin"
    }

    async fn run(&self, runner: &mut Runner<W>) -> anyhow::Result<Findings> {
        rooms::run_rate(&self.workload, self.find_max.as_ref(), runner).await
    }
}
