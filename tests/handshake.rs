//! Hello, Welcome, ping, and what happens before and around them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{WAIT, expect_error, next_body, read_to_close, spawn_server};
use tavern::client::{Client, ClientError};
use tavern::protocol::ErrorCode;
use tavern::protocol::pb::{self, client_message::Body as Request, server_message::Body};

#[tokio::test]
async fn hello_is_answered_with_welcome() {
    let server = spawn_server(&["--max-frame-len", "20000", "--heartbeat-interval-ms", "7000"]);
    let (_client, welcome) = Client::connect_as(server.addr, "ann").await.unwrap();
    assert!(welcome.session_id > 0);
    assert_eq!(welcome.server_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(welcome.heartbeat_interval_ms, 7000);
    assert_eq!(welcome.max_frame_len, 20000);
    let (_other, second) = Client::connect_as(server.addr, "bob").await.unwrap();
    assert_ne!(second.session_id, welcome.session_id);
}

#[tokio::test]
async fn anything_before_hello_is_an_error_and_closes() {
    let server = spawn_server(&[]);
    for first in [
        Request::JoinRoom(pb::JoinRoom {
            room: "lobby".into(),
            ..pb::JoinRoom::default()
        }),
        Request::Ping(pb::Ping { client_time_us: 1 }),
    ] {
        let mut client = Client::connect(server.addr).await.unwrap();
        let id = client.send(first).await.unwrap();
        let (_, mut reader) = client.into_split();
        let messages = read_to_close(&mut reader).await;
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert_eq!(messages[0].request_id, id);
        assert_eq!(expect_error(&messages[0]).code(), ErrorCode::HelloRequired);
    }
    assert_eq!(server.stats.protocol_errors.get(), 2);
}

#[tokio::test]
async fn duplicate_name_is_refused_and_hello_may_be_retried() {
    let server = spawn_server(&[]);
    let _ann = server.connect("ann").await;
    let mut second = Client::connect(server.addr).await.unwrap();
    let err = second.hello("ann").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NameTaken), "{err}");
    let welcome = second.hello("ann2").await.unwrap();
    assert!(welcome.session_id > 0);
}

#[tokio::test]
async fn a_name_is_free_again_once_its_holder_says_goodbye() {
    let server = spawn_server(&[]);
    let ann = server.connect("ann").await;
    ann.goodbye().await.unwrap();
    // The release races the reconnect: retry on NAME_TAKEN within the bound.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match Client::connect_as(server.addr, "ann").await {
            Ok(_) => break,
            Err(e) if e.code() == Some(ErrorCode::NameTaken) && tokio::time::Instant::now() < deadline => {
                tokio::task::yield_now().await;
            }
            Err(e) => panic!("name never freed: {e}"),
        }
    }
}

#[tokio::test]
async fn invalid_names_and_versions() {
    let server = spawn_server(&[]);
    let mut client = Client::connect(server.addr).await.unwrap();
    for bad in ["", "tab\tname", &"x".repeat(33)] {
        let err = client.hello(bad).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidName), "{bad:?}: {err}");
    }
    client.hello("fine").await.unwrap();
    let err = client.hello("again").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AlreadyWelcomed));

    let mut old = Client::connect(server.addr).await.unwrap();
    let hello = pb::Hello {
        protocol_version: 99,
        name: "old".into(),
        ..pb::Hello::default()
    };
    old.send(Request::Hello(hello)).await.unwrap();
    let (_, mut reader) = old.into_split();
    let messages = read_to_close(&mut reader).await;
    assert_eq!(expect_error(&messages[0]).code(), ErrorCode::UnsupportedVersion);
}

#[tokio::test]
async fn ping_is_answered_with_pong() {
    let server = spawn_server(&[]);
    let mut client = server.connect("ann").await;
    let sent = tavern::protocol::now_us();
    let pong = client.ping().await.unwrap();
    assert!(pong.client_time_us >= sent);
    assert!(pong.server_time_us >= pong.client_time_us);
}

#[tokio::test]
async fn a_connection_without_hello_times_out() {
    let server = spawn_server(&["--hello-timeout-ms", "100"]);
    let mut client = Client::connect(server.addr).await.unwrap();
    let message = client.next_event(WAIT).await.unwrap();
    assert_eq!(expect_error(&message).code(), ErrorCode::HandshakeTimeout);
    assert!(matches!(client.next_event(WAIT).await, Err(ClientError::Closed)));
}

