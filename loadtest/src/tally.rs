//! What one process counted during one step, in a form that adds up: worker
//! processes send theirs to the parent (as JSON), which merges them into one
//! before the report computes its figures.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::admin::TickWindow;
use crate::detect::SeqCounts;
use crate::latency::Latency;

/// Everything one process (or, merged, the whole run) counted in one step.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tally {
    /// Connections: setup, errors, how they ended.
    pub bots: BotTally,
    /// Rooms: messages (chat texts, or a plugin's ops and events) sent and received, order, latency.
    pub chat: ChatTally,
    /// Members that stopped reading (`slow`).
    pub slow: SlowTally,
    /// The flooding client (`flood`).
    pub flood: FloodTally,
    /// Connect-to-disconnect cycles (`churn`).
    pub churn: ChurnTally,
    /// Connections that never finish their Hello (`slowloris`).
    pub slowloris: SlowlorisTally,
    /// Bots in a world (`mmo`).
    pub mmo: MmoTally,
    /// Cut connections and their recovery (`reconnect`).
    pub reconnect: ReconnectTally,
}

/// Connections cut on purpose, and how the bots came back (`reconnect`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReconnectTally {
    /// Connections cut (reset) by the cutter.
    pub cuts: u64,
    /// Reconnections (after a cut or any other drop).
    pub reconnects: u64,
    /// Reconnections that got their session back (`Welcome.resumed`).
    #[serde(default)]
    pub resumed: u64,
    /// Rooms joined again with `recovered: true`.
    pub recovered: u64,
    /// Rooms joined again with `recovered: false` (history gone: a fresh start).
    pub not_recovered: u64,
    /// Bots that gave up reconnecting.
    pub failed: u64,
    /// Scheduled messages not sent because the publisher's connection was down.
    pub not_sent: u64,
    /// From the cut to `Reconnected` (every room joined again), µs.
    pub latency: Latency,
}

impl ReconnectTally {
    fn merge(&mut self, other: &ReconnectTally) {
        self.cuts += other.cuts;
        self.reconnects += other.reconnects;
        self.resumed += other.resumed;
        self.recovered += other.recovered;
        self.not_recovered += other.not_recovered;
        self.failed += other.failed;
        self.not_sent += other.not_sent;
        self.latency.merge(&other.latency);
    }
}

/// Connections of the step's bots.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BotTally {
    /// Bots this step meant to connect.
    pub planned: u64,
    /// Bots that connected, said Hello and joined their room.
    pub connected: u64,
    /// Failed setups, by stage and cause (e.g. `hello: SERVER_FULL`).
    pub connect_errors: BTreeMap<String, u64>,
    /// Connections that ended before the bot closed them, by cause.
    pub disconnects: BTreeMap<String, u64>,
    /// From starting to connect until `Welcome`, µs.
    pub connect_latency: Latency,
}

/// Traffic of the measured rooms: chat texts, or in a plugin's rooms
/// (`plugin`) the ops written and the events received for them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChatTally {
    /// Messages written by the publishers, warm-up and window.
    pub sent: u64,
    /// Messages scheduled in the window and written, per room (feeds "expected").
    pub sent_window_per_room: Vec<u64>,
    /// Messages written while the window was open (feeds "achieved rate").
    pub written_in_window: u64,
    /// Members counted as receivers that joined, per room.
    pub receivers_per_room: Vec<u64>,
    /// Window messages received by counted receivers.
    pub received_window: u64,
    /// Chat messages (or plugin events) received by counted receivers, warm-up and window.
    pub received_total: u64,
    /// Chat texts (or event data) that carried no stamp of this tool.
    pub unparsed: u64,
    /// Send-to-receive latency of window messages, µs.
    pub latency: Latency,
    /// The per-room sequence check of every counted receiver.
    pub seq: SeqCounts,
    /// The longest any publisher was behind its schedule in the window, ns.
    pub max_lag_ns: u64,
}

/// Members that stopped reading from the start of the warm-up to the end of the window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SlowTally {
    /// Slow members that joined.
    pub members: u64,
    /// Slow members that received `SLOW_CONSUMER`.
    pub slow_consumer: u64,
    /// Slow members whose connection ended without saying why (e.g. closed before the error frame).
    pub closed_silently: u64,
    /// Slow members that ended for another reason.
    pub other_disconnects: u64,
    /// Slow members still connected at the end.
    pub still_connected: u64,
}

