//! The `mmo` scenario: B bots enter one world, spread over all of it or
//! packed into a small square in its centre, and random-walk: each sends a
//! Move at a fixed rate on one open-loop schedule (bots evenly phased) and
//! reads every WorldUpdate. Reports the input-to-echo latency (a Move to the
//! first update acknowledging it), the time from the server's tick to the
//! update's arrival, the update traffic, and the server's tick durations
//! scraped from its admin endpoint.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tavern::client::{Client, ClientReader, ClientWriter};
use tavern::protocol::pb::client_message::Body as Request;
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::pb::{self, ServerMessage};
use tokio::time::Instant;

use super::echo::{PENDING_CAPACITY, PendingMoves};
use super::walk::{Point, Region, Rng, next_target};
use super::{Findings, Reported, Scenario, one_step};
use crate::admin::{self, TickWindow};
use crate::bots::{self, describe, keep_alive, latency_us};
use crate::figures::{MmoFigures, ServerTickFigures, WorldGeometry};
use crate::runner::{Env, Runner};
use crate::schedule::Schedule;
use crate::settings::{Density, FINISH_GRACE, SAMPLE_BATCH, SAMPLE_FLUSH_NS};
use crate::share::{SetupError, Share, ShareSpec, Shared, Signals, TaskGuard};
use crate::step::{StepOutcome, StepReport};
use crate::tally::{Tally, bump};
use crate::timeline::{Timeline, sleep_until_wall, wall_ns};
use crate::units::{f32_from, f64_from, micros, ns_to_ms, per_second, u64_from};
use crate::workload::Workload;

/// Longest the server may take to answer EnterWorld.
const ENTER_TIMEOUT: Duration = Duration::from_secs(10);
/// Most Moves a bot writes before one flush (when it is behind schedule).
const MAX_BATCH: u64 = 64;
/// Bytes of a frame's length header.
const FRAME_HEADER: u64 = 4;

/// What every process runs in one mmo step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MmoWorkload {
    /// Bots in the world (B).
    pub bots: u64,
    /// The world's name.
    pub world: String,
    /// Moves per second per bot.
    pub input_hz: u64,
    /// Where the bots spawn and walk.
    pub density: Density,
    /// Side of the clustered square, world units; none: twice the area-of-interest radius.
    pub cluster_size: Option<f64>,
    /// Distance of each walk target from the last one, as asked (see [`MmoWorkload::step_used`]).
    pub step: f64,
    /// The server's admin endpoint, scraped for tick durations; none: not scraped.
    pub admin: Option<SocketAddr>,
    /// The world, once probed (every share needs it).
    pub geometry: Option<WorldGeometry>,
}

impl MmoWorkload {
    /// Checks the numbers.
    ///
    /// # Errors
    /// A message naming the flag to change.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.bots >= 1, "--bots must be at least 1");
        anyhow::ensure!(!self.world.is_empty(), "--world must not be empty");
        anyhow::ensure!(
            (1..=1000).contains(&self.input_hz),
            "--input-hz must be between 1 and 1000"
        );
        anyhow::ensure!(
            self.step.is_finite() && self.step > 0.0,
            "--step must be a number above 0"
        );
        if let Some(size) = self.cluster_size {
            anyhow::ensure!(
                size.is_finite() && size > 0.0,
                "--cluster-size must be a number above 0"
            );
        }
        Ok(())
    }

    /// The step the bots walk: `--step`, but at most what the server moves an
    /// entity between two Moves (`max_speed / input_hz`), so every target is
    /// reached before the next one is sent.
    pub fn step_used(&self) -> f64 {
        let legal = self
            .geometry
            .filter(|geometry| geometry.max_speed > 0.0)
            .map_or(f64::INFINITY, |geometry| {
                geometry.max_speed / crate::units::f64_from(self.input_hz)
            });
        self.step.min(legal)
    }

    /// Where the bots spawn and walk (nothing before the probe).
    pub fn region(&self) -> Option<Region> {
        let geometry = self.geometry?;
        Some(match self.density {
            Density::Dispersed => Region::whole(geometry.width, geometry.height),
            Density::Clustered => Region::centred(
                geometry.width,
                geometry.height,
                self.cluster_size.unwrap_or(2.0 * geometry.aoi_radius),
            ),
        })
    }

    /// The open-loop schedule of every bot's Moves: bot `b`'s move `k` at
    /// `start + k / input_hz + b / (B × input_hz)`.
    ///
    /// # Errors
    /// No bots or no rate (the workload was not validated).
    pub fn schedule(&self, start_ns: u64) -> anyhow::Result<Schedule> {
        Schedule::new(start_ns, self.bots.saturating_mul(self.input_hz), self.bots)
    }
}

