#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Write batching: a writer lets its thread finish the work already ready
//! before it writes, so frames queued meanwhile share the write; a lone
//! frame still goes out after that one round, however long the coalescing
//! budget, and every frame arrives in order.

mod support;

use std::time::Duration;

use support::observe::scrape;
use support::{NO_RATE_LIMIT, next_in_order, spawn_server};
use tavern::protocol::pb::server_message::Body;

/// A coalescing budget far longer than any wait below.
const AN_HOUR_US: &str = "3600000000";

#[tokio::test]
async fn a_lone_frame_is_written_after_one_round_not_after_the_budget() {
    let server = spawn_server(&["--write-coalesce-us", AN_HOUR_US]);
    let mut client = server.connect("lonely").await;
    for _ in 0..20 {
        // The client waits for each Pong within its request timeout (seconds);
        // a writer that held frames for the budget would wait an hour.
        let pong = tokio::time::timeout(Duration::from_secs(5), client.ping())
            .await
            .expect("the Pong came within 5 s, not after the coalescing budget")
            .expect("a Pong");
        assert!(pong.server_time_us > 0);
    }
}

#[tokio::test]
async fn frames_queued_together_share_writes_and_arrive_in_order() {
    const CHATS: u64 = 2000;
    // A small send buffer: while the listener's socket is full, its frames
    // queue, and the next write carries all of them that fit.
    let server = spawn_server(&[NO_RATE_LIMIT, &["--socket-send-buffer", "4096"]].concat());
    let talker = server.member("talker", "hall").await;
    let mut listener = server.connect("listener").await;
    let mut seq = listener.join("hall").await.unwrap().seq;
    let (mut talker, _) = talker.into_split();
    let (_listener_writer, mut listener) = listener.into_split();
    // Sent without waiting for echoes, so that chats queue while the listener's writer is busy.
    for i in 0..CHATS {
        talker.chat("hall", &format!("chat {i}")).await.unwrap();
    }
    let mut chats = 0;
    while chats < CHATS {
        if let Body::Chat(chat) = next_in_order(&mut listener, &mut seq).await {
            assert_eq!(chat.text, format!("chat {chats}"), "in the order sent");
            chats += 1;
        }
    }
    let figures = scrape(&server).await;
    let (frames, writes) = (
        figures["tavern_messages_out_total"],
        figures["tavern_socket_writes_total"],
    );
    assert!(
        writes < frames,
        "{frames} frames took {writes} writes: frames queued together share a write"
    );
}