/// The client that sends as fast as it can.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FloodTally {
    /// Whether a flooder ran.
    pub enabled: bool,
    /// Messages it wrote, warm-up and window.
    pub sent: u64,
    /// Messages it wrote while the window was open.
    pub written_in_window: u64,
    /// Its messages the server dropped with RATE_LIMITED.
    pub rate_limited: u64,
    /// From its first write to its first RATE_LIMITED answer, µs.
    pub throttled_after_us: Option<u64>,
    /// From its first write until the server ended its connection, µs.
    pub cut_off_after_us: Option<u64>,
}

/// Connect / hello / join / chat / leave / disconnect cycles.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChurnTally {
    /// Cycles scheduled in the window.
    pub scheduled: u64,
    /// Window cycles started.
    pub started: u64,
    /// Window cycles that went through every stage.
    pub completed: u64,
    /// Window cycles that failed, by stage and cause.
    pub failures: BTreeMap<String, u64>,
    /// Window cycles not started because too many were in flight.
    pub skipped: u64,
    /// Window cycles still running at the drain deadline.
    pub unfinished: u64,
    /// Whole-cycle latency of completed window cycles, µs.
    pub cycle_latency: Latency,
}

/// Attacking connections: opened, trickling a Hello that never completes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SlowlorisTally {
    /// Attackers (each holds one connection at a time).
    pub attackers: u64,
    /// Connections they opened, warm-up and window.
    pub connections: u64,
    /// Connections the server closed.
    pub closed: u64,
    /// How the server closed them (its error code, or how the socket ended).
    pub close_reasons: BTreeMap<String, u64>,
    /// From connect until the server closed it, µs.
    pub held: Latency,
    /// Connections still open when the window ended.
    pub open_at_end: u64,
    /// The longest any of those had been open, µs.
    pub oldest_at_end_us: u64,
    /// Most attacking connections open at once (summed over processes).
    pub peak_open: u64,
    /// Connections that could not be opened, by cause.
    pub connect_errors: BTreeMap<String, u64>,
}

/// Bots walking in a world: their Moves, the updates they read, and the
/// server's tick durations (scraped by one process only).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MmoTally {
    /// Bots that entered the world.
    pub in_world: u64,
    /// From sending EnterWorld until WorldEntered, µs.
    pub enter_latency: Latency,
    /// Moves written, warm-up and window.
    pub moves_sent: u64,
    /// Moves written while the window was open.
    pub moves_in_window: u64,
    /// Window moves acknowledged by an update.
    pub moves_echoed: u64,
    /// Window moves never acknowledged (by the end of the drain, or the connection).
    pub moves_unechoed: u64,
    /// The longest any bot was behind its schedule in the window, ns.
    pub max_lag_ns: u64,
    /// From sending a window Move to the first update acknowledging it, µs.
    pub echo_latency: Latency,
    /// From the server's tick (`server_time_us`) to receiving its update, window updates, µs.
    pub tick_age: Latency,
    /// WorldUpdates received in the window.
    pub updates_window: u64,
    /// WorldUpdates received, warm-up and window.
    pub updates_total: u64,
    /// Frame bytes (header included) of the window's updates.
    pub update_bytes_window: u64,
    /// Entities entered, over the window's updates.
    pub entered: u64,
    /// Entities left, over the window's updates.
    pub left: u64,
    /// Entities moved, over the window's updates.
    pub moved: u64,
    /// The lowest `time_scale_pct` of a window update.
    pub min_time_scale_pct: Option<u32>,
    /// Non-fatal errors received, by code (and `WorldLeft` with its reason).
    pub errors: BTreeMap<String, u64>,
    /// The server's world ticks in the window, from its admin endpoint.
    pub server_ticks: Option<TickWindow>,
    /// Why they are missing, when they are.
    pub server_ticks_error: Option<String>,
}

impl Tally {
    /// Adds another process's tally to this one.
    pub fn merge(&mut self, other: &Tally) {
        self.bots.merge(&other.bots);
        self.chat.merge(&other.chat);
        self.slow.merge(&other.slow);
        self.flood.merge(&other.flood);
        self.churn.merge(&other.churn);
        self.slowloris.merge(&other.slowloris);
        self.mmo.merge(&other.mmo);
        self.reconnect.merge(&other.reconnect);
    }
}

