//! The `slow` scenario: the `chat` step with a fraction of each room's
//! members that stop reading; the report shows what the fast members got and
//! how the slow ones ended (disconnected with `SLOW_CONSUMER`, or not).

use super::rooms::RoomsWorkload;
use super::{Findings, Reported as _, Scenario};
use crate::figures::SlowFigures;
use crate::runner::Runner;
use crate::step::{StepOutcome, StepReport};
use crate::workload::Workload;

/// The `slow` command.
pub struct SlowScenario {
    /// The rooms, with `slow_fraction` set.
    pub workload: RoomsWorkload,
}

impl<W: Workload + From<RoomsWorkload>> Scenario<W> for SlowScenario {
    fn name(&self) -> &'static str {
        "slow"
    }

    async fn run(&self, runner: &mut Runner<W>) -> anyhow::Result<Findings> {
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
        let outcome = runner.run_step(&self.workload).await?;
        let step = StepReport {
            slow: Some(slow_figures(&outcome)),
            ..self.workload.step_report(label, 1, &outcome)
        };
        Ok(Findings::steps(vec![step]))
    }
}

/// What the members that stopped reading went through.
fn slow_figures(outcome: &StepOutcome) -> SlowFigures {
    let slow = &outcome.tally.slow;
    SlowFigures {
        slow_members: slow.members,
        fast_members: outcome.tally.chat.receivers_per_room.iter().sum(),
        slow_consumer_disconnects: slow.slow_consumer,
        closed_silently: slow.closed_silently,
        other_disconnects: slow.other_disconnects,
        still_connected: slow.still_connected,
    }
}
