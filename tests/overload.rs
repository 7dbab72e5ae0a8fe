//! Overload protection against a real server: it sheds when the server is
//! saturated, never because one client is slow, and recovers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::observe::{observed_server, scrape, stats, wait_for};
use support::{NO_RATE_LIMIT, TestServer, WAIT, expect_error, read_to_close};
use tavern::LifecycleEvent;
use tavern::client::{Client, ClientWriter};
use tavern::ids::OverloadLevel;
use tavern::protocol::ErrorCode;
use tavern::protocol::pb::server_message::Body;

#[tokio::test]
async fn overload_sheds_new_joins_and_connections_then_recovers() {
    const MEMBERS: usize = 100;
    const BURST: usize = 20;
    // A room inbox of two commands: one join at a time fills it to half (the
    // threshold, not above it); a burst of chats fills it, which is saturation.
    // The rate limit is raised out of the way: an optimised build chats faster than the default.
    let (server, events) = observed_server(&[&["--room-inbox", "2"][..], NO_RATE_LIMIT].concat());
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

/// Waits until the monitor has judged the load `more` more times than in `before`.
async fn judged(server: &TestServer, more: f64) {
    let before = scrape(server).await["tavern_overload_checks_total"];
    let deadline = tokio::time::Instant::now() + WAIT;
    while scrape(server).await["tavern_overload_checks_total"] < before + more {
        assert!(tokio::time::Instant::now() < deadline, "the monitor stopped judging");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_client_with_a_deep_queue_does_not_overload_the_server() {
    const CHATS: usize = 3000;
    // Default overload settings. A small send buffer, so that the sleeper's
    // queue grows while it does not read.
    // The rate limit is raised out of the way of the talker.
    let (server, events) = observed_server(
        &[
            &["--socket-send-buffer", "4096", "--write-batch-bytes", "512"][..],
            NO_RATE_LIMIT,
        ]
        .concat(),
    );
    let mut sleeper = server.connect_small_buffered("sleeper").await;
    sleeper.join("busy").await.unwrap();
    let mut talker = server.member("talker", "busy").await;
    // One chat at a time, each after the last one's echo: the server itself is never busy.
    for i in 0..CHATS {
        talker.chat("busy", &format!("chat {i}")).await.unwrap();
        while !matches!(talker.next_event(WAIT).await.unwrap().body, Some(Body::Chat(_))) {}
    }
    // The sleeper's queue now holds most of the chats; it reads them all back.
    let (_writer, mut sleeper) = sleeper.into_split();
    let mut seen = 0;
    while seen < CHATS {
        if let Some(Body::Chat(_)) = sleeper.next_event(WAIT).await.unwrap().body {
            seen += 1;
        }
    }
    let deep = scrape(&server).await["tavern_outbound_queue_depth_bucket{le=\"1024\"}"];
    let all = scrape(&server).await["tavern_outbound_queue_depth_count"];
    // The sleeper's writer found over 1,024 frames queued (the depth that
    // once drove overload, as a percentile over all writers).
    assert!(
        all - deep >= 1.0,
        "no writer found a deep queue: {deep} of {all} at most 1024"
    );
    // Two judgements later, nothing changed: the server is not saturated.
    judged(&server, 2.0).await;
    assert_eq!(stats(&server).await["overload"], "normal");
    let changes: Vec<LifecycleEvent> = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, LifecycleEvent::OverloadChanged { .. }))
        .collect();
    assert!(changes.is_empty(), "the overload level changed: {changes:?}");
    let mut fresh = server.connect("fresh").await;
    fresh.join("elsewhere").await.unwrap();
}
