//! Entering a crowd costs bounded updates: one WorldUpdate announces at most
//! `world_max_entered_per_update` entities, and the rest enter on later ticks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;

use support::{WAIT, spawn_server};
use tavern::protocol::pb::server_message::Body;

#[tokio::test]
async fn a_crowd_enters_a_view_in_bounded_updates() {
    const CROWD: usize = 30;
    let server = spawn_server(&["--world-max-entered-per-update", "10", "--world-tick-hz", "50"]);
    let mut crowd = Vec::new();
    for i in 0..CROWD {
        let mut member = server.connect(&format!("c{i}")).await;
        member.enter_world("w", Some((500.0, 500.0))).await.unwrap();
        crowd.push(member);
    }
    let mut newcomer = server.connect("newcomer").await;
    newcomer.enter_world("w", Some((500.0, 500.0))).await.unwrap();
    let mut seen = HashSet::new();
    let mut updates = 0;
    while seen.len() < CROWD + 1 {
        let Some(Body::WorldUpdate(update)) = newcomer.next_event(WAIT).await.unwrap().body else {
            continue;
        };
        assert!(
            update.entered.len() <= 10,
            "{} entered in one update",
            update.entered.len()
        );
        seen.extend(update.entered.iter().map(|e| e.id));
        updates += 1;
    }
    assert!(updates >= 4, "31 entities in {updates} updates of at most 10");
    assert!(server.stats.world_entries_deferred.get() >= 21);
}
