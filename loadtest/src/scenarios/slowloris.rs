//! The `slowloris` scenario: A attackers each open a connection and trickle a
//! Hello frame that never completes, one byte per interval, and open a new
//! connection as soon as the server closes theirs; meanwhile C normal clients
//! connect, say Hello and join at an even rate through the window, and stay.
//! The report gives how long the server held each attacking connection (it
//! should close each at its handshake deadline) and the normal clients'
//! connect latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tavern::client::Client;
use tokio::time::Instant;

use super::{Findings, Reported, Scenario, one_step};
use crate::bots::{self, CONNECT_TIMEOUT, describe};
use crate::figures::SlowlorisFigures;
use crate::runner::Runner;
use crate::settings::FINISH_GRACE;
use crate::share::{SetupError, Share, ShareSpec, Shared, Signals};
use crate::step::{StepOutcome, StepReport};
use crate::tally::bump;
use crate::timeline::{Timeline, sleep_until_wall, wall_ns};
use crate::units::{f64_from, micros, nanos, u64_from};
use crate::workload::Workload;

/// The body length the attackers' frame header announces: under the
/// server's pre-Hello frame limit, and far more bytes than a run trickles.
const CLAIMED_BODY: u32 = 1_000;
/// Time over which the attackers' first connections are spread.
const RAMP: Duration = Duration::from_secs(1);
/// Normal clients per room.
const CLIENTS_PER_ROOM: u64 = 10;

/// What every process runs in one slowloris step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowlorisWorkload {
    /// Attacking connections held open at once (A).
    pub attackers: u64,
    /// Normal clients connecting through the window (C).
    pub clients: u64,
    /// Time between two bytes of an attacker, ms.
    pub trickle_ms: u64,
}

impl SlowlorisWorkload {
    /// Checks the numbers.
    ///
    /// # Errors
    /// A message naming the flag to change.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.attackers >= 1, "--attackers must be at least 1");
        anyhow::ensure!(self.trickle_ms >= 1, "--trickle-ms must be at least 1");
        Ok(())
    }
}

impl Workload for SlowlorisWorkload {
    fn connections(&self) -> u64 {
        self.attackers + self.clients
    }

    /// Runs this process's attackers from the start of the warm-up to the end
    /// of the window, and its normal clients through the window.
    ///
    /// # Errors
    /// The coordinator went away.
    async fn run_share(&self, mut share: Share) -> anyhow::Result<crate::tally::Tally> {
        let spec = share.spec.clone();
        let attackers: Vec<u64> = spec.my_bots(self.attackers).collect();
        let clients: Vec<u64> = spec.my_bots(self.clients).collect();
        {
            let mut tally = share.shared.tally();
            tally.slowloris.attackers = u64_from(attackers.len());
            tally.bots.planned = u64_from(clients.len());
        }
        let timeline = share.start(0).await?;
        let open = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for &attacker in &attackers {
            let offset = nanos(RAMP) * attacker / self.attackers;
            let attack = Attacker {
                number: attacker,
                first_at_ns: timeline.start_ns + offset,
                trickle: Duration::from_millis(self.trickle_ms),
                spec: spec.clone(),
                shared: share.shared.clone(),
                open: open.clone(),
                timeline,
            };
            tasks.push(tokio::spawn(attack.run()));
        }
        let window = nanos(timeline.window());
        for &client in &clients {
            let at = timeline.window_start_ns() + window * client / self.clients.max(1);
            let (spec, shared, signals) = (spec.clone(), share.shared.clone(), share.signals());
            tasks.push(tokio::spawn(normal_client(spec, client, at, shared, signals)));
        }
        sleep_until_wall(timeline.window_end_ns()).await;
        Ok(share.finish(tasks, FINISH_GRACE).await)
    }
}

/// The attacking connections: how long the server held them and how it closed them.
impl Reported for SlowlorisWorkload {
    fn add_sections(&self, outcome: &StepOutcome, report: &mut StepReport) {
        let slowloris = &outcome.tally.slowloris;
        report.slowloris = Some(SlowlorisFigures {
            attackers: slowloris.attackers,
            trickle_ms: self.trickle_ms,
            connections: slowloris.connections,
            closed: slowloris.closed,
            close_reasons: slowloris.close_reasons.clone(),
            held_us: slowloris.held.summary(),
            open_at_end: slowloris.open_at_end,
            oldest_at_end_ms: f64_from(slowloris.oldest_at_end_us) / 1e3,
            peak_open: slowloris.peak_open,
            connect_errors: slowloris.connect_errors.clone(),
        });
    }
}

