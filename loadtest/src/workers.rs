//! `--procs K`: the parent re-executes itself K times as `loadtest worker`;
//! each worker runs its share of the bots and reports back. One JSON message
//! per line: the parent sends the [`Job`], later the start time; the worker
//! sends `Ready`, `Progress` every half second, then `Done` with its tally
//! (histograms included) or `Failed`.

use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::share::{Gate, LiveSnapshot, Share, ShareSpec, Shared};
use crate::tally::Tally;
use crate::timeline::Timeline;
use crate::workload::Workload;

/// Longest line either side accepts (a tally with its histograms is a few hundred KiB at most).
const MAX_LINE: u64 = 64 << 20;
/// How long a worker may take to exit after its result.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a worker runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job<W> {
    /// Its share of the bots.
    pub share: ShareSpec,
    /// What the bots do.
    pub workload: W,
}

/// Parent to worker, after the job.
#[derive(Debug, Serialize, Deserialize)]
enum ToWorker {
    /// Start on this timeline.
    Start(Timeline),
}

/// Worker to parent.
#[derive(Debug, Serialize, Deserialize)]
enum ToParent {
    /// Every bot of the share is set up; this many connected.
    Ready(u64),
    /// Live counters.
    Progress(LiveSnapshot),
    /// The share's tally.
    Done(Box<Tally>),
    /// The share failed.
    Failed(String),
}

// ---------------------------------------------------------------- worker side

/// The worker process: reads its job (of the workload type `W`, the one its
/// parent's runner has) from stdin, runs it, reports on stdout.
///
/// # Errors
/// The parent went away or sent something malformed.
pub async fn run_worker<W: Workload>() -> anyhow::Result<()> {
    let mut input = BufReader::new(tokio::io::stdin());
    let mut output = tokio::io::stdout();
    let job: Job<W> = read_message(&mut input).await?.context("no job on stdin")?;
    let shared = Arc::new(Shared::default());
    let (share, Gate { ready, start }) = Share::new(job.share, shared.clone());
    let workload = job.workload;
    let mut run = tokio::spawn(async move { workload.run_share(share).await });
    let Ok(connected) = ready.await else {
        let failure = match run.await {
            Ok(Err(e)) => format!("{e:#}"),
            Ok(Ok(_)) => "the share ended before it was ready".to_owned(),
            Err(e) => format!("the share panicked: {e}"),
        };
        return write_message(&mut output, &ToParent::Failed(failure)).await;
    };
    write_message(&mut output, &ToParent::Ready(connected)).await?;
    let ToWorker::Start(timeline) = read_message(&mut input).await?.context("no start time on stdin")?;
    start
        .send(timeline)
        .map_err(|_| anyhow::anyhow!("the share ended before the start"))?;
    let mut ticker = tokio::time::interval(crate::progress::EVERY);
    let result = loop {
        tokio::select! {
            result = &mut run => break result,
            _ = ticker.tick() => write_message(&mut output, &ToParent::Progress(shared.snapshot())).await?,
        }
    };
    let message = match result {
        Ok(Ok(tally)) => ToParent::Done(Box::new(tally)),
        Ok(Err(e)) => ToParent::Failed(format!("{e:#}")),
        Err(e) => ToParent::Failed(format!("the share panicked: {e}")),
    };
    write_message(&mut output, &message).await
}

// ---------------------------------------------------------------- parent side

/// What the parent hears from its workers.
#[derive(Debug)]
enum Event {
    Ready(u64),
    Done(Box<Tally>),
    Failed(usize, String),
}

/// The latest live counters of each worker.
#[derive(Debug, Default)]
pub struct Board {
    slots: Vec<Mutex<LiveSnapshot>>,
}

impl Board {
    /// The sum over every worker.
    pub fn snapshot(&self) -> LiveSnapshot {
        let mut total = LiveSnapshot::default();
        for slot in &self.slots {
            total.add(&slot.lock().unwrap_or_else(PoisonError::into_inner));
        }
        total
    }
}

/// A step's running worker processes.
pub struct WorkerSet {
    children: Vec<(Child, ChildStdin)>,
    events: mpsc::Receiver<Event>,
    /// Their live counters.
    pub board: Arc<Board>,
}

impl WorkerSet {
    /// Starts one worker per job, each with `threads` runtime threads.
    ///
    /// # Errors
    /// A worker could not be started or given its job.
    pub async fn spawn<W: Workload>(jobs: Vec<Job<W>>, threads: usize) -> anyhow::Result<WorkerSet> {
        let exe = std::env::current_exe().context("finding this executable to start workers")?;
        let board = Arc::new(Board {
            slots: jobs.iter().map(|_| Mutex::default()).collect(),
        });
        let (events_tx, events) = mpsc::channel(jobs.len() * 3);
        let mut children = Vec::with_capacity(jobs.len());
        for (index, job) in jobs.iter().enumerate() {
            let mut child = Command::new(&exe)
                .arg("worker")
                .arg("--threads")
                .arg(threads.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting worker {index} ({})", exe.display()))?;
            let mut stdin = child.stdin.take().context("worker stdin")?;
            let stdout = child.stdout.take().context("worker stdout")?;
            write_message(&mut stdin, job).await?;
            tokio::spawn(listen(index, BufReader::new(stdout), events_tx.clone(), board.clone()));
            children.push((child, stdin));
        }
        Ok(WorkerSet {
            children,
            events,
            board,
        })
    }

    /// The workers' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(|(child, _)| child.id()).collect()
    }

