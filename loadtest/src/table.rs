//! The human-readable report printed on stdout at the end of a run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::figures::{
    BotFigures, ChatFigures, ChurnFigures, FloodFigures, IdleFigures, MmoFigures, SlowFigures, SlowlorisFigures,
};
use crate::latency::LatencySummary;
use crate::report::Report;
use crate::step::StepReport;
use crate::units::f64_from;

/// The whole report as text.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let target = &report.target;
    let mut server = match (target.spawned, target.server_pid) {
        (true, Some(pid)) => format!("spawned tavern, pid {pid}"),
        (false, Some(pid)) => format!("server pid {pid}"),
        _ => "server process unknown".to_owned(),
    };
    if target.pinned {
        server.push_str(", pinned: server CPU 0, generator CPU 1");
    }
    line(
        &mut out,
        format!("{} {} against {} ({server})", report.tool, report.scenario, target.addr),
    );
    if report.find_max.is_some() {
        find_max_table(&mut out, report);
    }
    for step in &report.steps {
        step_block(&mut out, step);
    }
    if let Some(find_max) = &report.find_max {
        match (find_max.best_offered_per_s, find_max.best_deliveries_per_s) {
            (Some(rate), Some(deliveries)) => line(
                &mut out,
                format!(
                    "highest sustainable rate: {rate}/s ({deliveries:.0} deliveries/s), p99 bound {:.1} ms{}",
                    find_max.p99_bound_ms,
                    find_max
                        .lowest_failing_per_s
                        .map_or(String::new(), |fail| format!(", lowest failing {fail}/s"))
                ),
            ),
            _ => line(&mut out, "no sustainable rate found".to_owned()),
        }
    }
    if let Some(flood) = &report.flood {
        line(
            &mut out,
            format!(
                "normal rooms' p99: {} without the flooder, {} beside it (the flooder sent {:.0}/s)",
                ms(flood.p99_without_us),
                ms(flood.p99_with_us),
                flood.flood_sent_per_s
            ),
        );
    }
    out
}

fn find_max_table(out: &mut String, report: &Report) {
    line(
        out,
        format!(
            "{:>10} {:>3} {:>12} {:>14} {:>10} {:>10}  verdict",
            "offered/s", "try", "achieved/s", "deliveries/s", "p99 ms", "lost"
        ),
    );
    for step in &report.steps {
        let Some(chat) = &step.chat else { continue };
        let verdict = step.verdict.as_ref().map_or(String::new(), |verdict| {
            if verdict.passed {
                "ok".to_owned()
            } else {
                verdict.reasons.join("; ")
            }
        });
        line(
            out,
            format!(
                "{:>10.0} {:>3} {:>12.0} {:>14.0} {:>10.2} {:>10}  {verdict}",
                chat.offered_per_s,
                step.attempt,
                chat.achieved_per_s,
                chat.deliveries_per_s,
                f64_from(chat.latency_us.p99) / 1e3,
                chat.lost
            ),
        );
    }
}

/// One step: its header line, then the rows of every section it has.
fn step_block(out: &mut String, step: &StepReport) {
    line(out, String::new());
    let attempt = if step.attempt > 1 {
        format!(", attempt {}", step.attempt)
    } else {
        String::new()
    };
    line(
        out,
        format!(
            "== {}{attempt}: warm-up {:.1} s, window {:.1} s, {} generator process(es)",
            step.label, step.warmup_s, step.window_s, step.generator.processes
        ),
    );
    bot_rows(out, &step.bots);
    if let Some(chat) = &step.chat {
        chat_rows(out, chat);
    }
    if let Some(slow) = &step.slow {
        slow_row(out, slow);
    }
    if let Some(flood) = &step.flood {
        flood_row(out, flood);
    }
    if let Some(idle) = &step.idle {
        idle_row(out, idle);
    }
    if let Some(churn) = &step.churn {
        churn_rows(out, churn);
    }
    if let Some(slowloris) = &step.slowloris {
        slowloris_rows(out, slowloris);
    }
    if let Some(mmo) = &step.mmo {
        mmo_rows(out, mmo);
    }
    machine_rows(out, step);
}

/// Connections: how many, what failed, and their connect latency.
fn bot_rows(out: &mut String, bots: &BotFigures) {
    row(
        out,
        "bots",
        format!(
            "planned {}, connected {}; connect errors {}; disconnects {}",
            bots.planned,
            bots.connected,
            counts(&bots.connect_errors),
            counts(&bots.disconnects)
        ),
    );
    row(out, "connect", latency(&bots.connect_latency_us));
}

