//! Fan-out at size, and what a member that stops reading costs the others.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{WAIT, expect_error, read_to_close, spawn_server};
use tavern::client::ClientReader;
use tavern::protocol::ErrorCode;
use tavern::protocol::pb::server_message::Body;

/// Reads `count` chats from `room`; checks they are in send order and that
/// every room event's seq follows the previous one. Returns the presence events seen.
async fn read_chats(reader: &mut ClientReader, room: &str, count: usize, mut seq: u64) -> Vec<Body> {
    let mut presence = Vec::new();
    let mut next = 0;
    while next < count {
        let body = support::next_in_order(reader, &mut seq).await;
        assert_eq!(support::room_event(&body).map(|(in_room, _)| in_room), Some(room));
        match body {
            Body::Chat(chat) => {
                assert_eq!(chat.text, format!("m{next}"));
                next += 1;
            }
            other => presence.push(other),
        }
    }
    presence
}

/// A publisher is a member too: reads the `count` echoes of its own chats so
/// that its queue never fills.
async fn read_echoes(mut echoes: ClientReader, count: usize) {
    let mut got = 0;
    while got < count {
        if let Body::Chat(_) = echoes.next_event(WAIT).await.unwrap().body.unwrap() {
            got += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_members_each_receive_a_thousand_messages_in_order() {
    const MEMBERS: usize = 200;
    const MESSAGES: usize = 1000;
    let server = spawn_server(&[]);
    let mut readers = Vec::new();
    for i in 0..MEMBERS {
        let mut client = server.connect(&format!("m{i}")).await;
        let joined = client.join("big").await.unwrap();
        let (writer, mut reader) = client.into_split();
        readers.push(tokio::spawn(async move {
            // Everyone after this member joins first: that presence comes before any chat.
            let mut seq = joined.seq;
            for _ in i + 1..MEMBERS + 1 {
                let body = reader.next_event(WAIT).await.unwrap().body.unwrap();
                let Body::MemberJoined(j) = body else {
                    panic!("expected MemberJoined, got {body:?}")
                };
                assert_eq!(j.seq, seq + 1);
                seq = j.seq;
            }
            let presence = read_chats(&mut reader, "big", MESSAGES, seq).await;
            assert!(presence.is_empty(), "{presence:?}");
            drop(writer);
        }));
    }
    let publisher = server.member("publisher", "big").await;
    let (mut writer, echoes) = publisher.into_split();
    let echo = tokio::spawn(read_echoes(echoes, MESSAGES));
    for i in 0..MESSAGES {
        writer.chat("big", &format!("m{i}")).await.unwrap();
    }
    for reader in readers {
        reader.await.unwrap();
    }
    echo.await.unwrap();
    assert_eq!(server.stats.chat_messages.get(), 1000);
    assert_eq!(server.stats.deliveries.get(), 1000 * 201);
    assert_eq!(server.stats.slow_consumer_disconnects.get(), 0);
}

/// A member that never reads fills its queue and is disconnected with
/// SLOW_CONSUMER; the others receive every message. The publisher stays at most
/// `WINDOW` messages ahead of the reading members, well inside their queue
/// bound, so only the member that never reads can fall behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_never_reads_is_disconnected_and_the_rest_lose_nothing() {
    const MESSAGES: usize = 2000;
    const WINDOW: usize = 64;
    let text = "x".repeat(1000);
    // The publisher goes as fast as the readers: the rate limit is raised out of its way.
    let server = spawn_server(&[support::TIGHT_QUEUES, support::NO_RATE_LIMIT].concat());
    let slow = server.member("slow", "room").await;
    let fast = [
        server.member("fast1", "room").await,
        server.member("fast2", "room").await,
    ];
    let publisher = server.member("publisher", "room").await;
    let mut readers = Vec::new();
    let mut progress = Vec::new();
    for (i, client) in fast.into_iter().enumerate() {
        let (writer, mut reader) = client.into_split();
        let (read, watch) = tokio::sync::watch::channel(0_usize);
        progress.push(watch);
        let text = text.clone();
        readers.push(tokio::spawn(async move {
            // fast1 joined at seq 2 and sees fast2 and the publisher join; fast2 joined at 3.
            let mut seq = 2 + u64::try_from(i).unwrap();
            while seq < 4 {
                let body = reader.next_event(WAIT).await.unwrap().body.unwrap();
                let Body::MemberJoined(joined) = body else {
                    panic!("expected MemberJoined, got {body:?}")
                };
                seq = joined.seq;
            }
            let mut seen_left = Vec::new();
            let mut chats = 0;
            while chats < MESSAGES {
                match support::next_in_order(&mut reader, &mut seq).await {
                    Body::Chat(chat) => {
                        assert_eq!(chat.text, text);
                        chats += 1;
                        let _ = read.send(chats);
                    }
                    Body::MemberLeft(left) => seen_left.push(left.member.unwrap().name),
                    other => panic!("unexpected {other:?}"),
                }
            }
            drop(writer);
            seen_left
        }));
    }
    let (mut writer, echoes) = publisher.into_split();
    let echo = tokio::spawn(read_echoes(echoes, MESSAGES));
    for i in 0..MESSAGES {
        for reader in &mut progress {
            let caught_up = reader.wait_for(|&read| read + WINDOW >= i);
            tokio::time::timeout(WAIT, caught_up)
                .await
                .expect("readers keep up")
                .unwrap();
        }
        writer.chat("room", &text).await.unwrap();
    }
    for reader in readers {
        let left = reader.await.unwrap();
        assert_eq!(left, ["slow"], "the others saw the slow member go, and only it");
    }
    echo.await.unwrap();
    assert_eq!(server.stats.slow_consumer_disconnects.get(), 1);

    // The slow member finally reads: some chats, then SLOW_CONSUMER, then the end.
    let (_, mut slow_reader) = slow.into_split();
    let messages = read_to_close(&mut slow_reader).await;
    let last = messages.last().expect("at least the error");
    assert_eq!(expect_error(last).code(), ErrorCode::SlowConsumer);
    let chats = messages
        .iter()
        .filter(|m| matches!(m.body, Some(Body::Chat(_))))
        .count();
    assert!(
        chats < MESSAGES,
        "the slow member cannot have taken everything ({chats})"
    );
}