impl Workload for MmoWorkload {
    /// Connects this process's bots into the world, moves them through the
    /// warm-up and the window, and waits (at most the drain timeout) until
    /// every window Move is acknowledged. Share 0 also scrapes the server's
    /// tick durations at the window's start and end.
    ///
    /// # Errors
    /// The world was not probed, the setup timed out or the coordinator went away.
    async fn run_share(&self, mut share: Share) -> anyhow::Result<Tally> {
        let region = self.region().context("the world was not probed")?;
        let workload = Arc::new(self.clone());
        let spec = share.spec.clone();
        share.shared.tally().bots.planned = u64_from(spec.my_bots(self.bots).count());
        let results = bots::setup_all(&spec, spec.my_bots(self.bots), |bot| {
            let (spec, workload, shared, signals) =
                (spec.clone(), workload.clone(), share.shared.clone(), share.signals());
            async move {
                let walker = enter(&spec, &workload, region, bot).await?;
                shared.count_connected(walker.connect_latency);
                {
                    let mut tally = shared.tally();
                    tally.mmo.in_world += 1;
                    tally.mmo.enter_latency.record_us(micros(walker.enter_latency));
                }
                shared.add_receiver();
                let bot = MmoBot {
                    number: bot,
                    region,
                    workload,
                    shared,
                };
                Ok(tokio::spawn(bot.run(walker, signals)))
            }
        })
        .await?;
        let mut tasks = share.keep_connected(results);
        let connected = share.shared.connected_after_setup()?;
        let timeline = share.start(connected).await?;
        if spec.index == 0 {
            match self.admin {
                Some(admin) => tasks.push(tokio::spawn(scrape_window(admin, timeline, share.shared.clone()))),
                None => {
                    share.shared.tally().mmo.server_ticks_error =
                        Some("no admin address (use --spawn-server or --admin-addr)".to_owned());
                }
            }
        }
        share.drain(&timeline).await;
        Ok(share.finish(tasks, FINISH_GRACE).await)
    }

    fn connections(&self) -> u64 {
        self.bots
    }
}

/// Scrapes the server's tick figures at the window's start and end, and
/// counts their difference (or why there is none).
async fn scrape_window(admin: SocketAddr, timeline: Timeline, shared: Arc<Shared>) {
    sleep_until_wall(timeline.window_start_ns()).await;
    let start = admin::scrape_ticks(admin).await;
    sleep_until_wall(timeline.window_end_ns()).await;
    let end = admin::scrape_ticks(admin).await;
    let mut tally = shared.tally();
    match (start, end) {
        (Ok(start), Ok(end)) => tally.mmo.server_ticks = Some(TickWindow::between(Some(&start), &end)),
        (Err(e), _) | (_, Err(e)) => tally.mmo.server_ticks_error = Some(format!("{e:#}")),
    }
}

/// A bot in the world, not yet running.
struct Walker {
    /// The sending half.
    writer: ClientWriter,
    /// The receiving half.
    reader: ClientReader,
    /// How often to send something when not moving.
    heartbeat: Duration,
    /// From starting to connect until `Welcome`.
    connect_latency: Duration,
    /// From sending EnterWorld until `WorldEntered`.
    enter_latency: Duration,
    /// Where the server put it (its spawn point, clamped to the bounds).
    position: Point,
    /// Its own random numbers, for its walk.
    rng: Rng,
}

/// Connects bot `bot`, says Hello and enters the world at a random point of `region`.
async fn enter(spec: &ShareSpec, workload: &MmoWorkload, region: Region, bot: u64) -> Result<Walker, SetupError> {
    let started = Instant::now();
    let (mut client, welcome) = bots::connect_hello(spec, &spec.name('m', bot), spec.source(bot)).await?;
    let connect_latency = started.elapsed();
    let mut rng = Rng::new(bot);
    let spawn = region.random_point(&mut rng);
    let entering = Instant::now();
    let entered = enter_world(&mut client, &workload.world, Some(spawn))
        .await
        .map_err(|cause| SetupError(format!("enter: {cause}")))?;
    let enter_latency = entering.elapsed();
    let position = entered.position.map_or(spawn, |position| Point {
        x: f64::from(position.x),
        y: f64::from(position.y),
    });
    let (writer, reader) = client.into_split();
    Ok(Walker {
        writer,
        reader,
        heartbeat: bots::heartbeat(&welcome),
        connect_latency,
        enter_latency,
        // The walk starts inside the region (the server rounds positions a little).
        position: region.clamp(position),
        rng,
    })
}