impl BotTally {
    fn merge(&mut self, other: &BotTally) {
        self.planned += other.planned;
        self.connected += other.connected;
        add_counts(&mut self.connect_errors, &other.connect_errors);
        add_counts(&mut self.disconnects, &other.disconnects);
        self.connect_latency.merge(&other.connect_latency);
    }
}

impl ChatTally {
    fn merge(&mut self, other: &ChatTally) {
        self.sent += other.sent;
        add_vectors(&mut self.sent_window_per_room, &other.sent_window_per_room);
        self.written_in_window += other.written_in_window;
        add_vectors(&mut self.receivers_per_room, &other.receivers_per_room);
        self.received_window += other.received_window;
        self.received_total += other.received_total;
        self.unparsed += other.unparsed;
        self.latency.merge(&other.latency);
        self.seq.merge(other.seq);
        self.max_lag_ns = self.max_lag_ns.max(other.max_lag_ns);
    }

    /// Receptions the window's messages should have made: per room, the
    /// window messages sent to it times its counted receivers.
    pub fn expected(&self) -> u64 {
        self.sent_window_per_room
            .iter()
            .zip(&self.receivers_per_room)
            .map(|(sent, receivers)| sent.saturating_mul(*receivers))
            .fold(0, u64::saturating_add)
    }
}

impl SlowTally {
    fn merge(&mut self, other: &SlowTally) {
        self.members += other.members;
        self.slow_consumer += other.slow_consumer;
        self.closed_silently += other.closed_silently;
        self.other_disconnects += other.other_disconnects;
        self.still_connected += other.still_connected;
    }
}

impl FloodTally {
    fn merge(&mut self, other: &FloodTally) {
        self.enabled |= other.enabled;
        self.sent += other.sent;
        self.written_in_window += other.written_in_window;
        self.rate_limited += other.rate_limited;
        self.throttled_after_us = self.throttled_after_us.max(other.throttled_after_us);
        self.cut_off_after_us = self.cut_off_after_us.max(other.cut_off_after_us);
    }
}

impl ChurnTally {
    fn merge(&mut self, other: &ChurnTally) {
        self.scheduled += other.scheduled;
        self.started += other.started;
        self.completed += other.completed;
        add_counts(&mut self.failures, &other.failures);
        self.skipped += other.skipped;
        self.unfinished += other.unfinished;
        self.cycle_latency.merge(&other.cycle_latency);
    }
}

impl SlowlorisTally {
    fn merge(&mut self, other: &SlowlorisTally) {
        self.attackers += other.attackers;
        self.connections += other.connections;
        self.closed += other.closed;
        add_counts(&mut self.close_reasons, &other.close_reasons);
        self.held.merge(&other.held);
        self.open_at_end += other.open_at_end;
        self.oldest_at_end_us = self.oldest_at_end_us.max(other.oldest_at_end_us);
        self.peak_open += other.peak_open;
        add_counts(&mut self.connect_errors, &other.connect_errors);
    }
}

impl MmoTally {
    fn merge(&mut self, other: &MmoTally) {
        self.in_world += other.in_world;
        self.enter_latency.merge(&other.enter_latency);
        self.moves_sent += other.moves_sent;
        self.moves_in_window += other.moves_in_window;
        self.moves_echoed += other.moves_echoed;
        self.moves_unechoed += other.moves_unechoed;
        self.max_lag_ns = self.max_lag_ns.max(other.max_lag_ns);
        self.echo_latency.merge(&other.echo_latency);
        self.tick_age.merge(&other.tick_age);
        self.updates_window += other.updates_window;
        self.updates_total += other.updates_total;
        self.update_bytes_window += other.update_bytes_window;
        self.entered += other.entered;
        self.left += other.left;
        self.moved += other.moved;
        self.min_time_scale_pct = match (self.min_time_scale_pct, other.min_time_scale_pct) {
            (Some(ours), Some(theirs)) => Some(ours.min(theirs)),
            (ours, theirs) => ours.or(theirs),
        };
        add_counts(&mut self.errors, &other.errors);
        match (&mut self.server_ticks, &other.server_ticks) {
            (Some(ours), Some(theirs)) => ours.merge(theirs),
            (ours @ None, theirs) => ours.clone_from(theirs),
            (Some(_), None) => {}
        }
        if self.server_ticks_error.is_none() {
            self.server_ticks_error.clone_from(&other.server_ticks_error);
        }
    }
}

