//! What every scenario test shares: a Tavern server started in this
//! process, a run of the `loadtest` binary against it, and checks of its
//! JSON report.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use tavern::{Config, ServerThread};

/// Longest one loadtest run may take (each is a few seconds of load).
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest the server may take to start or stop.
const SERVER_TIMEOUT: Duration = Duration::from_secs(30);

/// A server on its own thread, shut down gracefully by [`TestServer::shutdown`] (or on drop).
pub struct TestServer {
    pub addr: SocketAddr,
    pub server: ServerThread,
}

pub fn spawn_server(args: &[&str]) -> TestServer {
    let mut all = vec![
        "tavern",
        "--addr",
        "127.0.0.1:0",
        "--session-threads",
        "2",
        "--broadcast-threads",
        "2",
        "--admin-addr",
        "127.0.0.1:0",
        "--ws-addr",
        "127.0.0.1:0",
    ];
    all.extend_from_slice(args);
    let config = Config::parse_from(all).expect("test config is valid");
    let server = ServerThread::start(config).expect("server started");
    TestServer {
        addr: server.addr(),
        server,
    }
}

impl TestServer {
    pub async fn shutdown(self) {
        let joined = tokio::task::spawn_blocking(move || self.server.join());
        let result = tokio::time::timeout(SERVER_TIMEOUT, joined)
            .await
            .expect("server stopped in time");
        result.unwrap().unwrap();
    }
}

/// Runs loadtest with `args` (bounded by [`RUN_TIMEOUT`]) and returns its output.
pub async fn loadtest(args: &[&str]) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(RUN_TIMEOUT, run)
        .await
        .expect("loadtest ended in time")
        .expect("loadtest ran")
}

/// Runs loadtest against `server`, expects success, and returns its JSON report.
pub async fn report(server: &TestServer, args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let addr = server.addr.to_string();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--addr", &addr, "--json", json.to_str().unwrap(), "--no-progress"]);
    let output = loadtest(&all).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "loadtest failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        ["latency", "sessions", "cycles", "attackers", "updates"]
            .iter()
            .any(|word| stdout.contains(word)),
        "{stdout}"
    );
    read_json(&json)
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The one step of a report, after checking the fields every report has.
pub fn only_step<'a>(report: &'a Value, scenario: &str) -> &'a Value {
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
        assert!(report.get(field).is_some(), "report lacks {field}: {report:#}");
    }
    assert_eq!(report["scenario"], scenario);
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{report:#}");
    step_fields(&steps[0]);
    &steps[0]
}

pub fn step_fields(step: &Value) {
    for field in [
        "label",
        "attempt",
        "verdict",
        "warmup_s",
        "window_s",
        "bots",
        "chat",
        "plugin",
        "slow",
        "flood",
        "idle",
        "churn",
        "slowloris",
        "mmo",
        "server",
        "generator",
    ] {
        assert!(step.get(field).is_some(), "step lacks {field}: {step:#}");
    }
    for field in [
        "planned",
        "connected",
        "connect_errors",
        "disconnects",
        "connect_latency_us",
    ] {
        assert!(step["bots"].get(field).is_some(), "bots lack {field}: {step:#}");
    }
    for field in ["processes", "cpu_s", "cpu_pct"] {
        assert!(
            step["generator"].get(field).is_some(),
            "generator lacks {field}: {step:#}"
        );
    }
}

/// Checks a chat step: everyone connected, nothing lost, order intact.
pub fn assert_clean_chat(step: &Value, bots: u64, expected_at_least: u64) {
    assert_clean_rooms(step, "chat", bots, expected_at_least);
}

/// Checks a step of rooms whose figures are in `section` (`chat`, `plugin`):
/// everyone connected, nothing lost, order intact.
pub fn assert_clean_rooms(step: &Value, section: &str, bots: u64, expected_at_least: u64) {
    assert_eq!(step["bots"]["planned"], bots, "{step:#}");
    assert_eq!(step["bots"]["connected"], bots, "{step:#}");
    assert_eq!(step["bots"]["connect_errors"], serde_json::json!({}), "{step:#}");
    assert_eq!(step["bots"]["disconnects"], serde_json::json!({}), "{step:#}");
    let chat = &step[section];
    for field in [
        "offered_per_s",
        "achieved_per_s",
        "deliveries_per_s",
        "sent",
        "expected",
        "received",
        "lost",
        "gaps",
        "reorders",
        "duplicates",
        "max_lag_ms",
        "latency_us",
    ] {
        assert!(chat.get(field).is_some(), "chat lacks {field}: {step:#}");
    }
    for field in ["count", "min", "mean", "p50", "p90", "p99", "p999", "max"] {
        assert!(
            chat["latency_us"].get(field).is_some(),
            "latency lacks {field}: {step:#}"
        );
    }
    let expected = chat["expected"].as_u64().unwrap();
    assert!(expected >= expected_at_least, "expected {expected}: {step:#}");
    assert_eq!(chat["received"], expected, "{step:#}");
    assert_eq!(chat["lost"], 0, "{step:#}");
    assert_eq!(chat["gaps"], 0, "{step:#}");
    assert_eq!(chat["reorders"], 0, "{step:#}");
    assert_eq!(chat["duplicates"], 0, "{step:#}");
    assert_eq!(chat["unparsed"], 0, "{step:#}");
    assert_eq!(chat["latency_us"]["count"], expected, "{step:#}");
    assert!(chat["latency_us"]["p99"].as_u64().unwrap() >= chat["latency_us"]["p50"].as_u64().unwrap());
}