/// Sends EnterWorld and waits for its answer.
///
/// # Errors
/// The error code the server answered with, or why the connection failed.
async fn enter_world(client: &mut Client, world: &str, spawn: Option<Point>) -> Result<pb::WorldEntered, String> {
    let enter = pb::EnterWorld {
        world: world.to_owned(),
        spawn: spawn.map(|point| pb::Position {
            x: f32_from(point.x),
            y: f32_from(point.y),
        }),
    };
    let id = client
        .send(Request::EnterWorld(enter))
        .await
        .map_err(|e| describe(&e))?;
    let deadline = Instant::now() + ENTER_TIMEOUT;
    loop {
        let message = tokio::time::timeout_at(deadline, client.next_message())
            .await
            .map_err(|_| "timeout".to_owned())?
            .map_err(|e| describe(&e))?;
        if let Some(reason) = bots::ending(&message) {
            return Err(reason);
        }
        match message.body {
            Some(Body::WorldEntered(entered)) if message.request_id == id => return Ok(entered),
            Some(Body::Error(error)) if message.request_id == id => {
                return Err(error.code().as_str_name().to_owned());
            }
            _ => {}
        }
    }
}

/// Enters `world` once with a bot of its own and returns what the server
/// says about it (every share needs the bounds before its bots spawn).
///
/// # Errors
/// The connection, the Hello or the EnterWorld failed.
pub async fn probe(env: &Env, world: &str) -> anyhow::Result<WorldGeometry> {
    let spec = ShareSpec {
        index: 0,
        count: 1,
        run_id: env.run_id,
        step: 0,
        target: env.target,
        source_ips: 1,
        connect_concurrency: 1,
        setup_timeout_ms: u64::try_from(env.setup_timeout.as_millis()).unwrap_or(u64::MAX),
        auth_key: env.auth_key.clone(),
    };
    let (mut client, _) = bots::connect_hello(&spec, &spec.name('p', 0), None)
        .await
        .map_err(|SetupError(cause)| anyhow::anyhow!("probing the world: {cause}"))?;
    let entered = enter_world(&mut client, world, None)
        .await
        .map_err(|cause| anyhow::anyhow!("entering world {world:?}: {cause}"))?;
    WorldGeometry::from_entered(&entered)
}

/// One bot in the world and what it needs to run.
#[derive(Clone)]
struct MmoBot {
    /// Its number among all bots: its place on the schedule.
    number: u64,
    /// Where it walks.
    region: Region,
    /// The step's workload.
    workload: Arc<MmoWorkload>,
    /// Where it counts.
    shared: Arc<Shared>,
}

impl MmoBot {
    /// Runs the bot until told to stop, then adds what it counted to the tally.
    /// The read side runs as a task of its own, so that writing never delays
    /// reading updates.
    async fn run(self, walker: Walker, signals: Signals) {
        let Walker {
            mut writer,
            reader,
            heartbeat,
            position,
            rng,
            ..
        } = walker;
        let pending = Arc::new(Mutex::new(PendingMoves::new(PENDING_CAPACITY)));
        let watcher = Watcher::new(self.number, pending.clone(), self.shared.clone());
        let reading = TaskGuard::spawn(self.clone().read_side(reader, watcher, signals.clone()));
        let mut mover = Mover::new(position, rng, pending.clone());
        let write_end = self.write_side(&mut writer, &mut mover, heartbeat, signals).await;
        // The writer stays open until the reader is done: closing it first would
        // make the server close the connection under the reader's feet.
        let read = reading.join().await;
        drop(writer);
        let Ok((watcher, read_end)) = read else {
            return;
        };
        let unechoed = pending.lock().unwrap_or_else(PoisonError::into_inner).unechoed_window();
        let mut tally = self.shared.tally();
        watcher.add_to(&mut tally);
        mover.add_to(&mut tally);
        tally.mmo.moves_unechoed += unechoed;
        if let Some(reason) = read_end.or(write_end) {
            bump(&mut tally.bots.disconnects, reason);
        }
    }

