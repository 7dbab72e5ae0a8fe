//! The figures of a step, one struct per section of the report, and the
//! figures of a whole run: what the JSON file holds and the table shows.
//! `step.rs` computes the sections every step has; each scenario computes its own.

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tavern::protocol::pb;

use crate::latency::LatencySummary;

/// A `--find-max` judgement of one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Sustainable: no loss, order intact, p99 within the bound, rate achieved.
    pub passed: bool,
    /// Why not, when not.
    pub reasons: Vec<String>,
}

/// Connections of a step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BotFigures {
    /// Bots the step meant to connect.
    pub planned: u64,
    /// Bots that connected, said Hello and joined.
    pub connected: u64,
    /// Failed setups by stage and cause.
    pub connect_errors: BTreeMap<String, u64>,
    /// Connections the server ended, by reason.
    pub disconnects: BTreeMap<String, u64>,
    /// Connect to `Welcome`, µs.
    pub connect_latency_us: LatencySummary,
}

/// Chat traffic of a step; in a plugin's rooms ([`PluginFigures`]), its
/// ops and their events.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChatFigures {
    /// Rooms (R).
    pub rooms: u64,
    /// Members per room (N).
    pub members: u64,
    /// Publishers per room (P).
    pub publishers: u64,
    /// Text size, bytes (S).
    pub size: usize,
    /// Offered rate, messages/s over all publishers.
    pub offered_per_s: f64,
    /// Messages written in the window per second of it.
    pub achieved_per_s: f64,
    /// Window messages received per second of the window, over all counted receivers.
    pub deliveries_per_s: f64,
    /// Messages written in the whole step (warm-up included).
    pub sent: u64,
    /// Receptions the window's messages should have made.
    pub expected: u64,
    /// Receptions of window messages.
    pub received: u64,
    /// `expected - received`: lost, or still not there at the drain deadline.
    pub lost: u64,
    /// Room sequence numbers never received.
    pub gaps: u64,
    /// Room sequence numbers received after a higher one.
    pub reorders: u64,
    /// Room sequence numbers received twice.
    pub duplicates: u64,
    /// Chat texts without this tool's stamp.
    pub unparsed: u64,
    /// Longest any publisher was behind its schedule in the window, ms.
    pub max_lag_ms: f64,
    /// Send-to-receive latency of window messages, µs.
    pub latency_us: LatencySummary,
}

/// The traffic of a step of rooms of a plugin kind (`plugin`): the figures
/// of chat, where a message is a `RoomSend` and its deliveries the
/// `RoomEvent`s the plugin broadcasts for it (`deliveries_per_s`: events
/// per second; `latency_us`: op to event).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PluginFigures {
    /// The rooms' kind.
    pub kind: String,
    /// The rooms' traffic.
    #[serde(flatten)]
    pub traffic: ChatFigures,
}

/// Members that stopped reading.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SlowFigures {
    /// Slow members that joined.
    pub slow_members: u64,
    /// Members that kept reading (their figures are the `chat` ones).
    pub fast_members: u64,
    /// Slow members that received `SLOW_CONSUMER`.
    pub slow_consumer_disconnects: u64,
    /// Slow members whose connection closed without a reason (the error frame may not get through a full socket).
    pub closed_silently: u64,
    /// Slow members that ended for another reason.
    pub other_disconnects: u64,
    /// Slow members still connected at the end.
    pub still_connected: u64,
}

/// The flooding client.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FloodFigures {
    /// Its text size, bytes.
    pub size: usize,
    /// Most of its messages unechoed at once.
    pub in_flight: u64,
    /// Messages it wrote in the whole step.
    pub sent: u64,
    /// Messages it wrote in the window per second of it.
    pub sent_per_s: f64,
    /// Its messages the server dropped with RATE_LIMITED, in the whole step.
    pub rate_limited: u64,
    /// From its first write to its first RATE_LIMITED answer, ms.
    pub throttled_after_ms: Option<f64>,
    /// From its first write until the server ended its connection, ms.
    pub cut_off_after_ms: Option<f64>,
}

/// Held sessions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdleFigures {
    /// Sessions the step meant to hold.
    pub sessions_planned: u64,
    /// Sessions connected and joined.
    pub sessions_connected: u64,
    /// Sessions still connected at the end of the window.
    pub sessions_held: u64,
    /// Server RSS before the sessions connected, KiB.
    pub rss_before_kib: Option<u64>,
    /// Server RSS at the end of the window, KiB.
    pub rss_held_kib: Option<u64>,
    /// (held RSS − RSS before) / sessions held, bytes.
    pub rss_per_session_bytes: Option<f64>,
}

