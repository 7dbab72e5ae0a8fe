//! Room plugins in time and order: ticks with batched inputs, timers (the
//! lobby's countdown), the one `seq` order of chat, presence and
//! `RoomEvent`, and kicks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use support::{WAIT, spawn_server, spawn_server_with};
use tavern::client::Client;
use tavern::plugins::lobby::{OP_READY, OP_STARTED, OP_STATE};
use tavern::plugins::pb as examples;
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::pb::{self, ErrorCode};
use tavern::protocol::{ChatText, RoomName};
use tavern::room::{Input, LeaveReason, Member, RoomCtx, RoomPlugin, RoomSettings};

async fn next_room_event(client: &mut Client) -> pb::RoomEvent {
    loop {
        match client.next_event(WAIT).await.expect("an event in time").body {
            Some(Body::RoomEvent(event)) => return event,
            Some(Body::MemberJoined(_) | Body::MemberLeft(_)) => {}
            other => panic!("expected a RoomEvent, got {other:?}"),
        }
    }
}

async fn ready(client: &mut Client) {
    let ready = examples::Ready { ready: true }.encode_to_vec();
    client.room_send("l", OP_READY, Bytes::from(ready)).await.unwrap();
}

#[tokio::test]
async fn the_lobby_ticks_counts_down_and_starts() {
    let server = spawn_server(&[]);
    let params = examples::LobbyParams {
        min_players: 2,
        countdown_ms: 300,
    };
    let params = Bytes::from(params.encode_to_vec());
    let mut ann = server.connect("ann").await;
    let joined = ann.join_kind("l", "lobby", params.clone(), Bytes::new()).await.unwrap();
    let state = examples::LobbyState::decode(joined.state).unwrap();
    assert_eq!((state.min_players, state.members.len(), state.started), (2, 0, false));
    let mut bob = server.connect("bob").await;
    bob.join_kind("l", "lobby", params, Bytes::new()).await.unwrap();
    ready(&mut ann).await;
    ready(&mut bob).await;
    // The tick applies the marks and sends the state; the countdown runs, then Started.
    let mut counted_down = false;
    let started = loop {
        let event = next_room_event(&mut ann).await;
        match event.op {
            OP_STATE => {
                let state = examples::LobbyState::decode(event.data).unwrap();
                counted_down |= state.countdown_ms > 0;
            }
            OP_STARTED => break examples::Started::decode(event.data).unwrap(),
            op => panic!("unexpected op {op}"),
        }
    };
    assert!(counted_down, "a state with the countdown running came first");
    assert_eq!(started.players.len(), 2);
    // Started, the lobby is locked.
    let mut cat = server.connect("cat").await;
    let locked = cat
        .join_kind("l", "lobby", Bytes::new(), Bytes::new())
        .await
        .unwrap_err();
    assert_eq!(locked.code(), Some(ErrorCode::RoomLocked), "{locked}");
}

/// Ticks at 50 Hz; on a tick with inputs, broadcasts their ops, in order.
struct Batcher;

impl RoomPlugin for Batcher {
    fn create(_room: &RoomName, _params: &[u8]) -> Result<(Self, RoomSettings), String> {
        let settings = RoomSettings {
            tick_hz: 50,
            ..RoomSettings::default()
        };
        Ok((Batcher, settings))
    }

    fn tick(&mut self, room: &mut RoomCtx<'_>, inputs: Vec<Input>) {
        if inputs.is_empty() {
            return;
        }
        let ops: Vec<u8> = inputs.iter().map(|input| u8::try_from(input.op).unwrap()).collect();
        let tick = room.tick();
        room.broadcast(u32::try_from(tick).unwrap(), Bytes::from(ops), None);
    }
}

