//! Overload by memory: resident memory rarely falls after a spike, so memory
//! that stopped growing must stop the shedding. (Its own test binary: the
//! figure is the whole process's memory, which other tests would move.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::WAIT;
use support::observe::{observed_server, wait_for_within};
use tavern::LifecycleEvent;
use tavern::client::Client;
use tavern::ids::OverloadLevel;

#[tokio::test]
async fn memory_that_stops_growing_stops_the_shedding() {
    // 1 MiB: the process is always above it, so only growth counts.
    let (server, events) = observed_server(&["--overload-rss-mb", "1"]);
    // Grow: a few hundred connections with their buffers.
    let mut clients = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut shed = false;
    while !shed {
        assert!(tokio::time::Instant::now() < deadline, "growing memory never shed load");
        for _ in 0..50 {
            match Client::connect(server.addr).await {
                Ok(client) => clients.push(client),
                Err(_) => break,
            }
        }
        shed = std::iter::from_fn(|| events.try_recv().ok())
            .any(|e| matches!(e, LifecycleEvent::OverloadChanged { level } if level != OverloadLevel::Normal));
    }
    // Held, no longer growing: shedding ends within the growth window.
    let events = tokio::task::spawn_blocking(move || {
        wait_for_within(&events, tavern::overload::RSS_GROWTH_WINDOW + WAIT, |e| {
            *e == LifecycleEvent::OverloadChanged {
                level: OverloadLevel::Normal,
            }
        });
        events
    })
    .await
    .unwrap();
    let mut fresh = server.connect("fresh").await;
    fresh.join("elsewhere").await.unwrap();
    drop((clients, events));
}