/// Cycles.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChurnFigures {
    /// Cycles offered per second.
    pub offered_per_s: f64,
    /// Cycles scheduled in the window.
    pub scheduled: u64,
    /// Window cycles started.
    pub started: u64,
    /// Window cycles started per second of the window.
    pub achieved_per_s: f64,
    /// Window cycles that went through every stage.
    pub completed: u64,
    /// Window cycles that failed.
    pub failed: u64,
    /// Failures by stage and cause.
    pub failures: BTreeMap<String, u64>,
    /// Window cycles not started because too many were in flight.
    pub skipped: u64,
    /// Window cycles still running at the drain deadline.
    pub unfinished: u64,
    /// Whole-cycle latency, µs.
    pub cycle_latency_us: LatencySummary,
}

/// Cut connections and their recovery (`reconnect`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReconnectFigures {
    /// Share of the bots cut each round.
    pub cut_share: f64,
    /// Seconds between rounds of cuts.
    pub cut_every_s: f64,
    /// Connections cut (reset).
    pub cuts: u64,
    /// Reconnections.
    pub reconnects: u64,
    /// Reconnections that got their session back (the others started a new one).
    #[serde(default)]
    pub resumed: u64,
    /// Rooms joined again that recovered what was missed.
    pub recovered: u64,
    /// Rooms joined again that fell back to `recovered: false`.
    pub not_recovered: u64,
    /// Bots that gave up reconnecting.
    pub failed: u64,
    /// Scheduled messages not sent while the publisher was disconnected.
    pub not_sent: u64,
    /// From the cut to every room joined again, µs.
    pub latency_us: LatencySummary,
}

/// Attacking connections (`slowloris`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SlowlorisFigures {
    /// Attackers, each holding one connection at a time.
    pub attackers: u64,
    /// Time between two bytes of an attacker, ms.
    pub trickle_ms: u64,
    /// Connections they opened, warm-up and window.
    pub connections: u64,
    /// Connections the server closed.
    pub closed: u64,
    /// How the server closed them.
    pub close_reasons: BTreeMap<String, u64>,
    /// From connect until the server closed it, µs.
    pub held_us: LatencySummary,
    /// Connections still open when the window ended (opened within the last deadline).
    pub open_at_end: u64,
    /// The longest any of those had been open, ms.
    pub oldest_at_end_ms: f64,
    /// Most attacking connections open at once.
    pub peak_open: u64,
    /// Connections that could not be opened, by cause.
    pub connect_errors: BTreeMap<String, u64>,
}

/// Bots walking in a world (`mmo`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MmoFigures {
    /// The world's name.
    pub world: String,
    /// `clustered` or `dispersed`.
    pub density: String,
    /// The world as the server described it.
    pub geometry: Option<WorldGeometry>,
    /// Where the bots spawned and walked: `[min_x, min_y, max_x, max_y]`.
    pub region: Option<[f64; 4]>,
    /// Bots planned (B).
    pub bots: u64,
    /// Bots that entered the world.
    pub in_world: u64,
    /// Moves per second per bot.
    pub input_hz: u64,
    /// `--step` as asked.
    pub step_asked: f64,
    /// The step walked: at most `max_speed / input_hz`.
    pub step: f64,
    /// EnterWorld to WorldEntered, µs.
    pub enter_latency_us: LatencySummary,
    /// Moves written in the whole step (warm-up included).
    pub moves_sent: u64,
    /// Moves written in the window per second of it.
    pub moves_per_s: f64,
    /// Longest any bot was behind its Move schedule in the window, ms.
    pub max_lag_ms: f64,
    /// Window Moves acknowledged by an update.
    pub moves_echoed: u64,
    /// Window Moves never acknowledged.
    pub moves_unechoed: u64,
    /// A window Move to the first update whose `ack_client_tick` reaches it, µs.
    pub echo_latency_us: LatencySummary,
    /// Receive time minus the update's `server_time_us` (the tick's start), µs.
    pub tick_age_us: LatencySummary,
    /// WorldUpdates received in the window.
    pub updates: u64,
    /// WorldUpdates received per second of the window, over all bots.
    pub updates_per_s: f64,
    /// Update frame bytes per second of the window, per bot in the world.
    pub bytes_per_s_per_player: f64,
    /// Entities entered per window update.
    pub mean_entered: f64,
    /// Entities left per window update.
    pub mean_left: f64,
    /// Entities moved per window update.
    pub mean_moved: f64,
    /// The lowest `time_scale_pct` of a window update (100: no time dilation).
    pub min_time_scale_pct: Option<u32>,
    /// Connections the server ended (the causes are in `bots.disconnects`).
    pub disconnects: u64,
    /// Non-fatal errors received, by code.
    pub errors: BTreeMap<String, u64>,
    /// The server's world ticks in the window, from its admin endpoint.
    pub server_tick: Option<ServerTickFigures>,
    /// Why `server_tick` is missing, when it is.
    pub server_tick_missing: Option<String>,
}