    /// Reads until told to stop or the connection ends; returns why it ended, if it did.
    async fn read_side(
        self,
        mut reader: ClientReader,
        mut watcher: Watcher,
        mut signals: Signals,
    ) -> (Watcher, Option<String>) {
        let ended = 'read: {
            // Setup: updates arrive (and must be read) before the start time is known.
            let timeline = match bots::read_until_start(&mut reader, &mut watcher, &mut signals).await {
                Ok(timeline) => timeline,
                Err(ended) => break 'read ended,
            };
            watcher.start(&self.workload, timeline);
            bots::read_until_stopped(&mut reader, &mut watcher, &mut signals).await
        };
        if ended.is_some() {
            self.shared.live.connected.fetch_sub(1, Ordering::Relaxed);
        }
        watcher.finish();
        (watcher, ended)
    }

    /// Keeps the connection alive until the start, sends Moves on the
    /// schedule through the warm-up and the window, then keeps it alive
    /// again; returns why the connection ended, if it did.
    async fn write_side(
        &self,
        writer: &mut ClientWriter,
        mover: &mut Mover,
        heartbeat: Duration,
        mut signals: Signals,
    ) -> Option<String> {
        let timeline = loop {
            tokio::select! {
                biased;
                timeline = signals.timeline() => match timeline {
                    Some(timeline) => break timeline,
                    None => return None,
                },
                () = tokio::time::sleep(heartbeat) => {
                    if let Err(e) = bots::send_ping(writer).await {
                        return Some(describe(&e));
                    }
                }
            }
        };
        let Ok(schedule) = self.workload.schedule(timeline.start_ns) else {
            return None;
        };
        let plan = Plan {
            bot: self.number,
            schedule: &schedule,
            timeline: &timeline,
            region: &self.region,
            step: self.workload.step_used(),
        };
        match mover.walk(writer, plan, &self.shared, &mut signals).await {
            Ok(()) => keep_alive(writer, heartbeat, &mut signals).await,
            Err(reason) => Some(reason),
        }
    }
}

/// What one bot's writer follows.
#[derive(Clone, Copy)]
struct Plan<'a> {
    /// The bot's place on the schedule.
    bot: u64,
    /// Every bot's Moves.
    schedule: &'a Schedule,
    /// The step's phases: it moves until the window ends.
    timeline: &'a Timeline,
    /// Where it walks.
    region: &'a Region,
    /// How far each target is from the last.
    step: f64,
}

/// A bot's write side: its walk and what it sent.
#[derive(Debug)]
struct Mover {
    /// The last target sent (at first, the spawn point).
    at: Point,
    /// Its random numbers.
    rng: Rng,
    /// Its Moves awaiting their echo (shared with its read side).
    pending: Arc<Mutex<PendingMoves>>,
    /// Moves written.
    sent: u64,
    /// Moves written while the window was open.
    sent_in_window: u64,
    /// The longest it was behind its schedule in the window, ns.
    max_lag_ns: u64,
}

impl Mover {
    /// A walk from `at`, recording its Moves in `pending`.
    fn new(at: Point, rng: Rng, pending: Arc<Mutex<PendingMoves>>) -> Mover {
        Mover {
            at,
            rng,
            pending,
            sent: 0,
            sent_in_window: 0,
            max_lag_ns: 0,
        }
    }

