//! What one process needs to run its share of a step's bots: which bots are
//! its, their names and source addresses, the start gate (report ready, wait
//! for the shared start time), the stop signal, and the counters it fills.
//!
//! The same code runs inside the parent (one process) and inside each worker
//! process (`--procs`); only the other end of the gate differs.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;

use crate::settings::{AuthKey, Targets, Transport};
use crate::tally::{Tally, bump};
use crate::timeline::{Timeline, sleep_until_wall, wall_ns};
use crate::units::micros;

/// Which part of a step one process runs, and against what.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShareSpec {
    /// This share's index, `0..count`: it runs the bots `b` with `b % count == index`.
    pub index: u32,
    /// How many shares (processes) the step has.
    pub count: u32,
    /// Makes bot names unique per server: the parent's process id.
    pub run_id: u32,
    /// The step number, also part of names, so steps never collide.
    pub step: u32,
    /// The server, or a cluster's nodes.
    pub targets: Targets,
    /// Bots connect from 127.0.0.1 ..= 127.0.0.K (1: the system's choice).
    pub source_ips: u8,
    /// Most connection setups in flight at once.
    pub connect_concurrency: usize,
    /// Longest the whole setup of this share may take, ms.
    pub setup_timeout_ms: u64,
    /// Sign each Hello with a token from this key.
    pub auth_key: Option<AuthKey>,
    /// How the bots connect (`targets` are that transport's addresses).
    #[serde(default)]
    pub transport: Transport,
}

/// Where one bot connects to, and from where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The server address (one of `--addr`'s).
    pub target: SocketAddr,
    /// The local address (`None`: the system's choice).
    pub source: Option<IpAddr>,
}

impl ShareSpec {
    /// The bots of `0..total` that this share runs.
    pub fn my_bots(&self, total: u64) -> impl Iterator<Item = u64> + use<> {
        let step = usize::try_from(self.count.max(1)).unwrap_or(1);
        (u64::from(self.index)..total).step_by(step)
    }

    /// A name unique on the server for this run and step, e.g. `b17x4242s1`.
    pub fn name(&self, kind: char, bot: u64) -> String {
        format!("{kind}{bot}x{}s{}", self.run_id, self.step)
    }

    /// Where bot `bot`, member `member` of its room, connects: its member's
    /// target ([`Targets::for_member`]), from its source address.
    pub fn route(&self, bot: u64, member: u64) -> Route {
        Route {
            target: self.targets.for_member(member),
            source: self.source(bot),
        }
    }

    /// The local address bot `bot` connects from (`None`: the system's choice).
    pub fn source(&self, bot: u64) -> Option<IpAddr> {
        if self.source_ips <= 1 {
            return None;
        }
        let last = u8::try_from(bot % u64::from(self.source_ips))
            .unwrap_or(0)
            .saturating_add(1);
        Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
    }

    /// The setup timeout as a duration.
    pub fn setup_timeout(&self) -> Duration {
        Duration::from_millis(self.setup_timeout_ms)
    }
}

/// A failed setup: the stage and the cause, e.g. `hello: NAME_TAKEN`.
#[derive(Debug)]
pub struct SetupError(pub String);

/// Live counters for the progress line, updated by the bots as they go.
#[derive(Debug, Default)]
pub struct Live {
    /// Bots connected now.
    pub connected: AtomicU64,
    /// Messages written so far.
    pub sent: AtomicU64,
    /// Messages received so far by counted receivers.
    pub delivered: AtomicU64,
}

/// A copy of the live counters, plus the latency p99 so far.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct LiveSnapshot {
    /// Bots connected now.
    pub connected: u64,
    /// Messages written so far.
    pub sent: u64,
    /// Messages received so far.
    pub delivered: u64,
    /// Latency p99 of window messages (mmo: of input-to-echo) so far, µs.
    pub p99_us: u64,
}

impl LiveSnapshot {
    /// Sums snapshots of several processes (the p99 shown is the worst one).
    pub fn add(&mut self, other: &LiveSnapshot) {
        self.connected += other.connected;
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.p99_us = self.p99_us.max(other.p99_us);
    }
}

/// State shared by every bot task of one share.
#[derive(Debug, Default)]
pub struct Shared {
    /// What the share has counted; bots add to it in batches.
    tally: Mutex<Tally>,
    /// Counters for the progress line.
    pub live: Live,
    /// Receivers that have not yet received every window message (nor lost their connection).
    receivers_left: AtomicU64,
    /// Woken when `receivers_left` reaches zero.
    all_received: Notify,
}

impl Shared {
    /// Counts a bot that has just connected and joined, with its connect latency.
    pub fn count_connected(&self, connect_latency: Duration) {
        let mut tally = self.tally();
        tally.bots.connected += 1;
        tally.bots.connect_latency.record_us(micros(connect_latency));
        drop(tally);
        self.live.connected.fetch_add(1, Ordering::Relaxed);
    }

