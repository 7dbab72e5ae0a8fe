//! Runs the `loadtest` binary against a real Tavern server started in this
//! process on 127.0.0.1:0, with tiny, short scenarios, and checks its JSON report.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use self::support::{
    TestServer, assert_clean_chat, assert_clean_rooms, loadtest, only_step, read_json, report, spawn_server,
    step_fields,
};

#[tokio::test]
async fn a_tiny_chat_run_loses_nothing() {
    let server = spawn_server(&[]);
    let report = report(
        &server,
        &[
            "chat",
            "--rooms",
            "2",
            "--members",
            "4",
            "--publishers",
            "2",
            "--size",
            "64",
            "--rate",
            "200",
            "--warmup",
            "0.5",
            "--duration",
            "1.5",
        ],
    )
    .await;
    let step = only_step(&report, "chat");
    // 200/s for 1.5 s over 2 rooms of 4 members: 300 messages, 1200 receptions.
    assert_clean_chat(step, 8, 1_190);
    let offered = step["chat"]["offered_per_s"].as_f64().unwrap();
    assert_eq!(offered, 200.0);
    assert!(step["chat"]["achieved_per_s"].as_f64().unwrap() > 190.0, "{step:#}");
    assert_eq!(report["target"]["addr"], server.addr.to_string());
    assert_eq!(report["settings"]["members"], 4);
    server.shutdown().await;
}

#[tokio::test]
async fn a_tiny_plugin_run_loses_no_event() {
    let server = spawn_server(&[]);
    let report = report(
        &server,
        &[
            "plugin",
            "--rooms",
            "2",
            "--members",
            "3",
            "--publishers",
            "1",
            "--rate",
            "200",
            "--warmup",
            "0.5",
            "--duration",
            "1",
        ],
    )
    .await;
    let step = only_step(&report, "plugin");
    // 200/s for 1 s over 2 rooms of 3 members: 200 ops, 600 events.
    assert_clean_rooms(step, "plugin", 6, 590);
    assert_eq!(step["plugin"]["kind"], "echo", "{step:#}");
    assert!(step["chat"].is_null(), "{step:#}");
    assert_eq!(report["settings"]["kind"], "echo");
    server.shutdown().await;
}

#[tokio::test]
async fn workers_and_source_addresses_share_one_schedule() {
    let server = spawn_server(&[]);
    let report = report(
        &server,
        &[
            "chat",
            "--rooms",
            "3",
            "--members",
            "3",
            "--publishers",
            "1",
            "--rate",
            "150",
            "--warmup",
            "0.5",
            "--duration",
            "1.5",
            "--procs",
            "2",
            "--source-ips",
            "3",
        ],
    )
    .await;
    let step = only_step(&report, "chat");
    assert_clean_chat(step, 9, 670);
    assert_eq!(step["generator"]["processes"], 3, "{step:#}");
    server.shutdown().await;
}

#[tokio::test]
async fn slow_members_are_cut_off_and_the_others_lose_nothing() {
    let server = spawn_server(&["--outbound-queue-frames", "256", "--socket-send-buffer", "4096"]);
    let report = report(
        &server,
        &[
            "slow",
            "--rooms",
            "1",
            "--members",
            "6",
            "--publishers",
            "1",
            "--size",
            "1000",
            "--rate",
            "1000",
            "--slow-fraction",
            "0.34",
            "--warmup",
            "0.5",
            "--duration",
            "2",
        ],
    )
    .await;
    let step = only_step(&report, "slow");
    let slow = &step["slow"];
    assert_eq!(slow["slow_members"], 2, "{step:#}");
    assert_eq!(slow["fast_members"], 4, "{step:#}");
    let cut_off = slow["slow_consumer_disconnects"].as_u64().unwrap() + slow["closed_silently"].as_u64().unwrap();
    assert_eq!(cut_off, 2, "{step:#}");
    assert_eq!(step["chat"]["lost"], 0, "{step:#}");
    assert_eq!(step["chat"]["gaps"], 0, "{step:#}");
    assert_eq!(step["bots"]["disconnects"], serde_json::json!({}), "{step:#}");
    server.shutdown().await;
}

