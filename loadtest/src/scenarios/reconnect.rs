//! The `reconnect` scenario: the chat rooms of `chat`, whose members are the
//! library's reconnecting client ([`tavern::client::Reconnecting`]); every
//! `--cut-every-s` a `--cut-share` of all bots has its connection reset
//! (RST, as a network drop looks), and each reconnects and joins its room
//! again from the last seq it saw. The report gives the chat figures across
//! the cuts (gaps, duplicates and reorders must stay zero: recovery replays
//! with the original seqs), how long each reconnection took from the cut to
//! `Reconnected`, how many reconnections got their session back, and how
//! many rooms fell back to `recovered: false`.
//!
//! Loss stays exact: a publisher whose connection is down does not send
//! what falls due meanwhile (the client fails fast, nothing is queued), and
//! what it did not send is not expected.

mod bot;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tavern::client::{Backoff, Reconnecting};

use self::bot::ReconnectBot;
use super::rooms::{RoomsWorkload, Traffic};
use super::{Findings, Reported, Scenario, one_step};
use crate::bots::{self, describe};
use crate::figures::ReconnectFigures;
use crate::runner::Runner;
use crate::settings::FINISH_GRACE;
use crate::share::{SetupError, Share};
use crate::step::{StepOutcome, StepReport};
use crate::tally::Tally;
use crate::units::{f64_from, round_to_u64, u64_from};
use crate::workload::Workload;

/// How the bots reconnect: quickly at first, never for long.
const BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(50),
    cap: Duration::from_secs(2),
    attempts: 20,
};

/// What every process runs in one step: chat rooms, and rounds of cuts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReconnectWorkload {
    /// The chat rooms (no slow members, no flooder).
    pub rooms: RoomsWorkload,
    /// Share of all bots cut in each round.
    pub cut_share: f64,
    /// Time between rounds of cuts, ms; the first round comes this long after the start.
    pub cut_every_ms: u64,
}

impl ReconnectWorkload {
    /// Checks the rooms and the cut settings.
    ///
    /// # Errors
    /// A message naming the flag to change.
    pub fn validate(&self, run_length: Duration) -> anyhow::Result<()> {
        anyhow::ensure!(self.rooms.traffic == Traffic::Chat, "reconnect loads chat rooms");
        self.rooms.validate(run_length)?;
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.cut_share),
            "--cut-share must be between 0 and 1"
        );
        anyhow::ensure!(self.cut_every_ms >= 1, "--cut-every-s must be above 0");
        Ok(())
    }

    /// Bots cut in each round.
    pub fn cuts_per_round(&self) -> u64 {
        round_to_u64(self.cut_share * f64_from(self.rooms.total_members())).min(self.rooms.total_members())
    }

    /// Whether round `round` cuts bot `bot`. The bots are taken in turn
    /// (every bot is cut once before any is cut twice), in the order first
    /// member of every room, then second member of every room, and so on:
    /// a round spreads over the rooms, so that it empties a room (which is
    /// then disposed, and recovery cannot apply) only if it cuts more than
    /// `rooms × (members − 1)` bots.
    pub fn cuts(&self, bot: u64, round: u64) -> bool {
        let (total, per_round) = (self.rooms.total_members(), self.cuts_per_round());
        if total == 0 || per_round == 0 || bot >= total {
            return false;
        }
        let turn = (bot % self.rooms.members) * self.rooms.rooms + bot / self.rooms.members;
        let first = round.wrapping_mul(per_round) % total;
        (turn + total - first) % total < per_round
    }
}

impl Workload for ReconnectWorkload {
    fn connections(&self) -> u64 {
        // A reset connection may linger on the server while its bot is back.
        self.rooms.total_members() + self.cuts_per_round()
    }

