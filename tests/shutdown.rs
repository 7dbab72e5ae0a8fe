//! Graceful shutdown: what was queued arrives, then ServerShutdown, then the close.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{NO_RATE_LIMIT, WAIT, read_to_close, spawn_server};
use tavern::client::Client;
use tavern::protocol::pb::server_message::Body;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_chat_then_server_shutdown_reach_every_client() {
    const MESSAGES: usize = 100;
    let server = spawn_server(&["--reconnect-after-ms", "1234"]);
    let mut listeners = Vec::new();
    for name in ["ann", "bob", "cat"] {
        listeners.push(server.member(name, "room").await);
    }
    let lobby_only = Client::connect(server.addr).await.unwrap();
    let mut publisher = server.member("publisher", "room").await;
    let mut last = 0;
    for i in 0..MESSAGES {
        last = publisher.chat("room", &format!("m{i}")).await.unwrap();
    }
    // The echo of the last message means the room queued all of them for everyone.
    loop {
        if publisher.next_event(WAIT).await.unwrap().request_id == last {
            break;
        }
    }
    // Nobody else has read anything yet: it is all still queued when shutdown starts.
    let stopped = tokio::spawn(server.shutdown());

    for client in listeners {
        // Keep the write half: dropping it would half-close the socket, a goodbye of the client's own.
        let (_writer, mut reader) = client.into_split();
        let messages = read_to_close(&mut reader).await;
        let chats: Vec<&str> = messages
            .iter()
            .filter_map(|m| match &m.body {
                Some(Body::Chat(c)) => Some(c.text.as_str()),
                _ => None,
            })
            .collect();
        let expected: Vec<String> = (0..MESSAGES).map(|i| format!("m{i}")).collect();
        assert_eq!(chats, expected);
        let Some(Body::Shutdown(shutdown)) = &messages.last().unwrap().body else {
            panic!("expected ServerShutdown last, got {:?}", messages.last())
        };
        assert_eq!(shutdown.reconnect_after_ms, 1234);
    }
    for client in [lobby_only, publisher] {
        let (_writer, mut reader) = client.into_split();
        let messages = read_to_close(&mut reader).await;
        assert!(
            matches!(messages.last().unwrap().body, Some(Body::Shutdown(_))),
            "{messages:?}"
        );
    }
    stopped.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_with_no_clients_returns_promptly() {
    let server = spawn_server(&[]);
    tokio::time::timeout(WAIT, server.shutdown()).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_chat_a_room_took_during_shutdown_reaches_every_member() {
    const CHATS: usize = 3000;
    // A room inbox of 2: the publisher's session is nearly always waiting for
    // space when shutdown begins, with a chat it read and has yet to hand on.
    let server = spawn_server(&[&["--room-inbox", "2"][..], NO_RATE_LIMIT].concat());
    let mut readers = Vec::new();
    for name in ["ann", "bob", "cat"] {
        let (writer, mut reader) = server.member(name, "room").await.into_split();
        readers.push(tokio::spawn(async move {
            let messages = read_to_close(&mut reader).await;
            drop(writer);
            messages
                .iter()
                .filter(|m| matches!(m.body, Some(Body::Chat(_))))
                .count()
        }));
    }
    let (mut publisher, mut echoes) = server.member("publisher", "room").await.into_split();
    let echoed = tokio::spawn(async move { read_to_close(&mut echoes).await });
    let mut pings = Vec::new();
    for i in 0..CHATS {
        let chat = tavern::protocol::pb::ClientMessage {
            request_id: 1,
            body: Some(tavern::protocol::pb::client_message::Body::SendChat(
                tavern::protocol::pb::SendChat {
                    room: "room".into(),
                    text: format!("m{i}"),
                },
            )),
        };
        pings.extend_from_slice(&tavern::protocol::encode_frame(&chat));
    }
    publisher.send_raw(&pings).await.unwrap();
    // Shut down while the room is still taking them.
    let stats = server.stats.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while stats.chat_messages.get() < 10 {
        assert!(tokio::time::Instant::now() < deadline, "no chat got through");
        tokio::task::yield_now().await;
    }
    server.shutdown().await.unwrap();
    let ordered = usize::try_from(stats.chat_messages.get()).unwrap();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), ordered, "a member lost chats the room took");
    }
    echoed.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_its_backlog_within_the_grace_period_not_the_close_timeout() {
    const CHATS: usize = 500;
    let server = spawn_server(&[
        "--close-timeout-ms",
        "200",
        "--shutdown-grace-ms",
        "10000",
        "--socket-send-buffer",
        "4096",
    ]);
    let mut slow = server.connect_small_buffered("slow").await;
    slow.join("room").await.unwrap();
    let mut publisher = server.member("publisher", "room").await;
    for i in 0..CHATS {
        publisher.chat("room", &format!("m{i}")).await.unwrap();
        while !matches!(publisher.next_event(WAIT).await.unwrap().body, Some(Body::Chat(_))) {}
    }
    let stopped = tokio::spawn(server.shutdown());
    // A client slower than the close timeout, but well within the grace period.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let (_writer, mut reader) = slow.into_split();
    let messages = read_to_close(&mut reader).await;
    let chats = messages
        .iter()
        .filter(|m| matches!(m.body, Some(Body::Chat(_))))
        .count();
    assert_eq!(chats, CHATS, "the backlog was cut short");
    assert!(matches!(messages.last().unwrap().body, Some(Body::Shutdown(_))));
    drop(publisher);
    stopped.await.unwrap().unwrap();
}