    /// The tally, locked. Bots hold it only to add a batch, never across an await.
    pub fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The live counters now.
    pub fn snapshot(&self) -> LiveSnapshot {
        LiveSnapshot {
            connected: self.live.connected.load(Ordering::Relaxed),
            sent: self.live.sent.load(Ordering::Relaxed),
            delivered: self.live.delivered.load(Ordering::Relaxed),
            p99_us: {
                let tally = self.tally();
                // A step measures chat latency or mmo input-to-echo latency, not both.
                tally
                    .chat
                    .latency
                    .quantile(0.99)
                    .max(tally.mmo.echo_latency.quantile(0.99))
            },
        }
    }

    /// Registers one more receiver, which must later call [`Shared::receiver_done`] once.
    pub fn add_receiver(&self) {
        self.receivers_left.fetch_add(1, Ordering::AcqRel);
    }

    /// A receiver got every window message (or its connection ended).
    pub fn receiver_done(&self) {
        if self.receivers_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_received.notify_waiters();
        }
    }

    /// How many bots are connected after the setup.
    ///
    /// # Errors
    /// Bots were planned and none connected: the step cannot measure anything.
    pub fn connected_after_setup(&self) -> anyhow::Result<u64> {
        let tally = self.tally();
        if tally.bots.planned > 0 && tally.bots.connected == 0 {
            let causes: Vec<String> = tally
                .bots
                .connect_errors
                .iter()
                .map(|(cause, count)| format!("{cause} × {count}"))
                .collect();
            anyhow::bail!("no bot could connect and join: {}", causes.join(", "));
        }
        Ok(tally.bots.connected)
    }

    /// Takes the tally out, leaving an empty one.
    pub fn take_tally(&self) -> Tally {
        std::mem::take(&mut *self.tally())
    }
}

/// The receivers' view of the step: when it starts, and when to stop.
#[derive(Clone, Debug)]
pub struct Signals {
    /// Set once, when the start time is known.
    pub timeline: watch::Receiver<Option<Timeline>>,
    /// Set to true when every bot must end.
    pub stop: watch::Receiver<bool>,
}

impl Signals {
    /// Waits for the step's timeline; `None` when the step is abandoned first.
    pub async fn timeline(&mut self) -> Option<Timeline> {
        let timeline = self.timeline.wait_for(Option::is_some).await.ok()?;
        *timeline
    }

    /// Waits until the bots must stop (at once if they already must).
    pub async fn stopped(&mut self) {
        // An error means the sender is gone, which also means stop.
        let _ = self.stop.wait_for(|stop| *stop).await;
    }
}

/// One process's share of a step, as a scenario runs it.
#[derive(Debug)]
pub struct Share {
    /// Which bots, against what.
    pub spec: ShareSpec,
    /// Counters and tally.
    pub shared: Arc<Shared>,
    ready: Option<oneshot::Sender<u64>>,
    start: Option<oneshot::Receiver<Timeline>>,
    timeline: watch::Sender<Option<Timeline>>,
    stop: watch::Sender<bool>,
}

/// The coordinator's end of a share's start gate.
#[derive(Debug)]
pub struct Gate {
    /// Receives the number of bots connected once the share is ready.
    pub ready: oneshot::Receiver<u64>,
    /// Sends the step's timeline.
    pub start: oneshot::Sender<Timeline>,
}

impl Share {
    /// Keeps the bots whose setup succeeded and counts why the others failed.
    pub fn keep_connected<T>(&self, results: Vec<Result<T, SetupError>>) -> Vec<T> {
        let mut kept = Vec::with_capacity(results.len());
        for result in results {
            match result {
                Ok(bot) => kept.push(bot),
                Err(SetupError(cause)) => bump(&mut self.shared.tally().bots.connect_errors, cause),
            }
        }
        kept
    }

    /// A share and the gate its coordinator holds.
    pub fn new(spec: ShareSpec, shared: Arc<Shared>) -> (Share, Gate) {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (start_tx, start_rx) = oneshot::channel();
        let share = Share {
            spec,
            shared,
            ready: Some(ready_tx),
            start: Some(start_rx),
            timeline: watch::channel(None).0,
            stop: watch::channel(false).0,
        };
        let gate = Gate {
            ready: ready_rx,
            start: start_tx,
        };
        (share, gate)
    }

    /// Signals for one bot task.
    pub fn signals(&self) -> Signals {
        Signals {
            timeline: self.timeline.subscribe(),
            stop: self.stop.subscribe(),
        }
    }