#[tokio::test]
async fn flood_compares_two_steps() {
    let server = spawn_server(&[]);
    let report = report(
        &server,
        &[
            "flood",
            "--rooms",
            "1",
            "--members",
            "3",
            "--publishers",
            "1",
            "--rate",
            "100",
            "--flood-size",
            "256",
            "--warmup",
            "0.3",
            "--duration",
            "1",
        ],
    )
    .await;
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{report:#}");
    steps.iter().for_each(step_fields);
    assert_clean_chat(&steps[0], 3, 290);
    assert!(steps[0]["flood"].is_null());
    assert!(steps[1]["flood"]["sent"].as_u64().unwrap() > 0, "{report:#}");
    for field in ["throttled_after_ms", "cut_off_after_ms"] {
        assert!(steps[1]["flood"].get(field).is_some(), "{report:#}");
    }
    assert_eq!(steps[1]["chat"]["lost"], 0, "{report:#}");
    for field in ["p99_without_us", "p99_with_us", "flood_sent_per_s"] {
        assert!(report["flood"].get(field).is_some(), "{report:#}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn idle_and_churn_report_sessions_and_cycles() {
    let server = spawn_server(&[]);
    let idle = report(
        &server,
        &[
            "idle",
            "--sessions",
            "50",
            "--room-size",
            "5",
            "--warmup",
            "0.2",
            "--duration",
            "0.5",
        ],
    )
    .await;
    let step = only_step(&idle, "idle");
    assert_eq!(step["idle"]["sessions_held"], 50, "{step:#}");
    assert!(step["idle"].get("rss_per_session_bytes").is_some());
    let churn = report(
        &server,
        &[
            "churn",
            "--rate",
            "50",
            "--rooms",
            "3",
            "--warmup",
            "0.2",
            "--duration",
            "1",
        ],
    )
    .await;
    let step = only_step(&churn, "churn");
    let cycles = &step["churn"];
    assert!(cycles["scheduled"].as_u64().unwrap() >= 49, "{step:#}");
    assert_eq!(cycles["completed"], cycles["scheduled"], "{step:#}");
    assert_eq!(cycles["failed"], 0, "{step:#}");
    assert_eq!(step["bots"]["connected"], cycles["completed"], "{step:#}");
    server.shutdown().await;
}

#[tokio::test]
async fn bots_sign_their_hello_for_a_token_server() {
    const KEY: &str = "5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1";
    let server = spawn_server(&["--auth", "token", "--auth-key", KEY]);
    let idle = [
        "idle",
        "--sessions",
        "20",
        "--room-size",
        "5",
        "--warmup",
        "0.2",
        "--duration",
        "0.5",
    ];
    let mut signed = idle.to_vec();
    signed.extend_from_slice(&["--auth-key", KEY]);
    let report_signed = report(&server, &signed).await;
    let step = only_step(&report_signed, "idle");
    assert_eq!(step["idle"]["sessions_held"], 20, "{step:#}");
    assert!(
        !report_signed.to_string().contains(KEY),
        "the key must not be in the report"
    );
    let addr = server.addr.to_string();
    let mut unsigned = idle.to_vec();
    unsigned.extend_from_slice(&["--addr", &addr, "--no-progress"]);
    let output = loadtest(&unsigned).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("hello: UNAUTHENTICATED × 20"), "{stderr}");
    server.shutdown().await;
}

#[tokio::test]
async fn slowloris_attackers_are_closed_at_the_deadline_and_clients_get_in() {
    let server = spawn_server(&["--hello-timeout-ms", "300"]);
    let report = report(
        &server,
        &[
            "slowloris",
            "--attackers",
            "20",
            "--clients",
            "5",
            "--trickle-ms",
            "100",
            "--warmup",
            "0.2",
            "--duration",
            "2",
        ],
    )
    .await;
    let step = only_step(&report, "slowloris");
    assert_eq!(step["bots"]["connected"], 5, "{step:#}");
    assert_eq!(step["bots"]["connect_errors"], serde_json::json!({}), "{step:#}");
    let attackers = &step["slowloris"];
    assert_eq!(attackers["attackers"], 20, "{step:#}");
    let closed = attackers["closed"].as_u64().unwrap();
    assert!(closed >= 20, "{step:#}");
    assert_eq!(
        attackers["close_reasons"],
        serde_json::json!({ "HANDSHAKE_TIMEOUT": closed }),
        "{step:#}"
    );
    assert_eq!(
        attackers["connections"].as_u64().unwrap(),
        closed + attackers["open_at_end"].as_u64().unwrap(),
        "{step:#}"
    );
    assert!(attackers["peak_open"].as_u64().unwrap() <= 20, "{step:#}");
    server.shutdown().await;
}

#[tokio::test]
async fn mmo_bots_walk_and_read_their_updates() {
    let server = spawn_server(&[]);
    let admin = server
        .server
        .admin_addr()
        .expect("the admin endpoint is on")
        .to_string();
    let report = report(
        &server,
        &[
            "mmo",
            "--bots",
            "20",
            "--density",
            "clustered",
            "--input-hz",
            "10",
            "--warmup",
            "0.5",
            "--duration",
            "1.5",
            "--admin-addr",
            &admin,
        ],
    )
    .await;
    let step = only_step(&report, "mmo");
    assert_eq!(step["bots"]["connected"], 20, "{step:#}");
    assert_eq!(step["bots"]["connect_errors"], serde_json::json!({}), "{step:#}");
    assert_eq!(step["bots"]["disconnects"], serde_json::json!({}), "{step:#}");
    let mmo = &step["mmo"];
    for field in [
        "world",
        "density",
        "geometry",
        "region",
        "in_world",
        "step",
        "moves_sent",
        "moves_per_s",
        "moves_echoed",
        "moves_unechoed",
        "echo_latency_us",
        "tick_age_us",
        "updates",
        "updates_per_s",
        "bytes_per_s_per_player",
        "mean_entered",
        "mean_left",
        "mean_moved",
        "min_time_scale_pct",
        "disconnects",
        "errors",
        "server_tick",
    ] {
        assert!(mmo.get(field).is_some(), "mmo lacks {field}: {step:#}");
    }
    assert_eq!(mmo["in_world"], 20, "{step:#}");
    assert_eq!(mmo["disconnects"], 0, "{step:#}");
    assert_eq!(mmo["errors"], serde_json::json!({}), "{step:#}");
    // 20 bots × 10 Moves/s × 1.5 s in the window, give or take one per bot at the edges.
    let echoed = mmo["moves_echoed"].as_u64().unwrap();
    assert!(echoed >= 280, "{step:#}");
    assert_eq!(mmo["echo_latency_us"]["count"], echoed, "{step:#}");
    assert!(mmo["updates"].as_u64().unwrap() > 0, "{step:#}");
    assert!(mmo["updates_per_s"].as_f64().unwrap() > 0.0, "{step:#}");
    assert!(mmo["bytes_per_s_per_player"].as_f64().unwrap() > 0.0, "{step:#}");
    assert!(mmo["mean_moved"].as_f64().unwrap() > 0.0, "{step:#}");
    assert!(mmo["tick_age_us"]["count"].as_u64().unwrap() > 0, "{step:#}");
    let ticks = &mmo["server_tick"];
    assert!(ticks["ticks"].as_u64().unwrap() > 0, "{step:#}");
    assert!(
        ticks["p99_ms"].as_f64().unwrap() >= ticks["p50_ms"].as_f64().unwrap(),
        "{step:#}"
    );
    assert_eq!(report["target"]["admin_addr"], admin, "{report:#}");
    server.shutdown().await;
}

#[tokio::test]
async fn refuses_a_target_off_this_machine() {
    let output = loadtest(&["chat", "--addr", "192.0.2.1:4000", "--duration", "1"]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}

#[tokio::test]
async fn members_of_a_room_spread_over_several_addresses() {
    let (one, two) = (spawn_server(&[]), spawn_server(&[]));
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let addrs = format!("{},{}", one.addr, two.addr);
    // Two rooms of three: members 0 and 2 of each connect to the first address, member 1 to the second.
    let output = loadtest(&[
        "idle",
        "--sessions",
        "6",
        "--room-size",
        "3",
        "--warmup",
        "0.2",
        "--duration",
        "0.5",
        "--addr",
        &addrs,
        "--json",
        json.to_str().unwrap(),
        "--no-progress",
    ])
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report = read_json(&json);
    assert_eq!(only_step(&report, "idle")["idle"]["sessions_held"], 6, "{report:#}");
    assert_eq!(report["target"]["addr"], addrs);
    assert_eq!((accepted(&one), accepted(&two)), (4, 2));
    one.shutdown().await;
    two.shutdown().await;
}

/// The TCP connections `server` has accepted so far.
fn accepted(server: &TestServer) -> u64 {
    let metrics = server.server.stats().encode();
    let line = metrics
        .lines()
        .find(|line| line.starts_with("tavern_connections_accepted_total{transport=\"tcp\"}"))
        .unwrap_or_else(|| panic!("no accepted connections counter in\n{metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}