#[tokio::test]
async fn a_silent_connection_times_out_after_three_heartbeats() {
    let server = spawn_server(&["--heartbeat-interval-ms", "50"]);
    let mut client = server.connect("quiet").await;
    let started = tokio::time::Instant::now();
    let message = client.next_event(WAIT).await.unwrap();
    assert_eq!(expect_error(&message).code(), ErrorCode::IdleTimeout);
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "closed before three intervals"
    );
}

#[tokio::test]
async fn an_unknown_body_is_answered_and_the_connection_stays() {
    let server = spawn_server(&[]);
    let mut client = server.connect("ann").await;
    // ClientMessage { request_id: 9, <field 99: varint 1> }: a body from a newer protocol.
    client.send_raw(&[0, 0, 0, 5, 0x08, 9, 0x98, 0x06, 0x01]).await.unwrap();
    let Body::Error(e) = next_body(&mut client).await else {
        panic!("expected an error")
    };
    assert_eq!(e.code(), ErrorCode::UnsupportedMessage);
    client.ping().await.unwrap();
}

#[tokio::test]
async fn connections_over_the_limit_get_server_full() {
    let server = spawn_server(&["--max-connections", "1"]);
    let first = server.connect("first").await;
    let over = Client::connect(server.addr).await.unwrap();
    let (_writer, mut reader) = over.into_split();
    let messages = read_to_close(&mut reader).await;
    assert_eq!(expect_error(&messages[0]).code(), ErrorCode::ServerFull);
    assert_eq!(server.stats.connections_refused.get(), 1);
    // The place is free again once the first connection is gone.
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match Client::connect_as(server.addr, "second").await {
            Ok(_) => break,
            Err(_) if tokio::time::Instant::now() < deadline => tokio::task::yield_now().await,
            Err(e) => panic!("no place freed: {e}"),
        }
    }
}

#[tokio::test]
async fn the_server_pings_a_silent_session_and_an_answer_keeps_it() {
    use futures_util::{SinkExt, StreamExt};
    use tavern::protocol::pb::{ClientMessage, Hello, Ping, ServerMessage, client_message};
    use tavern::protocol::{FrameCodec, FrameLimit};
    use tokio_util::codec::Framed;

    let server = spawn_server(&["--heartbeat-interval-ms", "100"]);
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let codec = FrameCodec::<ServerMessage, ClientMessage>::new(FrameLimit::new(1 << 20));
    let mut frames = Framed::new(stream, codec);
    let send = |body| ClientMessage {
        request_id: 0,
        body: Some(body),
    };
    frames
        .send(send(client_message::Body::Hello(Hello {
            protocol_version: 1,
            name: "quiet".into(),
            ..Hello::default()
        })))
        .await
        .unwrap();
    type Wire = Framed<tokio::net::TcpStream, FrameCodec<ServerMessage, ClientMessage>>;
    async fn next_body(frames: &mut Wire) -> Body {
        let frame = tokio::time::timeout(WAIT, frames.next()).await.unwrap();
        frame.unwrap().unwrap().unwrap().body.unwrap()
    }
    assert!(matches!(next_body(&mut frames).await, Body::Welcome(_)));
    // Answering each Heartbeat keeps the session past three intervals, five times over.
    for _ in 0..5 {
        assert!(matches!(next_body(&mut frames).await, Body::Heartbeat(_)));
        frames
            .send(send(client_message::Body::Ping(Ping { client_time_us: 1 })))
            .await
            .unwrap();
        assert!(matches!(next_body(&mut frames).await, Body::Pong(_)));
    }
    // Unanswered, they stop at the idle timeout.
    loop {
        match next_body(&mut frames).await {
            Body::Heartbeat(_) => {}
            Body::Error(e) => {
                assert_eq!(e.code(), ErrorCode::IdleTimeout);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn hellos_past_the_limit_close_the_connection() {
    let server = spawn_server(&["--max-hello-attempts", "3"]);
    let _ann = server.connect("ann").await;
    let mut prober = Client::connect(server.addr).await.unwrap();
    for _ in 0..3 {
        let err = prober.hello("ann").await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NameTaken), "{err}");
    }
    let err = prober.hello("bob").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TooManyHellos), "{err}");
    let (_, mut reader) = prober.into_split();
    assert!(read_to_close(&mut reader).await.is_empty(), "closed after the error");
}
