//! The `churn` scenario: whole sessions at a fixed rate, each one connect,
//! Hello, join, chat (waiting for its echo), leave, disconnect; the report
//! gives connect latency, cycle latency and what failed where.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tavern::client::Client;
use tavern::protocol::pb::server_message::Body;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Findings, Reported, Scenario, one_step};
use crate::bots::{self, describe};
use crate::figures::ChurnFigures;
use crate::payload::{self, Stamp};
use crate::runner::Runner;
use crate::schedule::Schedule;
use crate::settings::FINISH_GRACE;
use crate::share::{SetupError, Share, ShareSpec, Shared};
use crate::step::{StepOutcome, StepReport};
use crate::tally::{Tally, bump};
use crate::timeline::{instant_at, sleep_until_wall, wall_ns};
use crate::units::{f64_from, micros, nanos, per_second, u64_from};
use crate::workload::Workload;

/// Longest one cycle's chat echo may take.
const ECHO_TIMEOUT: Duration = Duration::from_secs(10);

/// What every process runs in one churn step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChurnWorkload {
    /// Cycles started per second, in total.
    pub rate: u64,
    /// Rooms the cycles spread over (cycle `g` joins room `g % rooms`).
    pub rooms: u64,
    /// Bytes of the one chat text of each cycle.
    pub size: usize,
    /// Most cycles in flight at once per process; more are skipped and counted.
    pub max_in_flight: u64,
}

impl ChurnWorkload {
    /// Checks the numbers, and the text size against the cycle counter of a
    /// run of `run_length`.
    ///
    /// # Errors
    /// A message naming the flag to change.
    pub fn validate(&self, run_length: Duration) -> anyhow::Result<()> {
        anyhow::ensure!(self.rooms >= 1, "--rooms must be at least 1");
        anyhow::ensure!(self.max_in_flight >= 1, "--max-in-flight must be at least 1");
        let last_cycle = Schedule::new(0, self.rate, 1)?.count_before(0, nanos(run_length));
        payload::validate_size(self.size, last_cycle, 0)
    }
}

impl Workload for ChurnWorkload {
    fn connections(&self) -> u64 {
        self.max_in_flight
    }

    /// Starts this process's cycles on the shared schedule until the window
    /// ends, then waits (bounded) for the ones in flight.
    ///
    /// # Errors
    /// The coordinator went away.
    async fn run_share(&self, mut share: Share) -> anyhow::Result<Tally> {
        let spec = share.spec.clone();
        let timeline = share.start(0).await?;
        let index = u64::from(spec.index);
        let schedule = Schedule::new(timeline.start_ns, self.rate, u64::from(spec.count.max(1)))?;
        let end = schedule.count_before(index, timeline.window_end_ns());
        let counted_in_flight = Arc::new(AtomicU64::new(0));
        let workload = Arc::new(self.clone());
        let mut running = JoinSet::new();
        for k in 0..end {
            let at = schedule.send_time_ns(index, k);
            sleep_until_wall(at).await;
            while running.try_join_next().is_some() {}
            let counted = timeline.in_window(at);
            let mut tally = share.shared.tally();
            tally.churn.scheduled += u64::from(counted);
            if u64_from(running.len()) >= self.max_in_flight {
                tally.churn.skipped += u64::from(counted);
                continue;
            }
            tally.churn.started += u64::from(counted);
            drop(tally);
            let cycle = Cycle {
                number: k * schedule.publishers() + index,
                counted,
                spec: spec.clone(),
                workload: workload.clone(),
                shared: share.shared.clone(),
                counted_in_flight: counted_in_flight.clone(),
            };
            running.spawn(cycle.run());
        }
        let deadline = instant_at(timeline.drain_deadline_ns());
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, running.join_next()).await {}
        running.abort_all();
        share.shared.tally().churn.unfinished += counted_in_flight.load(Ordering::Acquire);
        Ok(share.finish(Vec::new(), FINISH_GRACE).await)
    }
}

/// The cycles: how many, how fast, and what failed where.
impl Reported for ChurnWorkload {
    fn add_sections(&self, outcome: &StepOutcome, report: &mut StepReport) {
        let churn = &outcome.tally.churn;
        report.churn = Some(ChurnFigures {
            offered_per_s: f64_from(self.rate),
            scheduled: churn.scheduled,
            started: churn.started,
            achieved_per_s: per_second(churn.started, outcome.timeline.window()),
            completed: churn.completed,
            failed: churn.failures.values().sum(),
            failures: churn.failures.clone(),
            skipped: churn.skipped,
            unfinished: churn.unfinished,
            cycle_latency_us: churn.cycle_latency.summary(),
        });
    }
}

