//! The flooding client of `flood`: one client that sends to a room of its
//! own as fast as the server takes it, beside the normal rooms.
//!
//! The flooder reads the echoes of its own messages (the server disconnects a
//! member whose queue fills up) and keeps at most `in_flight` messages
//! unechoed, so it floods for the whole window instead of being cut off in
//! its first second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tavern::client::{ClientReader, ClientWriter};
use tavern::protocol::pb::client_message::Body as Request;
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::{ErrorCode, pb};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use crate::bots::{self, describe, keep_alive};
use crate::payload;
use crate::share::{SetupError, ShareSpec, Shared, Signals, TaskGuard};
use crate::tally::bump;
use crate::timeline::{Timeline, sleep_until_wall, wall_ns};

/// Messages the flooder writes before each flush.
const FLOOD_BATCH: u64 = 64;

/// The flooding client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloodSpec {
    /// Bytes per text.
    pub size: usize,
    /// Most messages written and not yet echoed back.
    pub in_flight: u64,
}

impl FloodSpec {
    /// Checks the numbers.
    ///
    /// # Errors
    /// A message naming the flag to change.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=payload::MAX_SIZE).contains(&self.size),
            "--flood-size must be between 1 and {}",
            payload::MAX_SIZE
        );
        anyhow::ensure!(
            self.in_flight >= FLOOD_BATCH,
            "--flood-in-flight must be at least {FLOOD_BATCH}"
        );
        Ok(())
    }
}

/// Connects the flooder into a room of its own and starts it, on a thread
/// and runtime of its own so that its busy writing does not delay the
/// measuring bots' tasks. A failed setup is counted as a connect error and
/// returns `None`.
pub async fn start_flooder(
    spec: &ShareSpec,
    flood: FloodSpec,
    shared: &Arc<Shared>,
    signals: Signals,
) -> Option<JoinHandle<()>> {
    let (spec, flooder_shared) = (spec.clone(), shared.clone());
    let (joined_tx, joined_rx) = oneshot::channel();
    let thread = tokio::task::spawn_blocking(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = joined_tx.send(Err(SetupError(format!("runtime: {e}"))));
                return;
            }
        };
        runtime.block_on(async move {
            let room = format!("s{}.flood", spec.step);
            match bots::join_member(&spec, &spec.name('f', 0), spec.route(0, 0), &room).await {
                Ok(member) => {
                    let _ = joined_tx.send(Ok(()));
                    let flooder = Flooder {
                        room,
                        text: "f".repeat(flood.size),
                        in_flight: flood.in_flight,
                        echoed: Arc::new(AtomicU64::new(0)),
                        limited: Arc::new(AtomicU64::new(0)),
                        first_limited_ns: Arc::new(AtomicU64::new(0)),
                        echo: Arc::new(Notify::new()),
                        shared: flooder_shared,
                    };
                    flooder
                        .run(member.writer, member.reader, member.heartbeat, signals)
                        .await;
                }
                Err(e) => {
                    let _ = joined_tx.send(Err(e));
                }
            }
        });
    });
    let joined = joined_rx.await;
    let mut tally = shared.tally();
    tally.bots.planned += 1;
    tally.flood.enabled = true;
    match joined {
        Ok(Ok(())) => {
            tally.bots.connected += 1;
            Some(thread)
        }
        Ok(Err(SetupError(cause))) => {
            bump(&mut tally.bots.connect_errors, format!("flooder {cause}"));
            None
        }
        Err(_) => {
            bump(&mut tally.bots.connect_errors, "flooder: its thread ended");
            None
        }
    }
}

/// The client that sends as fast as the server takes it, from the start to the end of the window.
struct Flooder {
    room: String,
    text: String,
    in_flight: u64,
    /// Its messages answered so far: echoed, or dropped with RATE_LIMITED.
    echoed: Arc<AtomicU64>,
    /// Of those, the ones dropped with RATE_LIMITED.
    limited: Arc<AtomicU64>,
    /// When the first RATE_LIMITED came (wall clock, ns; 0: not yet).
    first_limited_ns: Arc<AtomicU64>,
    /// Woken on each echo.
    echo: Arc<Notify>,
    shared: Arc<Shared>,
}

impl Flooder {
    async fn run(self, mut writer: ClientWriter, reader: ClientReader, heartbeat: Duration, signals: Signals) {
        let answers = Answers {
            echoed: self.echoed.clone(),
            limited: self.limited.clone(),
            echo: self.echo.clone(),
            first_limited_ns: self.first_limited_ns.clone(),
        };
        let read_signals = signals.clone();
        let reading = TaskGuard::spawn(async move {
            let ended = read_echoes(reader, answers, read_signals).await;
            (ended, wall_ns())
        });
        let first_write_ns = Arc::new(AtomicU64::new(0));
        let (sent, in_window, write_end) = self.write(&mut writer, heartbeat, signals, &first_write_ns).await;
        // The writer stays open until the reader is done (see the member bot).
        let (read_end, ended_ns) = reading
            .join()
            .await
            .unwrap_or_else(|e| (Some(format!("reader: {e}")), wall_ns()));
        let started_ns = first_write_ns.load(Ordering::Acquire);
        let since_start = |at: u64| (started_ns > 0 && at >= started_ns).then(|| (at - started_ns) / 1_000);
        drop(writer);
        let mut tally = self.shared.tally();
        tally.flood.sent += sent;
        tally.flood.written_in_window += in_window;
        tally.flood.rate_limited += self.limited.load(Ordering::Acquire);
        tally.flood.throttled_after_us = since_start(self.first_limited_ns.load(Ordering::Acquire));
        if let Some(reason) = read_end.or(write_end) {
            tally.flood.cut_off_after_us = since_start(ended_ns);
            bump(&mut tally.bots.disconnects, format!("flooder: {reason}"));
        }
    }

