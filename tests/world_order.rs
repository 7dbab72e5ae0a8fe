//! A world's latest-only updates never overtake a reply queued before them:
//! after LeaveWorld(w1) and EnterWorld(w2) behind a backlog, the client reads
//! WorldLeft(w1), then WorldEntered(w2), then w2's first update.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::observe::scrape;
use support::{NO_RATE_LIMIT, WAIT, spawn_server};
use tavern::protocol::pb;
use tavern::protocol::pb::client_message::Body as Request;
use tavern::protocol::pb::server_message::Body;

#[tokio::test]
async fn a_world_update_never_overtakes_world_entered_or_world_left() {
    const BACKLOG: usize = 300;
    let server = spawn_server(
        &[
            &["--socket-send-buffer", "4096", "--world-tick-hz", "50"][..],
            NO_RATE_LIMIT,
        ]
        .concat(),
    );
    // Someone to see in w2, so that entering it makes an update at once.
    let mut neighbour = server.connect("neighbour").await;
    neighbour.enter_world("w2", Some((500.0, 500.0))).await.unwrap();
    let (_neighbour_writer, mut neighbour_reader) = neighbour.into_split();
    let neighbour_reads = tokio::spawn(async move { while neighbour_reader.next_event(WAIT).await.is_ok() {} });
    // The traveller stands alone in w1 (one update, then none), and is in a busy room.
    let mut traveller = server.connect_small_buffered("traveller").await;
    traveller.enter_world("w1", Some((100.0, 100.0))).await.unwrap();
    while !matches!(
        traveller.next_event(WAIT).await.unwrap().body,
        Some(Body::WorldUpdate(_))
    ) {}
    traveller.join("busy").await.unwrap();
    let mut talker = server.member("talker", "busy").await;
    // A backlog the traveller does not read: its socket fills and its queue holds the rest.
    for i in 0..BACKLOG {
        talker.chat("busy", &format!("chat {i}")).await.unwrap();
        while !matches!(talker.next_event(WAIT).await.unwrap().body, Some(Body::Chat(_))) {}
    }
    let (mut writer, mut reader) = traveller.into_split();
    let updates_before = scrape(&server).await["tavern_world_updates_total"];
    let leave = pb::LeaveWorld { world: "w1".into() };
    writer.send(Request::LeaveWorld(leave)).await.unwrap();
    let spawn = Some(pb::Position { x: 505.0, y: 500.0 });
    writer
        .send(Request::EnterWorld(pb::EnterWorld {
            world: "w2".into(),
            spawn,
        }))
        .await
        .unwrap();
    // Both players of w2 got their first update since: the traveller's waits behind the backlog.
    let deadline = tokio::time::Instant::now() + WAIT;
    while scrape(&server).await["tavern_world_updates_total"] < updates_before + 2.0 {
        assert!(tokio::time::Instant::now() < deadline, "w2 made no update");
        tokio::task::yield_now().await;
    }
    // Now read everything: the order must be the order of the causes.
    let mut order = Vec::new();
    while !order.iter().any(|seen| *seen == "update") {
        match reader.next_event(WAIT).await.unwrap().body {
            Some(Body::WorldLeft(left)) => order.push(format!("left {}", left.world)),
            Some(Body::WorldEntered(entered)) => order.push(format!("entered {}", entered.world)),
            Some(Body::WorldUpdate(_)) => order.push("update".to_owned()),
            _ => {}
        }
    }
    assert_eq!(order, ["left w1", "entered w2", "update"]);
    neighbour_reads.abort();
}
