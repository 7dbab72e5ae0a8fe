//! Graceful shutdown: what was queued arrives, then ServerShutdown, then the close.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{WAIT, read_to_close, spawn_server};
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
