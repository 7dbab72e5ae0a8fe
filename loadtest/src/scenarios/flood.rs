//! The `flood` scenario: a normal chat step, then the same step again beside
//! one client that sends to a room of its own as fast as the server takes it;
//! the report compares the normal rooms' p99 without and with it.

use super::rooms::{FloodSpec, RoomsWorkload};
use super::{Findings, Reported as _, Scenario};
use crate::figures::{FloodComparison, FloodFigures};
use crate::runner::Runner;
use crate::step::{StepOutcome, StepReport};
use crate::units::{f64_from, per_second};
use crate::workload::Workload;

/// The `flood` command.
pub struct FloodScenario {
    /// The normal rooms (without a flooder; the scenario adds it in the second step).
    pub workload: RoomsWorkload,
    /// The flooder of the step beside it.
    pub flood: FloodSpec,
    /// Run the step beside the flooder first.
    pub flood_first: bool,
}

impl<W: Workload + From<RoomsWorkload>> Scenario<W> for FloodScenario {
    fn name(&self) -> &'static str {
        "flood"
    }

    async fn run(&self, runner: &mut Runner<W>) -> anyhow::Result<Findings> {
        let alone = RoomsWorkload {
            flood: None,
            ..self.workload.clone()
        };
        let beside = RoomsWorkload {
            flood: Some(self.flood),
            ..self.workload.clone()
        };
        beside.validate(runner.env.run_length())?;
        let mut order = [("without flood", alone), ("with flood", beside)];
        if self.flood_first {
            order.reverse();
        }
        let mut steps = Vec::new();
        for (label, workload) in order {
            let outcome = runner.run_step(&workload).await?;
            steps.push(StepReport {
                flood: workload.flood.map(|flood| flood_figures(flood, &outcome)),
                ..workload.step_report(label.to_owned(), 1, &outcome)
            });
        }
        if self.flood_first {
            // The report keeps its order: without, then with.
            steps.reverse();
        }
        let p99 = |step: &StepReport| step.chat.as_ref().map_or(0, |chat| chat.latency_us.p99);
        let comparison = FloodComparison {
            p99_without_us: p99(&steps[0]),
            p99_with_us: p99(&steps[1]),
            flood_sent_per_s: steps[1].flood.as_ref().map_or(0.0, |flood| flood.sent_per_s),
        };
        Ok(Findings {
            flood: Some(comparison),
            ..Findings::steps(steps)
        })
    }
}

/// What the flooder `flood` of a step did.
fn flood_figures(flood: FloodSpec, outcome: &StepOutcome) -> FloodFigures {
    let tally = &outcome.tally.flood;
    FloodFigures {
        size: flood.size,
        in_flight: flood.in_flight,
        sent: tally.sent,
        sent_per_s: per_second(tally.written_in_window, outcome.timeline.window()),
        rate_limited: tally.rate_limited,
        throttled_after_ms: tally.throttled_after_us.map(|us| f64_from(us) / 1e3),
        cut_off_after_ms: tally.cut_off_after_us.map(|us| f64_from(us) / 1e3),
    }
}
