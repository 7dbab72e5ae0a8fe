//! The report: the figures of each step computed from what the bots counted
//! and what /proc said, the run's summary, and the JSON file (`--json`).
//! The human table is in `table.rs`.

use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

pub use crate::figures::{
    BotFigures, ChatFigures, ChurnFigures, FloodFigures, GeneratorFigures, IdleFigures, MmoFigures, ServerFigures,
    ServerTickFigures, SlowFigures, SlowlorisFigures, Verdict,
};
use crate::findmax::FindMaxSummary;
use crate::runner::StepOutcome;
use crate::scenarios::Workload;
use crate::scenarios::flood::FloodComparison;
use crate::units::{f64_from, ns_to_ms, per_second};

/// Everything one run found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// `loadtest` and its version.
    pub tool: String,
    /// The scenario run (`chat`, `idle`, `churn`, `slow`, `flood`, `slowloris`, `mmo`).
    pub scenario: String,
    /// When the run started, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// The server loaded.
    pub target: TargetInfo,
    /// Every setting of the run, as parsed from the command line.
    pub settings: serde_json::Value,
    /// Every step, in the order run.
    pub steps: Vec<StepReport>,
    /// The `--find-max` result, for `chat --find-max`.
    pub find_max: Option<FindMaxSummary>,
    /// The with/without comparison, for `flood`.
    pub flood: Option<FloodComparison>,
}

/// The server loaded.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TargetInfo {
    /// Its address.
    pub addr: String,
    /// Whether this run started it (`--spawn-server`).
    pub spawned: bool,
    /// Its process id, when known.
    pub server_pid: Option<u32>,
    /// Its admin endpoint, when known (spawned, or `--admin-addr`).
    pub admin_addr: Option<String>,
    /// The executable started, when spawned.
    pub server_bin: Option<String>,
    /// Where its output went, when spawned.
    pub server_log: Option<String>,
    /// Whether the server ran on CPU 0 and the generator on CPU 1 (`--pin`).
    pub pinned: bool,
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
    /// The server's CPU and memory in the window, when its process is known.
    pub server: Option<ServerFigures>,
    /// The load generator's own CPU in the window.
    pub generator: GeneratorFigures,
}

impl StepReport {
    /// The figures of a step of `workload` from what it measured.
    pub fn build(label: String, attempt: u32, workload: &Workload, outcome: &StepOutcome) -> StepReport {
        let tally = &outcome.tally;
        let window = outcome.timeline.window();
        let window_s = window.as_secs_f64();
        let mut report = StepReport {
            label,
            attempt,
            verdict: None,
            warmup_s: f64_from(outcome.timeline.warmup_ns) / 1e9,
            window_s,
            bots: BotFigures {
                planned: tally.bots.planned,
                connected: tally.bots.connected,
                connect_errors: tally.bots.connect_errors.clone(),
                disconnects: tally.bots.disconnects.clone(),
                connect_latency_us: tally.bots.connect_latency.summary(),
            },
            chat: None,
            slow: None,
            flood: None,
            idle: None,
            churn: None,
            slowloris: None,
            mmo: None,
            server: None,
            generator: GeneratorFigures {
                processes: outcome.generator.processes,
                cpu_s: outcome.generator.cpu.as_secs_f64(),
                cpu_pct: percent(outcome.generator.cpu.as_secs_f64(), window_s),
            },
        };
        let mut deliveries = None;
        match workload {
            Workload::Chat(chat) => {
                let figures = chat_figures(chat, outcome);
                deliveries = Some(figures.received);
                report.chat = Some(figures);
                if chat.slow_fraction > 0.0 {
                    report.slow = Some(slow_figures(outcome));
                }
                if let Some(flood) = chat.flood {
                    report.flood = Some(FloodFigures {
                        size: flood.size,
                        in_flight: flood.in_flight,
                        sent: tally.flood.sent,
                        sent_per_s: per_second(tally.flood.written_in_window, window),
                        rate_limited: tally.flood.rate_limited,
                        throttled_after_ms: tally.flood.throttled_after_us.map(|us| f64_from(us) / 1e3),
                        cut_off_after_ms: tally.flood.cut_off_after_us.map(|us| f64_from(us) / 1e3),
                    });
                }
            }
            Workload::Idle(idle) => report.idle = Some(idle_figures(idle.sessions, outcome)),
            Workload::Churn(churn) => report.churn = Some(churn_figures(churn.rate, outcome)),
            Workload::Slowloris(slowloris) => {
                report.slowloris = Some(slowloris_figures(slowloris.trickle_ms, outcome));
            }
            Workload::Mmo(mmo) => report.mmo = Some(mmo_figures(mmo, outcome)),
        }
        report.server = outcome.server.map(|server| {
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
        });
        report
    }
}

