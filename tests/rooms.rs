//! Joining, leaving, presence, and per-room ordering of chat.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;

use support::{NO_RATE_LIMIT, WAIT, next_body, next_non_presence, room_event, spawn_server};
use tavern::protocol::ErrorCode;
use tavern::protocol::pb::server_message::Body;

#[tokio::test]
async fn join_and_leave_tell_the_others() {
    let server = spawn_server(&[]);
    let mut ann = server.connect("ann").await;
    let joined = ann.join("lobby").await.unwrap();
    assert_eq!(joined.room, "lobby");
    assert_eq!(
        joined.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["ann"]
    );
    assert_eq!(joined.seq, 1);

    let mut bob = server.connect("bob").await;
    let joined = bob.join("lobby").await.unwrap();
    let mut names: Vec<&str> = joined.members.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["ann", "bob"]);
    assert_eq!(joined.seq, 2);
    let Body::MemberJoined(j) = next_body(&mut ann).await else {
        panic!("expected MemberJoined")
    };
    assert_eq!(
        (j.room.as_str(), j.member.unwrap().name.as_str(), j.seq),
        ("lobby", "bob", 2)
    );

    let left = bob.leave("lobby").await.unwrap();
    assert_eq!(left.room, "lobby");
    let Body::MemberLeft(l) = next_body(&mut ann).await else {
        panic!("expected MemberLeft")
    };
    assert_eq!((l.member.unwrap().name.as_str(), l.seq), ("bob", 3));

    // Goodbye leaves every room too (a dropped connection is held for a resume: see tests/resume.rs).
    bob.join("lobby").await.unwrap();
    let Body::MemberJoined(_) = next_body(&mut ann).await else {
        panic!("expected MemberJoined")
    };
    bob.goodbye().await.unwrap();
    let Body::MemberLeft(l) = next_body(&mut ann).await else {
        panic!("expected MemberLeft")
    };
    assert_eq!((l.member.unwrap().name.as_str(), l.seq), ("bob", 5));
}

#[tokio::test]
async fn an_emptied_room_starts_again_from_scratch() {
    let server = spawn_server(&[]);
    let mut ann = server.connect("ann").await;
    for _ in 0..3 {
        let joined = ann.join("cycle").await.unwrap();
        assert_eq!((joined.members.len(), joined.seq), (1, 1), "a fresh room every time");
        ann.leave("cycle").await.unwrap();
    }
    assert_eq!(server.stats.rooms_created.get(), 3);
}

#[tokio::test]
async fn room_request_errors() {
    let server = spawn_server(&["--max-rooms-per-session", "2", "--max-text-len", "8"]);
    let mut ann = server.connect("ann").await;
    let code = |e: tavern::client::ClientError| e.code();
    assert_eq!(
        ann.join("bad room").await.map_err(code).unwrap_err(),
        Some(ErrorCode::InvalidRoom)
    );
    assert_eq!(
        ann.join(&"r".repeat(65)).await.map_err(code).unwrap_err(),
        Some(ErrorCode::InvalidRoom)
    );
    assert_eq!(
        ann.leave("nowhere").await.map_err(code).unwrap_err(),
        Some(ErrorCode::NotInRoom)
    );
    ann.join("a").await.unwrap();
    assert_eq!(
        ann.join("a").await.map_err(code).unwrap_err(),
        Some(ErrorCode::AlreadyInRoom)
    );
    ann.join("b").await.unwrap();
    assert_eq!(
        ann.join("c").await.map_err(code).unwrap_err(),
        Some(ErrorCode::TooManyRooms)
    );

    for (room, text, expected) in [
        ("c", "hi", ErrorCode::NotInRoom),
        ("a", "123456789", ErrorCode::TextTooLong),
        ("a", "", ErrorCode::InvalidText),
        ("no room", "hi", ErrorCode::InvalidRoom),
    ] {
        let id = ann.chat(room, text).await.unwrap();
        let reply = next_non_presence(&mut ann).await;
        assert_eq!(reply.request_id, id);
        assert_eq!(support::expect_error(&reply).code(), expected, "{room} {text:?}");
    }
    // None of those closed the connection.
    ann.chat("a", "12345678").await.unwrap();
    let Body::Chat(chat) = next_non_presence(&mut ann).await.body.unwrap() else {
        panic!("expected chat")
    };
    assert_eq!(chat.text, "12345678");
}

