//! The runner: runs one step of any workload, in this process or
//! spread over worker processes, on one timeline; samples the server and the
//! generator over the window; shows progress; merges what every share counted.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::procstat::{self, Proc};
use crate::progress;
use crate::settings::{AuthKey, Targets};
use crate::share::{Gate, LiveSnapshot, Share, ShareSpec, Shared};
use crate::step::StepOutcome;
use crate::tally::Tally;
use crate::timeline::{Timeline, instant_at, wall_ns};
use crate::usage;
use crate::workers::{Board, Job, WorkerSet};
use crate::workload::Workload;

/// Open files one process may hold here, less a margin for everything else.
pub const MAX_CONNECTIONS_PER_PROCESS: u64 = 19_000;
/// Time from the last share reporting ready to the start, so that every
/// process knows the start before it comes.
const START_LEAD: Duration = Duration::from_millis(300);
/// Time beyond the drain deadline a step may take to end before it is abandoned.
const END_GRACE: Duration = Duration::from_secs(15);

/// Settings every step of a run shares.
#[derive(Clone, Debug)]
pub struct Env {
    /// The server, or a cluster's nodes.
    pub targets: Targets,
    /// Source addresses 127.0.0.1 ..= 127.0.0.K.
    pub source_ips: u8,
    /// Processes the bots are spread over.
    pub procs: u32,
    /// Runtime threads per worker process.
    pub threads: usize,
    /// Most connection setups in flight at once, per process.
    pub connect_concurrency: usize,
    /// Longest a share's setup may take.
    pub setup_timeout: Duration,
    /// Warm-up before each window.
    pub warmup: Duration,
    /// Each measured window.
    pub duration: Duration,
    /// Longest wait for in-flight messages after a window.
    pub drain: Duration,
    /// Unique per run on one server: this process's id.
    pub run_id: u32,
    /// The server's process, when known.
    pub server_pid: Option<u32>,
    /// The server's admin endpoint, when known.
    pub admin: Option<SocketAddr>,
    /// Sign each Hello with a token from this key.
    pub auth_key: Option<AuthKey>,
    /// Whether to draw the progress line.
    pub progress: bool,
    /// How the bots connect (`targets` are that transport's addresses).
    pub transport: crate::settings::Transport,
}

impl Env {
    /// Warm-up plus window: how long each step loads the server.
    pub fn run_length(&self) -> Duration {
        self.warmup + self.duration
    }
}

/// Runs steps of the workload type `W`, numbering them so that names and
/// rooms never collide.
pub struct Runner<W> {
    /// The run's settings.
    pub env: Env,
    steps_run: u32,
    workload: PhantomData<fn(W)>,
}

impl<W: Workload> Runner<W> {
    /// A runner for `env`.
    pub fn new(env: Env) -> Runner<W> {
        Runner {
            env,
            steps_run: 0,
            workload: PhantomData,
        }
    }