/// The chat rooms: their shape, rates, delivery and latency.
fn chat_rows(out: &mut String, chat: &ChatFigures) {
    row(
        out,
        "rooms",
        format!(
            "{} × {} members, {} publishing {} B texts",
            chat.rooms, chat.members, chat.publishers, chat.size
        ),
    );
    row(
        out,
        "rate",
        format!(
            "offered {:.0}/s, achieved {:.0}/s, deliveries {:.0}/s, publisher max lag {:.2} ms",
            chat.offered_per_s, chat.achieved_per_s, chat.deliveries_per_s, chat.max_lag_ms
        ),
    );
    row(
        out,
        "delivery",
        format!(
            "expected {}, received {}, lost {}; gaps {}, reorders {}, duplicates {}{}",
            chat.expected,
            chat.received,
            chat.lost,
            chat.gaps,
            chat.reorders,
            chat.duplicates,
            if chat.unparsed > 0 {
                format!(", unparsed {}", chat.unparsed)
            } else {
                String::new()
            }
        ),
    );
    row(out, "latency", latency(&chat.latency_us));
}

/// The members that stopped reading, and how they ended.
fn slow_row(out: &mut String, slow: &SlowFigures) {
    row(
        out,
        "slow",
        format!(
            "{} slow, {} fast members; slow ones: SLOW_CONSUMER {}, closed without reason {}, other {}, still connected {}",
            slow.slow_members,
            slow.fast_members,
            slow.slow_consumer_disconnects,
            slow.closed_silently,
            slow.other_disconnects,
            slow.still_connected
        ),
    );
}

/// The flooding client.
fn flood_row(out: &mut String, flood: &FloodFigures) {
    row(
        out,
        "flooder",
        format!(
            "{} B texts, sent {} ({:.0}/s in the window), {} dropped as RATE_LIMITED; first RATE_LIMITED after {}, cut off after {}",
            flood.size,
            flood.sent,
            flood.sent_per_s,
            flood.rate_limited,
            flood
                .throttled_after_ms
                .map_or("never".to_owned(), |ms| format!("{ms:.1} ms")),
            flood
                .cut_off_after_ms
                .map_or("never".to_owned(), |ms| format!("{ms:.1} ms"))
        ),
    );
}

/// The held sessions, and the server's memory per session.
fn idle_row(out: &mut String, idle: &IdleFigures) {
    let per_session = idle
        .rss_per_session_bytes
        .map_or("unknown (no server pid)".to_owned(), |bytes| format!("{bytes:.0} B"));
    row(
        out,
        "sessions",
        format!(
            "planned {}, connected {}, held to the end {}; server RSS per session {per_session}",
            idle.sessions_planned, idle.sessions_connected, idle.sessions_held
        ),
    );
}

/// The cycles, their failures and their latency.
fn churn_rows(out: &mut String, churn: &ChurnFigures) {
    row(
        out,
        "cycles",
        format!(
            "offered {:.0}/s, started {:.0}/s; scheduled {}, completed {}, failed {}, skipped {}, unfinished {}",
            churn.offered_per_s,
            churn.achieved_per_s,
            churn.scheduled,
            churn.completed,
            churn.failed,
            churn.skipped,
            churn.unfinished
        ),
    );
    row(out, "failures", counts(&churn.failures));
    row(out, "cycle", latency(&churn.cycle_latency_us));
}

/// The attacking connections, and how the server closed them.
fn slowloris_rows(out: &mut String, slowloris: &SlowlorisFigures) {
    row(
        out,
        "attackers",
        format!(
            "{} trickling a byte every {} ms; {} connections, peak {} open; closed by the server {}, open at the end {} (oldest {:.0} ms)",
            slowloris.attackers,
            slowloris.trickle_ms,
            slowloris.connections,
            slowloris.peak_open,
            slowloris.closed,
            slowloris.open_at_end,
            slowloris.oldest_at_end_ms
        ),
    );
    row(out, "closed as", counts(&slowloris.close_reasons));
    row(out, "held", latency(&slowloris.held_us));
    if !slowloris.connect_errors.is_empty() {
        row(out, "refused", counts(&slowloris.connect_errors));
    }
}

