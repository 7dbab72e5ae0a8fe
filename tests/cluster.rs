//! Several nodes as one server over a real `nats-server` (started here, by
//! process id, on a free loopback port; the test fails, naming the install
//! command, if it is missing): one order per room across nodes, names unique
//! across nodes, the room list, worlds, and a node shut down while the others
//! run. Failures (nodes killed, NATS lost) are in `cluster_failures.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use tavern::client::Client;
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::pb::{self, ErrorCode};

use support::WAIT;
use support::cluster::NatsServer;
use support::fleet::{next, nodes, owner_of};

/// Reads `client`'s chats in `room` until `count` arrived, checking that
/// every seq after `seq` comes once, in order; returns the chats' texts.
async fn chats_in_order(client: &mut Client, room: &str, mut seq: u64, count: usize) -> Vec<String> {
    let mut texts = Vec::new();
    while texts.len() < count {
        let body = next(client).await;
        let event_seq = match &body {
            Body::Chat(chat) if chat.room == room => {
                texts.push(chat.text.clone());
                chat.seq
            }
            Body::MemberJoined(joined) if joined.room == room => joined.seq,
            Body::MemberLeft(left) if left.room == room => left.seq,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(event_seq, seq + 1, "gap or reorder after seq {seq}");
        seq = event_seq;
    }
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_different_nodes_see_one_gap_free_seq() {
    let nats = NatsServer::start();
    let nodes = nodes(&nats, &["a", "b"]).await;
    let mut ann = nodes[0].connect("ann").await;
    let mut bob = nodes[1].connect("bob").await;
    let ann_joined = ann.join("hall").await.expect("ann joins");
    let bob_joined = bob.join("hall").await.expect("bob joins");
    assert_eq!(ann_joined.epoch, bob_joined.epoch, "one room, one incarnation");
    match next(&mut ann).await {
        Body::MemberJoined(joined) => assert_eq!(joined.seq, bob_joined.seq),
        other => panic!("expected bob's MemberJoined, got {other:?}"),
    }
    for i in 0..50 {
        ann.chat("hall", &format!("ann {i}")).await.expect("ann chats");
        bob.chat("hall", &format!("bob {i}")).await.expect("bob chats");
    }
    let seen_by_ann = chats_in_order(&mut ann, "hall", bob_joined.seq, 100).await;
    let seen_by_bob = chats_in_order(&mut bob, "hall", bob_joined.seq, 100).await;
    assert_eq!(seen_by_ann, seen_by_bob, "both members see one order");
    for who in ["ann", "bob"] {
        let own: Vec<&String> = seen_by_ann.iter().filter(|t| t.starts_with(who)).collect();
        let sent: Vec<String> = (0..50).map(|i| format!("{who} {i}")).collect();
        assert_eq!(own, sent.iter().collect::<Vec<_>>(), "{who}'s chats in the order sent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_unique_across_nodes() {
    let nats = NatsServer::start();
    let nodes = nodes(&nats, &["a", "b"]).await;
    let ann = nodes[0].connect("ann").await;
    let mut other = Client::connect(nodes[1].addr).await.expect("connects");
    match other.hello("ann").await {
        Err(e) => assert_eq!(e.code(), Some(ErrorCode::NameTaken), "{e}"),
        Ok(_) => panic!("a name held on node a was given out on node b"),
    }
    ann.goodbye().await.expect("ann leaves");
    // The name is released asynchronously: Hello again (a fresh connection each time) until it is free.
    let deadline = Instant::now() + WAIT;
    loop {
        let mut again = Client::connect(nodes[1].addr).await.expect("connects");
        match again.hello("ann").await {
            Ok(_) => break,
            Err(e) if e.code() == Some(ErrorCode::NameTaken) && Instant::now() < deadline => {}
            Err(e) => panic!("ann's name was not freed: {e}\n{}", nodes[0].log_tail()),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads until `RoomLeft` for `room`; every chat before it must run on from `seq`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shut_down_gracefully_tells_members_elsewhere_and_loses_nothing() {
    let nats = NatsServer::start();
    let mut nodes = nodes(&nats, &["a", "b", "c"]).await;
    let mut probe = nodes[0].connect("probe").await;
    probe.join("hall").await.expect("joins");
    let owner = owner_of(&nodes, &[0, 1, 2], "hall").await;
    let others: Vec<usize> = (0..3).filter(|&i| i != owner).collect();
    let mut talker = nodes[others[0]].connect("talker").await;
    let mut listener = nodes[others[1]].connect("listener").await;
    talker.join("hall").await.expect("joins");
    let joined = listener.join("hall").await.expect("joins");
    // The talker's chats are all accepted (it sees its own copy of each) before the owner stops.
    for i in 0..20 {
        talker.chat("hall", &format!("chat {i}")).await.expect("chats");
    }
    let mut echoed = 0;
    while echoed < 20 {
        if let Body::Chat(chat) = next(&mut talker).await
            && chat.from_name == "talker"
        {
            echoed += 1;
        }
    }
    let status = nodes[owner].terminate().await;
    assert!(status.success(), "the node exits cleanly: {status}");
    // The listener gets every accepted chat, in order, then a clear RoomLeft.
    let mut seq = joined.seq;
    let mut heard = Vec::new();
    let left = loop {
        match next(&mut listener).await {
            Body::Chat(chat) => {
                assert_eq!(chat.seq, seq + 1, "gap before RoomLeft");
                seq = chat.seq;
                heard.push(chat.text);
            }
            Body::MemberJoined(j) => seq = j.seq,
            Body::MemberLeft(l) => seq = l.seq,
            Body::RoomLeft(left) => break left,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(left.reason, tavern::cluster::NODE_SHUTDOWN);
    let sent: Vec<String> = (0..20).map(|i| format!("chat {i}")).collect();
    assert_eq!(
        heard, sent,
        "every accepted chat reached the member elsewhere before RoomLeft"
    );
    // The room comes back on a running node, with a new epoch.
    let again = listener.join("hall").await.expect("rejoins");
    assert_ne!(again.epoch, joined.epoch);
    let owner_now = owner_of(&nodes, &others, "hall").await;
    assert!(others.contains(&owner_now));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_lists_the_rooms_of_the_whole_cluster() {
    let nats = NatsServer::start();
    let nodes = nodes(&nats, &["a", "b"]).await;
    let mut members = Vec::new();
    for (i, room) in ["alpha", "beta", "gamma", "delta"].iter().enumerate() {
        let mut member = nodes[i % 2].connect(&format!("m{i}")).await;
        member.join(room).await.expect("joins");
        members.push(member);
    }
    let owners = [
        owner_of(&nodes, &[0, 1], "alpha").await,
        owner_of(&nodes, &[0, 1], "beta").await,
        owner_of(&nodes, &[0, 1], "gamma").await,
        owner_of(&nodes, &[0, 1], "delta").await,
    ];
    for node in &nodes {
        let mut lister = node.connect(&format!("lister-{}", node.id)).await;
        let rooms = lister.list_rooms(pb::ListRooms::default()).await.expect("a list");
        let mut names: Vec<&str> = rooms.iter().map(|info| info.room.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["alpha", "beta", "delta", "gamma"], "owners {owners:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_runs_on_one_node_and_the_others_say_where() {
    let nats = NatsServer::start();
    let nodes = nodes(&nats, &["a", "b"]).await;
    let mut first = nodes[0].connect("first").await;
    first
        .enter_world("plains", None)
        .await
        .expect("enters where the world is made");
    let mut second = nodes[1].connect("second").await;
    let refused = second
        .enter_world("plains", None)
        .await
        .expect_err("the world runs on node a");
    assert_eq!(refused.code(), Some(ErrorCode::WorldElsewhere), "{refused}");
    assert!(refused.to_string().contains(&nodes[0].addr.to_string()), "{refused}");
    let mut third = nodes[0].connect("third").await;
    third
        .enter_world("plains", None)
        .await
        .expect("enters on the world's node");
}