fn chat_figures(chat: &crate::scenarios::chat::ChatWorkload, outcome: &StepOutcome) -> ChatFigures {
    let tally = &outcome.tally.chat;
    let window = outcome.timeline.window();
    let expected = tally.expected();
    ChatFigures {
        rooms: chat.rooms,
        members: chat.members,
        publishers: chat.publishers,
        size: chat.size,
        offered_per_s: f64_from(chat.rate),
        achieved_per_s: per_second(tally.written_in_window, window),
        deliveries_per_s: per_second(tally.received_window, window),
        sent: tally.sent,
        expected,
        received: tally.received_window,
        lost: expected.saturating_sub(tally.received_window),
        gaps: tally.seq.gaps,
        reorders: tally.seq.reorders,
        duplicates: tally.seq.duplicates,
        unparsed: tally.unparsed,
        max_lag_ms: ns_to_ms(tally.max_lag_ns),
        latency_us: tally.latency.summary(),
    }
}

fn slow_figures(outcome: &StepOutcome) -> SlowFigures {
    let slow = &outcome.tally.slow;
    SlowFigures {
        slow_members: slow.members,
        fast_members: outcome.tally.chat.receivers_per_room.iter().sum(),
        slow_consumer_disconnects: slow.slow_consumer,
        closed_silently: slow.closed_silently,
        other_disconnects: slow.other_disconnects,
        still_connected: slow.still_connected,
    }
}

fn idle_figures(sessions: u64, outcome: &StepOutcome) -> IdleFigures {
    let bots = &outcome.tally.bots;
    let ended: u64 = bots.disconnects.values().sum();
    let held = bots.connected.saturating_sub(ended);
    let before = outcome.server.and_then(|server| server.rss_before_setup_kib);
    let after = outcome.server.map(|server| server.rss_end_kib);
    let per_session = match (before, after) {
        (Some(before), Some(after)) if held > 0 => {
            Some(f64_from(after.saturating_sub(before)) * 1024.0 / f64_from(held))
        }
        _ => None,
    };
    IdleFigures {
        sessions_planned: sessions,
        sessions_connected: bots.connected,
        sessions_held: held,
        rss_before_kib: before,
        rss_held_kib: after,
        rss_per_session_bytes: per_session,
    }
}

fn churn_figures(rate: u64, outcome: &StepOutcome) -> ChurnFigures {
    let churn = &outcome.tally.churn;
    ChurnFigures {
        offered_per_s: f64_from(rate),
        scheduled: churn.scheduled,
        started: churn.started,
        achieved_per_s: per_second(churn.started, outcome.timeline.window()),
        completed: churn.completed,
        failed: churn.failures.values().sum(),
        failures: churn.failures.clone(),
        skipped: churn.skipped,
        unfinished: churn.unfinished,
        cycle_latency_us: churn.cycle_latency.summary(),
    }
}

fn slowloris_figures(trickle_ms: u64, outcome: &StepOutcome) -> SlowlorisFigures {
    let slowloris = &outcome.tally.slowloris;
    SlowlorisFigures {
        attackers: slowloris.attackers,
        trickle_ms,
        connections: slowloris.connections,
        closed: slowloris.closed,
        close_reasons: slowloris.close_reasons.clone(),
        held_us: slowloris.held.summary(),
        open_at_end: slowloris.open_at_end,
        oldest_at_end_ms: f64_from(slowloris.oldest_at_end_us) / 1e3,
        peak_open: slowloris.peak_open,
        connect_errors: slowloris.connect_errors.clone(),
    }
}

