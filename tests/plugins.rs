//! Room plugins over real TCP: a tic-tac-toe game, joining by kind, quick
//! join, listing rooms by label, and a panicking plugin closing only its room.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use prost::Message as _;
use support::{WAIT, spawn_server, spawn_server_with};
use tavern::client::{Client, ClientError};
use tavern::plugins::pb as examples;
use tavern::plugins::tictactoe::{OP_BOARD, OP_MOVE, OP_REJECTED};
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::pb::{self, ErrorCode};
use tavern::protocol::{ChatText, RoomName};
use tavern::room::{Member, RoomCtx, RoomPlugin, RoomSettings};

/// The next `RoomEvent` (skipping presence), within [`WAIT`].
async fn next_room_event(client: &mut Client) -> pb::RoomEvent {
    loop {
        match client.next_event(WAIT).await.expect("an event in time").body {
            Some(Body::RoomEvent(event)) => return event,
            Some(Body::MemberJoined(_) | Body::MemberLeft(_)) => {}
            other => panic!("expected a RoomEvent, got {other:?}"),
        }
    }
}

async fn board(client: &mut Client) -> examples::Board {
    let event = next_room_event(client).await;
    assert_eq!(event.op, OP_BOARD);
    assert_ne!(event.seq, 0, "a board goes to both players, in the room's order");
    examples::Board::decode(event.data).unwrap()
}

async fn play(client: &mut Client, cell: u32) {
    let data = examples::Move { cell }.encode_to_vec();
    client.room_send("t1", OP_MOVE, Bytes::from(data)).await.unwrap();
}

async fn rejected(client: &mut Client) -> String {
    let event = next_room_event(client).await;
    assert_eq!(
        (event.op, event.seq),
        (OP_REJECTED, 0),
        "a rejection goes to the mover alone, unsequenced"
    );
    examples::Rejected::decode(event.data).unwrap().reason
}

fn server_code(error: &ClientError) -> Option<ErrorCode> {
    error.code()
}

#[tokio::test]
async fn a_game_of_tictactoe() {
    let server = spawn_server(&[]);
    let mut x = server.connect("x").await;
    let joined = x
        .join_kind("t1", "tictactoe", Bytes::new(), Bytes::new())
        .await
        .unwrap();
    assert_eq!(joined.kind, "tictactoe");
    let state = examples::Board::decode(joined.state).unwrap();
    assert_eq!((state.cells.len(), state.turn_session), (9, 0), "{state:?}");

    let mut o = server.connect("o").await;
    let joined = o
        .join_kind("t1", "tictactoe", Bytes::new(), Bytes::new())
        .await
        .unwrap();
    let state = examples::Board::decode(joined.state).unwrap();
    assert_ne!(state.x_session, 0);
    assert_eq!(state.turn_session, state.x_session, "X moves first");
    let start = board(&mut x).await;
    assert_eq!(board(&mut o).await, start);

    // A third joiner finds the room full (and locked).
    let mut third = server.connect("third").await;
    let full = third
        .join_kind("t1", "tictactoe", Bytes::new(), Bytes::new())
        .await
        .unwrap_err();
    assert_eq!(server_code(&full), Some(ErrorCode::RoomFull), "{full}");

    // O out of turn, X off the board: rejected, to the mover only.
    play(&mut o, 4).await;
    assert_eq!(rejected(&mut o).await, "not your turn");
    play(&mut x, 9).await;
    assert_eq!(rejected(&mut x).await, "no such cell");
    // X takes the top row.
    for (mover, cell) in [(0, 0), (1, 4), (0, 1), (1, 8)] {
        let client = if mover == 0 { &mut x } else { &mut o };
        play(client, cell).await;
        board(&mut x).await;
        board(&mut o).await;
    }
    play(&mut o, 0).await;
    assert_eq!(rejected(&mut o).await, "not your turn");
    play(&mut x, 4).await;
    assert_eq!(rejected(&mut x).await, "cell taken");
    play(&mut x, 2).await;
    let end = board(&mut x).await;
    assert_eq!(board(&mut o).await, end);
    assert_eq!((end.outcome, end.turn_session), (1, 0), "X won: {end:?}");
    assert_eq!(end.cells, [1, 1, 1, 0, 2, 0, 0, 0, 2]);
    play(&mut o, 5).await;
    assert_eq!(rejected(&mut o).await, "the game is over");
}

