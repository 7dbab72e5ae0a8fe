//! The admin endpoint (/metrics, /stats, /healthz, /readyz), overload
//! shedding, and lifecycle hooks, against a real server over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, mpsc};

use support::{TestServer, WAIT, expect_error, next_non_presence, read_to_close, spawn_server, spawn_server_with};
use tavern::client::{Client, ClientWriter};
use tavern::ids::DisconnectReason;
use tavern::ids::OverloadLevel;
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::{ErrorCode, PlayerName, RoomName};
use tavern::{LifecycleEvent, Observer};

/// Every sample of a Prometheus text page, by name with labels (`name{a="b"}`).
fn samples(page: &str) -> HashMap<String, f64> {
    page.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let (status, page) = server.admin_get("/metrics").await;
    assert_eq!(status, 200);
    samples(&page)
}

async fn stats(server: &TestServer) -> serde_json::Value {
    let (status, body) = server.admin_get("/stats").await;
    assert_eq!(status, 200);
    serde_json::from_str(&body).unwrap()
}

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
    assert_eq!(after["tavern_connections_open"], 2.0);
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
fn observed_server(args: &[&str]) -> (TestServer, mpsc::Receiver<LifecycleEvent>) {
    let (tx, events) = mpsc::channel();
    let recorder = Arc::new(Recorder(Mutex::new(tx)));
    let server = spawn_server_with(args, move |server| server.with_observer(recorder));
    (server, events)
}

/// Skips events until one `wanted` comes, within [`WAIT`].
fn wait_for(events: &mpsc::Receiver<LifecycleEvent>, wanted: impl Fn(&LifecycleEvent) -> bool) -> LifecycleEvent {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let event = events.recv_timeout(left).expect("the awaited lifecycle event in time");
        if wanted(&event) {
            return event;
        }
    }
}

#[tokio::test]
async fn readiness_turns_false_before_the_listener_closes() {
    let (mut server, events) = observed_server(&["--unready-delay-ms", "5000"]);
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
async fn overload_sheds_new_joins_and_connections_then_recovers() {
    const MEMBERS: usize = 100;
    const BURST: usize = 20;
    // Any fan-out to 100 members takes more than a microsecond: chatting there overloads.
    // The rate limit is raised out of the way: an optimised build chats faster than the default.
    let (server, events) = observed_server(&[
        "--overload-fanout-us",
        "1",
        "--overload-queue-depth",
        "0",
        "--rate-limit-per-s",
        "1000000",
        "--rate-limit-burst",
        "1000000",
    ]);
    let mut outsider = server.connect("outsider").await;
    let (writers, readers) = chat_readers(&server, MEMBERS, "busy").await;
    let publisher = server.member("publisher", "busy").await;
    let (mut say, mut echoes) = publisher.into_split();
    let mut sent = 0;
    let mut burst = async |sent: &mut usize| {
        for _ in 0..BURST {
            say.chat("busy", &format!("c{sent}")).await.unwrap();
            *sent += 1;
        }
        let mut echoed = 0;
        while echoed < BURST {
            if let Some(Body::Chat(_)) = echoes.next_event(WAIT).await.unwrap().body {
                echoed += 1;
            }
        }
    };

    // Chat in bursts until the monitor (sampling once a second) sheds load.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut shedding = None;
    while shedding.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "never overloaded");
        burst(&mut sent).await;
        shedding = std::iter::from_fn(|| events.try_recv().ok())
            .find(|e| matches!(e, LifecycleEvent::OverloadChanged { level } if *level != OverloadLevel::Normal));
    }
    // Shedding: joins and new connections are refused; members keep everything.
    let refused = outsider.join("elsewhere").await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Overloaded));
    let (_, mut late) = Client::connect(server.addr).await.unwrap().into_split();
    let messages = read_to_close(&mut late).await;
    assert_eq!(expect_error(&messages[0]).code(), ErrorCode::Overloaded);
    burst(&mut sent).await;
    let scraped = scrape(&server).await;
    assert!(scraped["tavern_overload_level"] >= 1.0);
    assert_eq!(scraped["tavern_connections_rejected_total{reason=\"overloaded\"}"], 1.0);
    assert!(scraped["tavern_overload_escalations_total"] >= 1.0);
    assert_eq!(
        stats(&server).await["overload"],
        scraped_level_name(scraped["tavern_overload_level"])
    );

    // No more chat: the level falls back and joins work again.
    let events = tokio::task::spawn_blocking(move || {
        wait_for(&events, |e| {
            *e == LifecycleEvent::OverloadChanged {
                level: OverloadLevel::Normal,
            }
        });
        events
    })
    .await
    .unwrap();
    outsider.join("elsewhere").await.unwrap();

    server.shutdown().await.unwrap();
    let expected: Vec<String> = (0..sent).map(|i| format!("c{i}")).collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), expected, "a member lost or reordered chats");
    }
    drop((writers, events));
}

/// `count` members of `room`, each reading until its connection closes and
/// keeping the chats it saw; their writers keep the connections open.
async fn chat_readers(
    server: &TestServer,
    count: usize,
    room: &str,
) -> (Vec<ClientWriter>, Vec<tokio::task::JoinHandle<Vec<String>>>) {
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for i in 0..count {
        let (writer, mut reader) = server.member(&format!("m{i}"), room).await.into_split();
        writers.push(writer);
        readers.push(tokio::spawn(async move {
            let mut chats = Vec::new();
            while let Ok(message) = reader.next_event(WAIT).await {
                if let Some(Body::Chat(chat)) = message.body {
                    chats.push(chat.text);
                }
            }
            chats
        }));
    }
    (writers, readers)
}

fn scraped_level_name(level: f64) -> &'static str {
    if level >= 2.0 { "presence_paused" } else { "shedding" }
}

/// Passes every event to the test.
struct Recorder(Mutex<mpsc::Sender<LifecycleEvent>>);

impl Observer for Recorder {
    fn on_event(&self, event: &LifecycleEvent) {
        let _ = self.0.lock().unwrap().send(event.clone());
    }
}

fn next_event(events: &mpsc::Receiver<LifecycleEvent>) -> LifecycleEvent {
    events.recv_timeout(WAIT).expect("a lifecycle event in time")
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
    drop(ann);
    let LifecycleEvent::ConnectionClosed {
        session: closed,
        reason,
        ..
    } = next_event(&events)
    else {
        panic!("connection_closed")
    };
    assert_eq!((closed, reason), (session, DisconnectReason::ClientClosed));

    server.shutdown().await.unwrap();
    assert_eq!(next_event(&events), LifecycleEvent::ServerDraining);
    assert_eq!(next_event(&events), LifecycleEvent::ServerStopped);
}
