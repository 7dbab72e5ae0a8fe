//! A bot's read side: what its WorldUpdates say (traffic, entities, time
//! since the tick, time dilation) and the echoes of its Moves.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use prost::Message as _;
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::pb::{self, ServerMessage};

use super::echo::PendingMoves;
use super::workload::MmoWorkload;
use crate::bots::{self, latency_us};
use crate::settings::{SAMPLE_BATCH, SAMPLE_FLUSH_NS};
use crate::share::Shared;
use crate::tally::{Tally, bump};
use crate::timeline::{Timeline, wall_ns};
use crate::units::u64_from;

/// Bytes of a frame's length header.
const FRAME_HEADER: u64 = 4;

/// A bot's read side: what its updates say, and the echoes of its Moves.
#[derive(Debug)]
pub struct Watcher {
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
    pub fn new(bot: u64, pending: Arc<Mutex<PendingMoves>>, shared: Arc<Shared>) -> Watcher {
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
    pub fn start(&mut self, workload: &MmoWorkload, timeline: Timeline) {
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
    pub fn finish(&mut self) {
        self.flush(wall_ns());
        if !self.done {
            self.done = true;
            self.shared.receiver_done();
        }
    }

    /// Adds what it counted to the tally.
    pub fn add_to(&self, tally: &mut Tally) {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scenarios::mmo::workload::tests::workload;
    use crate::settings::Density;

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
