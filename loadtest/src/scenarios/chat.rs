//! The `chat` scenario: R rooms × N members, P of each room's members
//! publishing S-byte texts on one open-loop schedule at a fixed total rate;
//! every member measures latency and checks the room's order. The same
//! workload, with a fraction of members that stop reading or with a flooding
//! client beside it, is what `slow` and `flood` run.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::member::{self, Role};
use super::{Findings, Reported, Scenario, flood, one_step};
use crate::bots;
use crate::figures::ChatFigures;
use crate::findmax::{self, FindMaxOptions};
use crate::payload;
use crate::runner::Runner;
use crate::schedule::Schedule;
use crate::settings::FINISH_GRACE;
use crate::share::Share;
use crate::step::{StepOutcome, StepReport};
use crate::tally::Tally;
use crate::units::{f64_from, nanos, ns_to_ms, per_second, round_to_u64, u64_from};
use crate::workload::Workload;

/// What every process runs in one chat step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatWorkload {
    /// Rooms (R).
    pub rooms: u64,
    /// Members per room (N), publishers included.
    pub members: u64,
    /// Publishing members per room (P).
    pub publishers: u64,
    /// Bytes per chat text (S).
    pub size: usize,
    /// Messages per second offered in total, over all publishers of all rooms.
    pub rate: u64,
    /// Fraction of each room's members that stop reading (`slow`); 0 for none.
    pub slow_fraction: f64,
    /// The one client flooding a room of its own (`flood`); none when absent.
    pub flood: Option<flood::FloodSpec>,
}

impl ChatWorkload {
    /// Checks the numbers against each other and the text size against what
    /// a run of `run_length` (warm-up plus window) writes into it.
    ///
    /// # Errors
    /// A message naming the flag to change.
    pub fn validate(&self, run_length: Duration) -> anyhow::Result<()> {
        anyhow::ensure!(self.rooms >= 1, "--rooms must be at least 1");
        anyhow::ensure!(self.members >= 1, "--members must be at least 1");
        anyhow::ensure!(
            (1..=self.members).contains(&self.publishers),
            "--publishers must be between 1 and --members ({})",
            self.members
        );
        anyhow::ensure!(self.rate >= 1, "--rate must be at least 1 message per second");
        anyhow::ensure!(
            (0.0..1.0).contains(&self.slow_fraction),
            "--slow-fraction must be at least 0 and below 1"
        );
        if let Some(flood) = self.flood {
            flood.validate()?;
        }
        let schedule = Schedule::new(0, self.rate, self.total_publishers())?;
        let max_counter = schedule.count_before(0, nanos(run_length));
        payload::validate_size(self.size, self.total_publishers() - 1, max_counter)
    }

    /// Members of all rooms.
    pub fn total_members(&self) -> u64 {
        self.rooms.saturating_mul(self.members)
    }

    /// Publishers of all rooms, which share the schedule.
    pub fn total_publishers(&self) -> u64 {
        self.rooms.saturating_mul(self.publishers)
    }

    /// Members per room that stop reading: the slow fraction of the room,
    /// rounded, taken from the members that do not publish.
    pub fn slow_per_room(&self) -> u64 {
        let wanted = round_to_u64(self.slow_fraction * f64_from(self.members));
        wanted.min(self.members - self.publishers)
    }

    /// The room of bot `bot`.
    pub fn room_of(&self, bot: u64) -> u64 {
        bot / self.members
    }

    /// What bot `bot` does: its room's first P members publish, its last
    /// slow members stop reading, the others only receive.
    pub fn role(&self, bot: u64) -> Role {
        let index = bot % self.members;
        if index < self.publishers {
            Role::Publisher(self.room_of(bot) * self.publishers + index)
        } else if index >= self.members - self.slow_per_room() {
            Role::Slow
        } else {
            Role::Receiver
        }
    }

    /// The schedule's publishers that belong to `room`.
    pub fn room_publishers(&self, room: u64) -> std::ops::Range<u64> {
        room * self.publishers..(room + 1) * self.publishers
    }

    /// The name of room `room` in step `step`.
    pub fn room_name(step: u32, room: u64) -> String {
        format!("s{step}.room.{room}")
    }
}

