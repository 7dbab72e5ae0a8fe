//! The reconnecting client over TCP: its connection is cut (a reset), it
//! connects again with backoff and says Hello with its resume token. Within
//! the grace period it gets its session back, and the others never see it
//! leave; past it, it starts a new session, and the others saw it leave.
//! Either way it joins its room again from the last seq it saw, and reads
//! what it missed in order, then live events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{WAIT, next_body, spawn_server};
use tavern::client::{Backoff, Client, Event, Reconnecting};
use tavern::protocol::pb::server_message::Body;

const BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(10),
    cap: Duration::from_millis(200),
    attempts: 50,
};

/// The next room event's seq and what it is (not a reconnection).
async fn next_sequenced(client: &mut Reconnecting) -> (u64, String) {
    let Event::Message(message) = client.next_event(WAIT).await.unwrap() else {
        panic!("a second reconnection");
    };
    describe(message.body)
}

fn describe(body: Option<Body>) -> (u64, String) {
    match body {
        Some(Body::Chat(chat)) => (chat.seq, format!("chat {}", chat.text)),
        Some(Body::MemberJoined(joined)) => (joined.seq, format!("joined {}", joined.member.unwrap().name)),
        Some(Body::MemberLeft(left)) => (left.seq, format!("left {}", left.member.unwrap().name)),
        other => panic!("expected a room event, got {other:?}"),
    }
}

/// Ann's next event, which must be `what` with `seq`.
async fn ann_sees(ann: &mut Client, seq: u64, what: &str) {
    assert_eq!(describe(Some(next_body(ann).await)), (seq, what.to_owned()));
}

#[tokio::test]
async fn a_cut_connection_resumes_its_session_and_recovers_what_it_missed() {
    let server = spawn_server(&[]);
    let mut ann = server.member("ann", "r").await;
    let mut bob = Reconnecting::connect(server.addr, "bob", "", BACKOFF).await.unwrap();
    let joined = bob.join("r").await.unwrap();
    ann_sees(&mut ann, joined.seq, "joined bob").await;
    ann.chat("r", "before").await.unwrap();
    ann_sees(&mut ann, joined.seq + 1, "chat before").await;
    let (seen, what) = next_sequenced(&mut bob).await;
    assert_eq!((seen, what.as_str()), (joined.seq + 1, "chat before"));

    bob.disconnect();
    assert!(
        bob.chat("r", "while down").await.is_err(),
        "requests fail fast while disconnected"
    );
    let missed = ["one", "two", "three"];
    for (seq, text) in (seen + 1..).zip(missed) {
        ann.chat("r", text).await.unwrap();
        // Ann's very next event is her own chat: she never sees Bob leave.
        ann_sees(&mut ann, seq, &format!("chat {text}")).await;
    }
    let Event::Reconnected(back) = bob.next_event(WAIT).await.unwrap() else {
        panic!("expected Reconnected");
    };
    assert!(back.resumed, "the session was held for the resume");
    assert_eq!(back.rooms, [("r".to_owned(), true)]);
    // Exactly the missed chats, in order, with their seqs: Bob never left, so no presence.
    for (seq, text) in (seen + 1..).zip(missed) {
        assert_eq!(next_sequenced(&mut bob).await, (seq, format!("chat {text}")));
    }
    // Live events go on with no gap, for both; Ann saw no MemberLeft or MemberJoined.
    bob.chat("r", "back").await.unwrap();
    assert_eq!(next_sequenced(&mut bob).await, (seen + 4, "chat back".to_owned()));
    ann_sees(&mut ann, seen + 4, "chat back").await;
}

#[tokio::test]
async fn past_the_grace_period_the_session_is_gone_and_the_others_saw_it_leave() {
    let server = spawn_server(&["--resume-grace-ms", "200"]);
    let mut ann = server.member("ann", "r").await;
    let mut bob = Reconnecting::connect(server.addr, "bob", "", BACKOFF).await.unwrap();
    let joined = bob.join("r").await.unwrap();
    ann_sees(&mut ann, joined.seq, "joined bob").await;
    bob.disconnect();
    // The grace period ends: Bob's seat is given up, as any departure.
    ann_sees(&mut ann, joined.seq + 1, "left bob").await;
    let Event::Reconnected(back) = bob.next_event(WAIT).await.unwrap() else {
        panic!("expected Reconnected");
    };
    assert!(!back.resumed, "the token came too late: a fresh session");
    // Joined again as a returning member: it recovers its own departure, then its new join.
    assert_eq!(back.rooms, [("r".to_owned(), true)]);
    assert_eq!(next_sequenced(&mut bob).await, (joined.seq + 1, "left bob".to_owned()));
    assert_eq!(
        next_sequenced(&mut bob).await,
        (joined.seq + 2, "joined bob".to_owned())
    );
    ann_sees(&mut ann, joined.seq + 2, "joined bob").await;
}
