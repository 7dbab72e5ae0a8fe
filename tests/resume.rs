//! Resuming a session over TCP: a resume token works once and takes over
//! even a connection that is still open; Goodbye holds nothing; a room's
//! plugin sees a dropped member, then its return or its departure; seats
//! not taken back after a resume are given up; and a world player that
//! resumes gets `WorldEntered` and a fresh view.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use support::{WAIT, next_body, spawn_server, spawn_server_with};
use tavern::auth::{Authority, Claims, parse_hex_key};
use tavern::client::Client;
use tavern::lifecycle::LifecycleEvent;
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::{ErrorCode, RoomName};
use tavern::room::{LeaveReason, Member, RoomCtx, RoomPlugin, RoomSettings};

/// A connection saying Hello as `name` with `resume_token`.
async fn resume(
    server: &support::TestServer,
    name: &str,
    resume_token: &str,
) -> (Client, tavern::protocol::pb::Welcome) {
    let mut client = Client::connect(server.addr).await.unwrap();
    let welcome = client.hello_resuming(name, "", resume_token).await.unwrap();
    (client, welcome)
}

#[tokio::test]
async fn a_resume_token_works_once_and_takes_over_an_open_connection() {
    let server = spawn_server(&[]);
    let (ann, first) = Client::connect_as(server.addr, "ann").await.unwrap();
    assert!(!first.resume_token.is_empty() && !first.resumed);
    assert_eq!(first.resume_grace_ms, 30_000);
    drop(ann);
    let (mut back, resumed) = resume(&server, "ann", &first.resume_token).await;
    assert!(resumed.resumed);
    assert_eq!(resumed.session_id, first.session_id, "the same session");
    assert_ne!(resumed.resume_token, first.resume_token, "a new token each Welcome");

    // The first token again: not a resume, and the name is the live session's.
    let mut again = Client::connect(server.addr).await.unwrap();
    let refused = again.hello_resuming("ann", "", &first.resume_token).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NameTaken));
    // Someone else's name with the new token: not a resume either.
    let welcome = again.hello_resuming("eve", "", &resumed.resume_token).await.unwrap();
    assert!(!welcome.resumed);

    // The new token takes the session over while its connection is still open, chat going on.
    let mut cat = server.member("cat", "r").await;
    let joined = back.join("r").await.unwrap();
    let Body::MemberJoined(_) = next_body(&mut cat).await else {
        panic!("expected MemberJoined")
    };
    cat.chat("r", "one").await.unwrap();
    let (mut taken, over) = resume(&server, "ann", &resumed.resume_token).await;
    assert!(over.resumed);
    assert_eq!(over.session_id, first.session_id);
    cat.chat("r", "two").await.unwrap();
    loop {
        match next_body(&mut back).await {
            Body::Error(error) => {
                assert_eq!(error.code(), ErrorCode::ResumedElsewhere);
                break;
            }
            Body::Chat(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(matches!(
        back.next_event(WAIT).await,
        Err(tavern::client::ClientError::Closed)
    ));
    // Its seat was held across the takeover: both chats come back, and Cat saw no one leave.
    let again = taken.rejoin("r", joined.seq, joined.epoch).await.unwrap();
    assert!(again.recovered);
    for text in ["one", "two"] {
        let Body::Chat(chat) = next_body(&mut taken).await else {
            panic!("expected the missed chat")
        };
        assert_eq!(chat.text, text);
    }
    cat.chat("r", "three").await.unwrap();
    for text in ["one", "two", "three"] {
        let Body::Chat(chat) = next_body(&mut cat).await else {
            panic!("Cat saw something other than chat")
        };
        assert_eq!(chat.text, text);
    }
}

#[tokio::test]
async fn goodbye_holds_nothing() {
    let server = spawn_server(&[]);
    let mut ann = server.member("ann", "r").await;
    let (mut bob, welcome) = Client::connect_as(server.addr, "bob").await.unwrap();
    bob.join("r").await.unwrap();
    let Body::MemberJoined(_) = next_body(&mut ann).await else {
        panic!("expected MemberJoined")
    };
    bob.goodbye().await.unwrap();
    let Body::MemberLeft(left) = next_body(&mut ann).await else {
        panic!("expected MemberLeft")
    };
    assert_eq!(left.member.unwrap().name, "bob");
    let (_, fresh) = resume(&server, "bob", &welcome.resume_token).await;
    assert!(!fresh.resumed, "the session ended: nothing to resume");
}

/// Broadcasts what happens to its members: op 1 dropped, 2 reconnected, 3 left.
struct Watch;

impl RoomPlugin for Watch {
    fn create(_room: &RoomName, _params: &[u8]) -> Result<(Self, RoomSettings), String> {
        Ok((Watch, RoomSettings::default()))
    }

    fn dropped(&mut self, room: &mut RoomCtx<'_>, member: &Member) {
        assert!(!room.is_connected(member.id) && room.member(member.id).is_some());
        room.broadcast(1, Bytes::new(), Some(member.id));
    }

    fn reconnected(&mut self, room: &mut RoomCtx<'_>, member: &Member) {
        assert!(room.is_connected(member.id));
        room.broadcast(2, Bytes::new(), Some(member.id));
    }

    fn leave(&mut self, room: &mut RoomCtx<'_>, member: &Member, reason: LeaveReason) {
        let reason = Bytes::from(reason.as_str().to_owned());
        room.broadcast(3, reason, Some(member.id));
    }
}

/// Ann's next event of the room: a plugin event's op and data, or a presence event.
async fn next_watched(ann: &mut Client) -> String {
    match next_body(ann).await {
        Body::RoomEvent(event) => format!("{} {}", event.op, String::from_utf8_lossy(&event.data)),
        Body::MemberJoined(joined) => format!("joined {}", joined.member.unwrap().name),
        Body::MemberLeft(left) => format!("left {}", left.member.unwrap().name),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_plugin_sees_a_member_drop_then_return_or_leave() {
    let server = spawn_server_with(&["--resume-grace-ms", "2000"], |s| s.room_kind::<Watch>("watch"));
    let mut ann = server.connect("ann").await;
    ann.join_kind("k", "watch", Bytes::new(), Bytes::new()).await.unwrap();
    let (mut bob, welcome) = Client::connect_as(server.addr, "bob").await.unwrap();
    bob.join_kind("k", "watch", Bytes::new(), Bytes::new()).await.unwrap();
    assert_eq!(next_watched(&mut ann).await, "joined bob");

    drop(bob);
    assert_eq!(next_watched(&mut ann).await, "1 ");
    let (mut bob, back) = resume(&server, "bob", &welcome.resume_token).await;
    assert!(back.resumed);
    let refused = bob.chat("k", "too soon").await;
    assert!(
        refused.is_ok(),
        "sent; the server answers NOT_IN_ROOM until the seat is taken back"
    );
    let Body::Error(error) = next_body(&mut bob).await else {
        panic!("expected NOT_IN_ROOM")
    };
    assert_eq!(error.code(), ErrorCode::NotInRoom);
    let joined = bob.join_kind("k", "watch", Bytes::new(), Bytes::new()).await.unwrap();
    let names: Vec<_> = joined.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(next_watched(&mut ann).await, "2 ");

    // Dropped again, resumed, but the seat is never taken back: given up after the grace period.
    drop(bob);
    assert_eq!(next_watched(&mut ann).await, "1 ");
    let (mut bob, again) = resume(&server, "bob", &back.resume_token).await;
    assert!(again.resumed);
    assert_eq!(next_watched(&mut ann).await, "left bob");
    assert_eq!(next_watched(&mut ann).await, "3 disconnected");
    let Body::Error(error) = (async {
        bob.chat("k", "gone").await.unwrap();
        next_body(&mut bob).await
    })
    .await
    else {
        panic!("expected NOT_IN_ROOM")
    };
    assert_eq!(error.code(), ErrorCode::NotInRoom);
}

/// Reads `client`'s world updates until one has `id` among those that came into view.
async fn until_in_view(client: &mut Client, id: u64) -> tavern::protocol::pb::WorldUpdate {
    for _ in 0..200 {
        if let Body::WorldUpdate(update) = next_body(client).await
            && update.entered.iter().any(|e| e.id == id)
        {
            return update;
        }
    }
    panic!("entity {id} never came into view");
}

#[tokio::test]
async fn a_resumed_world_player_gets_world_entered_and_a_fresh_view() {
    let server = spawn_server(&["--world-aoi-radius", "50"]);
    let (mut ann, welcome) = Client::connect_as(server.addr, "ann").await.unwrap();
    let entered = ann.enter_world("w", Some((100.0, 100.0))).await.unwrap();
    let mut bob = server.connect("bob").await;
    let bob_id = bob.enter_world("w", Some((110.0, 100.0))).await.unwrap().entity_id;
    until_in_view(&mut ann, bob_id).await;

    drop(ann);
    let (mut ann, back) = resume(&server, "ann", &welcome.resume_token).await;
    assert!(back.resumed);
    let Body::WorldEntered(again) = next_body(&mut ann).await else {
        panic!("expected WorldEntered");
    };
    assert_eq!((again.world.as_str(), again.entity_id), ("w", entered.entity_id));
    let at = again.position.unwrap();
    assert!(
        (at.x - 100.0).abs() < 1.0 && (at.y - 100.0).abs() < 1.0,
        "where it was: {at:?}"
    );
    // The first update is a full view from scratch: Bob comes into view again.
    let Body::WorldUpdate(first) = next_body(&mut ann).await else {
        panic!("expected WorldUpdate");
    };
    assert!(first.entered.iter().any(|e| e.id == bob_id), "{first:?}");
    // And the view goes on: Bob moves, Ann sees it.
    bob.move_to(130.0, 100.0, 0.0, 1).await.unwrap();
    let mut moved = false;
    for _ in 0..200 {
        if let Body::WorldUpdate(update) = next_body(&mut ann).await
            && update.moved.iter().any(|m| m.id == bob_id)
        {
            moved = true;
            break;
        }
    }
    assert!(moved, "Bob's move reached the resumed player");
}

#[tokio::test]
async fn with_token_auth_a_resume_needs_a_token_that_admits_the_player() {
    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let authority = Authority::new(parse_hex_key(KEY).unwrap(), std::collections::HashSet::new()).unwrap();
    let jwt = |name: &str| {
        let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 60;
        let claims = Claims {
            sub: format!("player-{name}"),
            name: name.into(),
            exp,
            nbf: None,
            jti: None,
            iss: None,
            aud: None,
        };
        authority.mint(&claims).unwrap()
    };
    let server = spawn_server(&["--auth", "token", "--auth-key", KEY]);
    let mut ann = Client::connect(server.addr).await.unwrap();
    let welcome = ann.hello_with_token("ann", &jwt("ann")).await.unwrap();
    drop(ann);
    // The resume token alone is not enough, nor with someone else's token.
    for token in [String::new(), jwt("bob")] {
        let mut thief = Client::connect(server.addr).await.unwrap();
        let refused = thief.hello_resuming("ann", &token, &welcome.resume_token).await;
        assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::Unauthenticated));
    }
    let mut back = Client::connect(server.addr).await.unwrap();
    let resumed = back
        .hello_resuming("ann", &jwt("ann"), &welcome.resume_token)
        .await
        .unwrap();
    assert!(resumed.resumed);
    assert_eq!(resumed.session_id, welcome.session_id);
}

#[tokio::test]
async fn observers_hear_which_connection_resumed_which_session() {
    let (server, events) = support::observe::observed_server(&[]);
    let (ann, welcome) = Client::connect_as(server.addr, "ann").await.unwrap();
    drop(ann);
    let (_back, resumed) = resume(&server, "ann", &welcome.resume_token).await;
    assert!(resumed.resumed);
    let opened = support::observe::wait_for(
        &events,
        |event| matches!(event, LifecycleEvent::ConnectionOpened { session, .. } if session.get() != welcome.session_id),
    );
    let LifecycleEvent::ConnectionOpened {
        session: connection, ..
    } = opened
    else {
        unreachable!()
    };
    let LifecycleEvent::SessionResumed {
        session,
        connection: by,
        ..
    } = support::observe::wait_for(&events, |event| matches!(event, LifecycleEvent::SessionResumed { .. }))
    else {
        unreachable!()
    };
    assert_eq!((session.get(), by), (welcome.session_id, connection));
}
