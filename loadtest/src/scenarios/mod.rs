//! The scenario layer. A [`Workload`] is what each process's share of bots
//! does during one step (serializable, so the parent can hand it to worker
//! processes); a [`Scenario`] is a command: which steps it runs through the
//! shared [`Runner`] and what its report adds. A new scenario adds a
//! workload variant with its `run_share`, a `Scenario` implementation, and a
//! subcommand (`mmo` is a complete example).

pub mod chat;
pub mod churn;
mod echo;
pub mod flood;
pub mod idle;
mod member;
pub mod mmo;
mod publisher;
pub mod slow;
pub mod slowloris;
mod walk;

use serde::{Deserialize, Serialize};

use crate::figures::FloodComparison;
use crate::findmax::FindMaxSummary;
use crate::runner::Runner;
use crate::share::Share;
use crate::step::{StepOutcome, StepReport};
use crate::tally::Tally;

/// What every process runs in one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Workload {
    /// Chat rooms on an open-loop schedule (also `slow` and `flood`).
    Chat(chat::ChatWorkload),
    /// Connected, joined sessions doing nothing.
    Idle(idle::IdleWorkload),
    /// Connect-to-disconnect cycles at a fixed rate.
    Churn(churn::ChurnWorkload),
    /// Connections that never finish their Hello, beside normal clients.
    Slowloris(slowloris::SlowlorisWorkload),
    /// Bots random-walking in one world.
    Mmo(mmo::MmoWorkload),
}

impl Workload {
    /// Runs this process's share of the step and returns what it counted.
    ///
    /// # Errors
    /// The setup timed out or the coordinator went away.
    pub async fn run_share(&self, share: Share) -> anyhow::Result<Tally> {
        match self {
            Workload::Chat(chat) => chat.run_share(share).await,
            Workload::Idle(idle) => idle.run_share(share).await,
            Workload::Churn(churn) => churn.run_share(share).await,
            Workload::Slowloris(slowloris) => slowloris.run_share(share).await,
            Workload::Mmo(mmo) => mmo.run_share(share).await,
        }
    }

    /// Connections the step holds at once, at most (for the open-files check).
    pub fn connections(&self) -> u64 {
        match self {
            Workload::Chat(chat) => chat.total_members() + u64::from(chat.flood.is_some()),
            Workload::Idle(idle) => idle.sessions,
            Workload::Churn(churn) => churn.max_in_flight,
            Workload::Slowloris(slowloris) => slowloris.attackers + slowloris.clients,
            Workload::Mmo(mmo) => mmo.bots,
        }
    }
}

impl From<chat::ChatWorkload> for Workload {
    fn from(chat: chat::ChatWorkload) -> Workload {
        Workload::Chat(chat)
    }
}

impl From<idle::IdleWorkload> for Workload {
    fn from(idle: idle::IdleWorkload) -> Workload {
        Workload::Idle(idle)
    }
}

impl From<churn::ChurnWorkload> for Workload {
    fn from(churn: churn::ChurnWorkload) -> Workload {
        Workload::Churn(churn)
    }
}

impl From<slowloris::SlowlorisWorkload> for Workload {
    fn from(slowloris: slowloris::SlowlorisWorkload) -> Workload {
        Workload::Slowloris(slowloris)
    }
}

impl From<mmo::MmoWorkload> for Workload {
    fn from(mmo: mmo::MmoWorkload) -> Workload {
        Workload::Mmo(mmo)
    }
}

/// A command: the steps of one run and what the report says about them.
pub trait Scenario {
    /// The name the report uses (`chat`, `idle`, …).
    fn name(&self) -> &'static str;

    /// Runs every step through `runner`.
    ///
    /// # Errors
    /// Invalid settings, or a step that could not run.
    async fn run(&self, runner: &mut Runner) -> anyhow::Result<Findings>;
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
    /// The report of a step of this workload, from what it measured: the
    /// sections every step has and the workload's own.
    fn step_report(&self, label: String, attempt: u32, outcome: &StepOutcome) -> StepReport;
}

/// Runs one step of `workload` and returns the findings of a run that is just that step.
///
/// # Errors
/// The step could not run.
pub async fn one_step<L>(runner: &mut Runner, workload: &L, label: String) -> anyhow::Result<Findings>
where
    L: Reported + Clone + Into<Workload>,
{
    let outcome = runner.run_step(&workload.clone().into()).await?;
    Ok(Findings::steps(vec![workload.step_report(label, 1, &outcome)]))
}