    /// Sends every Move scheduled before the end of the window: what is due,
    /// in batches, then sleeps until the next one is due. A bot behind
    /// schedule sends everything due at once and records its lag.
    async fn walk(
        &mut self,
        writer: &mut ClientWriter,
        plan: Plan<'_>,
        shared: &Shared,
        signals: &mut Signals,
    ) -> Result<(), String> {
        let Plan {
            bot,
            schedule,
            timeline,
            region,
            step,
        } = plan;
        let end = schedule.count_before(bot, timeline.window_end_ns());
        let mut next = 0;
        while next < end {
            let now = wall_ns();
            let due = schedule.due_count(bot, now).min(end);
            if due <= next {
                tokio::select! {
                    biased;
                    () = signals.stopped() => return Ok(()),
                    () = sleep_until_wall(schedule.send_time_ns(bot, next)) => continue,
                }
            }
            let scheduled = schedule.send_time_ns(bot, next);
            if timeline.in_window(scheduled) {
                self.max_lag_ns = self.max_lag_ns.max(now.saturating_sub(scheduled));
            }
            let batch_end = due.min(next + MAX_BATCH);
            for k in next..batch_end {
                // Client ticks start at 1: the server takes a Move only above the last tick (0 at first).
                let Ok(client_tick) = u32::try_from(k + 1) else {
                    return Ok(());
                };
                let (target, heading) = next_target(region, self.at, step, &mut self.rng);
                let body = Request::Move(pb::Move {
                    x: f32_from(target.x),
                    y: f32_from(target.y),
                    heading: f32_from(heading),
                    client_tick,
                });
                let sent_ns = wall_ns();
                let in_window = timeline.in_window(sent_ns);
                self.pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .sent(client_tick, sent_ns, in_window);
                writer.feed(body).await.map_err(|e| describe(&e))?;
                self.at = target;
                self.sent += 1;
                self.sent_in_window += u64::from(in_window);
            }
            writer.flush().await.map_err(|e| describe(&e))?;
            shared.live.sent.fetch_add(batch_end - next, Ordering::Relaxed);
            next = batch_end;
        }
        Ok(())
    }

    /// Adds what it sent to the tally.
    fn add_to(&self, tally: &mut Tally) {
        let mmo = &mut tally.mmo;
        mmo.moves_sent += self.sent;
        mmo.moves_in_window += self.sent_in_window;
        mmo.max_lag_ns = mmo.max_lag_ns.max(self.max_lag_ns);
    }
}

/// A bot's read side: what its updates say, and the echoes of its Moves.
#[derive(Debug)]
struct Watcher {
    /// The bot's place on the schedule.
    bot: u64,
    /// Its Moves awaiting their echo (shared with its write side).
    pending: Arc<Mutex<PendingMoves>>,
    /// The window, once known, and the client tick of the bot's last window Move.
    window: Option<(Timeline, u32)>,
    /// The highest `ack_client_tick` seen.
    acked: u32,
    /// Whether it told the drain it is done.
    done: bool,
    /// Updates received in the window.
    updates_window: u64,
    /// Updates received, warm-up and window.
    updates_total: u64,
    /// Frame bytes of the window's updates.
    bytes_window: u64,
    /// Entities entered, over the window's updates.
    entered: u64,
    /// Entities left, over the window's updates.
    left: u64,
    /// Entities moved, over the window's updates.
    moved: u64,
    /// Window Moves acknowledged.
    echoed: u64,
    /// The lowest time scale of a window update.
    min_time_scale_pct: Option<u32>,
    /// Non-fatal errors, by code.
    errors: BTreeMap<String, u64>,
    /// Input-to-echo latencies not yet in the shared histogram, µs.
    echo_samples: Vec<u64>,
    /// Times since the tick not yet in the shared histogram, µs.
    age_samples: Vec<u64>,
    /// Updates not yet on the live counter.
    unreported_updates: u64,
    /// When the samples were last added.
    last_flush_ns: u64,
    /// Where it counts.
    shared: Arc<Shared>,
}

impl bots::OnMessage for Watcher {
    fn on_message(&mut self, message: &ServerMessage) -> Option<String> {
        Watcher::on_message(self, message)
    }
}

impl Watcher {
    /// A read side for bot `bot`, which counts in `shared`.
    fn new(bot: u64, pending: Arc<Mutex<PendingMoves>>, shared: Arc<Shared>) -> Watcher {
        Watcher {
            bot,
            pending,
            window: None,
            acked: 0,
            done: false,
            updates_window: 0,
            updates_total: 0,
            bytes_window: 0,
            entered: 0,
            left: 0,
            moved: 0,
            echoed: 0,
            min_time_scale_pct: None,
            errors: BTreeMap::new(),
            echo_samples: Vec::new(),
            age_samples: Vec::new(),
            unreported_updates: 0,
            last_flush_ns: 0,
            shared,
        }
    }

    /// Learns the timeline, and from the schedule the tick of its last window Move.
    fn start(&mut self, workload: &MmoWorkload, timeline: Timeline) {
        let Ok(schedule) = workload.schedule(timeline.start_ns) else {
            return;
        };
        let moves = schedule.count_before(self.bot, timeline.window_end_ns());
        self.window = Some((timeline, u32::try_from(moves).unwrap_or(u32::MAX)));
        self.check_done();
    }