/// Adds one to the count of `key`.
pub fn bump(counts: &mut BTreeMap<String, u64>, key: impl Into<String>) {
    *counts.entry(key.into()).or_default() += 1;
}

fn add_counts(ours: &mut BTreeMap<String, u64>, theirs: &BTreeMap<String, u64>) {
    for (key, count) in theirs {
        *ours.entry(key.clone()).or_default() += count;
    }
}

fn add_vectors(ours: &mut Vec<u64>, theirs: &[u64]) {
    if ours.len() < theirs.len() {
        ours.resize(theirs.len(), 0);
    }
    for (our, their) in ours.iter_mut().zip(theirs) {
        *our += their;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_everything() {
        let mut a = Tally::default();
        a.bots.planned = 2;
        bump(&mut a.bots.disconnects, "closed");
        a.chat.sent_window_per_room = vec![10, 20];
        a.chat.receivers_per_room = vec![1, 0];
        a.chat.max_lag_ns = 5;
        a.chat.latency.record_us(100);
        let mut b = Tally::default();
        b.bots.planned = 3;
        bump(&mut b.bots.disconnects, "closed");
        bump(&mut b.bots.disconnects, "SLOW_CONSUMER");
        b.chat.sent_window_per_room = vec![1, 2, 3];
        b.chat.receivers_per_room = vec![1, 2, 3];
        b.chat.max_lag_ns = 3;
        b.chat.latency.record_us(200);
        a.merge(&b);
        assert_eq!(a.bots.planned, 5);
        assert_eq!(a.bots.disconnects["closed"], 2);
        assert_eq!(a.bots.disconnects["SLOW_CONSUMER"], 1);
        assert_eq!(a.chat.sent_window_per_room, vec![11, 22, 3]);
        assert_eq!(a.chat.receivers_per_room, vec![2, 2, 3]);
        assert_eq!(a.chat.expected(), 11 * 2 + 22 * 2 + 3 * 3);
        assert_eq!(a.chat.max_lag_ns, 5);
        assert_eq!(a.chat.latency.summary().count, 2);
    }

    #[test]
    fn mmo_tallies_merge_across_processes() {
        let mut a = Tally::default();
        a.mmo.in_world = 3;
        a.mmo.min_time_scale_pct = Some(100);
        a.mmo.echo_latency.record_us(1_000);
        bump(&mut a.mmo.errors, "NOT_IN_WORLD");
        a.mmo.server_ticks_error = Some("no admin address".into());
        let mut b = Tally::default();
        b.mmo.in_world = 2;
        b.mmo.min_time_scale_pct = Some(80);
        b.mmo.echo_latency.record_us(3_000);
        bump(&mut b.mmo.errors, "NOT_IN_WORLD");
        b.mmo.server_ticks = Some(TickWindow {
            buckets: vec![(0.001, 4)],
            ticks: 5,
            sum_s: 0.004,
            overruns: Some(1),
        });
        let mut c = Tally::default();
        c.mmo.in_world = 1;
        a.merge(&b);
        a.merge(&c);
        assert_eq!(a.mmo.in_world, 6);
        assert_eq!(a.mmo.min_time_scale_pct, Some(80));
        assert_eq!(a.mmo.echo_latency.summary().count, 2);
        assert_eq!(a.mmo.errors["NOT_IN_WORLD"], 2);
        assert_eq!(a.mmo.server_ticks.as_ref().map(|ticks| ticks.ticks), Some(5));
        assert_eq!(a.mmo.server_ticks_error.as_deref(), Some("no admin address"));
        let json = serde_json::to_string(&a).unwrap();
        let back: Tally = serde_json::from_str(&json).unwrap();
        assert_eq!(back.mmo.server_ticks, a.mmo.server_ticks);
    }

    #[test]
    fn round_trips_through_json() {
        let mut tally = Tally::default();
        tally.chat.latency.record_us(42);
        tally.churn.failures.insert("connect: refused".into(), 3);
        let json = serde_json::to_string(&tally).unwrap();
        let back: Tally = serde_json::from_str(&json).unwrap();
        assert_eq!(back.chat.latency.summary().p50, 42);
        assert_eq!(back.churn.failures["connect: refused"], 3);
    }
}