/// One connect-to-disconnect cycle.
struct Cycle {
    number: u64,
    counted: bool,
    spec: ShareSpec,
    workload: Arc<ChurnWorkload>,
    shared: Arc<Shared>,
    counted_in_flight: Arc<AtomicU64>,
}

impl Cycle {
    async fn run(self) {
        if self.counted {
            self.counted_in_flight.fetch_add(1, Ordering::AcqRel);
        }
        self.shared.live.connected.fetch_add(1, Ordering::Relaxed);
        self.shared.live.sent.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.stages().await;
        let elapsed = started.elapsed();
        self.shared.live.connected.fetch_sub(1, Ordering::Relaxed);
        if !self.counted {
            return;
        }
        self.counted_in_flight.fetch_sub(1, Ordering::AcqRel);
        let mut tally = self.shared.tally();
        match result {
            Ok(connect_latency) => {
                tally.churn.completed += 1;
                tally.churn.cycle_latency.record_us(micros(elapsed));
                tally.bots.connect_latency.record_us(micros(connect_latency));
                drop(tally);
                self.shared.live.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(SetupError(cause)) => bump(&mut tally.churn.failures, cause),
        }
    }

    /// Goes through every stage; returns the time from starting to connect
    /// until `Welcome`. Counted cycles also count as bots: planned, then
    /// connected or a connect error.
    async fn stages(&self) -> Result<Duration, SetupError> {
        let started = Instant::now();
        let name = self.spec.name('c', self.number);
        // The cycles of one room are its members, in turn.
        let route = self.spec.route(self.number, self.number / self.workload.rooms);
        let connected = bots::connect_hello(&self.spec, &name, route).await;
        let connect_latency = started.elapsed();
        if self.counted {
            let mut tally = self.shared.tally();
            tally.bots.planned += 1;
            match &connected {
                Ok(_) => tally.bots.connected += 1,
                Err(SetupError(cause)) => bump(&mut tally.bots.connect_errors, cause.clone()),
            }
        }
        let (mut client, _) = connected?;
        let room = format!("s{}.churn.{}", self.spec.step, self.number % self.workload.rooms);
        client
            .join(&room)
            .await
            .map_err(|e| SetupError(format!("join: {}", describe(&e))))?;
        self.chat(&mut client, &room).await?;
        client
            .leave(&room)
            .await
            .map_err(|e| SetupError(format!("leave: {}", describe(&e))))?;
        Ok(connect_latency)
    }

    /// Sends one text and waits for its echo.
    async fn chat(&self, client: &mut Client, room: &str) -> Result<(), SetupError> {
        let mut text = String::with_capacity(self.workload.size);
        let stamp = Stamp {
            publisher: self.number,
            counter: 0,
            sent_ns: wall_ns(),
        };
        payload::write(&mut text, self.workload.size, stamp).map_err(|e| SetupError(format!("chat: {e}")))?;
        let request = client
            .chat(room, &text)
            .await
            .map_err(|e| SetupError(format!("chat: {}", describe(&e))))?;
        let deadline = Instant::now() + ECHO_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = client
                .next_event(left)
                .await
                .map_err(|e| SetupError(format!("chat: {}", describe(&e))))?;
            if message.request_id != request {
                continue;
            }
            return match message.body {
                Some(Body::Chat(_)) => Ok(()),
                Some(Body::Error(e)) => Err(SetupError(format!("chat: {}", e.code().as_str_name()))),
                _ => Err(SetupError("chat: unexpected reply".into())),
            };
        }
    }
}

/// The `churn` command.
pub struct ChurnScenario {
    /// The cycles.
    pub workload: ChurnWorkload,
}

impl<W: Workload + From<ChurnWorkload>> Scenario<W> for ChurnScenario {
    fn name(&self) -> &'static str {
        "churn"
    }

    async fn run(&self, runner: &mut Runner<W>) -> anyhow::Result<Findings> {
        self.workload.validate(runner.env.run_length())?;
        let label = format!("{} cycles/s", self.workload.rate);
        one_step(runner, &self.workload, label).await
    }
}