    /// Runs one step of `workload` and returns what it measured.
    ///
    /// # Errors
    /// Too many connections for one process, a share that failed, or a step
    /// that did not end by its deadline.
    pub async fn run_step<L: Clone>(&mut self, workload: &L) -> anyhow::Result<StepOutcome>
    where
        W: From<L>,
    {
        let workload = W::from(workload.clone());
        if self.steps_run > 0 {
            // What the last step left behind (queues, closing connections) must not load this one.
            usage::settle(self.env.server_pid).await;
        }
        self.steps_run += 1;
        let env = &self.env;
        let per_process = workload.connections().div_ceil(u64::from(env.procs));
        anyhow::ensure!(
            per_process <= MAX_CONNECTIONS_PER_PROCESS,
            "{per_process} connections per process is more than one process may open here \
             ({MAX_CONNECTIONS_PER_PROCESS}); spread them with --procs"
        );
        let rss_before_setup_kib = env
            .server_pid
            .and_then(|pid| procstat::memory(Proc::Pid(pid)).ok())
            .map(|memory| memory.rss_kib);
        let mut shares = Shares::launch(self.specs(), &workload, env.threads).await?;
        let board = shares.board();
        let (timeline_tx, timeline_rx) = watch::channel(None);
        let label = format!("step {}", self.steps_run);
        let display = async {
            if env.progress {
                progress::show(&label, timeline_rx, || board.snapshot()).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let outcome = tokio::select! {
            outcome = shares.run(env, rss_before_setup_kib, &timeline_tx) => outcome,
            () = display => Err(anyhow::anyhow!("the progress display ended")),
        };
        if env.progress {
            progress::clear();
        }
        outcome
    }

    /// The shares of the current step, one per process.
    fn specs(&self) -> Vec<ShareSpec> {
        let env = &self.env;
        (0..env.procs)
            .map(|index| ShareSpec {
                index,
                count: env.procs,
                run_id: env.run_id,
                step: self.steps_run,
                targets: env.targets.clone(),
                source_ips: env.source_ips,
                connect_concurrency: env.connect_concurrency,
                setup_timeout_ms: u64::try_from(env.setup_timeout.as_millis()).unwrap_or(u64::MAX),
                auth_key: env.auth_key.clone(),
                transport: env.transport,
            })
            .collect()
    }
}

/// The shares of one step: one in this process, or one per worker process.
enum Shares {
    Local {
        gate: Option<Gate>,
        shared: Arc<Shared>,
        task: Option<JoinHandle<anyhow::Result<Tally>>>,
    },
    Workers(WorkerSet),
}

/// Where the progress line reads live counters.
enum LiveSource {
    Local(Arc<Shared>),
    Workers(Arc<Board>),
}

impl LiveSource {
    fn snapshot(&self) -> LiveSnapshot {
        match self {
            LiveSource::Local(shared) => shared.snapshot(),
            LiveSource::Workers(board) => board.snapshot(),
        }
    }
}

impl Shares {
    async fn launch<W: Workload>(specs: Vec<ShareSpec>, workload: &W, threads: usize) -> anyhow::Result<Shares> {
        if let [spec] = specs.as_slice() {
            let shared = Arc::new(Shared::default());
            let (share, gate) = Share::new(spec.clone(), shared.clone());
            let workload = workload.clone();
            let task = tokio::spawn(async move { workload.run_share(share).await });
            return Ok(Shares::Local {
                gate: Some(gate),
                shared,
                task: Some(task),
            });
        }
        let jobs = specs
            .into_iter()
            .map(|share| Job {
                share,
                workload: workload.clone(),
            })
            .collect();
        Ok(Shares::Workers(WorkerSet::spawn(jobs, threads).await?))
    }

    /// Waits until every share is ready, starts them all on one timeline
    /// (told to `timeline_tx` too), samples the machine over the window, and
    /// merges what the shares counted.
    async fn run(
        &mut self,
        env: &Env,
        rss_before_setup_kib: Option<u64>,
        timeline_tx: &watch::Sender<Option<Timeline>>,
    ) -> anyhow::Result<StepOutcome> {
        tokio::time::timeout(env.setup_timeout + END_GRACE, self.ready())
            .await
            .context("the bots were not set up in time")??;
        let timeline = Timeline::new(
            wall_ns() + crate::units::nanos(START_LEAD),
            env.warmup,
            env.duration,
            env.drain,
        );
        self.start(timeline).await?;
        timeline_tx.send_replace(Some(timeline));
        let sampler = tokio::spawn(usage::sample_window(
            env.server_pid,
            rss_before_setup_kib,
            self.pids(),
            timeline,
        ));
        let end = instant_at(timeline.drain_deadline_ns()) + END_GRACE;
        let tallies = tokio::time::timeout_at(end, self.finish())
            .await
            .context("the step did not end by its deadline")??;
        let (server, generator) = sampler.await.context("the /proc sampler failed")?;
        let mut tally = Tally::default();
        for share in &tallies {
            tally.merge(share);
        }
        Ok(StepOutcome {
            timeline,
            tally,
            server,
            generator,
        })
    }

    async fn ready(&mut self) -> anyhow::Result<u64> {
        match self {
            Shares::Local { gate, task, .. } => {
                let gate = gate.as_mut().context("share already started")?;
                match (&mut gate.ready).await {
                    Ok(connected) => Ok(connected),
                    // The share ended before it was ready: say why.
                    Err(_) => Err(Shares::local_failure(task).await),
                }
            }
            Shares::Workers(workers) => workers.ready().await,
        }
    }

    async fn start(&mut self, timeline: Timeline) -> anyhow::Result<()> {
        match self {
            Shares::Local { gate, .. } => {
                let gate = gate.take().context("share already started")?;
                gate.start
                    .send(timeline)
                    .map_err(|_| anyhow::anyhow!("the share ended before the start"))
            }
            Shares::Workers(workers) => workers.start(timeline).await,
        }
    }

    async fn finish(&mut self) -> anyhow::Result<Vec<Tally>> {
        match self {
            Shares::Local { task, .. } => {
                let task = task.take().context("share already finished")?;
                Ok(vec![task.await.context("the share panicked")??])
            }
            Shares::Workers(workers) => workers.finish().await,
        }
    }

    fn pids(&self) -> Vec<u32> {
        match self {
            Shares::Local { .. } => Vec::new(),
            Shares::Workers(workers) => workers.pids(),
        }
    }

    fn board(&self) -> LiveSource {
        match self {
            Shares::Local { shared, .. } => LiveSource::Local(shared.clone()),
            Shares::Workers(workers) => LiveSource::Workers(workers.board.clone()),
        }
    }

    async fn local_failure(task: &mut Option<JoinHandle<anyhow::Result<Tally>>>) -> anyhow::Error {
        match task.take() {
            Some(task) => match task.await {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => anyhow::anyhow!("the share ended before it was ready"),
                Err(e) => anyhow::anyhow!("the share panicked: {e}"),
            },
            None => anyhow::anyhow!("the share ended before it was ready"),
        }
    }
}