fn mmo_figures(workload: &crate::scenarios::mmo::MmoWorkload, outcome: &StepOutcome) -> MmoFigures {
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
        world: workload.world.clone(),
        density: workload.density.as_str().to_owned(),
        geometry: workload.geometry,
        region: workload
            .region()
            .map(|region| [region.min.x, region.min.y, region.max.x, region.max.y]),
        bots: workload.bots,
        in_world: mmo.in_world,
        input_hz: workload.input_hz,
        step_asked: workload.step,
        step: workload.step_used(),
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

/// `part` of `whole` seconds in percent; 0 for an empty whole.
fn percent(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { part / whole * 100.0 } else { 0.0 }
}

/// Writes the report as pretty-printed JSON to `path`.
///
/// # Errors
/// The file could not be written.
pub fn write_json(report: &Report, path: &Path) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scenarios::chat::ChatWorkload;
    use crate::scenarios::idle::IdleWorkload;
    use crate::tally::Tally;
    use crate::timeline::Timeline;
    use crate::usage::{GeneratorUsage, ServerUsage};

    fn outcome(tally: Tally) -> StepOutcome {
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

    fn chat_step() -> StepReport {
        let workload = Workload::Chat(ChatWorkload {
            rooms: 2,
            members: 10,
            publishers: 2,
            size: 64,
            rate: 1000,
            slow_fraction: 0.0,
            flood: None,
        });
        let mut tally = Tally::default();
        tally.bots.planned = 20;
        tally.bots.connected = 20;
        tally.chat.sent = 6000;
        tally.chat.sent_window_per_room = vec![2500, 2500];
        tally.chat.receivers_per_room = vec![10, 10];
        tally.chat.written_in_window = 5000;
        tally.chat.received_window = 49_990;
        tally.chat.max_lag_ns = 1_500_000;
        tally.chat.seq.reorders = 1;
        for micros in 1..=1000 {
            tally.chat.latency.record_us(micros);
        }
        StepReport::build("rate 1000/s".into(), 1, &workload, &outcome(tally))
    }

    #[test]
    fn chat_figures_from_a_known_tally() {
        let step = chat_step();
        let chat = step.chat.as_ref().unwrap();
        assert_eq!(chat.expected, 50_000);
        assert_eq!(chat.received, 49_990);
        assert_eq!(chat.lost, 10);
        assert_eq!(chat.reorders, 1);
        assert_eq!(chat.offered_per_s, 1000.0);
        assert_eq!(chat.achieved_per_s, 1000.0);
        assert_eq!(chat.deliveries_per_s, 9998.0);
        assert_eq!(chat.max_lag_ms, 1.5);
        assert_eq!(chat.latency_us.p50, 500);
        assert_eq!(chat.latency_us.p99, 990);
        assert_eq!(chat.latency_us.p999, 999);
        assert_eq!(chat.latency_us.max, 1000);
        let server = step.server.as_ref().unwrap();
        assert_eq!(server.cpu_pct, 50.0);
        assert!((server.cpu_us_per_delivery.unwrap() - 2.5e6 / 49_990.0).abs() < 1e-9);
        assert_eq!(server.peak_rss_kib, 4000);
        assert_eq!(step.generator.cpu_pct, 20.0);
        assert_eq!((step.warmup_s, step.window_s), (1.0, 5.0));
        assert!(step.slow.is_none() && step.flood.is_none() && step.idle.is_none() && step.churn.is_none());
    }

    #[test]
    fn idle_figures_give_memory_per_session() {
        let mut tally = Tally::default();
        tally.bots.planned = 100;
        tally.bots.connected = 100;
        crate::tally::bump(&mut tally.bots.disconnects, "TIMEOUT");
        let workload = Workload::Idle(IdleWorkload {
            sessions: 100,
            room_size: 10,
        });
        let step = StepReport::build("100 sessions".into(), 1, &workload, &outcome(tally));
        let idle = step.idle.unwrap();
        assert_eq!(idle.sessions_held, 99);
        assert_eq!(idle.rss_per_session_bytes, Some(2000.0 * 1024.0 / 99.0));
        assert!(step.server.unwrap().cpu_us_per_delivery.is_none());
    }

    #[test]
    fn mmo_figures_from_a_known_tally() {
        use crate::admin::TickWindow;
        use crate::scenarios::mmo::{MmoWorkload, WorldGeometry};
        use crate::settings::Density;
        let workload = Workload::Mmo(MmoWorkload {
            bots: 10,
            world: "w".into(),
            input_hz: 10,
            density: Density::Clustered,
            cluster_size: None,
            step: 2.0,
            admin: None,
            geometry: Some(WorldGeometry {
                width: 2000.0,
                height: 2000.0,
                aoi_radius: 50.0,
                max_speed: 10.0,
                tick_rate_hz: 20,
                position_quantum: 0.01,
            }),
        });
        let mut tally = Tally::default();
        tally.bots.planned = 10;
        tally.bots.connected = 10;
        crate::tally::bump(&mut tally.bots.disconnects, "SLOW_CONSUMER");
        let mmo = &mut tally.mmo;
        mmo.in_world = 10;
        mmo.moves_in_window = 500;
        mmo.updates_window = 1000;
        mmo.update_bytes_window = 50_000;
        mmo.entered = 300;
        mmo.left = 100;
        mmo.moved = 5_000;
        mmo.server_ticks = Some(TickWindow {
            buckets: vec![(0.001, 50), (0.002, 100)],
            ticks: 100,
            sum_s: 0.1,
            overruns: Some(0),
        });
        let step = StepReport::build("mmo".into(), 1, &workload, &outcome(tally));
        let figures = step.mmo.unwrap();
        assert_eq!(figures.region, Some([950.0, 950.0, 1050.0, 1050.0]));
        assert_eq!((figures.step_asked, figures.step), (2.0, 1.0));
        assert_eq!(figures.moves_per_s, 100.0);
        assert_eq!(figures.updates_per_s, 200.0);
        // 50 kB over 5 s over 10 players.
        assert_eq!(figures.bytes_per_s_per_player, 1_000.0);
        assert_eq!(
            (figures.mean_entered, figures.mean_left, figures.mean_moved),
            (0.3, 0.1, 5.0)
        );
        assert_eq!(figures.disconnects, 1);
        let ticks = figures.server_tick.unwrap();
        assert_eq!(ticks.p50_ms, Some(1.0));
        assert!((ticks.p99_ms.unwrap() - 1.98).abs() < 1e-9);
        assert_eq!(ticks.mean_ms, Some(1.0));
        assert_eq!(figures.server_tick_missing, None);
        assert!(step.chat.is_none());
        let rendered = crate::table::render(&Report {
            tool: "loadtest".into(),
            scenario: "mmo".into(),
            started_unix_ms: 0,
            target: TargetInfo::default(),
            settings: serde_json::Value::Null,
            steps: vec![StepReport::build(
                "mmo".into(),
                1,
                &workload,
                &outcome(Tally::default()),
            )],
            find_max: None,
            flood: None,
        });
        assert!(
            rendered.contains("tick time  not scraped: the scrape did not finish"),
            "{rendered}"
        );
        assert!(rendered.contains("step 1 (--step 2 is more than"), "{rendered}");
    }

    #[test]
    fn the_report_round_trips_through_json_with_every_field() {
        let report = Report {
            tool: "loadtest 0.1.0".into(),
            scenario: "chat".into(),
            started_unix_ms: 1,
            target: TargetInfo {
                addr: "127.0.0.1:4000".into(),
                ..TargetInfo::default()
            },
            settings: serde_json::json!({"rate": 1000}),
            steps: vec![chat_step()],
            find_max: None,
            flood: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        write_json(&report, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for field in [
            "tool",
            "scenario",
            "started_unix_ms",
            "target",
            "settings",
            "steps",
            "find_max",
            "flood",
        ] {
            assert!(value.get(field).is_some(), "no {field}");
        }
        let step = &value["steps"][0];
        for field in ["label", "bots", "chat", "slow", "server", "generator"] {
            assert!(step.get(field).is_some(), "no steps[0].{field}");
        }
        assert_eq!(step["chat"]["latency_us"]["p99"], 990);
        assert_eq!(step["chat"]["lost"], 10);
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back.steps[0].chat.as_ref().unwrap().latency_us,
            report.steps[0].chat.as_ref().unwrap().latency_us
        );
    }
}
