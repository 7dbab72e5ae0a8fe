//! One bot in the world: its read side and its write side, each a task,
//! and what they counted added to the tally at the end.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tavern::client::{ClientReader, ClientWriter};

use super::echo::{PENDING_CAPACITY, PendingMoves};
use super::enter::Walker;
use super::mover::{Mover, Plan};
use super::walk::Region;
use super::watcher::Watcher;
use super::workload::MmoWorkload;
use crate::bots::{self, describe, keep_alive};
use crate::share::{Shared, Signals, TaskGuard};
use crate::tally::bump;
use crate::view::FrameReader;

/// One bot in the world and what it needs to run.
#[derive(Clone)]
pub struct MmoBot {
    /// Its number among all bots: its place on the schedule.
    pub number: u64,
    /// Where it walks.
    pub region: Region,
    /// The step's workload.
    pub workload: Arc<MmoWorkload>,
    /// Where it counts.
    pub shared: Arc<Shared>,
}

impl MmoBot {
    /// Runs the bot until told to stop, then adds what it counted to the tally.
    /// The read side runs as a task of its own, so that writing never delays
    /// reading updates.
    pub async fn run(self, walker: Walker, signals: Signals) {
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
        reader: ClientReader,
        mut watcher: Watcher,
        mut signals: Signals,
    ) -> (Watcher, Option<String>) {
        // Every frame is decoded for the watcher: only chat messages are read in place.
        let mut reader = FrameReader::new(reader);
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