impl Workload for ChatWorkload {
    /// Connects this process's members, starts them, and runs the step.
    ///
    /// # Errors
    /// The setup timed out or the coordinator went away.
    async fn run_share(&self, mut share: Share) -> anyhow::Result<Tally> {
        let workload = Arc::new(self.clone());
        let spec = share.spec.clone();
        let rooms = usize::try_from(self.rooms)?;
        {
            let mut tally = share.shared.tally();
            tally.bots.planned = u64_from(spec.my_bots(self.total_members()).count());
            tally.chat.sent_window_per_room = vec![0; rooms];
            tally.chat.receivers_per_room = vec![0; rooms];
        }
        let results = bots::setup_all(&spec, spec.my_bots(self.total_members()), |bot| {
            let (spec, workload, shared, signals) =
                (spec.clone(), workload.clone(), share.shared.clone(), share.signals());
            async move {
                let room = workload.room_of(bot);
                let room_name = ChatWorkload::room_name(spec.step, room);
                let member = bots::join_member(&spec, &spec.name('b', bot), spec.source(bot), &room_name).await?;
                let role = workload.role(bot);
                member::register(&shared, &member, role, room);
                let bot = member::MemberBot {
                    role,
                    room,
                    room_name,
                    workload,
                    shared,
                };
                Ok(tokio::spawn(bot.run(member, signals)))
            }
        })
        .await?;
        let mut tasks = share.keep_connected(results);
        if let Some(flood) = self.flood.filter(|_| spec.index == 0)
            && let Some(task) = flood::start_flooder(&spec, flood, &share.shared, share.signals()).await
        {
            tasks.push(task);
        }
        let connected = share.shared.connected_after_setup()?;
        let timeline = share.start(connected).await?;
        share.drain(&timeline).await;
        Ok(share.finish(tasks, FINISH_GRACE).await)
    }

    fn connections(&self) -> u64 {
        self.total_members() + u64::from(self.flood.is_some())
    }
}

/// The `chat` command: one step at the given rate, or a search for the
/// highest sustainable rate (`--find-max`).
pub struct ChatScenario {
    /// The rooms and load.
    pub workload: ChatWorkload,
    /// Set for `--find-max`.
    pub find_max: Option<FindMaxOptions>,
}

impl Scenario for ChatScenario {
    type Workload = ChatWorkload;

    fn name(&self) -> &'static str {
        "chat"
    }

    async fn run<W: Workload + From<Self::Workload>>(&self, runner: &mut Runner<W>) -> anyhow::Result<Findings> {
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

/// The chat section of a step's report (the server's CPU is divided by its deliveries).
impl Reported for ChatWorkload {
    fn step_report(&self, label: String, attempt: u32, outcome: &StepOutcome) -> StepReport {
        let chat = &outcome.tally.chat;
        let window = outcome.timeline.window();
        let expected = chat.expected();
        let figures = ChatFigures {
            rooms: self.rooms,
            members: self.members,
            publishers: self.publishers,
            size: self.size,
            offered_per_s: f64_from(self.rate),
            achieved_per_s: per_second(chat.written_in_window, window),
            deliveries_per_s: per_second(chat.received_window, window),
            sent: chat.sent,
            expected,
            received: chat.received_window,
            lost: expected.saturating_sub(chat.received_window),
            gaps: chat.seq.gaps,
            reorders: chat.seq.reorders,
            duplicates: chat.seq.duplicates,
            unparsed: chat.unparsed,
            max_lag_ms: ns_to_ms(chat.max_lag_ns),
            latency_us: chat.latency.summary(),
        };
        StepReport {
            chat: Some(figures),
            ..StepReport::new(label, attempt, outcome, Some(chat.received_window))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(members: u64, publishers: u64, slow_fraction: f64) -> ChatWorkload {
        ChatWorkload {
            rooms: 3,
            members,
            publishers,
            size: 64,
            rate: 1000,
            slow_fraction,
            flood: None,
        }
    }

    #[test]
    fn roles_per_room() {
        let w = workload(10, 2, 0.3);
        assert_eq!(w.slow_per_room(), 3);
        let roles: Vec<Role> = (10..20).map(|bot| w.role(bot)).collect();
        assert_eq!(roles[0], Role::Publisher(2));
        assert_eq!(roles[1], Role::Publisher(3));
        assert_eq!(roles[2..7], [Role::Receiver; 5]);
        assert_eq!(roles[7..], [Role::Slow; 3]);
        assert_eq!(w.room_of(19), 1);
        assert_eq!(w.room_publishers(1), 2..4);
    }

    #[test]
    fn slow_members_never_include_publishers() {
        assert_eq!(workload(4, 3, 0.9).slow_per_room(), 1);
        assert_eq!(workload(4, 4, 0.5).slow_per_room(), 0);
    }

    #[test]
    fn validation_names_the_flag() {
        let run = Duration::from_secs(10);
        assert!(workload(10, 2, 0.0).validate(run).is_ok());
        let error = workload(10, 11, 0.0).validate(run).unwrap_err().to_string();
        assert!(error.contains("--publishers"), "{error}");
        let mut tiny = workload(10, 2, 0.0);
        tiny.size = 10;
        assert!(tiny.validate(run).unwrap_err().to_string().contains("--size"));
        assert!(workload(10, 2, 1.0).validate(run).is_err());
    }
}