/// The bots in a world: their Moves and updates, and the server's ticks.
fn mmo_rows(out: &mut String, mmo: &MmoFigures) {
    let world = match (&mmo.geometry, mmo.region) {
        (Some(geometry), Some([min_x, min_y, max_x, max_y])) => format!(
            "{} × {} units, AOI radius {}, max speed {}/s, {} ticks/s; bots {} over {:.0} × {:.0}",
            geometry.width,
            geometry.height,
            geometry.aoi_radius,
            geometry.max_speed,
            geometry.tick_rate_hz,
            mmo.density,
            max_x - min_x,
            max_y - min_y
        ),
        _ => format!("bots {}", mmo.density),
    };
    row(
        out,
        "world",
        format!("{:?}: {world}; {} of {} in it", mmo.world, mmo.in_world, mmo.bots),
    );
    row(out, "enter", latency(&mmo.enter_latency_us));
    let step = if mmo.step < mmo.step_asked {
        format!("{} (--step {} is more than max speed allows)", mmo.step, mmo.step_asked)
    } else {
        mmo.step.to_string()
    };
    row(
        out,
        "moves",
        format!(
            "{}/s per bot, step {step}; sent {}, {:.0}/s in the window, max lag {:.2} ms; echoed {}, unechoed {}",
            mmo.input_hz, mmo.moves_sent, mmo.moves_per_s, mmo.max_lag_ms, mmo.moves_echoed, mmo.moves_unechoed
        ),
    );
    row(out, "echo", latency(&mmo.echo_latency_us));
    row(out, "tick age", latency(&mmo.tick_age_us));
    row(
        out,
        "updates",
        format!(
            "{} ({:.0}/s), {:.0} B/s per player; per update entered {:.2}, left {:.2}, moved {:.1}; \
             lowest time scale {}",
            mmo.updates,
            mmo.updates_per_s,
            mmo.bytes_per_s_per_player,
            mmo.mean_entered,
            mmo.mean_left,
            mmo.mean_moved,
            mmo.min_time_scale_pct
                .map_or("none seen".to_owned(), |pct| format!("{pct} %"))
        ),
    );
    let tick = match (&mmo.server_tick, &mmo.server_tick_missing) {
        (Some(tick), _) => {
            let ms = |value: Option<f64>| value.map_or("-".to_owned(), |ms| format!("{ms:.3} ms"));
            format!(
                "p50 {}  p99 {}  mean {}  ({} ticks); overruns {}",
                ms(tick.p50_ms),
                ms(tick.p99_ms),
                ms(tick.mean_ms),
                tick.ticks,
                tick.overruns
                    .map_or("not reported".to_owned(), |count| count.to_string())
            )
        }
        (None, reason) => format!("not scraped: {}", reason.as_deref().unwrap_or("unknown")),
    };
    row(out, "tick time", tick);
    if !mmo.errors.is_empty() {
        row(out, "errors", counts(&mmo.errors));
    }
}

/// The server's and the generator's use of the machine.
fn machine_rows(out: &mut String, step: &StepReport) {
    match &step.server {
        Some(server) => row(
            out,
            "server",
            format!(
                "cpu {:.2} s ({:.0} %){}; rss {} → {}, peak {}{}",
                server.cpu_s,
                server.cpu_pct,
                server
                    .cpu_us_per_delivery
                    .map_or(String::new(), |us| format!(", {us:.3} µs per delivery")),
                mib(server.rss_start_kib),
                mib(server.rss_end_kib),
                mib(server.peak_rss_kib),
                server
                    .rss_before_setup_kib
                    .map_or(String::new(), |kib| format!(" (before setup {})", mib(kib)))
            ),
        ),
        None => row(
            out,
            "server",
            "not sampled (use --spawn-server or --server-pid)".to_owned(),
        ),
    }
    row(
        out,
        "generator",
        format!("cpu {:.2} s ({:.0} %)", step.generator.cpu_s, step.generator.cpu_pct),
    );
}

fn latency(summary: &LatencySummary) -> String {
    if summary.count == 0 {
        return "no samples".to_owned();
    }
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} samples)",
        ms(summary.p50),
        ms(summary.p90),
        ms(summary.p99),
        ms(summary.p999),
        ms(summary.max),
        summary.count
    )
}

fn counts(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|(key, count)| format!("{key} × {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ms(micros: u64) -> String {
    format!("{:.3} ms", f64_from(micros) / 1e3)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", f64_from(kib) / 1024.0)
}

fn row(out: &mut String, name: &str, text: String) {
    line(out, format!("  {name:<10} {text}"));
}

fn line(out: &mut String, text: String) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::TickWindow;
    use crate::figures::WorldGeometry;
    use crate::report::TargetInfo;
    use crate::scenarios::Reported as _;
    use crate::scenarios::mmo::MmoWorkload;
    use crate::settings::Density;
    use crate::step::fixtures::outcome;
    use crate::tally::Tally;

    #[test]
    fn mmo_figures_from_a_known_tally() {
        let workload = MmoWorkload {
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
        };
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
        let step = workload.step_report("mmo".into(), 1, &outcome(tally));
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
        let rendered = render(&Report {
            tool: "loadtest".into(),
            scenario: "mmo".into(),
            started_unix_ms: 0,
            target: TargetInfo::default(),
            settings: serde_json::Value::Null,
            steps: vec![workload.step_report("mmo".into(), 1, &outcome(Tally::default()))],
            find_max: None,
            flood: None,
        });
        assert!(
            rendered.contains("tick time  not scraped: the scrape did not finish"),
            "{rendered}"
        );
        assert!(rendered.contains("step 1 (--step 2 is more than"), "{rendered}");
    }
}
