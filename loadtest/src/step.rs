//! One step's record: what it produced ([`StepOutcome`]: its timeline, the
//! merged tally, and what /proc said) and its report ([`StepReport`]: the
//! figures of every section). The sections every step has are computed here;
//! each scenario adds its own.

use serde::{Deserialize, Serialize};

use crate::figures::{
    BotFigures, ChatFigures, ChurnFigures, FloodFigures, GeneratorFigures, IdleFigures, MmoFigures, PluginFigures,
    ReconnectFigures, ServerFigures, SlowFigures, SlowlorisFigures, Verdict,
};
use crate::tally::Tally;
use crate::timeline::Timeline;
use crate::units::f64_from;
use crate::usage::{GeneratorUsage, ServerUsage};

/// What one step produced.
#[derive(Debug)]
pub struct StepOutcome {
    /// When it ran.
    pub timeline: Timeline,
    /// What every share counted, merged.
    pub tally: Tally,
    /// The server's use of the machine in the window, when its process is known.
    pub server: Option<ServerUsage>,
    /// The generator's use of the machine in the window.
    pub generator: GeneratorUsage,
}

/// The figures of one step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepReport {
    /// What the step was (e.g. `rate 5000/s`).
    pub label: String,
    /// 1, or 2 for a `--find-max` retry of a failed step.
    pub attempt: u32,
    /// Whether the step was sustainable, for `--find-max`.
    pub verdict: Option<Verdict>,
    /// Warm-up, seconds.
    pub warmup_s: f64,
    /// Measured window, seconds.
    pub window_s: f64,
    /// Connections.
    pub bots: BotFigures,
    /// Chat rooms (`chat`, `slow`, `flood`).
    pub chat: Option<ChatFigures>,
    /// Rooms of a plugin kind (`plugin`).
    pub plugin: Option<PluginFigures>,
    /// Members that stopped reading (`slow`).
    pub slow: Option<SlowFigures>,
    /// The flooding client (`flood`, second step).
    pub flood: Option<FloodFigures>,
    /// Held sessions (`idle`).
    pub idle: Option<IdleFigures>,
    /// Cycles (`churn`).
    pub churn: Option<ChurnFigures>,
    /// Attacking connections (`slowloris`).
    pub slowloris: Option<SlowlorisFigures>,
    /// Bots in a world (`mmo`).
    pub mmo: Option<MmoFigures>,
    /// Cuts and recovery (`reconnect`).
    pub reconnect: Option<ReconnectFigures>,
    /// The server's CPU and memory in the window, when its process is known.
    pub server: Option<ServerFigures>,
    /// The load generator's own CPU in the window.
    pub generator: GeneratorFigures,
}

impl StepReport {
    /// The sections every step has, from what `outcome` measured: the
    /// connections, and the server's and the generator's use of the machine.
    /// The scenario adds its own sections. `deliveries`, the chat messages
    /// received in the window, gives the server's CPU per delivery.
    pub fn new(label: String, attempt: u32, outcome: &StepOutcome, deliveries: Option<u64>) -> StepReport {
        let bots = &outcome.tally.bots;
        let window_s = outcome.timeline.window().as_secs_f64();
        StepReport {
            label,
            attempt,
            verdict: None,
            warmup_s: f64_from(outcome.timeline.warmup_ns) / 1e9,
            window_s,
            bots: BotFigures {
                planned: bots.planned,
                connected: bots.connected,
                connect_errors: bots.connect_errors.clone(),
                disconnects: bots.disconnects.clone(),
                connect_latency_us: bots.connect_latency.summary(),
            },
            chat: None,
            plugin: None,
            slow: None,
            flood: None,
            idle: None,
            churn: None,
            slowloris: None,
            mmo: None,
            reconnect: None,
            server: outcome.server.map(|server| {
                let cpu_s = server.cpu.as_secs_f64();
                ServerFigures {
                    pid: server.pid,
                    cpu_s,
                    cpu_pct: percent(cpu_s, window_s),
                    cpu_us_per_delivery: deliveries
                        .filter(|&count| count > 0)
                        .map(|count| cpu_s * 1e6 / f64_from(count)),
                    rss_before_setup_kib: server.rss_before_setup_kib,
                    rss_start_kib: server.rss_start_kib,
                    rss_end_kib: server.rss_end_kib,
                    peak_rss_kib: server.peak_rss_kib,
                }
            }),
            generator: GeneratorFigures {
                processes: outcome.generator.processes,
                cpu_s: outcome.generator.cpu.as_secs_f64(),
                cpu_pct: percent(outcome.generator.cpu.as_secs_f64(), window_s),
            },
        }
    }

    /// The traffic of the step's rooms, chat or a plugin's, when it has rooms.
    pub fn room_traffic(&self) -> Option<&ChatFigures> {
        self.chat
            .as_ref()
            .or(self.plugin.as_ref().map(|plugin| &plugin.traffic))
    }
}

/// `part` of `whole` seconds in percent; 0 for an empty whole.
fn percent(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { part / whole * 100.0 } else { 0.0 }
}

/// Steps that tests build reports from.
#[cfg(test)]
pub mod fixtures {
    use std::time::Duration;

    use super::*;

    /// A step with 1 s of warm-up and a 5 s window that counted `tally`,
    /// beside a server (pid 42) that used 2.5 s of CPU, its RSS 1000 KiB
    /// before the setup, 2000 KiB at the window's start and 3000 KiB at its
    /// end (4000 KiB at its peak), and a generator that used 1 s of CPU.
    pub fn outcome(tally: Tally) -> StepOutcome {
        StepOutcome {
            timeline: Timeline::new(
                0,
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(1),
            ),
            tally,
            server: Some(ServerUsage {
                pid: 42,
                cpu: Duration::from_millis(2500),
                rss_before_setup_kib: Some(1000),
                rss_start_kib: 2000,
                rss_end_kib: 3000,
                peak_rss_kib: 4000,
            }),
            generator: GeneratorUsage {
                processes: 1,
                cpu: Duration::from_secs(1),
            },
        }
    }
}
