//! Per-session rate limits, per-address connection limits and the write
//! deadline, against a real server over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{IpAddr, Ipv4Addr};

use support::{WAIT, expect_error, next_in_order, read_to_close, spawn_server};
use tavern::client::{Client, ClientError};
use tavern::ids::DisconnectReason;
use tavern::protocol::ErrorCode;
use tavern::protocol::pb::client_message::Body as Request;
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::pb::{Ping, SendChat};

fn chat(text: &str) -> Request {
    Request::SendChat(SendChat {
        room: "room".into(),
        text: text.into(),
    })
}

#[tokio::test]
async fn a_session_over_its_rate_is_answered_rate_limited_then_cut_off() {
    const BURST: usize = 10;
    let server = spawn_server(&[
        "--rate-limit-per-s",
        "1",
        "--rate-limit-burst",
        "10",
        "--rate-limit-disconnect-after",
        "50",
    ]);
    let good = server.member("good", "room").await;
    let flooder = server.member("flooder", "room").await;
    let (_good_writer, mut good_reader) = good.into_split();
    let mut seq = 1;
    let Body::MemberJoined(_) = next_in_order(&mut good_reader, &mut seq).await else {
        panic!("the flooder joins")
    };
    let (mut writer, mut reader) = flooder.into_split();

    // A burst's worth passes; the rest of a quick run is dropped with RATE_LIMITED.
    for i in 0..BURST + 5 {
        writer.feed(chat(&format!("m{i}"))).await.unwrap();
    }
    writer.flush().await.unwrap();
    let (mut echoes, mut limited) = (0, 0);
    while echoes + limited < BURST + 5 {
        match reader.next_event(WAIT).await.unwrap().body.unwrap() {
            Body::Chat(_) => echoes += 1,
            Body::Error(e) => {
                assert_eq!(e.code(), ErrorCode::RateLimited);
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // The join took one token of the burst; at most one came back during the run.
    assert!((BURST - 1..=BURST).contains(&echoes), "{echoes} passed");
    assert!(limited >= 4, "{limited} limited");
    for i in 0..echoes {
        let Body::Chat(c) = next_in_order(&mut good_reader, &mut seq).await else {
            panic!("chat")
        };
        assert_eq!(c.text, format!("m{i}"));
    }

    // Going on regardless: 50 drops within a second close the session.
    for _ in 0..60 {
        if writer.send(Request::Ping(Ping { client_time_us: 0 })).await.is_err() {
            break;
        }
    }
    let messages = read_to_close(&mut reader).await;
    let last = messages.last().expect("an error before the close");
    assert_eq!(expect_error(last).code(), ErrorCode::RateLimited);
    assert_eq!(server.stats.disconnects(DisconnectReason::RateLimited), 1);
    let Body::MemberLeft(left) = next_in_order(&mut good_reader, &mut seq).await else {
        panic!("the flooder leaves")
    };
    assert_eq!(left.member.unwrap().name, "flooder");
}

async fn refused(from: IpAddr, server: &support::TestServer) -> ErrorCode {
    let (_, mut reader) = Client::connect_from(server.addr, Some(from))
        .await
        .unwrap()
        .into_split();
    let messages = read_to_close(&mut reader).await;
    expect_error(&messages[0]).code()
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_of_connections() {
    let server = spawn_server(&["--max-connections-per-ip", "2"]);
    let here = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let there = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let first = Client::connect_from(server.addr, Some(here)).await.unwrap();
    let mut second = Client::connect_from(server.addr, Some(here)).await.unwrap();
    second.hello("second").await.unwrap();
    assert_eq!(refused(here, &server).await, ErrorCode::TooManyConnections);
    // Another address is not affected, and neither are the two already in.
    let mut elsewhere = Client::connect_from(server.addr, Some(there)).await.unwrap();
    elsewhere.hello("elsewhere").await.unwrap();
    second.ping().await.unwrap();
    // A place frees up when a connection closes (its socket is closed a little after).
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut client = Client::connect_from(server.addr, Some(here)).await.unwrap();
        match client.hello("third").await {
            Ok(_) => break,
            Err(e) => assert_eq!(e.code(), Some(ErrorCode::TooManyConnections), "{e}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "the place never freed up");
    }
    let scraped = server.stats.encode();
    assert!(scraped.contains("tavern_connections_rejected_total{reason=\"per_ip_limit\"}"));
}

#[tokio::test]
async fn one_address_opens_connections_at_most_at_its_rate() {
    let server = spawn_server(&["--accept-rate-per-ip", "2"]);
    let here = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let there = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let mut kept = Vec::new();
    for name in ["a", "b"] {
        let mut client = Client::connect_from(server.addr, Some(here)).await.unwrap();
        client.hello(name).await.unwrap();
        kept.push(client);
    }
    assert_eq!(refused(here, &server).await, ErrorCode::TooManyConnections);
    let mut elsewhere = Client::connect_from(server.addr, Some(there)).await.unwrap();
    elsewhere.hello("elsewhere").await.unwrap();
}

#[tokio::test]
async fn a_socket_that_takes_nothing_is_closed_by_the_write_deadline() {
    // A small kernel buffer, and queues big enough never to fill here: only
    // the deadline can end the connection. (A connection that stalls is a drop:
    // no grace period here, so that the room says at once that the member left.)
    let server = spawn_server(&[
        "--resume-grace-ms",
        "0",
        "--socket-send-buffer",
        "16384",
        "--outbound-queue-frames",
        "100000",
        "--outbound-queue-bytes",
        "100000000",
        "--write-timeout-ms",
        "300",
    ]);
    let stuck = server.member("stuck", "room").await;
    let talker = server.member("talker", "room").await;
    let (mut writer, mut echoes) = talker.into_split();
    let text = "x".repeat(1000);
    let mut seq = 2;
    // Chat until the stuck member is gone; each echo paces the next chat.
    loop {
        writer.chat("room", &text).await.unwrap();
        match next_in_order(&mut echoes, &mut seq).await {
            Body::Chat(_) => {}
            Body::MemberLeft(left) => {
                assert_eq!(left.member.unwrap().name, "stuck");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(server.stats.disconnects(DisconnectReason::WriteTimeout), 1);
    assert_eq!(server.stats.slow_consumer_disconnects.get(), 0);
    drop(stuck);
}

#[tokio::test]
async fn a_flooder_cut_off_reads_its_error_then_a_clean_end_not_a_reset() {
    const PINGS: u64 = 100_000;
    // A reset is a race against the client's reading: five flooders give it five chances.
    const FLOODERS: u64 = 5;
    let server = spawn_server(&[
        "--rate-limit-per-s",
        "100",
        "--rate-limit-burst",
        "100",
        "--rate-limit-disconnect-after",
        "50",
    ]);
    let mut pings = Vec::new();
    for request_id in 1..=PINGS {
        let ping = tavern::protocol::pb::ClientMessage {
            request_id,
            body: Some(Request::Ping(Ping { client_time_us: 0 })),
        };
        pings.extend_from_slice(&tavern::protocol::encode_frame(&ping));
    }
    for n in 0..FLOODERS {
        let (mut writer, mut reader) = server.connect(&format!("flooder{n}")).await.into_split();
        // One write of every Ping: most are still unread when the server cuts the session off.
        writer.send_raw(&pings).await.unwrap();
        let mut last = None;
        loop {
            match reader.next_event(WAIT).await {
                Ok(message) => last = Some(message),
                Err(ClientError::Closed) => break,
                Err(e) => panic!("flooder {n}: expected the stream to end cleanly after the error, got {e}"),
            }
        }
        let last = last.expect("the server answered");
        assert_eq!(expect_error(&last).code(), ErrorCode::RateLimited, "{last:?}");
    }
    assert_eq!(server.stats.disconnects(DisconnectReason::RateLimited), FLOODERS);
}
