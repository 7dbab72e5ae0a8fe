//! The `slow` scenario: the `chat` step with a fraction of each room's
//! members that stop reading; the report shows what the fast members got and
//! how the slow ones ended (disconnected with `SLOW_CONSUMER`, or not).

use super::chat::ChatWorkload;
use super::{Findings, Scenario, Workload};
use crate::report::StepReport;
use crate::runner::Runner;

/// The `slow` command.
pub struct SlowScenario {
    /// The rooms, with `slow_fraction` set.
    pub workload: ChatWorkload,
}

impl Scenario for SlowScenario {
    fn name(&self) -> &'static str {
        "slow"
    }

    async fn run(&self, runner: &mut Runner) -> anyhow::Result<Findings> {
        self.workload.validate(runner.env.run_length())?;
        anyhow::ensure!(
            self.workload.slow_per_room() > 0,
            "--slow-fraction {} of {} members, of which {} publish, leaves no slow member",
            self.workload.slow_fraction,
            self.workload.members,
            self.workload.publishers
        );
        let label = format!(
            "rate {}/s, {} slow per room",
            self.workload.rate,
            self.workload.slow_per_room()
        );
        let workload = Workload::Chat(self.workload.clone());
        let outcome = runner.run_step(&workload).await?;
        Ok(Findings::steps(vec![StepReport::build(label, 1, &workload, &outcome)]))
    }
}
