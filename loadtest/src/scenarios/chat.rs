//! The `chat` scenario: one step of the chat rooms at the given rate, or a
//! search for the highest rate they sustain (`--find-max`).

use super::rooms::ChatWorkload;
use super::{Findings, Reported as _, Scenario, one_step};
use crate::findmax::{self, FindMaxOptions};
use crate::runner::Runner;
use crate::workload::Workload;

/// The `chat` command: one step at the given rate, or a search for the
/// highest sustainable rate (`--find-max`).
pub struct ChatScenario {
    /// The rooms and load.
    pub workload: ChatWorkload,
    /// Set for `--find-max`.
    pub find_max: Option<FindMaxOptions>,
}

impl<W: Workload + From<ChatWorkload>> Scenario<W> for ChatScenario {
    fn name(&self) -> &'static str {
        "chat"
    }

    async fn run(&self, runner: &mut Runner<W>) -> anyhow::Result<Findings> {
        let Some(options) = &self.find_max else {
            self.workload.validate(runner.env.run_length())?;
            let label = format!("rate {}/s", self.workload.rate);
            return one_step(runner, &self.workload, label).await;
        };
        let (steps, summary) = findmax::search(options, self.workload.rate, async |rate, attempt| {
            let workload = ChatWorkload {
                rate,
                ..self.workload.clone()
            };
            workload.validate(runner.env.run_length())?;
            let outcome = runner.run_step(&workload).await?;
            Ok(workload.step_report(format!("rate {rate}/s"), attempt, &outcome))
        })
        .await?;
        Ok(Findings {
            steps,
            find_max: Some(summary),
            flood: None,
        })
    }
}