    /// Waits until every worker is ready; returns the bots connected in all.
    ///
    /// # Errors
    /// A worker failed or went away.
    pub async fn ready(&mut self) -> anyhow::Result<u64> {
        let mut connected = 0;
        for _ in 0..self.children.len() {
            match self.events.recv().await {
                Some(Event::Ready(count)) => connected += count,
                Some(Event::Failed(index, e)) => anyhow::bail!("worker {index}: {e}"),
                Some(Event::Done(_)) | None => anyhow::bail!("a worker ended before it was ready"),
            }
        }
        Ok(connected)
    }

    /// Tells every worker the start time.
    ///
    /// # Errors
    /// A worker went away.
    pub async fn start(&mut self, timeline: Timeline) -> anyhow::Result<()> {
        for (_, stdin) in &mut self.children {
            write_message(stdin, &ToWorker::Start(timeline)).await?;
        }
        Ok(())
    }

    /// Collects every worker's tally and waits for the workers to exit.
    ///
    /// # Errors
    /// A worker failed or went away.
    pub async fn finish(&mut self) -> anyhow::Result<Vec<Tally>> {
        let mut tallies = Vec::with_capacity(self.children.len());
        for _ in 0..self.children.len() {
            match self.events.recv().await {
                Some(Event::Done(tally)) => tallies.push(*tally),
                Some(Event::Failed(index, e)) => anyhow::bail!("worker {index}: {e}"),
                Some(Event::Ready(_)) | None => anyhow::bail!("a worker ended without a result"),
            }
        }
        for (child, _) in &mut self.children {
            if tokio::time::timeout(EXIT_TIMEOUT, child.wait()).await.is_err() {
                child.kill().await.context("killing a worker that did not exit")?;
            }
        }
        Ok(tallies)
    }
}

/// Reads one worker's messages and passes them on, until it closes its stdout.
async fn listen(
    index: usize,
    mut stdout: BufReader<tokio::process::ChildStdout>,
    events: mpsc::Sender<Event>,
    board: Arc<Board>,
) {
    loop {
        let event = match read_message::<ToParent>(&mut stdout).await {
            Ok(Some(ToParent::Ready(count))) => Event::Ready(count),
            Ok(Some(ToParent::Progress(snapshot))) => {
                if let Some(slot) = board.slots.get(index) {
                    *slot.lock().unwrap_or_else(PoisonError::into_inner) = snapshot;
                }
                continue;
            }
            Ok(Some(ToParent::Done(tally))) => Event::Done(tally),
            Ok(Some(ToParent::Failed(e))) => Event::Failed(index, e),
            Ok(None) => Event::Failed(index, "exited without a result".into()),
            Err(e) => Event::Failed(index, format!("{e:#}")),
        };
        let last = matches!(event, Event::Done(_) | Event::Failed(..));
        if events.send(event).await.is_err() || last {
            return;
        }
    }
}

// ---------------------------------------------------------------- lines

/// Reads one JSON line (at most [`MAX_LINE`] bytes); `None` at the end of input.
async fn read_message<T: for<'de> Deserialize<'de>>(
    input: &mut (impl AsyncBufRead + Unpin),
) -> anyhow::Result<Option<T>> {
    let mut line = Vec::new();
    let read = input.take(MAX_LINE).read_until(b'\n', &mut line).await?;
    if read == 0 {
        return Ok(None);
    }
    anyhow::ensure!(
        line.ends_with(b"\n"),
        "a message line longer than {MAX_LINE} bytes or cut short"
    );
    Ok(Some(serde_json::from_slice(&line).context("malformed message line")?))
}

/// Writes one JSON line and flushes it.
async fn write_message(output: &mut (impl AsyncWrite + Unpin), message: &impl Serialize) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    output.write_all(&line).await?;
    output.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_round_trip_as_lines() {
        let mut tally = Tally::default();
        tally.chat.latency.record_us(77);
        let mut buffer = Vec::new();
        write_message(&mut buffer, &ToParent::Ready(5)).await.unwrap();
        write_message(&mut buffer, &ToParent::Done(Box::new(tally)))
            .await
            .unwrap();
        let mut input = BufReader::new(buffer.as_slice());
        assert!(matches!(
            read_message(&mut input).await.unwrap(),
            Some(ToParent::Ready(5))
        ));
        let Some(ToParent::Done(back)) = read_message::<ToParent>(&mut input).await.unwrap() else {
            panic!("expected Done");
        };
        assert_eq!(back.chat.latency.summary().p50, 77);
        assert!(read_message::<ToParent>(&mut input).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_cut_line_is_an_error() {
        let mut input = BufReader::new(&b"{\"Ready\":5}"[..]);
        assert!(read_message::<ToParent>(&mut input).await.is_err());
    }
}