    /// Handles one message; returns why the connection ends, if it does.
    fn on_message(&mut self, message: &ServerMessage) -> Option<String> {
        if let Some(reason) = bots::ending(message) {
            return Some(reason);
        }
        match &message.body {
            Some(Body::WorldUpdate(update)) => self.on_update(message, update),
            Some(Body::Error(error)) => bump(&mut self.errors, error.code().as_str_name()),
            Some(Body::WorldLeft(left)) => bump(&mut self.errors, format!("WorldLeft {}", left.reason)),
            _ => {}
        }
        None
    }

    /// Counts an update (`message` is its whole frame) and the echoes it carries.
    fn on_update(&mut self, message: &ServerMessage, update: &pb::WorldUpdate) {
        let now = wall_ns();
        self.updates_total += 1;
        self.unreported_updates += 1;
        let samples = &mut self.echo_samples;
        self.echoed +=
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .acked(update.ack_client_tick, now, |us| samples.push(us));
        self.acked = self.acked.max(update.ack_client_tick);
        if let Some((timeline, _)) = self.window
            && timeline.in_window(now)
        {
            self.updates_window += 1;
            self.bytes_window += u64_from(message.encoded_len()) + FRAME_HEADER;
            self.entered += u64_from(update.entered.len());
            self.left += u64_from(update.left.len());
            self.moved += u64_from(update.moved.len());
            self.min_time_scale_pct = Some(
                self.min_time_scale_pct
                    .map_or(update.time_scale_pct, |low| low.min(update.time_scale_pct)),
            );
            self.age_samples
                .push(latency_us(update.server_time_us.saturating_mul(1_000), now));
        }
        self.check_done();
        if self.echo_samples.len() >= SAMPLE_BATCH
            || self.age_samples.len() >= SAMPLE_BATCH
            || now.saturating_sub(self.last_flush_ns) >= SAMPLE_FLUSH_NS
        {
            self.flush(now);
        }
    }

    /// Tells the drain this bot is done once its last window Move is acknowledged.
    fn check_done(&mut self) {
        if let Some((_, last)) = self.window
            && !self.done
            && self.acked >= last
        {
            self.done = true;
            self.shared.receiver_done();
        }
    }

    /// Adds the kept samples to the shared histograms and the live counter.
    fn flush(&mut self, now: u64) {
        self.last_flush_ns = now;
        self.shared
            .live
            .delivered
            .fetch_add(self.unreported_updates, Ordering::Relaxed);
        self.unreported_updates = 0;
        if self.echo_samples.is_empty() && self.age_samples.is_empty() {
            return;
        }
        let mut tally = self.shared.tally();
        for &sample in &self.echo_samples {
            tally.mmo.echo_latency.record_us(sample);
        }
        for &sample in &self.age_samples {
            tally.mmo.tick_age.record_us(sample);
        }
        drop(tally);
        self.echo_samples.clear();
        self.age_samples.clear();
    }

    /// The connection ended or the step stopped: flush, and stop the drain waiting for this one.
    fn finish(&mut self) {
        self.flush(wall_ns());
        if !self.done {
            self.done = true;
            self.shared.receiver_done();
        }
    }

    /// Adds what it counted to the tally.
    fn add_to(&self, tally: &mut Tally) {
        let mmo = &mut tally.mmo;
        mmo.updates_window += self.updates_window;
        mmo.updates_total += self.updates_total;
        mmo.update_bytes_window += self.bytes_window;
        mmo.entered += self.entered;
        mmo.left += self.left;
        mmo.moved += self.moved;
        mmo.moves_echoed += self.echoed;
        mmo.min_time_scale_pct = match (mmo.min_time_scale_pct, self.min_time_scale_pct) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for (error, count) in &self.errors {
            *mmo.errors.entry(error.clone()).or_default() += count;
        }
    }
}

/// The `mmo` command.
pub struct MmoScenario {
    /// The bots and their walk (the world's geometry is probed).
    pub workload: MmoWorkload,
}

impl Scenario for MmoScenario {
    type Workload = MmoWorkload;

    fn name(&self) -> &'static str {
        "mmo"
    }

    async fn run<W: Workload + From<Self::Workload>>(&self, runner: &mut Runner<W>) -> anyhow::Result<Findings> {
        self.workload.validate()?;
        let geometry = probe(&runner.env, &self.workload.world).await?;
        let workload = MmoWorkload {
            geometry: Some(geometry),
            admin: self.workload.admin.or(runner.env.admin),
            ..self.workload.clone()
        };
        let label = format!(
            "{} bots in {} ({}), {} Moves/s each",
            workload.bots,
            workload.world,
            workload.density.as_str(),
            workload.input_hz
        );
        one_step(runner, &workload, label).await
    }
}

