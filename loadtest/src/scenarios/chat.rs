//! The `chat` scenario: one step of the chat rooms at the given rate, or a
//! search for the highest rate they sustain (`--find-max`).

use super::rooms::{self, RoomsWorkload};
use super::{Findings, Scenario};
use crate::findmax::FindMaxOptions;
use crate::runner::Runner;
use crate::workload::Workload;

/// The `chat` command: one step at the given rate, or a search for the
/// highest sustainable rate (`--find-max`).
pub struct ChatScenario {
    /// The rooms and load, carrying chat.
    pub workload: RoomsWorkload,
    /// Set for `--find-max`.
    pub find_max: Option<FindMaxOptions>,
}

impl<W: Workload + From<RoomsWorkload>> Scenario<W> for ChatScenario {
    fn name(&self) -> &'static str {
        "chat"
    }

    async fn run(&self, runner: &mut Runner<W>) -> anyhow::Result<Findings> {
        rooms::run_rate(&self.workload, self.find_max.as_ref(), runner).await
    }
}