    /// Writes batch after batch until the window ends; returns what it wrote
    /// (in all, and while the window was open) and why the connection ended.
    async fn write(
        &self,
        writer: &mut ClientWriter,
        heartbeat: Duration,
        mut signals: Signals,
        first_write_ns: &AtomicU64,
    ) -> (u64, u64, Option<String>) {
        let (mut sent, mut in_window) = (0, 0);
        let Some(timeline) = signals.timeline().await else {
            return (sent, in_window, None);
        };
        sleep_until_wall(timeline.start_ns).await;
        first_write_ns.store(wall_ns(), Ordering::Release);
        while wall_ns() < timeline.window_end_ns() {
            if !self.room_for_a_batch(sent, &timeline).await {
                break;
            }
            match self.batch(writer, &timeline).await {
                Ok(Some(written)) => {
                    sent += written;
                    in_window += if timeline.in_window(wall_ns()) { written } else { 0 };
                }
                Ok(None) => break,
                Err(reason) => return (sent, in_window, Some(reason)),
            }
        }
        let ended = keep_alive(writer, heartbeat, &mut signals).await;
        (sent, in_window, ended)
    }

    /// Waits until another batch keeps the unechoed messages within the
    /// bound; `false` when the window ends first.
    async fn room_for_a_batch(&self, sent: u64, timeline: &Timeline) -> bool {
        loop {
            let echoed = self.echo.notified();
            tokio::pin!(echoed);
            echoed.as_mut().enable();
            if sent.saturating_sub(self.echoed.load(Ordering::Acquire)) + FLOOD_BATCH <= self.in_flight {
                return true;
            }
            tokio::select! {
                () = echoed => {}
                () = sleep_until_wall(timeline.window_end_ns()) => return false,
            }
        }
    }

    /// Writes one batch; `None` when the window ended while the server was
    /// not taking it (the rest of the batch is abandoned).
    async fn batch(&self, writer: &mut ClientWriter, timeline: &Timeline) -> Result<Option<u64>, String> {
        let write = async {
            for _ in 0..FLOOD_BATCH {
                let body = Request::SendChat(pb::SendChat {
                    room: self.room.clone(),
                    text: self.text.clone(),
                });
                writer.feed(body).await?;
            }
            writer.flush().await
        };
        tokio::select! {
            written = write => written.map(|()| Some(FLOOD_BATCH)).map_err(|e| describe(&e)),
            () = sleep_until_wall(timeline.window_end_ns()) => Ok(None),
        }
    }
}

/// Where the flooder's reader counts the answers to its messages.
struct Answers {
    echoed: Arc<AtomicU64>,
    limited: Arc<AtomicU64>,
    echo: Arc<Notify>,
    /// When the first RATE_LIMITED came (wall clock, ns; 0: not yet).
    first_limited_ns: Arc<AtomicU64>,
}

/// Reads the flooder's echoes and RATE_LIMITED answers (and drops everything
/// else) until told to stop; returns why the connection ended, if the server
/// ended it first.
async fn read_echoes(mut reader: ClientReader, answers: Answers, mut signals: Signals) -> Option<String> {
    loop {
        tokio::select! {
            biased;
            message = reader.next_message() => match message {
                Ok(message) => {
                    let limited = matches!(&message.body, Some(Body::Error(e)) if e.code() == ErrorCode::RateLimited);
                    if limited {
                        answers.limited.fetch_add(1, Ordering::AcqRel);
                        let _ = answers.first_limited_ns.compare_exchange(0, wall_ns(), Ordering::AcqRel, Ordering::Acquire);
                    }
                    if limited || matches!(message.body, Some(Body::Chat(_))) {
                        answers.echoed.fetch_add(1, Ordering::AcqRel);
                        answers.echo.notify_one();
                    } else if let Some(reason) = bots::ending(&message) {
                        return Some(reason);
                    }
                }
                Err(e) => return Some(describe(&e)),
            },
            () = signals.stopped() => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_flag() {
        assert!(
            FloodSpec {
                size: 1024,
                in_flight: 512
            }
            .validate()
            .is_ok()
        );
        assert!(
            FloodSpec {
                size: 0,
                in_flight: 512
            }
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--flood-size")
        );
        assert!(
            FloodSpec { size: 64, in_flight: 1 }
                .validate()
                .unwrap_err()
                .to_string()
                .contains("--flood-in-flight")
        );
    }
}