/// One attacker: connection after connection until the window ends.
struct Attacker {
    number: u64,
    first_at_ns: u64,
    trickle: Duration,
    spec: ShareSpec,
    shared: Arc<Shared>,
    /// Attacking connections open now, in this process.
    open: Arc<AtomicU64>,
    timeline: Timeline,
}

impl Attacker {
    async fn run(self) {
        sleep_until_wall(self.first_at_ns).await;
        while wall_ns() < self.timeline.window_end_ns() {
            let route = self.spec.route(self.number, self.number);
            let connected =
                tokio::time::timeout(CONNECT_TIMEOUT, Client::connect_from(route.target, route.source)).await;
            let client = match connected {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => {
                    bump(&mut self.shared.tally().slowloris.connect_errors, describe(&e));
                    // Not at once again: a refused address would spin.
                    tokio::time::sleep(self.trickle).await;
                    continue;
                }
                Err(_) => {
                    bump(&mut self.shared.tally().slowloris.connect_errors, "timeout");
                    continue;
                }
            };
            self.shared.tally().slowloris.connections += 1;
            let now_open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
            self.shared.live.connected.fetch_add(1, Ordering::Relaxed);
            let opened = Instant::now();
            let ended = self.trickle_until_closed(client).await;
            self.open.fetch_sub(1, Ordering::AcqRel);
            self.shared.live.connected.fetch_sub(1, Ordering::Relaxed);
            let held_us = micros(opened.elapsed());
            let mut tally = self.shared.tally();
            let slowloris = &mut tally.slowloris;
            slowloris.peak_open = slowloris.peak_open.max(now_open);
            match ended {
                Some(reason) => {
                    slowloris.closed += 1;
                    slowloris.held.record_us(held_us);
                    bump(&mut slowloris.close_reasons, reason);
                }
                None => {
                    slowloris.open_at_end += 1;
                    slowloris.oldest_at_end_us = slowloris.oldest_at_end_us.max(held_us);
                }
            }
        }
    }

    /// Sends a frame header, then one body byte per interval, until the
    /// server ends the connection (returns why) or the window ends (`None`).
    async fn trickle_until_closed(&self, client: Client) -> Option<String> {
        let (mut writer, mut reader) = client.into_split();
        if let Err(e) = writer.send_raw(&CLAIMED_BODY.to_be_bytes()).await {
            return Some(describe(&e));
        }
        let mut ticks = tokio::time::interval_at(Instant::now() + self.trickle, self.trickle);
        loop {
            tokio::select! {
                biased;
                message = reader.next_message() => match message {
                    Ok(message) => {
                        if let Some(reason) = bots::ending(&message) {
                            return Some(reason);
                        }
                    }
                    Err(e) => return Some(describe(&e)),
                },
                _ = ticks.tick() => {
                    if let Err(e) = writer.send_raw(b"x").await {
                        return Some(describe(&e));
                    }
                }
                () = sleep_until_wall(self.timeline.window_end_ns()) => return None,
            }
        }
    }
}

/// A normal client: connects at `at`, says Hello, joins, and stays until told to stop.
async fn normal_client(spec: ShareSpec, number: u64, at: u64, shared: Arc<Shared>, signals: Signals) {
    sleep_until_wall(at).await;
    let room = format!("s{}.normal.{}", spec.step, number / CLIENTS_PER_ROOM);
    let route = spec.route(number, number % CLIENTS_PER_ROOM);
    let member = match bots::join_member(&spec, &spec.name('n', number), route, &room).await {
        Ok(member) => member,
        Err(SetupError(cause)) => {
            bump(&mut shared.tally().bots.connect_errors, cause);
            return;
        }
    };
    shared.count_connected(member.connect_latency);
    bots::hold(member, shared, signals).await;
}

/// The `slowloris` command.
pub struct SlowlorisScenario {
    /// The attackers and the normal clients.
    pub workload: SlowlorisWorkload,
}

impl<W: Workload + From<SlowlorisWorkload>> Scenario<W> for SlowlorisScenario {
    fn name(&self) -> &'static str {
        "slowloris"
    }

    async fn run(&self, runner: &mut Runner<W>) -> anyhow::Result<Findings> {
        self.workload.validate()?;
        let label = format!(
            "{} attackers, {} clients",
            self.workload.attackers, self.workload.clients
        );
        one_step(runner, &self.workload, label).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_flag() {
        let good = SlowlorisWorkload {
            attackers: 10,
            clients: 0,
            trickle_ms: 1000,
        };
        assert!(good.validate().is_ok());
        let none = SlowlorisWorkload {
            attackers: 0,
            ..good.clone()
        };
        assert!(none.validate().unwrap_err().to_string().contains("--attackers"));
        let busy = SlowlorisWorkload { trickle_ms: 0, ..good };
        assert!(busy.validate().unwrap_err().to_string().contains("--trickle-ms"));
    }
}