/// The world as the server describes it in `WorldEntered`, learned by
/// entering it once before the step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorldGeometry {
    /// x runs from 0 to this.
    pub width: f64,
    /// y runs from 0 to this.
    pub height: f64,
    /// How far a player sees.
    pub aoi_radius: f64,
    /// World units per second.
    pub max_speed: f64,
    /// World ticks per second.
    pub tick_rate_hz: u32,
    /// World units per step of the fixed-point positions in updates.
    pub position_quantum: f64,
}

impl WorldGeometry {
    /// The geometry a `WorldEntered` announces.
    ///
    /// # Errors
    /// It has no bounds, or bounds that are not positive numbers.
    pub fn from_entered(entered: &pb::WorldEntered) -> anyhow::Result<WorldGeometry> {
        let bounds = entered.bounds.context("WorldEntered has no bounds")?;
        let geometry = WorldGeometry {
            width: f64::from(bounds.x),
            height: f64::from(bounds.y),
            aoi_radius: f64::from(entered.aoi_radius),
            max_speed: f64::from(entered.max_speed),
            tick_rate_hz: entered.tick_rate_hz,
            position_quantum: f64::from(entered.position_quantum),
        };
        anyhow::ensure!(
            geometry.width > 0.0 && geometry.height > 0.0 && geometry.width.is_finite() && geometry.height.is_finite(),
            "WorldEntered has bounds {} × {}",
            geometry.width,
            geometry.height
        );
        Ok(geometry)
    }
}

/// The server's world ticks in the window (`tavern_world_tick_seconds` and
/// `tavern_world_tick_overruns_total`, scraped at the window's start and end).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerTickFigures {
    /// Ticks in the window (of every world).
    pub ticks: u64,
    /// Median tick duration, ms (interpolated within its histogram bucket).
    pub p50_ms: Option<f64>,
    /// 99th percentile tick duration, ms (interpolated within its histogram bucket).
    pub p99_ms: Option<f64>,
    /// Mean tick duration, ms.
    pub mean_ms: Option<f64>,
    /// Ticks that took longer than a tick period, when the server counts them.
    pub overruns: Option<u64>,
}

/// The server's use of the machine in the window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerFigures {
    /// Its process id.
    pub pid: u32,
    /// CPU seconds (user + system).
    pub cpu_s: f64,
    /// CPU seconds per second of the window, in percent (100 = one core).
    pub cpu_pct: f64,
    /// CPU microseconds per chat delivery, for chat steps with deliveries.
    pub cpu_us_per_delivery: Option<f64>,
    /// RSS before the step's bots connected, KiB.
    pub rss_before_setup_kib: Option<u64>,
    /// RSS at the window's start, KiB.
    pub rss_start_kib: u64,
    /// RSS at the window's end, KiB.
    pub rss_end_kib: u64,
    /// Highest RSS in the window, KiB.
    pub peak_rss_kib: u64,
}

/// The load generator's use of the machine in the window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GeneratorFigures {
    /// Processes (1, or 1 + `--procs` workers).
    pub processes: u32,
    /// CPU seconds of all of them.
    pub cpu_s: f64,
    /// CPU seconds per second of the window, in percent (100 = one core).
    pub cpu_pct: f64,
}

/// The normal rooms' latency without and with the flooder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FloodComparison {
    /// p99 latency of the normal rooms without the flooder, µs.
    pub p99_without_us: u64,
    /// p99 latency of the normal rooms beside the flooder, µs.
    pub p99_with_us: u64,
    /// What the flooder managed to send, messages per second of the window.
    pub flood_sent_per_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_comes_from_world_entered() {
        let entered = pb::WorldEntered {
            bounds: Some(pb::Position { x: 500.0, y: 250.0 }),
            aoi_radius: 40.0,
            max_speed: 8.0,
            tick_rate_hz: 30,
            position_quantum: 0.01,
            ..pb::WorldEntered::default()
        };
        let geometry = WorldGeometry::from_entered(&entered).unwrap();
        assert_eq!((geometry.width, geometry.height), (500.0, 250.0));
        assert_eq!(geometry.tick_rate_hz, 30);
        assert!(WorldGeometry::from_entered(&pb::WorldEntered::default()).is_err());
    }
}
