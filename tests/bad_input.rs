//! The classic bad inputs, each on its own connection beside a member who
//! keeps chatting: the bad client gets the right error (and, when fatal, the
//! close); the member loses nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{TestServer, WAIT, expect_error, next_non_presence, read_to_close, spawn_server};
use tavern::client::Client;
use tavern::protocol::ErrorCode;
use tavern::protocol::pb::server_message::Body;

const MAX_FRAME: usize = 16_384;

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = u8::try_from(n & 0x7f).unwrap();
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn header(len: u32) -> Vec<u8> {
    len.to_be_bytes().to_vec()
}

/// A length-delimited field.
fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = varint(number << 3 | 2);
    out.extend(varint(u64::try_from(bytes.len()).unwrap()));
    out.extend_from_slice(bytes);
    out
}

/// What the bad client should see.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// This error, then the close.
    Fatal(ErrorCode),
    /// This error; the connection stays (checked with a Ping).
    Answered(ErrorCode),
    /// No frame, just the close (the client ended the stream itself).
    Closed,
}

/// Sends `bytes` on a welcomed connection (then ends the stream if `eof`).
async fn check(server: &TestServer, name: &str, bytes: &[u8], eof: bool, outcome: Outcome) {
    let mut bad = server.connect(name).await;
    bad.send_raw(bytes).await.unwrap();
    let (mut writer, mut reader) = bad.into_split();
    if eof {
        drop(writer);
        let messages = read_to_close(&mut reader).await;
        assert!(matches!(outcome, Outcome::Closed), "{name}");
        assert!(messages.is_empty(), "{name}: {messages:?}");
        return;
    }
    match outcome {
        Outcome::Fatal(code) => {
            let messages = read_to_close(&mut reader).await;
            let last = messages
                .last()
                .unwrap_or_else(|| panic!("{name}: no error before the close"));
            assert_eq!(expect_error(last).code(), code, "{name}");
        }
        Outcome::Answered(code) => {
            let message = reader.next_event(WAIT).await.unwrap();
            assert_eq!(expect_error(&message).code(), code, "{name}");
            writer
                .send(tavern::protocol::pb::client_message::Body::Ping(
                    tavern::protocol::pb::Ping { client_time_us: 1 },
                ))
                .await
                .unwrap();
            let Some(Body::Pong(_)) = reader.next_event(WAIT).await.unwrap().body else {
                panic!("{name}: the connection should have stayed")
            };
        }
        Outcome::Closed => unreachable!("a close comes only after eof"),
    }
}