    /// Reports the share ready with `connected` bots, waits for the shared
    /// start time and hands it to every bot.
    ///
    /// # Errors
    /// The coordinator went away, or the gate was used twice.
    pub async fn start(&mut self, connected: u64) -> anyhow::Result<Timeline> {
        let ready = self
            .ready
            .take()
            .ok_or_else(|| anyhow::anyhow!("share started twice"))?;
        let start = self
            .start
            .take()
            .ok_or_else(|| anyhow::anyhow!("share started twice"))?;
        ready
            .send(connected)
            .map_err(|_| anyhow::anyhow!("the coordinator went away before the start"))?;
        let timeline = start
            .await
            .map_err(|_| anyhow::anyhow!("the coordinator went away before the start"))?;
        self.timeline.send_replace(Some(timeline));
        Ok(timeline)
    }

    /// Waits for the end of the window, then until every receiver has every
    /// window message (or lost its connection) or the drain deadline passes.
    pub async fn drain(&self, timeline: &Timeline) {
        sleep_until_wall(timeline.window_end_ns()).await;
        let deadline = timeline.drain_deadline_ns();
        loop {
            let notified = self.shared.all_received.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.receivers_left.load(Ordering::Acquire) == 0 || wall_ns() >= deadline {
                return;
            }
            tokio::select! {
                () = notified => {}
                () = sleep_until_wall(deadline) => return,
            }
        }
    }

    /// Tells every bot to end, waits for them (at most `grace`, then they are
    /// aborted), and returns the share's tally.
    pub async fn finish(&self, tasks: Vec<JoinHandle<()>>, grace: Duration) -> Tally {
        self.stop.send_replace(true);
        let deadline = tokio::time::Instant::now() + grace;
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
        self.shared.take_tally()
    }
}

/// A spawned task that is aborted when its guard is dropped: a bot's reader
/// task ends with the bot, even when the bot's own task is aborted.
#[derive(Debug)]
pub struct TaskGuard<T>(JoinHandle<T>);

impl<T> TaskGuard<T> {
    /// Spawns `task` on the current runtime.
    pub fn spawn(task: impl Future<Output = T> + Send + 'static) -> TaskGuard<T>
    where
        T: Send + 'static,
    {
        TaskGuard(tokio::spawn(task))
    }

    /// Waits for the task's result.
    ///
    /// # Errors
    /// The task panicked or was aborted.
    pub async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for TaskGuard<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(index: u32, count: u32, source_ips: u8) -> ShareSpec {
        ShareSpec {
            index,
            count,
            run_id: 4242,
            step: 3,
            targets: Targets::one("127.0.0.1:4000".parse().unwrap()),
            source_ips,
            connect_concurrency: 8,
            setup_timeout_ms: 1000,
            auth_key: None,
            transport: Transport::Tcp,
        }
    }

    #[test]
    fn shares_split_the_bots_without_overlap() {
        let mine: Vec<Vec<u64>> = (0..3).map(|i| spec(i, 3, 1).my_bots(10).collect()).collect();
        assert_eq!(mine, vec![vec![0, 3, 6, 9], vec![1, 4, 7], vec![2, 5, 8]]);
        assert_eq!(spec(0, 1, 1).my_bots(3).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn names_and_sources() {
        assert_eq!(spec(0, 1, 1).name('b', 17), "b17x4242s3");
        assert_eq!(spec(0, 1, 1).source(5), None);
        let two = spec(0, 1, 3);
        assert_eq!(two.source(0), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(two.source(4), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(two.source(5), Some("127.0.0.3".parse().unwrap()));
    }

    #[test]
    fn a_room_spreads_over_the_targets_by_member() {
        let (one, two): (SocketAddr, SocketAddr) =
            ("127.0.0.1:4000".parse().unwrap(), "127.0.0.1:4010".parse().unwrap());
        let mut spec = spec(0, 1, 2);
        spec.targets = Targets::try_from(vec![one, two]).unwrap();
        let source = Some("127.0.0.2".parse().unwrap());
        assert_eq!(spec.route(3, 0), Route { target: one, source });
        assert_eq!(spec.route(3, 1), Route { target: two, source });
        assert_eq!(spec.route(8, 5).target, two);
    }

    #[tokio::test]
    async fn the_gate_hands_the_timeline_to_the_bots() {
        let (mut share, gate) = Share::new(spec(0, 1, 1), Arc::default());
        let mut signals = share.signals();
        let timeline = Timeline::new(wall_ns(), Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let coordinator = tokio::spawn(async move {
            assert_eq!(gate.ready.await.unwrap(), 7);
            gate.start.send(timeline).unwrap();
        });
        assert_eq!(share.start(7).await.unwrap(), timeline);
        assert_eq!(signals.timeline().await, Some(timeline));
        coordinator.await.unwrap();
        share.drain(&timeline).await; // no receivers: returns at once
        let tally = share.finish(Vec::new(), Duration::from_secs(1)).await;
        signals.stopped().await;
        assert_eq!(tally.bots.planned, 0);
    }
}
