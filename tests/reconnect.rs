//! The reconnecting client over TCP: its connection dropped, it connects
//! again with backoff, says Hello, joins its room again from the last seq it
//! saw, and reads what it missed in order, then live events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{WAIT, spawn_server};
use tavern::client::{Backoff, Event, Reconnecting};
use tavern::protocol::pb::server_message::Body;

/// The next room event's seq and what it is (not a reconnection).
async fn next_sequenced(client: &mut Reconnecting) -> (u64, String) {
    let Event::Message(message) = client.next_event(WAIT).await.unwrap() else {
        panic!("a second reconnection");
    };
    match message.body {
        Some(Body::Chat(chat)) => (chat.seq, format!("chat {}", chat.text)),
        Some(Body::MemberJoined(joined)) => (joined.seq, format!("joined {}", joined.member.unwrap().name)),
        Some(Body::MemberLeft(left)) => (left.seq, format!("left {}", left.member.unwrap().name)),
        other => panic!("expected a room event, got {other:?}"),
    }
}

#[tokio::test]
async fn a_dropped_client_reconnects_and_recovers_what_it_missed() {
    let server = spawn_server(&[]);
    let mut ann = server.member("ann", "r").await;
    let backoff = Backoff {
        first: Duration::from_millis(10),
        cap: Duration::from_millis(200),
        attempts: 50,
    };
    let mut bob = Reconnecting::connect(server.addr, "bob", "", backoff).await.unwrap();
    bob.join("r").await.unwrap();
    ann.chat("r", "before").await.unwrap();
    let (seen, what) = next_sequenced(&mut bob).await;
    assert_eq!(what, "chat before");
    bob.disconnect();
    assert!(
        bob.chat("r", "while down").await.is_err(),
        "requests fail fast while disconnected"
    );
    for text in ["one", "two"] {
        // Ordered by the room (its echo came back) before Bob returns.
        ann.chat("r", text).await.unwrap();
        while !matches!(ann.next_event(WAIT).await.unwrap().body, Some(Body::Chat(chat)) if chat.text == text) {}
    }
    let Event::Reconnected(back) = bob.next_event(WAIT).await.unwrap() else {
        panic!("expected Reconnected");
    };
    assert_eq!(back.rooms, [("r".to_owned(), true)]);
    assert!(!back.resumed);
    // Everything after the last seq seen, in order, with no gap: the missed
    // chats (and the old session's departure, wherever it fell), then the new join.
    let mut replayed = Vec::new();
    loop {
        let (seq, what) = next_sequenced(&mut bob).await;
        assert_eq!(seq, seen + 1 + u64::try_from(replayed.len()).unwrap(), "{replayed:?}");
        let done = what == "joined bob";
        replayed.push(what);
        if done {
            break;
        }
    }
    let chats: Vec<&str> = replayed
        .iter()
        .map(String::as_str)
        .filter(|w| w.starts_with("chat"))
        .collect();
    assert_eq!(chats, ["chat one", "chat two"]);
    // Live events go on with no gap (the old session's departure may come
    // before or after the new join, as the server noticed the drop).
    bob.chat("r", "back").await.unwrap();
    let mut next = seen + 1 + u64::try_from(replayed.len()).unwrap();
    loop {
        let (seq, what) = next_sequenced(&mut bob).await;
        assert_eq!(seq, next, "{what}");
        next += 1;
        if what == "chat back" {
            break;
        }
        assert_eq!(what, "left bob");
    }
}