    /// Connects this process's bots as reconnecting clients, runs the step
    /// (with its cuts), and adds up what they counted.
    ///
    /// # Errors
    /// The setup timed out or the coordinator went away.
    async fn run_share(&self, mut share: Share) -> anyhow::Result<Tally> {
        let workload = Arc::new(self.clone());
        let spec = share.spec.clone();
        let rooms = usize::try_from(self.rooms.rooms)?;
        let not_sent: Arc<Vec<AtomicU64>> = Arc::new((0..rooms).map(|_| AtomicU64::new(0)).collect());
        {
            let mut tally = share.shared.tally();
            tally.bots.planned = u64_from(spec.my_bots(self.rooms.total_members()).count());
            tally.chat.sent_window_per_room = vec![0; rooms];
            tally.chat.receivers_per_room = vec![0; rooms];
        }
        let results = bots::setup_all(&spec, spec.my_bots(self.rooms.total_members()), |index| {
            let (spec, workload, shared, signals, not_sent) = (
                spec.clone(),
                workload.clone(),
                share.shared.clone(),
                share.signals(),
                not_sent.clone(),
            );
            async move {
                let room = workload.rooms.room_of(index);
                let room_name = workload.rooms.room_name(spec.step, room);
                let name = spec.name('r', index);
                let token = spec
                    .auth_key
                    .as_ref()
                    .map_or_else(String::new, |key| key.token_for(&name));
                let started = tokio::time::Instant::now();
                let target = spec.targets.for_member(workload.rooms.member_of(index));
                let mut client = Reconnecting::connect(target, &name, &token, BACKOFF)
                    .await
                    .map_err(|e| SetupError(format!("connect: {}", describe(&e))))?;
                let joined = client
                    .join(&room_name)
                    .await
                    .map_err(|e| SetupError(format!("join: {}", describe(&e))))?;
                shared.count_connected(started.elapsed());
                bot::register(&shared, room);
                let bot = ReconnectBot {
                    index,
                    role: workload.rooms.role(index),
                    room,
                    room_name,
                    workload,
                    shared,
                    not_sent,
                };
                Ok(tokio::spawn(bot.run(client, joined.seq, signals)))
            }
        })
        .await?;
        let tasks = share.keep_connected(results);
        let connected = share.shared.connected_after_setup()?;
        let timeline = share.start(connected).await?;
        share.drain(&timeline).await;
        Ok(share.finish(tasks, FINISH_GRACE).await)
    }
}

/// The chat section, and the reconnect section.
impl Reported for ReconnectWorkload {
    fn add_sections(&self, outcome: &StepOutcome, report: &mut StepReport) {
        self.rooms.add_sections(outcome, report);
        let reconnect = &outcome.tally.reconnect;
        report.reconnect = Some(ReconnectFigures {
            cut_share: self.cut_share,
            cut_every_s: Duration::from_millis(self.cut_every_ms).as_secs_f64(),
            cuts: reconnect.cuts,
            reconnects: reconnect.reconnects,
            resumed: reconnect.resumed,
            recovered: reconnect.recovered,
            not_recovered: reconnect.not_recovered,
            failed: reconnect.failed,
            not_sent: reconnect.not_sent,
            latency_us: reconnect.latency.summary(),
        });
    }

    fn deliveries(&self, outcome: &StepOutcome) -> Option<u64> {
        self.rooms.deliveries(outcome)
    }
}

/// The `reconnect` command: one step of the rooms at the given rate, with cuts.
pub struct ReconnectScenario {
    /// The rooms and the cuts.
    pub workload: ReconnectWorkload,
}

impl<W: Workload + From<ReconnectWorkload>> Scenario<W> for ReconnectScenario {
    fn name(&self) -> &'static str {
        "reconnect"
    }

    async fn run(&self, runner: &mut Runner<W>) -> anyhow::Result<Findings> {
        self.workload.validate(runner.env.run_length())?;
        let label = format!(
            "rate {}/s, cutting {:.0}% every {:.1} s",
            self.workload.rooms.rate,
            self.workload.cut_share * 100.0,
            Duration::from_millis(self.workload.cut_every_ms).as_secs_f64()
        );
        one_step(runner, &self.workload, label).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(cut_share: f64) -> ReconnectWorkload {
        ReconnectWorkload {
            rooms: RoomsWorkload {
                rooms: 10,
                members: 10,
                publishers: 1,
                size: 64,
                rate: 100,
                slow_fraction: 0.0,
                flood: None,
                traffic: Traffic::Chat,
            },
            cut_share,
            cut_every_ms: 5000,
        }
    }

    #[test]
    fn each_round_cuts_its_share_and_every_bot_in_turn() {
        let w = workload(0.05);
        assert_eq!(w.cuts_per_round(), 5);
        for round in 0..40 {
            assert_eq!((0..100).filter(|&bot| w.cuts(bot, round)).count(), 5);
        }
        let cut_once: Vec<bool> = (0..100).map(|bot| (0..20).any(|round| w.cuts(bot, round))).collect();
        assert!(cut_once.iter().all(|&cut| cut));
        assert!(!(0..100).any(|bot| workload(0.0).cuts(bot, 3)));
        for round in 0..40 {
            for room in 0..10 {
                let cut = (room * 10..room * 10 + 10).filter(|&bot| w.cuts(bot, round)).count();
                assert!(cut <= 1, "round {round} cut {cut} bots of room {room}");
            }
        }
    }

    #[test]
    fn validation_names_the_flag() {
        let run = Duration::from_secs(10);
        assert!(workload(0.05).validate(run).is_ok());
        assert!(
            workload(1.5)
                .validate(run)
                .unwrap_err()
                .to_string()
                .contains("--cut-share")
        );
    }
}
