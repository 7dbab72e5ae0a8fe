//! The `idle` scenario: hold C connected, joined sessions for the window and
//! report the server's memory per session (and its CPU: with `--kind` naming a
//! ticked room kind, what idle plugin rooms cost).

use serde::{Deserialize, Serialize};

use super::{Findings, Reported, Scenario, one_step};
use crate::bots::{self, hold};
use crate::figures::IdleFigures;
use crate::runner::Runner;
use crate::settings::FINISH_GRACE;
use crate::share::Share;
use crate::step::{StepOutcome, StepReport};
use crate::tally::Tally;
use crate::timeline::sleep_until_wall;
use crate::units::{f64_from, u64_from};
use crate::workload::Workload;

/// What every process runs in one idle step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleWorkload {
    /// Sessions to hold (C).
    pub sessions: u64,
    /// Sessions per room.
    pub room_size: u64,
    /// The rooms' kind (empty: chat).
    pub kind: String,
}

impl IdleWorkload {
    /// Checks the numbers.
    ///
    /// # Errors
    /// A message naming the flag to change.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.sessions >= 1, "--sessions must be at least 1");
        anyhow::ensure!(self.room_size >= 1, "--room-size must be at least 1");
        Ok(())
    }
}

impl Workload for IdleWorkload {
    fn connections(&self) -> u64 {
        self.sessions
    }

    /// Connects this process's sessions, holds them through the window, then closes them.
    ///
    /// # Errors
    /// The setup timed out or the coordinator went away.
    async fn run_share(&self, mut share: Share) -> anyhow::Result<Tally> {
        let spec = share.spec.clone();
        share.shared.tally().bots.planned = u64_from(spec.my_bots(self.sessions).count());
        let room_size = self.room_size;
        let kind = self.kind.clone();
        let results = bots::setup_all(&spec, spec.my_bots(self.sessions), |bot| {
            let (spec, shared, signals) = (spec.clone(), share.shared.clone(), share.signals());
            let kind = kind.clone();
            async move {
                let room = format!("s{}.idle.{}", spec.step, bot / room_size);
                let name = spec.name('i', bot);
                let route = spec.route(bot, bot % room_size);
                let member = bots::join_member_of_kind(&spec, &name, route, &room, &kind).await?;
                shared.count_connected(member.connect_latency);
                Ok(tokio::spawn(hold(member, shared, signals)))
            }
        })
        .await?;
        let tasks = share.keep_connected(results);
        let connected = share.shared.connected_after_setup()?;
        let timeline = share.start(connected).await?;
        sleep_until_wall(timeline.window_end_ns()).await;
        Ok(share.finish(tasks, FINISH_GRACE).await)
    }
}

/// The held sessions, and the server's memory per session.
impl Reported for IdleWorkload {
    fn add_sections(&self, outcome: &StepOutcome, report: &mut StepReport) {
        let bots = &outcome.tally.bots;
        let ended: u64 = bots.disconnects.values().sum();
        let held = bots.connected.saturating_sub(ended);
        let before = outcome.server.and_then(|server| server.rss_before_setup_kib);
        let after = outcome.server.map(|server| server.rss_end_kib);
        let per_session = match (before, after) {
            (Some(before), Some(after)) if held > 0 => {
                Some(f64_from(after.saturating_sub(before)) * 1024.0 / f64_from(held))
            }
            _ => None,
        };
        report.idle = Some(IdleFigures {
            sessions_planned: self.sessions,
            sessions_connected: bots.connected,
            sessions_held: held,
            rss_before_kib: before,
            rss_held_kib: after,
            rss_per_session_bytes: per_session,
        });
    }
}

/// The `idle` command.
pub struct IdleScenario {
    /// The sessions to hold.
    pub workload: IdleWorkload,
}

impl<W: Workload + From<IdleWorkload>> Scenario<W> for IdleScenario {
    fn name(&self) -> &'static str {
        "idle"
    }

    async fn run(&self, runner: &mut Runner<W>) -> anyhow::Result<Findings> {
        self.workload.validate()?;
        let label = format!("{} sessions", self.workload.sessions);
        one_step(runner, &self.workload, label).await
    }
}