/// The classic bad inputs: a name, the bytes, whether the client then ends
/// its stream, and what the server must do.
fn bad_frames() -> Vec<(&'static str, Vec<u8>, bool, Outcome)> {
    use Outcome::{Answered, Closed, Fatal};
    let mut deep_groups = Vec::new();
    for _ in 0..200 {
        deep_groups.extend(varint(99 << 3 | 3));
    }
    let mut empties = Vec::new();
    while empties.len() + 2 <= MAX_FRAME {
        empties.extend(field(6, &[]));
    }
    vec![
        ("len0", frame(&[]), false, Answered(ErrorCode::UnsupportedMessage)),
        (
            "lencap",
            frame(&vec![0x08; MAX_FRAME]),
            false,
            Answered(ErrorCode::UnsupportedMessage),
        ),
        (
            "lencap1",
            header(u32::try_from(MAX_FRAME + 1).unwrap()),
            false,
            Fatal(ErrorCode::FrameTooLarge),
        ),
        ("len7fff", header(0x7fff_ffff), false, Fatal(ErrorCode::FrameTooLarge)),
        ("lenffff", header(0xffff_ffff), false, Fatal(ErrorCode::FrameTooLarge)),
        ("hdr1", vec![0], true, Closed),
        ("hdr3", vec![0, 0, 0], true, Closed),
        ("midbody", [header(50), vec![0x08, 0x01]].concat(), true, Closed),
        (
            "garbage",
            [vec![0, 0, 0, 3, 0xff, 0xff, 0xff]].concat(),
            false,
            Fatal(ErrorCode::BadFrame),
        ),
        (
            "truncvar",
            frame(&[0x08, 0xff, 0xff]),
            false,
            Fatal(ErrorCode::BadFrame),
        ),
        (
            "longvar",
            frame(&[&[0x08][..], &[0xff; 11], &[0x01]].concat()),
            false,
            Fatal(ErrorCode::BadFrame),
        ),
        ("wire6", frame(&[0x0e, 0x01]), false, Fatal(ErrorCode::BadFrame)),
        ("wire7", frame(&[0x0f, 0x01]), false, Fatal(ErrorCode::BadFrame)),
        ("field0", frame(&[0x00, 0x01]), false, Fatal(ErrorCode::BadFrame)),
        ("deep", frame(&deep_groups), false, Fatal(ErrorCode::BadFrame)),
        ("empties", frame(&empties), false, Answered(ErrorCode::InvalidRoom)),
        (
            "oneof99",
            frame(&field(99, b"abc")),
            false,
            Answered(ErrorCode::UnsupportedMessage),
        ),
        (
            "utf8",
            frame(&field(6, &[field(1, b"room"), field(2, &[0xff, 0xfe])].concat())),
            false,
            Fatal(ErrorCode::BadFrame),
        ),
        (
            "notjoined",
            frame(&field(6, &[field(1, b"elsewhere"), field(2, b"hi")].concat())),
            false,
            Answered(ErrorCode::NotInRoom),
        ),
    ]
}

#[tokio::test]
async fn bad_frames_close_or_answer_only_their_sender() {
    let server = spawn_server(&[]);
    let mut good = server.member("good", "room").await;
    let mut sent = 0;
    for (name, bytes, eof, outcome) in bad_frames() {
        check(&server, name, &bytes, eof, outcome).await;
        // The member's room goes on, in order, after every case.
        good.chat("room", &format!("after {name}")).await.unwrap();
        sent += 1;
        let echo = next_non_presence(&mut good).await;
        let Some(Body::Chat(chat)) = echo.body else {
            panic!("after {name}: {echo:?}")
        };
        assert_eq!(chat.text, format!("after {name}"));
    }
    assert_eq!(server.stats.chat_messages.get(), sent);
}

#[tokio::test]
async fn a_thousand_joins_stop_at_the_room_limit_and_the_session_stays() {
    let server = spawn_server(&[]);
    let mut greedy = server.connect("greedy").await;
    let mut refused = 0;
    for i in 0..1000 {
        match greedy.join(&format!("r{i}")).await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.code(), Some(ErrorCode::TooManyRooms));
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 1000 - 64);
    greedy.ping().await.unwrap();
}

#[tokio::test]
async fn control_characters_in_names_and_a_second_hello_are_answered() {
    let server = spawn_server(&[]);
    let mut client = Client::connect(server.addr).await.unwrap();
    let error = client.hello("bad\u{7}name").await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidName));
    client.hello("fine").await.unwrap();
    let error = client.hello("again").await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::AlreadyWelcomed));
    client.ping().await.unwrap();
}

#[tokio::test]
async fn a_hello_trickled_past_the_deadline_is_cut_off() {
    let server = spawn_server(&["--hello-timeout-ms", "300"]);
    let mut slow = Client::connect(server.addr).await.unwrap();
    let hello = frame(&field(2, &[&[0x08, 0x01][..], &field(2, b"slowpoke")].concat()));
    // One byte every 100 ms: the whole Hello would take about 1.5 s.
    let mut pace = tokio::time::interval(Duration::from_millis(100));
    for byte in &hello {
        pace.tick().await;
        if slow.send_raw(&[*byte]).await.is_err() {
            break;
        }
    }
    let (_, mut reader) = slow.into_split();
    let messages = read_to_close(&mut reader).await;
    assert_eq!(expect_error(&messages[0]).code(), ErrorCode::HandshakeTimeout);
}