#[tokio::test]
async fn joins_name_their_kind() {
    let server = spawn_server(&[]);
    let mut ann = server.connect("ann").await;
    let unknown = ann
        .join_kind("r", "poker", Bytes::new(), Bytes::new())
        .await
        .unwrap_err();
    assert_eq!(server_code(&unknown), Some(ErrorCode::UnknownRoomKind), "{unknown}");
    // Chat is the default kind: a plain join makes a chat room.
    assert_eq!(ann.join("plain").await.unwrap().kind, "chat");
    let mut bob = server.connect("bob").await;
    let mismatch = bob
        .join_kind("plain", "tictactoe", Bytes::new(), Bytes::new())
        .await
        .unwrap_err();
    assert_eq!(server_code(&mismatch), Some(ErrorCode::RoomKindMismatch), "{mismatch}");
    // A plugin's refusal to be made is the joiner's JOIN_REJECTED.
    let bad = Bytes::from_static(b"\xff\xff");
    let rejected = bob.join_kind("l", "lobby", bad, Bytes::new()).await.unwrap_err();
    assert_eq!(server_code(&rejected), Some(ErrorCode::JoinRejected), "{rejected}");
    // The refused session is in no room: it can join another.
    assert_eq!(bob.join("plain").await.unwrap().kind, "chat");
}

#[tokio::test]
async fn quick_join_pairs_players_then_makes_a_room() {
    let server = spawn_server(&[]);
    let mut ann = server.connect("ann").await;
    let first = ann.quick_join("tictactoe", "", Bytes::new()).await.unwrap();
    let mut bob = server.connect("bob").await;
    let second = bob
        .quick_join("tictactoe", "game=tictactoe", Bytes::new())
        .await
        .unwrap();
    assert_eq!(second.room, first.room, "the second player is paired with the first");
    assert_eq!(second.members.len(), 2);
    let mut cat = server.connect("cat").await;
    let third = cat.quick_join("tictactoe", "", Bytes::new()).await.unwrap();
    assert_ne!(third.room, first.room, "a full room is skipped: a new one is made");
    assert_eq!(third.members.len(), 1);
    // A quick join passes over the rooms the joiner is in already.
    let mut dan = server.connect("dan").await;
    let lobby = dan.quick_join("lobby", "", Bytes::new()).await.unwrap();
    let other = dan.quick_join("lobby", "", Bytes::new()).await.unwrap();
    assert_ne!(other.room, lobby.room);
    let filter = cat.quick_join("tictactoe", "no pair", Bytes::new()).await.unwrap_err();
    assert_eq!(server_code(&filter), Some(ErrorCode::InvalidFilter), "{filter}");
}

