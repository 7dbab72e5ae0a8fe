//! Hostile input closes only the connection that sent it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{WAIT, expect_error, next_non_presence, read_to_close, spawn_server};
use tavern::client::Client;
use tavern::protocol::ErrorCode;
use tavern::protocol::pb::server_message::Body;

/// `bad` sends `bytes` while `good` is in the same room: `bad` gets `code` and
/// is closed; `good` keeps chatting.
async fn only_the_sender_is_closed(bytes: &[u8], code: ErrorCode, before_hello: bool) {
    let server = spawn_server(&[]);
    let mut good = server.member("good", "room").await;
    let mut bad = if before_hello {
        Client::connect(server.addr).await.unwrap()
    } else {
        server.member("bad", "room").await
    };
    bad.send_raw(bytes).await.unwrap();
    let (_, mut bad_reader) = bad.into_split();
    let messages = read_to_close(&mut bad_reader).await;
    let last = messages.last().expect("an error frame before the close");
    assert_eq!(expect_error(last).code(), code);
    assert_eq!(server.stats.protocol_errors.get(), 1);

    for i in 0..3 {
        let id = good.chat("room", &format!("still here {i}")).await.unwrap();
        let echo = next_non_presence(&mut good).await;
        assert_eq!(echo.request_id, id);
        let Some(Body::Chat(chat)) = echo.body else {
            panic!("expected chat, got {echo:?}")
        };
        assert_eq!(chat.text, format!("still here {i}"));
    }
}

#[tokio::test]
async fn oversize_length_header_closes_only_that_client() {
    only_the_sender_is_closed(&[0xff, 0xff, 0xff, 0xff], ErrorCode::FrameTooLarge, false).await;
}

#[tokio::test]
async fn oversize_header_before_hello_is_held_to_the_smaller_limit() {
    // 8 KiB: under the post-handshake limit, over the pre-handshake one.
    only_the_sender_is_closed(&[0, 0, 0x20, 0], ErrorCode::FrameTooLarge, true).await;
}

#[tokio::test]
async fn garbage_body_closes_only_that_client() {
    only_the_sender_is_closed(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff], ErrorCode::BadFrame, false).await;
}

#[tokio::test]
async fn invalid_utf8_text_is_a_bad_frame() {
    // send_chat { room "room", text 0xff }: protobuf strings must be UTF-8.
    let frame = [0, 0, 0, 11, 0x32, 9, 0x0a, 4, b'r', b'o', b'o', b'm', 0x12, 1, 0xff];
    only_the_sender_is_closed(&frame, ErrorCode::BadFrame, false).await;
}

#[tokio::test]
async fn a_truncated_frame_then_close_does_not_disturb_the_room() {
    // Not held for a resume, so that the room says the member left.
    let server = spawn_server(&["--resume-grace-ms", "0"]);
    let mut good = server.member("good", "room").await;
    let mut bad = server.member("bad", "room").await;
    bad.send_raw(&[0, 0, 1, 0, 1, 2, 3]).await.unwrap();
    drop(bad);
    let Body::MemberJoined(_) = good.next_event(WAIT).await.unwrap().body.unwrap() else {
        panic!()
    };
    let Body::MemberLeft(left) = good.next_event(WAIT).await.unwrap().body.unwrap() else {
        panic!()
    };
    assert_eq!(left.member.unwrap().name, "bad");
    good.ping().await.unwrap();
}

/// A client that sends without ever reading (its own echoes pile up) is cut
/// off with SLOW_CONSUMER once its bounded queue is full; a member that reads
/// sees every message up to then, gap-free, and then the flooder leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_but_never_reads_is_cut_off() {
    const MAX_SENT: usize = 20_000;
    const WINDOW: usize = 64;
    let server = spawn_server(support::TIGHT_QUEUES);
    let good = server.member("good", "room").await;
    let flooder = server.member("flooder", "room").await;
    let (good_writer, mut good_reader) = good.into_split();
    let (read, mut progress) = tokio::sync::watch::channel(0_usize);
    let watcher = tokio::spawn(async move {
        // good joined at seq 1 and saw the flooder join at seq 2.
        let mut seq = 1;
        let mut chats = 0;
        loop {
            match support::next_in_order(&mut good_reader, &mut seq).await {
                Body::MemberJoined(_) => {}
                Body::Chat(_) => {
                    chats += 1;
                    let _ = read.send(chats);
                }
                Body::MemberLeft(left) => {
                    assert_eq!(left.member.unwrap().name, "flooder");
                    return (chats, good_writer);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    let (mut writer, mut flooder_reader) = flooder.into_split();
    let mut sent = 0;
    while sent < MAX_SENT {
        let caught_up = progress.wait_for(|&read| read + WINDOW >= sent);
        if tokio::time::timeout(WAIT, caught_up).await.map_or(true, |r| r.is_err()) {
            break; // the watcher saw the flooder leave
        }
        if writer.chat("room", &"f".repeat(200)).await.is_err() {
            break; // the server closed the flooder
        }
        sent += 1;
        if watcher.is_finished() {
            break;
        }
    }
    let (chats, _good_writer) = tokio::time::timeout(WAIT, watcher)
        .await
        .expect("the flooder was cut off")
        .unwrap();
    assert!(sent < MAX_SENT, "never cut off");
    assert!(chats > 0 && chats <= sent, "good saw {chats} of {sent}");
    assert_eq!(server.stats.slow_consumer_disconnects.get(), 1);
    let messages = read_to_close(&mut flooder_reader).await;
    assert_eq!(expect_error(messages.last().unwrap()).code(), ErrorCode::SlowConsumer);
}
