//! The report of a run: the server loaded, the settings, every step's
//! report, the run's summary, and the JSON file (`--json`). The human table
//! is in `table.rs`.

use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::figures::FloodComparison;
use crate::findmax::FindMaxSummary;
use crate::step::StepReport;

/// Everything one run found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// `loadtest` and its version.
    pub tool: String,
    /// The scenario run (`chat`, `plugin`, `idle`, `churn`, `slow`, `flood`, `slowloris`, `mmo`).
    pub scenario: String,
    /// When the run started, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// The server loaded.
    pub target: TargetInfo,
    /// Every setting of the run, as parsed from the command line.
    pub settings: serde_json::Value,
    /// Every step, in the order run.
    pub steps: Vec<StepReport>,
    /// The `--find-max` result, for `chat --find-max` and `plugin --find-max`.
    pub find_max: Option<FindMaxSummary>,
    /// The with/without comparison, for `flood`.
    pub flood: Option<FloodComparison>,
}

/// The server loaded.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TargetInfo {
    /// Its address (comma separated: the nodes of a cluster the bots spread over).
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
    use super::*;
    use crate::scenarios::Reported as _;
    use crate::scenarios::idle::IdleWorkload;
    use crate::scenarios::rooms::{RoomsWorkload, Traffic};
    use crate::step::fixtures::outcome;
    use crate::tally::Tally;

    fn chat_step() -> StepReport {
        rooms_step(Traffic::Chat)
    }

    fn rooms_step(traffic: Traffic) -> StepReport {
        let workload = RoomsWorkload {
            rooms: 2,
            members: 10,
            publishers: 2,
            size: 64,
            rate: 1000,
            slow_fraction: 0.0,
            flood: None,
            traffic,
        };
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
        workload.step_report("rate 1000/s".into(), 1, &outcome(tally))
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
        let workload = IdleWorkload {
            sessions: 100,
            room_size: 10,
            kind: String::new(),
        };
        let step = workload.step_report("100 sessions".into(), 1, &outcome(tally));
        let idle = step.idle.unwrap();
        assert_eq!(idle.sessions_held, 99);
        assert_eq!(idle.rss_per_session_bytes, Some(2000.0 * 1024.0 / 99.0));
        assert!(step.server.unwrap().cpu_us_per_delivery.is_none());
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
        assert!(step["plugin"].is_null());
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back.steps[0].chat.as_ref().unwrap().latency_us,
            report.steps[0].chat.as_ref().unwrap().latency_us
        );
    }

    #[test]
    fn a_plugin_step_has_the_figures_of_chat_in_its_own_section() {
        let step = rooms_step(Traffic::Plugin("echo".into()));
        assert!(step.chat.is_none());
        let plugin = step.plugin.as_ref().unwrap();
        assert_eq!(plugin.kind, "echo");
        let chat = chat_step();
        let (ours, theirs) = (step.room_traffic().unwrap(), chat.room_traffic().unwrap());
        assert_eq!(
            serde_json::to_value(ours).unwrap(),
            serde_json::to_value(theirs).unwrap()
        );
        assert!(step.server.unwrap().cpu_us_per_delivery.is_some());
        let value = serde_json::to_value(rooms_step(Traffic::Plugin("echo".into()))).unwrap();
        assert!(value["chat"].is_null());
        assert_eq!(value["plugin"]["kind"], "echo");
        assert_eq!(value["plugin"]["lost"], 10);
        assert_eq!(value["plugin"]["latency_us"]["p99"], 990);
        let back: StepReport = serde_json::from_value(value).unwrap();
        assert_eq!(back.plugin.unwrap().traffic.deliveries_per_s, 9998.0);
    }
}
