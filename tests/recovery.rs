//! Recovery over TCP: a member that rejoins a room with the last seq it saw
//! and the room's epoch gets every event it missed, in order, with their
//! seq, then live events with no gap; a stale epoch or a history too short
//! gives `recovered: false` and no replay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{WAIT, spawn_server};
use tavern::client::Client;
use tavern::protocol::pb::server_message::Body;

/// The seq of a sequenced room event, and what it is.
async fn next_sequenced(client: &mut Client) -> (u64, String) {
    match client.next_event(WAIT).await.expect("an event in time").body {
        Some(Body::Chat(chat)) => (chat.seq, format!("chat {}", chat.text)),
        Some(Body::MemberJoined(joined)) => (joined.seq, format!("joined {}", joined.member.unwrap().name)),
        Some(Body::MemberLeft(left)) => (left.seq, format!("left {}", left.member.unwrap().name)),
        other => panic!("expected a room event, got {other:?}"),
    }
}

/// Sends `text` to room `r` and waits for its echo: the room has ordered it.
async fn chat_ordered(client: &mut Client, text: &str) {
    client.chat("r", text).await.unwrap();
    loop {
        if let Some(Body::Chat(chat)) = client.next_event(WAIT).await.expect("the echo in time").body
            && chat.text == text
        {
            return;
        }
    }
}

#[tokio::test]
async fn a_returning_member_recovers_what_it_missed_in_order() {
    let server = spawn_server(&[]);
    let mut ann = server.member("ann", "r").await;
    let mut bob = server.connect("bob").await;
    let joined = bob.join("r").await.unwrap();
    assert_ne!(joined.epoch, 0);
    assert!(!joined.recovered);
    ann.chat("r", "before").await.unwrap();
    let (seen, _) = next_sequenced(&mut bob).await;
    bob.leave("r").await.unwrap();
    for text in ["one", "two", "three"] {
        chat_ordered(&mut ann, text).await;
    }
    let back = bob.rejoin("r", seen, joined.epoch).await.unwrap();
    assert!(back.recovered);
    assert_eq!((back.epoch, back.seq), (joined.epoch, seen + 5));
    let mut replayed = Vec::new();
    for _ in 0..5 {
        replayed.push(next_sequenced(&mut bob).await);
    }
    let expected = ["left bob", "chat one", "chat two", "chat three", "joined bob"];
    let seqs: Vec<u64> = (seen + 1..=seen + 5).collect();
    assert_eq!(replayed.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), seqs);
    assert_eq!(
        replayed.iter().map(|(_, what)| what.as_str()).collect::<Vec<_>>(),
        expected
    );
    // Live events go on from there, with no gap and no duplicate.
    ann.chat("r", "live").await.unwrap();
    assert_eq!(next_sequenced(&mut bob).await, (seen + 6, "chat live".to_owned()));
}

#[tokio::test]
async fn a_stale_epoch_or_a_short_history_is_not_recovered() {
    let server = spawn_server(&["--room-history-size", "2"]);
    let mut ann = server.member("ann", "r").await;
    let mut bob = server.connect("bob").await;
    let joined = bob.join("r").await.unwrap();
    bob.leave("r").await.unwrap();
    // Another epoch: nothing replayed, the next event is live.
    let stale = bob.rejoin("r", joined.seq, joined.epoch + 1).await.unwrap();
    assert!(!stale.recovered);
    ann.chat("r", "live").await.unwrap();
    assert_eq!(next_sequenced(&mut bob).await, (stale.seq + 1, "chat live".to_owned()));
    bob.leave("r").await.unwrap();
    // More missed than the room keeps.
    for text in ["one", "two", "three"] {
        chat_ordered(&mut ann, text).await;
    }
    let short = bob.rejoin("r", stale.seq + 1, joined.epoch).await.unwrap();
    assert!(!short.recovered);
    ann.chat("r", "after").await.unwrap();
    assert_eq!(next_sequenced(&mut bob).await, (short.seq + 1, "chat after".to_owned()));
    // A room made again is another epoch.
    ann.goodbye().await.unwrap();
    bob.leave("r").await.unwrap();
    let mut cat = server.connect("cat").await;
    let again = cat.join("r").await.unwrap();
    assert_ne!(again.epoch, joined.epoch);
}