/// Three clients in two rooms, all chatting at once: every member of a room
/// sees the same gap-free sequence.
#[tokio::test]
async fn members_see_identical_gap_free_sequences() {
    identical_gap_free_sequences(&[]).await;
}

/// The same with the rooms on the (two) session threads, beside their members.
#[tokio::test]
async fn rooms_on_the_session_threads_keep_the_same_order() {
    identical_gap_free_sequences(&["--room-threads", "0"]).await;
}

async fn identical_gap_free_sequences(server_args: &[&str]) {
    const PER_ROOM: usize = 50;
    let server = spawn_server(server_args);
    let rooms: [(&str, &[&str]); 2] = [("red", &["ann", "bob", "cat"]), ("blue", &["ann", "bob"])];
    let mut clients = HashMap::new();
    for name in ["ann", "bob", "cat"] {
        clients.insert(name, server.connect(name).await);
    }
    let mut start = HashMap::new();
    for (room, members) in rooms {
        for name in members {
            let joined = clients.get_mut(name).unwrap().join(room).await.unwrap();
            start.insert(room, joined.seq);
        }
    }

    let start = std::sync::Arc::new(start);
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for (name, client) in clients {
        let my_rooms: Vec<&str> = rooms
            .iter()
            .filter(|(_, m)| m.contains(&name))
            .map(|(r, _)| *r)
            .collect();
        let expected: usize = rooms
            .iter()
            .filter(|(r, _)| my_rooms.contains(r))
            .map(|(_, m)| m.len() * PER_ROOM)
            .sum();
        let (mut writer, mut reader) = client.into_split();
        writers.push(tokio::spawn(async move {
            for i in 0..PER_ROOM {
                for room in &my_rooms {
                    writer.chat(room, &format!("{name} {i}")).await.unwrap();
                }
            }
            writer
        }));
        let start = start.clone();
        readers.push(tokio::spawn(async move {
            let mut seen: HashMap<String, Vec<(u64, String)>> = HashMap::new();
            let mut chats = 0;
            while chats < expected {
                let body = reader.next_event(WAIT).await.unwrap().body.unwrap();
                let (room, seq) = room_event(&body).unwrap_or_else(|| panic!("{name}: unexpected {body:?}"));
                match &body {
                    Body::Chat(chat) => {
                        seen.entry(room.to_owned()).or_default().push((seq, chat.text.clone()));
                        chats += 1;
                    }
                    Body::MemberJoined(_) if seq <= start[room] => {} // presence from the joins above
                    other => panic!("{name}: unexpected {other:?}"),
                }
            }
            seen
        }));
    }
    let mut views: HashMap<String, Vec<Vec<(u64, String)>>> = HashMap::new();
    for reader in readers {
        for (room, events) in reader.await.unwrap() {
            views.entry(room).or_default().push(events);
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    for (room, members) in rooms {
        let room_views = &views[room];
        assert_eq!(room_views.len(), members.len());
        let first = &room_views[0];
        assert_eq!(first.len(), members.len() * PER_ROOM);
        for (i, (seq, _)) in first.iter().enumerate() {
            assert_eq!(*seq, start[room] + 1 + u64::try_from(i).unwrap(), "{room}: gap at {i}");
        }
        for other in &room_views[1..] {
            assert_eq!(other, first, "{room}: members disagree");
        }
    }
}

/// A client that joins `rooms` new rooms in one write and reads nothing,
/// while its queue overflows in a room it is already in: the room closes its
/// connection (SLOW_CONSUMER) while one of its joins is on its way.
async fn join_while_cut_off(server: &support::TestServer, name: &str, rooms: usize) -> tavern::client::ClientWriter {
    use tavern::protocol::pb::{JoinRoom, client_message::Body as Request};
    let mut client = server.connect_small_buffered(name).await;
    client.join("flooded").await.unwrap();
    let (mut writer, _reader) = client.into_split();
    for i in 0..rooms {
        writer
            .feed(Request::JoinRoom(JoinRoom {
                room: format!("{name}-{i}"),
                ..JoinRoom::default()
            }))
            .await
            .unwrap();
    }
    writer.flush().await.unwrap();
    writer
}

#[tokio::test]
async fn rooms_whose_joiner_was_cut_off_meanwhile_are_all_disposed() {
    const SLEEPERS: usize = 5;
    let server = spawn_server(
        &[
            &[
                "--outbound-queue-frames",
                "16",
                "--max-room-members",
                "100",
                "--socket-send-buffer",
                "4096",
                "--max-rooms-per-session",
                "200",
                // Every client leaves for good here (none is held for a resume).
                "--resume-grace-ms",
                "0",
            ][..],
            NO_RATE_LIMIT,
        ]
        .concat(),
    );
    let mut talker = server.member("talker", "flooded").await;
    let mut sleepers = Vec::new();
    for n in 0..SLEEPERS {
        sleepers.push(join_while_cut_off(&server, &format!("sleeper{n}"), 150).await);
    }
    // Chat until every sleeper was cut off as a slow consumer.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut sent = 0;
    while server.stats.slow_consumer_disconnects.get() < u64::try_from(SLEEPERS).unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sleepers were never cut off"
        );
        talker.chat("flooded", &format!("chat {sent}")).await.unwrap();
        sent += 1;
    }
    drop(sleepers);
    drop(talker);
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.stats.rooms_open.get() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} rooms still open after every client left",
            server.stats.rooms_open.get(),
            server.stats.rooms_created.get()
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn every_leave_is_answered_or_the_slow_client_is_cut_off() {
    const ROOMS: usize = 150;
    let server = spawn_server(&[
        "--outbound-queue-frames",
        "32",
        "--max-room-members",
        "100",
        "--socket-send-buffer",
        "4096",
        "--max-rooms-per-session",
        "200",
    ]);
    let mut client = server.connect_small_buffered("leaver").await;
    for i in 0..ROOMS {
        client.join(&format!("room{i}")).await.unwrap();
    }
    let (mut writer, mut reader) = client.into_split();
    // Big echoes fill the socket's buffers and part of the queue (40 KB, well past what
    // the kernel buffers hold, however it sizes them); nothing is read.
    let text = "x".repeat(1000);
    for _ in 0..40 {
        writer.chat("room0", &text).await.unwrap();
    }
    for i in 0..ROOMS {
        let leave = tavern::protocol::pb::LeaveRoom {
            room: format!("room{i}"),
        };
        writer
            .feed(tavern::protocol::pb::client_message::Body::LeaveRoom(leave))
            .await
            .unwrap();
    }
    writer.flush().await.unwrap();
    // Either every LeaveRoom is answered, or the client is told it is too slow.
    let mut left = 0;
    let mut cut_off = false;
    while left < ROOMS && !cut_off {
        match reader.next_event(WAIT).await {
            Ok(message) => match message.body {
                Some(Body::RoomLeft(_)) => left += 1,
                Some(Body::Error(e)) => cut_off = e.code == i32::from(ErrorCode::SlowConsumer),
                _ => {}
            },
            Err(e) => panic!("{left} of {ROOMS} LeaveRooms answered, then {e}"),
        }
    }
    assert!(cut_off, "a slow client answered every time: the queue never filled");
}

#[tokio::test]
async fn a_room_fills_to_its_limit_with_every_member_list_delivered_then_refuses() {
    const LIMIT: usize = 100;
    // Names of 32 four-byte characters: the member list of a full room takes
    // 14.5 KB, in frames of at most 4 KiB, within a 16 KiB queue.
    let server = spawn_server(&[
        "--max-frame-len",
        "4096",
        "--outbound-queue-bytes",
        "16384",
        "--max-room-members",
        "100",
    ]);
    let mut members = Vec::new();
    for i in 0..LIMIT {
        let name = format!("{i:03}{}", "\u{1F37A}".repeat(29));
        let mut member = server.connect(&name).await;
        let joined = member.join("hall").await.unwrap();
        assert_eq!(joined.members.len(), i + 1, "the whole list, gathered from its frames");
        assert_eq!(usize::try_from(joined.member_count).unwrap(), i + 1);
        members.push(member);
    }
    let mut late = server.connect("late").await;
    let err = late.join("hall").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RoomFull), "{err}");
    late.ping().await.unwrap();
    assert_eq!(server.stats.slow_consumer_disconnects.get(), 0);
}
