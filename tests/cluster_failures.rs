//! A cluster's failures, over a real `nats-server` and real node processes:
//! an owner killed (its rooms come back elsewhere with a new epoch), an edge
//! killed (its members leave the rooms owned elsewhere), a reconnecting
//! client of a killed node, NATS restarted under load, and NATS away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use tavern::client::Client;
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::pb::{self, ErrorCode};

use support::WAIT;
use support::cluster::NatsServer;
use support::fleet::{next, nodes, owner_of, rejoin, wait_until};

async fn until_room_left(client: &mut Client, room: &str, mut seq: u64) -> (pb::RoomLeft, u64) {
    loop {
        match next(client).await {
            Body::RoomLeft(left) if left.room == room => return (left, seq),
            Body::Chat(chat) => {
                assert_eq!(chat.seq, seq + 1, "gap before RoomLeft");
                seq = chat.seq;
            }
            Body::MemberJoined(j) => {
                assert_eq!(j.seq, seq + 1);
                seq = j.seq;
            }
            Body::MemberLeft(l) => {
                assert_eq!(l.seq, seq + 1);
                seq = l.seq;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owners_rooms_come_back_elsewhere_with_a_new_epoch() {
    let nats = NatsServer::start();
    let mut nodes = nodes(&nats, &["a", "b", "c"]).await;
    let mut first = nodes[0].connect("first").await;
    first.join("arena").await.expect("joins");
    let owner = owner_of(&nodes, &[0, 1, 2], "arena").await;
    let survivors: Vec<usize> = (0..3).filter(|&i| i != owner).collect();
    let mut members = Vec::new();
    for (k, &i) in survivors.iter().enumerate() {
        let mut member = nodes[i].connect(&format!("m{k}")).await;
        let joined = member.join("arena").await.expect("joins");
        members.push((member, joined));
    }
    let epoch = members[0].1.epoch;
    // Chats before the kill: every survivor sees them in order, then RoomLeft.
    members[0].0.chat("arena", "before").await.expect("chats");
    nodes[owner].kill();
    for (member, joined) in &mut members {
        let (left, last) = until_room_left(member, "arena", joined.seq).await;
        assert_eq!(left.reason, tavern::cluster::NODE_LOST);
        let again = member.join_with(rejoin("arena", last, epoch)).await.expect("rejoins");
        assert_ne!(again.epoch, epoch, "the room was made again");
        assert!(
            !again.recovered,
            "a new incarnation cannot recover the old one's events"
        );
        joined.seq = again.seq;
    }
    let owner_now = owner_of(&nodes, &survivors, "arena").await;
    assert_ne!(owner_now, owner);
    members[1].0.chat("arena", "after").await.expect("chats");
    let (m0, j0) = &mut members[0];
    loop {
        match next(m0).await {
            Body::Chat(chat) => {
                assert_eq!(chat.seq, j0.seq + 1, "the new room's order runs from its RoomJoined");
                assert_eq!(chat.text, "after");
                break;
            }
            Body::MemberJoined(joined) => j0.seq = joined.seq,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// What `bob` makes of the room's stream: chats in order; after a
/// `RoomLeft`, a rejoin that recovers (or says it could not).
struct Follower {
    client: Client,
    room: &'static str,
    seq: u64,
    epoch: u64,
    rejoins: u32,
}

impl Follower {
    /// Reads until a chat whose text is `wanted`, checking the order; every
    /// break in it must come after a `RoomLeft`.
    async fn until_chat(&mut self, wanted: &str) {
        loop {
            let body = next(&mut self.client).await;
            let seq = match &body {
                Body::RoomLeft(left) if left.room == self.room => {
                    self.rejoins += 1;
                    let again = self.client.join_with(rejoin(self.room, self.seq, self.epoch)).await;
                    let again = again.expect("rejoins after RoomLeft");
                    if !again.recovered {
                        (self.seq, self.epoch) = (again.seq, again.epoch);
                    }
                    continue;
                }
                Body::Chat(chat) => chat.seq,
                Body::MemberJoined(joined) => joined.seq,
                Body::MemberLeft(left) => left.seq,
                Body::Error(e) => panic!("unexpected error {e:?}"),
                _ => continue,
            };
            assert_eq!(seq, self.seq + 1, "a gap after seq {} without RoomLeft", self.seq);
            self.seq = seq;
            if matches!(&body, Body::Chat(chat) if chat.text == wanted) {
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_under_load_and_cross_node_rooms_resume() {
    let mut nats = NatsServer::start();
    let nodes = nodes(&nats, &["a", "b"]).await;
    let mut ann = nodes[0].connect("ann").await;
    ann.join("hall").await.expect("ann joins");
    let mut bob = nodes[1].connect("bob").await;
    let joined = bob.join("hall").await.expect("bob joins");
    let _ = next(&mut ann).await; // bob's MemberJoined
    let (mut writer, mut ann_reader) = ann.into_split();
    // Ann chats all along (about 500 a second), and reads whatever comes back.
    let chatting = tokio::spawn(async move {
        let mut sent = 0u64;
        loop {
            if writer.chat("hall", &format!("load {sent}")).await.is_err() {
                return sent;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let draining = tokio::spawn(async move { while ann_reader.next_event(Duration::from_secs(60)).await.is_ok() {} });
    let mut bob = Follower {
        client: bob,
        room: "hall",
        seq: joined.seq,
        epoch: joined.epoch,
        rejoins: 0,
    };
    bob.until_chat("load 100").await;
    nats.kill();
    for node in &nodes {
        wait_until(node, |report| report["connected"] == false).await;
    }
    nats.restart();
    for node in &nodes {
        wait_until(node, |report| {
            report["connected"] == true && report["live_nodes"].as_array().is_some_and(|l| l.len() == 2)
        })
        .await;
    }
    // A chat sent once both nodes are back reaches bob, in order or after a RoomLeft and a rejoin.
    let mut marker = nodes[0].connect("marker").await;
    marker.join("hall").await.expect("marker joins after NATS came back");
    marker.chat("hall", "after the restart").await.expect("chats");
    bob.until_chat("after the restart").await;
    chatting.abort();
    draining.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_members_of_a_killed_node_leave_the_rooms_owned_elsewhere() {
    let nats = NatsServer::start();
    let mut nodes = nodes(&nats, &["a", "b"]).await;
    let mut probe = nodes[0].connect("probe").await;
    probe.join("hall").await.expect("joins");
    let owner = owner_of(&nodes, &[0, 1], "hall").await;
    let edge = 1 - owner;
    let mut stays = nodes[owner].connect("stays").await;
    stays.join("hall").await.expect("joins");
    let mut goes = nodes[edge].connect("goes").await;
    goes.join("hall").await.expect("joins");
    loop {
        if let Body::MemberJoined(joined) = next(&mut stays).await
            && joined.member.is_some_and(|m| m.name == "goes")
        {
            break;
        }
    }
    nodes[edge].kill();
    // The owner finds the node dead and its members gone (the probe too, if it was there).
    loop {
        if let Body::MemberLeft(left) = next(&mut stays).await
            && left.member.is_some_and(|m| m.name == "goes")
        {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_client_of_a_killed_node_comes_back_on_another() {
    use tavern::client::{Backoff, Event, Reconnecting};
    let nats = NatsServer::start();
    let mut nodes = nodes(&nats, &["a", "b"]).await;
    let backoff = Backoff {
        first: Duration::from_millis(50),
        cap: Duration::from_millis(400),
        attempts: 40,
    };
    let client = Reconnecting::connect(nodes[0].addr, "wanderer", "", backoff).await;
    let mut client = client.expect("connects").also([nodes[1].addr]);
    client.join("hall").await.expect("joins");
    nodes[0].kill();
    // Its node is gone: it reconnects to node b (under its name, once a's names are free) and rejoins.
    let back = loop {
        match client.next_event(WAIT).await.expect("an event in time") {
            Event::Reconnected(back) => break back,
            Event::Message(_) => {}
        }
    };
    assert_eq!(client.addr(), nodes[1].addr);
    assert!(!back.resumed, "a session does not outlive its node");
    assert_eq!(back.rooms.len(), 1, "{back:?}");
    client.chat("hall", "here again").await.expect("chats on node b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nats_local_rooms_go_on_and_cross_node_work_is_refused_clearly() {
    let mut nats = NatsServer::start();
    let nodes = nodes(&nats, &["a", "b"]).await;
    let mut probe = nodes[0].connect("probe").await;
    probe.join("hall").await.expect("joins");
    let owner = owner_of(&nodes, &[0, 1], "hall").await;
    let mut local = nodes[owner].connect("local").await;
    local.join("hall").await.expect("joins");
    let mut remote = nodes[1 - owner].connect("remote").await;
    remote.join("hall").await.expect("joins");
    nats.kill();
    for node in &nodes {
        wait_until(node, |report| report["connected"] == false).await;
    }
    // The room runs on its owner: its members there go on.
    local.chat("hall", "still here").await.expect("chats");
    loop {
        if let Body::Chat(chat) = next(&mut local).await
            && chat.text == "still here"
        {
            break;
        }
    }
    // A member elsewhere is told why its message cannot go through.
    let id = remote.chat("hall", "lost?").await.expect("sends");
    let refused = loop {
        let message = remote.next_event(WAIT).await.expect("an answer");
        if let Some(Body::Error(error)) = message.body {
            break (message.request_id, error.code);
        }
    };
    assert_eq!(refused, (id, i32::from(ErrorCode::ClusterUnavailable)));
    // So is a newcomer, whose name cannot be claimed cluster-wide.
    let mut newcomer = Client::connect(nodes[1].addr).await.expect("connects");
    let error = newcomer.hello("newcomer").await.expect_err("no NATS, no name");
    assert_eq!(error.code(), Some(ErrorCode::ClusterUnavailable), "{error}");
    nats.restart();
    for node in &nodes {
        wait_until(node, |report| report["connected"] == true).await;
    }
    let mut later = Client::connect(nodes[1].addr).await.expect("connects");
    later
        .hello("newcomer")
        .await
        .expect("NATS is back: names are claimed again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_stalled_past_its_lease_gives_its_room_up_when_it_wakes() {
    let nats = NatsServer::start();
    let nodes = nodes(&nats, &["a", "b"]).await;
    let mut probe = nodes[0].connect("probe").await;
    probe.join("hall").await.expect("joins");
    let owner = owner_of(&nodes, &[0, 1], "hall").await;
    let other = 1 - owner;
    let mut stalled = nodes[owner].connect("stalled").await;
    let first = stalled.join("hall").await.expect("joins");
    let mut awake = nodes[other].connect("awake").await;
    awake.join("hall").await.expect("joins");
    nodes[owner].freeze();
    // The other node finds the owner silent, tells its member, and makes the room again.
    let (left, last) = until_room_left(&mut awake, "hall", first.seq + 1).await;
    assert_eq!(left.reason, tavern::cluster::NODE_LOST);
    let again = awake
        .join_with(rejoin("hall", last, first.epoch))
        .await
        .expect("rejoins");
    assert_ne!(again.epoch, first.epoch);
    nodes[owner].thaw();
    // Awake again, the old owner sees the room's record name the other node and closes its copy.
    loop {
        if let Body::RoomLeft(left) = next(&mut stalled).await {
            assert_eq!(left.reason, tavern::cluster::ROOM_MOVED);
            break;
        }
    }
    // Just woken, the node may judge itself overloaded (its loops were late by the whole stall): retry then.
    let deadline = std::time::Instant::now() + WAIT;
    let joined = loop {
        match stalled.join("hall").await {
            Ok(joined) => break joined,
            Err(e) if e.code() == Some(ErrorCode::Overloaded) && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("joining the room where it runs now: {e}"),
        }
    };
    assert_eq!(joined.epoch, again.epoch, "one room, on one node");
}
