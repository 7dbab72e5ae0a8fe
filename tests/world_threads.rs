//! Worlds run on a fixed set of threads made at start: entering many worlds
//! starts no thread. (Its own test binary, so that the process's thread count
//! moves only with this server.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{WAIT, spawn_server};
use tavern::client::Client;
use tavern::protocol::pb::{self, client_message::Body as Request, server_message::Body};

/// Leaves `world` and waits for WorldLeft.
async fn leave_world(client: &mut Client, world: &str) {
    let leave = pb::LeaveWorld { world: world.into() };
    client.send(Request::LeaveWorld(leave)).await.unwrap();
    while !matches!(client.next_event(WAIT).await.unwrap().body, Some(Body::WorldLeft(_))) {}
}

/// Threads of this process now.
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("Threads:")).unwrap();
    line["Threads:".len()..].trim().parse().unwrap()
}

#[tokio::test]
async fn entering_many_worlds_starts_no_thread() {
    const WORLDS: usize = 16;
    // One world spare: a world just left closes a moment after its WorldLeft.
    let server = spawn_server(&["--max-worlds", "17", "--world-threads", "1"]);
    let mut players = Vec::new();
    // One player first: whatever the first world entered starts lazily is counted before.
    let mut first = server.connect("p0").await;
    first.enter_world("w0", None).await.unwrap();
    players.push(first);
    let before = threads();
    for i in 1..WORLDS {
        let mut player = server.connect(&format!("p{i}")).await;
        player.enter_world(&format!("w{i}"), None).await.unwrap();
        players.push(player);
    }
    // Churn: a thousand worlds entered and left, one after another.
    let churner = &mut players[0];
    leave_world(churner, "w0").await;
    for i in 0..1000 {
        let name = format!("churn{i}");
        churner.enter_world(&name, None).await.unwrap();
        leave_world(churner, &name).await;
    }
    let after = threads();
    assert!(
        after <= before + 1,
        "{before} threads before, {after} after entering {WORLDS} worlds"
    );
    assert!(server.stats.worlds_open.get() <= i64::try_from(WORLDS).unwrap());
}
