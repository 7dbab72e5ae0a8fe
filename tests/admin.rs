//! The admin endpoint (/metrics, /stats, /healthz, /readyz), overload
//! shedding, and lifecycle hooks, against a real server over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::observe::{next_event, observed_server, scrape, stats, wait_for};
use support::{WAIT, expect_error, next_non_presence, spawn_server};
use tavern::LifecycleEvent;
use tavern::client::Client;
use tavern::ids::DisconnectReason;
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::{ErrorCode, PlayerName, RoomName};

#[tokio::test]
async fn metrics_move_by_exactly_what_a_chat_exchange_did() {
    let server = spawn_server(&[]);
    let mut ann = server.member("ann", "tavern").await;
    let mut bob = server.member("bob", "tavern").await;
    let Body::MemberJoined(_) = next_non_presence_or_presence(&mut ann).await else {
        panic!("ann sees bob join")
    };
    let before = scrape(&server).await;
    for i in 0..3 {
        ann.chat("tavern", &format!("hello {i}")).await.unwrap();
    }
    for _ in 0..3 {
        let Some(Body::Chat(_)) = bob.next_event(WAIT).await.unwrap().body else {
            panic!("bob gets the chat")
        };
        let Some(Body::Chat(_)) = ann.next_event(WAIT).await.unwrap().body else {
            panic!("ann gets her echo")
        };
    }
    let id = ann.chat("elsewhere", "nobody here").await.unwrap();
    let reply = next_non_presence(&mut ann).await;
    assert_eq!(
        (reply.request_id, expect_error(&reply).code()),
        (id, ErrorCode::NotInRoom)
    );
    let after = scrape(&server).await;

    let delta = |key: &str| after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0);
    assert_eq!(delta("tavern_messages_in_total{type=\"chat\"}"), 4.0);
    assert_eq!(delta("tavern_chat_messages_total"), 3.0);
    assert_eq!(delta("tavern_deliveries_total"), 6.0, "3 to bob, 3 echoes");
    assert_eq!(delta("tavern_messages_out_total"), 7.0, "6 chats and 1 error");
    assert_eq!(delta("tavern_fanout_duration_seconds_count"), 3.0);
    assert_eq!(delta("tavern_room_members_sum"), 6.0, "3 events to 2 members");
    assert_eq!(delta("tavern_errors_total{code=\"NOT_IN_ROOM\"}"), 1.0);
    assert!(delta("tavern_bytes_out_total") > 0.0);
    assert_eq!(after["tavern_connections_open{transport=\"tcp\"}"], 2.0);
    assert_eq!(after["tavern_connections_open{transport=\"ws\"}"], 0.0);
    assert_eq!(after["tavern_sessions{phase=\"active\"}"], 2.0);
    assert_eq!(after["tavern_rooms_open"], 1.0);
    assert_eq!(after["tavern_overload_level"], 0.0);
    assert!(after["process_resident_memory_bytes"] > 0.0);
    assert!(after.contains_key("tavern_disconnects_total{reason=\"slow_consumer\"}"));
}

/// The next event, presence included.
async fn next_non_presence_or_presence(client: &mut Client) -> Body {
    client.next_event(WAIT).await.unwrap().body.unwrap()
}

#[tokio::test]
async fn stats_summarise_the_server() {
    let server = spawn_server(&[]);
    let mut ann = server.member("ann", "tavern").await;
    ann.chat("tavern", "hi").await.unwrap();
    let Body::Chat(_) = next_non_presence(&mut ann).await.body.unwrap() else {
        panic!("echo")
    };
    let stats = stats(&server).await;
    assert_eq!(stats["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(stats["ready"], true);
    assert_eq!(stats["overload"], "normal");
    assert_eq!(stats["connections"], 1);
    assert_eq!(stats["rooms"], 1);
    assert!(stats["uptime_s"].as_f64().unwrap() > 0.0);
    assert!(stats["memory_mb"].as_f64().unwrap() > 1.0);
    assert!(stats["msg_in_per_s"].as_f64().unwrap() > 0.0);
    assert!(stats["msg_out_per_s"].as_f64().unwrap() > 0.0);
    assert!(stats["deliveries_per_s"].as_f64().unwrap() > 0.0);
    let (p50, p99) = (
        stats["fanout_p50_ms"].as_f64().unwrap(),
        stats["fanout_p99_ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p50 <= p99 && p99 < 100.0, "p50 {p50} p99 {p99}");
    assert_eq!(stats["error_rate"], 0.0);
    assert!(stats["window_s"].as_f64().unwrap() > 0.0);
}

/// A server telling the test of its lifecycle events.
#[tokio::test]
async fn readiness_turns_false_before_the_listener_closes() {
    let (mut server, events) = observed_server(&["--unready-delay-ms", "5000"]);
    // Ready once it serves (the admin endpoint answers from before that).
    let events = tokio::task::spawn_blocking(move || {
        wait_for(&events, |e| matches!(e, LifecycleEvent::ServerStarted { .. }));
        events
    })
    .await
    .unwrap();
    assert_eq!(server.admin_get("/healthz").await, (200, "ok\n".into()));
    assert_eq!(server.admin_get("/readyz").await.0, 200);
    let mut ann = server.connect("ann").await;

    server.begin_shutdown();
    let events = tokio::task::spawn_blocking(move || {
        wait_for(&events, |e| *e == LifecycleEvent::ServerDraining);
        events
    })
    .await
    .unwrap();
    assert_eq!(server.admin_get("/readyz").await, (503, "not ready\n".into()));
    // Not ready, yet still accepting: a new player gets in.
    let (late, welcome) = Client::connect_as(server.addr, "late").await.unwrap();
    assert!(welcome.session_id > 0);
    assert_eq!(server.admin_get("/healthz").await.0, 200);
    // Then the shutdown proper.
    let Some(Body::Shutdown(_)) = ann.next_event(WAIT).await.unwrap().body else {
        panic!("ServerShutdown")
    };
    drop((late, events));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn hooks_see_connect_join_leave_disconnect_in_order() {
    let (server, events) = observed_server(&[]);
    assert!(matches!(next_event(&events), LifecycleEvent::ServerStarted { addr } if addr == server.addr));

    let mut ann = server.connect("ann").await;
    let LifecycleEvent::ConnectionOpened { session, .. } = next_event(&events) else {
        panic!("connection_opened first")
    };
    assert_eq!(
        next_event(&events),
        LifecycleEvent::SessionAuthenticated {
            session,
            name: PlayerName::parse("ann").unwrap()
        }
    );
    ann.join("den").await.unwrap();
    assert_eq!(
        next_event(&events),
        LifecycleEvent::RoomCreated {
            room: RoomName::parse("den").unwrap()
        }
    );
    ann.leave("den").await.unwrap();
    assert_eq!(
        next_event(&events),
        LifecycleEvent::RoomDisposed {
            room: RoomName::parse("den").unwrap()
        }
    );
    ann.goodbye().await.unwrap();
    let LifecycleEvent::ConnectionClosed {
        session: closed,
        reason,
        ..
    } = next_event(&events)
    else {
        panic!("connection_closed")
    };
    assert_eq!((closed, reason), (session, DisconnectReason::Goodbye));

    server.shutdown().await.unwrap();
    assert_eq!(next_event(&events), LifecycleEvent::ServerDraining);
    assert_eq!(next_event(&events), LifecycleEvent::ServerStopped);
}
