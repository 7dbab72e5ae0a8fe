//! The `idle` scenario: hold C connected, joined sessions for the window and
//! report the server's memory per session.

use serde::{Deserialize, Serialize};

use super::{Findings, Scenario, Workload};
use crate::bots::{self, hold};
use crate::report::StepReport;
use crate::runner::Runner;
use crate::settings::FINISH_GRACE;
use crate::share::Share;
use crate::tally::Tally;
use crate::timeline::sleep_until_wall;
use crate::units::u64_from;

/// What every process runs in one idle step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleWorkload {
    /// Sessions to hold (C).
    pub sessions: u64,
    /// Sessions per room.
    pub room_size: u64,
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

    /// Connects this process's sessions, holds them through the window, then closes them.
    ///
    /// # Errors
    /// The setup timed out or the coordinator went away.
    pub async fn run_share(&self, mut share: Share) -> anyhow::Result<Tally> {
        let spec = share.spec.clone();
        share.shared.tally().bots.planned = u64_from(spec.my_bots(self.sessions).count());
        let room_size = self.room_size;
        let results = bots::setup_all(&spec, spec.my_bots(self.sessions), |bot| {
            let (spec, shared, signals) = (spec.clone(), share.shared.clone(), share.signals());
            async move {
                let room = format!("s{}.idle.{}", spec.step, bot / room_size);
                let member = bots::join_member(&spec, &spec.name('i', bot), spec.source(bot), &room).await?;
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

/// The `idle` command.
pub struct IdleScenario {
    /// The sessions to hold.
    pub workload: IdleWorkload,
}

impl Scenario for IdleScenario {
    fn name(&self) -> &'static str {
        "idle"
    }

    async fn run(&self, runner: &mut Runner) -> anyhow::Result<Findings> {
        self.workload.validate()?;
        let label = format!("{} sessions", self.workload.sessions);
        let workload = Workload::Idle(self.workload.clone());
        let outcome = runner.run_step(&workload).await?;
        Ok(Findings::steps(vec![StepReport::build(label, 1, &workload, &outcome)]))
    }
}