/// The bots' Moves and updates, and the server's tick durations.
impl Reported for MmoWorkload {
    fn step_report(&self, label: String, attempt: u32, outcome: &StepOutcome) -> StepReport {
        StepReport {
            mmo: Some(self.figures(outcome)),
            ..StepReport::new(label, attempt, outcome, None)
        }
    }
}

impl MmoWorkload {
    /// The `mmo` section of a step's report.
    fn figures(&self, outcome: &StepOutcome) -> MmoFigures {
        let mmo = &outcome.tally.mmo;
        let window = outcome.timeline.window();
        let per_update = |count: u64| {
            if mmo.updates_window > 0 {
                f64_from(count) / f64_from(mmo.updates_window)
            } else {
                0.0
            }
        };
        let bytes_per_s = per_second(mmo.update_bytes_window, window);
        let server_tick = mmo.server_ticks.as_ref().map(|ticks| ServerTickFigures {
            ticks: ticks.ticks,
            p50_ms: ticks.quantile(0.50).map(|s| s * 1e3),
            p99_ms: ticks.quantile(0.99).map(|s| s * 1e3),
            mean_ms: ticks.mean().map(|s| s * 1e3),
            overruns: ticks.overruns,
        });
        MmoFigures {
            world: self.world.clone(),
            density: self.density.as_str().to_owned(),
            geometry: self.geometry,
            region: self
                .region()
                .map(|region| [region.min.x, region.min.y, region.max.x, region.max.y]),
            bots: self.bots,
            in_world: mmo.in_world,
            input_hz: self.input_hz,
            step_asked: self.step,
            step: self.step_used(),
            enter_latency_us: mmo.enter_latency.summary(),
            moves_sent: mmo.moves_sent,
            moves_per_s: per_second(mmo.moves_in_window, window),
            max_lag_ms: ns_to_ms(mmo.max_lag_ns),
            moves_echoed: mmo.moves_echoed,
            moves_unechoed: mmo.moves_unechoed,
            echo_latency_us: mmo.echo_latency.summary(),
            tick_age_us: mmo.tick_age.summary(),
            updates: mmo.updates_window,
            updates_per_s: per_second(mmo.updates_window, window),
            bytes_per_s_per_player: if mmo.in_world > 0 {
                bytes_per_s / f64_from(mmo.in_world)
            } else {
                0.0
            },
            mean_entered: per_update(mmo.entered),
            mean_left: per_update(mmo.left),
            mean_moved: per_update(mmo.moved),
            min_time_scale_pct: mmo.min_time_scale_pct,
            disconnects: outcome.tally.bots.disconnects.values().sum(),
            errors: mmo.errors.clone(),
            server_tick_missing: match &server_tick {
                Some(_) => None,
                None => Some(
                    mmo.server_ticks_error
                        .clone()
                        .unwrap_or_else(|| "the scrape did not finish".to_owned()),
                ),
            },
            server_tick,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(density: Density) -> MmoWorkload {
        MmoWorkload {
            bots: 100,
            world: "w".into(),
            input_hz: 10,
            density,
            cluster_size: None,
            step: 2.0,
            admin: None,
            geometry: Some(WorldGeometry {
                width: 2000.0,
                height: 1000.0,
                aoi_radius: 50.0,
                max_speed: 10.0,
                tick_rate_hz: 20,
                position_quantum: 0.01,
            }),
        }
    }

    #[test]
    fn validation_names_the_flag() {
        assert!(workload(Density::Dispersed).validate().is_ok());
        for (broken, flag) in [
            (
                MmoWorkload {
                    bots: 0,
                    ..workload(Density::Dispersed)
                },
                "--bots",
            ),
            (
                MmoWorkload {
                    input_hz: 0,
                    ..workload(Density::Dispersed)
                },
                "--input-hz",
            ),
            (
                MmoWorkload {
                    step: f64::NAN,
                    ..workload(Density::Dispersed)
                },
                "--step",
            ),
            (
                MmoWorkload {
                    cluster_size: Some(-1.0),
                    ..workload(Density::Clustered)
                },
                "--cluster-size",
            ),
        ] {
            let error = broken.validate().unwrap_err().to_string();
            assert!(error.contains(flag), "{error}");
        }
    }

    #[test]
    fn the_step_stays_legal() {
        // 10 units/s at 10 Moves/s: at most 1 unit per Move.
        assert_eq!(workload(Density::Dispersed).step_used(), 1.0);
        let small = MmoWorkload {
            step: 0.25,
            ..workload(Density::Dispersed)
        };
        assert_eq!(small.step_used(), 0.25);
        let unprobed = MmoWorkload {
            geometry: None,
            ..workload(Density::Dispersed)
        };
        assert_eq!(unprobed.step_used(), 2.0);
        assert_eq!(unprobed.region(), None);
    }

    #[test]
    fn regions_by_density() {
        assert_eq!(
            workload(Density::Dispersed).region(),
            Some(Region::whole(2000.0, 1000.0))
        );
        // Clustered: a square of twice the AOI radius, centred.
        let clustered = workload(Density::Clustered).region().unwrap();
        assert_eq!(clustered, Region::centred(2000.0, 1000.0, 100.0));
        assert_eq!(clustered.size(), (100.0, 100.0));
        let sized = MmoWorkload {
            cluster_size: Some(10.0),
            ..workload(Density::Clustered)
        };
        assert_eq!(sized.region().unwrap().size(), (10.0, 10.0));
    }

    #[test]
    fn bots_are_evenly_phased() {
        let schedule = workload(Density::Dispersed).schedule(0).unwrap();
        // 100 bots at 10 Hz: bot b's first Move at b ms, then every 100 ms.
        assert_eq!(schedule.send_time_ns(0, 0), 0);
        assert_eq!(schedule.send_time_ns(7, 0), 7_000_000);
        assert_eq!(schedule.send_time_ns(7, 3), 307_000_000);
        assert_eq!(schedule.count_before(7, 1_000_000_000), 10);
    }

    #[test]
    fn a_watcher_counts_window_updates_and_echoes() {
        let shared = Arc::new(Shared::default());
        shared.add_receiver();
        let pending = Arc::new(Mutex::new(PendingMoves::new(8)));
        let mut watcher = Watcher::new(0, pending.clone(), shared.clone());
        let now = wall_ns();
        let timeline = Timeline::new(
            now - 1_000_000_000,
            Duration::from_millis(500),
            Duration::from_secs(10),
            Duration::ZERO,
        );
        let one = MmoWorkload {
            bots: 1,
            input_hz: 1,
            ..workload(Density::Dispersed)
        };
        watcher.start(&one, timeline);
        // One bot at 1 Hz over 10.5 s before the window's end: ticks 1 ..= 11.
        assert_eq!(watcher.window.map(|(_, last)| last), Some(11));
        pending.lock().unwrap().sent(1, now - 2_000_000, true);
        let update = pb::WorldUpdate {
            tick: 5,
            entered: vec![pb::EntityEntered::default(); 3],
            left: vec![4],
            moved: vec![pb::EntityMoved::default(); 2],
            ack_client_tick: 1,
            time_scale_pct: 90,
            server_time_us: now / 1_000 - 1_000,
        };
        let message = tavern::protocol::server_message(0, Body::WorldUpdate(update));
        assert_eq!(watcher.on_message(&message), None);
        assert_eq!((watcher.entered, watcher.left, watcher.moved), (3, 1, 2));
        assert_eq!(watcher.echoed, 1);
        assert_eq!(watcher.min_time_scale_pct, Some(90));
        assert_eq!(watcher.bytes_window, u64_from(message.encoded_len()) + FRAME_HEADER);
        assert!(!watcher.done);
        let error = tavern::protocol::error_message(0, pb::ErrorCode::NotInWorld, "test");
        assert_eq!(watcher.on_message(&error), None);
        assert_eq!(watcher.errors["NOT_IN_WORLD"], 1);
        watcher.finish();
        assert!(watcher.done);
        let mut tally = Tally::default();
        watcher.add_to(&mut tally);
        assert_eq!(tally.mmo.updates_window, 1);
        assert_eq!(shared.tally().mmo.echo_latency.summary().count, 1);
        assert_eq!(shared.tally().mmo.tick_age.summary().count, 1);
        let fatal = tavern::protocol::error_message(0, pb::ErrorCode::SlowConsumer, "test");
        assert_eq!(watcher.on_message(&fatal).as_deref(), Some("SLOW_CONSUMER"));
    }
}