#[tokio::test]
async fn a_ticked_room_gets_its_inputs_batched_in_order() {
    let server = spawn_server_with(&[], |server| server.room_kind::<Batcher>("batcher"));
    let mut ann = server.connect("ann").await;
    ann.join_kind("b", "batcher", Bytes::new(), Bytes::new()).await.unwrap();
    for op in 1..=5 {
        ann.room_send("b", op, Bytes::new()).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut last_tick = 0;
    while seen.len() < 5 {
        let event = next_room_event(&mut ann).await;
        assert!(u64::from(event.op) > last_tick, "one event per tick, ticks rising");
        last_tick = u64::from(event.op);
        seen.extend(event.data.iter().copied());
    }
    assert_eq!(seen, [1, 2, 3, 4, 5]);
}

/// Tells everyone of joins, chat and leaves with events of its own.
struct Herald;

impl RoomPlugin for Herald {
    fn create(_room: &RoomName, _params: &[u8]) -> Result<(Self, RoomSettings), String> {
        Ok((Herald, RoomSettings::default()))
    }

    fn join(&mut self, room: &mut RoomCtx<'_>, member: &Member) {
        room.broadcast(1, Bytes::new(), Some(member.id));
    }

    fn chat(&mut self, room: &mut RoomCtx<'_>, from: &Member, text: ChatText) -> Option<ChatText> {
        room.broadcast(2, Bytes::new(), Some(from.id));
        Some(text)
    }

    fn leave(&mut self, room: &mut RoomCtx<'_>, member: &Member, _reason: LeaveReason) {
        room.broadcast(3, Bytes::new(), Some(member.id));
        room.set_timer(Duration::from_millis(20), 7);
    }

    fn timer(&mut self, room: &mut RoomCtx<'_>, tag: u64) {
        room.broadcast(4, Bytes::from(tag.to_be_bytes().to_vec()), None);
    }
}

#[tokio::test]
async fn chat_presence_and_events_share_one_order() {
    let server = spawn_server_with(&[], |server| server.room_kind::<Herald>("herald"));
    let mut ann = server.connect("ann").await;
    let joined = ann.join_kind("h", "herald", Bytes::new(), Bytes::new()).await.unwrap();
    let mut bob = server.connect("bob").await;
    bob.join_kind("h", "herald", Bytes::new(), Bytes::new()).await.unwrap();
    bob.chat("h", "hi").await.unwrap();
    bob.leave("h").await.unwrap();
    // Ann sees: her own join's event, Bob's join and its event, the chat's
    // event and the chat, Bob's leave and its event, then the timer's event.
    let mut seqs = Vec::new();
    let mut kinds = Vec::new();
    while kinds.len() < 8 {
        let message = ann.next_event(WAIT).await.unwrap();
        let (kind, seq) = match message.body {
            Some(Body::RoomEvent(event)) => (format!("event {}", event.op), event.seq),
            Some(Body::MemberJoined(joined)) => ("joined".to_owned(), joined.seq),
            Some(Body::MemberLeft(left)) => ("left".to_owned(), left.seq),
            Some(Body::Chat(chat)) => ("chat".to_owned(), chat.seq),
            other => panic!("unexpected {other:?}"),
        };
        kinds.push(kind);
        seqs.push(seq);
    }
    let expected = [
        "event 1", "joined", "event 1", "event 2", "chat", "left", "event 3", "event 4",
    ];
    assert_eq!(kinds, expected);
    let first = joined.seq + 1;
    assert_eq!(seqs, (first..first + 8).collect::<Vec<_>>(), "one gap-free order");
}

/// Kicks whoever says "kick me", and sends "psst" to the named member only.
struct Bouncer;

impl RoomPlugin for Bouncer {
    fn create(_room: &RoomName, _params: &[u8]) -> Result<(Self, RoomSettings), String> {
        Ok((Bouncer, RoomSettings::default()))
    }

    fn chat(&mut self, room: &mut RoomCtx<'_>, from: &Member, text: ChatText) -> Option<ChatText> {
        match text.as_str() {
            "kick me" => {
                room.kick(from.id, "asked for it");
                None
            }
            "psst" => {
                let others: Vec<_> = room.members().map(|m| m.id).filter(|id| *id != from.id).collect();
                room.send_to_many(&others, 9, Bytes::from_static(b"secret"), Some(from.id));
                None
            }
            _ => Some(text),
        }
    }
}

#[tokio::test]
async fn a_kicked_member_is_out_and_may_come_back() {
    let server = spawn_server_with(&[], |server| server.room_kind::<Bouncer>("bouncer"));
    let mut ann = server.connect("ann").await;
    ann.join_kind("k", "bouncer", Bytes::new(), Bytes::new()).await.unwrap();
    let mut bob = server.connect("bob").await;
    let joined = bob.join_kind("k", "bouncer", Bytes::new(), Bytes::new()).await.unwrap();
    // A subset send is unsequenced and reaches only its members.
    bob.chat("k", "psst").await.unwrap();
    let secret = next_room_event(&mut ann).await;
    assert_eq!((secret.op, secret.seq, &secret.data[..]), (9, 0, &b"secret"[..]));
    bob.chat("k", "kick me").await.unwrap();
    let Some(Body::RoomLeft(left)) = bob.next_event(WAIT).await.unwrap().body else {
        panic!("expected RoomLeft");
    };
    assert_eq!((left.room.as_str(), left.reason.as_str()), ("k", "asked for it"));
    let Some(Body::MemberLeft(gone)) = ann.next_event(WAIT).await.unwrap().body else {
        panic!("expected MemberLeft");
    };
    assert_eq!(gone.seq, joined.seq + 1, "the subset send took no seq");
    // Bob's session knows it is out: the room is not his to chat in, and he may join again.
    let out = bob.leave("k").await.unwrap_err();
    assert_eq!(out.code(), Some(ErrorCode::NotInRoom), "{out}");
    let again = bob.join_kind("k", "bouncer", Bytes::new(), Bytes::new()).await.unwrap();
    assert_eq!(again.members.len(), 2);
}
