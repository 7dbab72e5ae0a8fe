//! Clusters for tests: nodes joined to one NATS server, ready and seeing
//! each other, and what tests ask of them (their `/cluster` reports, who owns
//! a room) and of their clients.

use std::time::{Duration, Instant};

use tavern::client::Client;
use tavern::protocol::pb;
use tavern::protocol::pb::client_message::Body as Request;
use tavern::protocol::pb::server_message::Body;

use super::WAIT;
use super::cluster::{NatsServer, Node};

/// Quick liveness, so a killed node is noticed within a second or two.
pub const FAST: &[&str] = &["--cluster-heartbeat-ms", "200", "--cluster-node-ttl-ms", "1200"];

/// Nodes `ids` joined to `nats`, ready, each seeing all the others live.
pub async fn nodes(nats: &NatsServer, ids: &[&str]) -> Vec<Node> {
    let nodes: Vec<Node> = ids.iter().map(|id| Node::spawn(&nats.url(), id, FAST)).collect();
    for node in &nodes {
        node.wait_ready().await;
    }
    for node in &nodes {
        wait_until(node, |report| {
            report["live_nodes"]
                .as_array()
                .is_some_and(|live| live.len() == ids.len())
        })
        .await;
    }
    nodes
}

/// Waits (within [`WAIT`]) until `node`'s `/cluster` report satisfies `ok`.
pub async fn wait_until(node: &Node, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = node.admin_get("/cluster").await;
        assert_eq!(status, 200, "{body}");
        let report: serde_json::Value = serde_json::from_str(&body).expect("/cluster is JSON");
        if ok(&report) {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "node {}: {report}\n{}",
            node.id,
            node.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Which of `nodes` (those at `alive`) owns `room`.
pub async fn owner_of(nodes: &[Node], alive: &[usize], room: &str) -> usize {
    for &i in alive {
        let (_, body) = nodes[i].admin_get("/cluster").await;
        let report: serde_json::Value = serde_json::from_str(&body).expect("/cluster is JSON");
        if report["rooms_owned"]
            .as_array()
            .is_some_and(|owned| owned.iter().any(|r| r == room))
        {
            return i;
        }
    }
    panic!("no node owns {room}");
}

/// A join of `room` that recovers from `since_seq` of `epoch`.
pub fn rejoin(room: &str, since_seq: u64, epoch: u64) -> Request {
    Request::JoinRoom(pb::JoinRoom {
        room: room.to_owned(),
        since_seq: Some(since_seq),
        epoch,
        ..pb::JoinRoom::default()
    })
}

/// The next body from `client`, within [`WAIT`].
pub async fn next(client: &mut Client) -> Body {
    let message = client.next_event(WAIT).await.expect("an event in time");
    message.body.expect("a body")
}
