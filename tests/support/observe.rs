//! Watching a server from a test: its metrics page, its `/stats`, and its
//! lifecycle events through an observer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, mpsc};

use tavern::{LifecycleEvent, Observer};

use super::{TestServer, WAIT, spawn_server_with};

/// Every sample of a Prometheus text page, by name with labels (`name{a="b"}`).
pub fn samples(page: &str) -> HashMap<String, f64> {
    page.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Every metric of the server now.
pub async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let (status, page) = server.admin_get("/metrics").await;
    assert_eq!(status, 200);
    samples(&page)
}

/// The server's `/stats`.
pub async fn stats(server: &TestServer) -> serde_json::Value {
    let (status, body) = server.admin_get("/stats").await;
    assert_eq!(status, 200);
    serde_json::from_str(&body).unwrap()
}

/// Passes every lifecycle event to the test.
struct Recorder(Mutex<mpsc::Sender<LifecycleEvent>>);

impl Observer for Recorder {
    fn on_event(&self, event: &LifecycleEvent) {
        let _ = self.0.lock().unwrap().send(event.clone());
    }
}

/// A server with `args` whose lifecycle events arrive on the returned channel.
pub fn observed_server(args: &[&str]) -> (TestServer, mpsc::Receiver<LifecycleEvent>) {
    let (tx, events) = mpsc::channel();
    let recorder = Arc::new(Recorder(Mutex::new(tx)));
    let server = spawn_server_with(args, move |server| server.with_observer(recorder));
    (server, events)
}

/// Skips events until one `wanted` comes, within [`WAIT`].
pub fn wait_for(events: &mpsc::Receiver<LifecycleEvent>, wanted: impl Fn(&LifecycleEvent) -> bool) -> LifecycleEvent {
    wait_for_within(events, WAIT, wanted)
}

/// Skips events until one `wanted` comes, within `limit`.
pub fn wait_for_within(
    events: &mpsc::Receiver<LifecycleEvent>,
    limit: std::time::Duration,
    wanted: impl Fn(&LifecycleEvent) -> bool,
) -> LifecycleEvent {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let event = events.recv_timeout(left).expect("the awaited lifecycle event in time");
        if wanted(&event) {
            return event;
        }
    }
}

/// The next lifecycle event, within [`WAIT`].
pub fn next_event(events: &mpsc::Receiver<LifecycleEvent>) -> LifecycleEvent {
    events.recv_timeout(WAIT).expect("a lifecycle event in time")
}
