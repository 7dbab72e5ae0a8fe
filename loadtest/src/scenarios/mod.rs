//! The scenarios, and the kit they share. A scenario's workload is what each
//! process's share of bots does during one step (an engine [`Workload`]) and
//! what the report says about such a step ([`Reported`]); a [`Scenario`] is
//! a command: which steps it runs through the [`Runner`] and what its report
//! adds. Scenarios share this kit and the rooms ([`rooms`]), never each
//! other. A new scenario adds a module with its workload and `Scenario`, a
//! variant of the binary's workload, and a subcommand (`mmo` is a complete
//! example).

pub mod chat;
pub mod churn;
pub mod flood;
pub mod idle;
pub mod mmo;
pub mod plugin;
pub mod reconnect;
pub mod rooms;
pub mod slow;
pub mod slowloris;

use crate::figures::FloodComparison;
use crate::findmax::FindMaxSummary;
use crate::runner::Runner;
use crate::step::{StepOutcome, StepReport};
use crate::workload::Workload;

/// A command: the steps of one run and what the report says about them.
/// A scenario runs on any runner whose workload type `W` holds its workload.
pub trait Scenario<W: Workload> {
    /// The name the report uses (`chat`, `idle`, …).
    fn name(&self) -> &'static str;

    /// Runs every step through `runner`.
    ///
    /// # Errors
    /// Invalid settings, or a step that could not run.
    async fn run(&self, runner: &mut Runner<W>) -> anyhow::Result<Findings>;
}

/// What a scenario found: its steps, and a summary where it has one.
#[derive(Debug, Default)]
pub struct Findings {
    /// Every step, in the order run.
    pub steps: Vec<StepReport>,
    /// The `--find-max` search's result.
    pub find_max: Option<FindMaxSummary>,
    /// The `flood` comparison.
    pub flood: Option<FloodComparison>,
}

impl Findings {
    /// Findings that are just steps.
    pub fn steps(steps: Vec<StepReport>) -> Findings {
        Findings {
            steps,
            ..Findings::default()
        }
    }
}

/// A scenario's workload, as the report describes its steps.
pub trait Reported {
    /// Adds this workload's sections to the report of one of its steps,
    /// from what the step measured.
    fn add_sections(&self, outcome: &StepOutcome, report: &mut StepReport);

    /// The chat messages (or plugin events) the step delivered in its
    /// window, which the server's CPU is divided by; none for a workload
    /// without rooms.
    fn deliveries(&self, _outcome: &StepOutcome) -> Option<u64> {
        None
    }

    /// The report of a step of this workload, from what it measured: the
    /// sections every step has and the workload's own.
    fn step_report(&self, label: String, attempt: u32, outcome: &StepOutcome) -> StepReport {
        let mut report = StepReport::new(label, attempt, outcome, self.deliveries(outcome));
        self.add_sections(outcome, &mut report);
        report
    }
}

/// Runs one step of `workload` and returns the findings of a run that is just that step.
///
/// # Errors
/// The step could not run.
pub async fn one_step<W, L>(runner: &mut Runner<W>, workload: &L, label: String) -> anyhow::Result<Findings>
where
    W: Workload + From<L>,
    L: Reported + Clone,
{
    let outcome = runner.run_step(workload).await?;
    Ok(Findings::steps(vec![workload.step_report(label, 1, &outcome)]))
}
