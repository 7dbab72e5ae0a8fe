//! The human-readable report printed on stdout at the end of a run: the
//! run's header and summary, the `--find-max` table, and a block per step.

mod sections;
mod text;

use self::sections::{
    chat_rows, churn_rows, flood_row, idle_row, mmo_rows, plugin_rows, reconnect_rows, slow_row, slowloris_rows,
};
use self::text::{counts, latency, line, mib, ms, row};
use crate::figures::BotFigures;
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
        let Some(chat) = step.room_traffic() else { continue };
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
    section(out, step.chat.as_ref(), chat_rows);
    section(out, step.plugin.as_ref(), plugin_rows);
    section(out, step.slow.as_ref(), slow_row);
    section(out, step.flood.as_ref(), flood_row);
    section(out, step.idle.as_ref(), idle_row);
    section(out, step.churn.as_ref(), churn_rows);
    section(out, step.slowloris.as_ref(), slowloris_rows);
    section(out, step.mmo.as_ref(), mmo_rows);
    section(out, step.reconnect.as_ref(), reconnect_rows);
    machine_rows(out, step);
}

/// The rows of a section the step has (by `rows`); none for one it has not.
fn section<T>(out: &mut String, figures: Option<&T>, rows: fn(&mut String, &T)) {
    if let Some(figures) = figures {
        rows(out, figures);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::TickWindow;
    use crate::figures::WorldGeometry;
    use crate::report::TargetInfo;
    use crate::scenarios::Reported as _;
    use crate::scenarios::mmo::MmoWorkload;
    use crate::scenarios::rooms::{RoomsWorkload, Traffic};
    use crate::settings::Density;
    use crate::step::fixtures::outcome;
    use crate::tally::Tally;

    #[test]
    fn a_plugin_step_reads_as_ops_and_events() {
        let workload = RoomsWorkload {
            rooms: 3,
            members: 4,
            publishers: 1,
            size: 64,
            rate: 100,
            slow_fraction: 0.0,
            flood: None,
            traffic: Traffic::Plugin("echo".into()),
        };
        let mut tally = Tally::default();
        tally.chat.written_in_window = 500;
        tally.chat.received_window = 2_000;
        tally.chat.latency.record_us(1_500);
        let mut report = Report {
            tool: "loadtest".into(),
            scenario: "plugin".into(),
            started_unix_ms: 0,
            target: TargetInfo::default(),
            settings: serde_json::Value::Null,
            steps: vec![workload.step_report("rate 100/s".into(), 1, &outcome(tally))],
            find_max: None,
            flood: None,
        };
        let rendered = render(&report);
        assert!(
            rendered.contains("rooms      3 × 4 members of kind echo, 1 sending 64 B ops"),
            "{rendered}"
        );
        assert!(rendered.contains("achieved 100/s, events 400/s"), "{rendered}");
        assert!(rendered.contains("latency    p50 1.500 ms"), "{rendered}");
        report.find_max = Some(crate::findmax::FindMaxSummary {
            p99_bound_ms: 50.0,
            best_step: Some(0),
            best_offered_per_s: Some(100),
            best_deliveries_per_s: Some(400.0),
            lowest_failing_per_s: None,
        });
        let rendered = render(&report);
        assert!(
            rendered.contains("       100   1          100            400"),
            "{rendered}"
        );
    }

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
