//! Several nodes as one server over a real `nats-server` (started here, by
//! process id, on a free loopback port; the test fails, naming the install
//! command, if it is missing): one order per room across nodes, names unique
//! across nodes, a killed owner, NATS restarted under load, and a node shut
//! down while the others run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use tavern::client::Client;
use tavern::protocol::pb::client_message::Body as Request;
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::pb::{self, ErrorCode};

use support::WAIT;
use support::cluster::{NatsServer, Node};

/// Quick liveness, so a killed node is noticed within a second or two.
const FAST: &[&str] = &["--cluster-heartbeat-ms", "200", "--cluster-node-ttl-ms", "1200"];

/// Nodes `ids` joined to `nats`, ready, each seeing all the others live.
async fn nodes(nats: &NatsServer, ids: &[&str]) -> Vec<Node> {
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
async fn wait_until(node: &Node, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
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
async fn owner_of(nodes: &[Node], alive: &[usize], room: &str) -> usize {
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
fn rejoin(room: &str, since_seq: u64, epoch: u64) -> Request {
    Request::JoinRoom(pb::JoinRoom {
        room: room.to_owned(),
        since_seq: Some(since_seq),
        epoch,
        ..pb::JoinRoom::default()
    })
}

/// The next body from `client`, within [`WAIT`].
async fn next(client: &mut Client) -> Body {
    let message = client.next_event(WAIT).await.expect("an event in time");
    message.body.expect("a body")
}

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