#[tokio::test]
async fn list_rooms_filters_by_kind_label_and_openness() {
    let server = spawn_server(&[]);
    let mut players = Vec::new();
    for (name, room) in [("a", "t1"), ("b", "t1"), ("c", "t2")] {
        let mut client = server.connect(name).await;
        client
            .join_kind(room, "tictactoe", Bytes::new(), Bytes::new())
            .await
            .unwrap();
        players.push(client);
    }
    let params = examples::LobbyParams {
        min_players: 3,
        countdown_ms: 0,
    };
    let mut d = server.connect("d").await;
    d.join_kind("l1", "lobby", Bytes::from(params.encode_to_vec()), Bytes::new())
        .await
        .unwrap();
    d.join("chatroom").await.unwrap();
    let list = |kind: &str, filter: &str, only_open| pb::ListRooms {
        kind: kind.into(),
        filter: filter.into(),
        limit: 0,
        only_open,
    };
    let names = |rooms: Vec<pb::RoomInfo>| rooms.into_iter().map(|r| r.room).collect::<Vec<_>>();
    // Fullest first.
    let games = d.list_rooms(list("tictactoe", "", false)).await.unwrap();
    assert_eq!(names(games.clone()), ["t1", "t2"]);
    assert_eq!((games[0].members, games[0].max_members, games[0].locked), (2, 2, true));
    assert_eq!(names(d.list_rooms(list("tictactoe", "", true)).await.unwrap()), ["t2"]);
    assert_eq!(
        names(d.list_rooms(list("", "game=lobby min=3", false)).await.unwrap()),
        ["l1"]
    );
    assert!(
        d.list_rooms(list("", "game=lobby min=2", false))
            .await
            .unwrap()
            .is_empty()
    );
    let everything = d.list_rooms(list("", "", false)).await.unwrap();
    assert_eq!(everything.len(), 4, "{everything:?}");
    let limited = pb::ListRooms {
        limit: 1,
        ..list("", "", false)
    };
    assert_eq!(d.list_rooms(limited).await.unwrap().len(), 1);
    // The lobby publishes its state as the room's metadata on the tick that sends it.
    let event = next_room_event(&mut d).await;
    assert_eq!(event.room, "l1");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let lobby = d.list_rooms(list("lobby", "", false)).await.unwrap().remove(0);
        if lobby.metadata == event.data {
            break;
        }
        // Listed just after the event is sent, on the room's thread: ask again.
        assert!(tokio::time::Instant::now() < deadline, "no metadata within {WAIT:?}");
    }
    let state = examples::LobbyState::decode(event.data).unwrap();
    assert_eq!(state.members.len(), 1);
}

/// Panics on its first message; until then, a chat room.
struct Fragile;

impl RoomPlugin for Fragile {
    fn create(_room: &RoomName, _params: &[u8]) -> Result<(Self, RoomSettings), String> {
        Ok((Fragile, RoomSettings::default()))
    }

    fn message(&mut self, _room: &mut RoomCtx<'_>, _from: &Member, _op: u32, _data: Bytes) {
        panic!("a plugin bug");
    }

    fn chat(&mut self, _room: &mut RoomCtx<'_>, _from: &Member, text: ChatText) -> Option<ChatText> {
        Some(text)
    }
}

#[tokio::test]
async fn a_panicking_plugin_closes_only_its_own_room() {
    let server = spawn_server_with(&[], |server| server.room_kind::<Fragile>("fragile"));
    let mut ann = server.connect("ann").await;
    ann.join_kind("glass", "fragile", Bytes::new(), Bytes::new())
        .await
        .unwrap();
    ann.join("safe").await.unwrap();
    let mut bob = server.connect("bob").await;
    bob.join_kind("glass", "fragile", Bytes::new(), Bytes::new())
        .await
        .unwrap();
    bob.join("safe").await.unwrap();
    ann.room_send("glass", 1, Bytes::new()).await.unwrap();
    for client in [&mut ann, &mut bob] {
        loop {
            match client.next_event(WAIT).await.unwrap().body {
                Some(Body::RoomLeft(left)) => {
                    assert_eq!((left.room.as_str(), left.reason.as_str()), ("glass", "plugin failed"));
                    break;
                }
                Some(Body::MemberJoined(_)) => {}
                other => panic!("expected RoomLeft, got {other:?}"),
            }
        }
    }
    assert_eq!(server.stats.plugins.panics("fragile"), 1);
    // Both sessions and the other room go on; the closed room is not theirs any more.
    ann.chat("safe", "still here").await.unwrap();
    let Some(Body::Chat(chat)) = bob.next_event(WAIT).await.unwrap().body else {
        panic!("expected the chat");
    };
    assert_eq!(chat.text, "still here");
    let gone = ann.leave("glass").await.unwrap_err();
    assert_eq!(server_code(&gone), Some(ErrorCode::NotInRoom), "{gone}");
    // A new room of that name is a fresh one.
    let again = bob
        .join_kind("glass", "fragile", Bytes::new(), Bytes::new())
        .await
        .unwrap();
    assert_eq!(again.members.len(), 1);
    let (_, metrics) = server.admin_get("/metrics").await;
    assert!(
        metrics.contains("tavern_plugin_panics_total{kind=\"fragile\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("tavern_plugin_hook_seconds_count{hook=\"message\",kind=\"fragile\"} 1"));
}
