//! The WebSocket listener over real loopback: the same session as the game
//! port (a browser-style client chats with a TCP client), the handshake's
//! checks (origin, subprotocol), and the same defences as TCP against bad
//! input: an oversize message, a text message, a fragmented message (taken,
//! as WebSocket allows), a ping flood, a client that does not read; and a
//! graceful shutdown that ends with a Close frame saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use support::{WAIT, next_body, spawn_server};
use tavern::protocol::pb::{self, ClientMessage, ServerMessage, client_message, server_message::Body};
use tavern::protocol::{ErrorCode, PROTOCOL_VERSION};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

type Socket = WebSocketStream<TcpStream>;

/// A raw WebSocket connection to `server`, offering `protocol` and sending `origin`.
async fn open(server: &support::TestServer, protocol: Option<&str>, origin: Option<&str>) -> Result<Socket, WsError> {
    let addr = server.ws.expect("a WebSocket listener");
    let mut request = format!("ws://{addr}/").into_client_request().unwrap();
    if let Some(protocol) = protocol {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_str(protocol).unwrap());
    }
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    let stream = TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(request, stream)
        .await
        .map(|(socket, _)| socket)
}

fn hello(name: &str) -> Bytes {
    let hello = pb::Hello {
        protocol_version: PROTOCOL_VERSION,
        name: name.into(),
        ..pb::Hello::default()
    };
    let message = ClientMessage {
        request_id: 1,
        body: Some(client_message::Body::Hello(hello)),
    };
    message.encode_to_vec().into()
}

/// The next server message, or `None` once the server closed (with the Close frame's code).
async fn next(socket: &mut Socket) -> Result<ServerMessage, Option<CloseCode>> {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a message in time");
        match message {
            Some(Ok(Message::Binary(data))) => return Ok(ServerMessage::decode(data).unwrap()),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|frame| frame.code)),
            Some(Ok(_)) => {}
            None | Some(Err(_)) => return Err(None),
        }
    }
}

/// The error the server sends before it closes, and the Close frame's code.
async fn refused(socket: &mut Socket) -> (ErrorCode, Option<CloseCode>) {
    let message = next(socket).await.expect("an error before the close");
    let Some(Body::Error(error)) = message.body else {
        panic!("expected an error, got {message:?}")
    };
    (error.code(), next(socket).await.expect_err("closed"))
}

#[tokio::test]
async fn a_websocket_client_and_a_tcp_client_chat_in_one_room() {
    let server = spawn_server(&[]);
    let mut web = tavern::ws::client::connect(server.ws.unwrap()).await.unwrap();
    let welcome = web.hello("web").await.unwrap();
    assert!(welcome.session_id > 0);
    web.join("r").await.unwrap();
    let mut ann = server.member("ann", "r").await;
    let Body::MemberJoined(_) = next_body(&mut web).await else {
        panic!("expected MemberJoined")
    };
    ann.chat("r", "from tcp").await.unwrap();
    let Body::Chat(chat) = next_body(&mut web).await else {
        panic!("expected the chat")
    };
    assert_eq!((chat.from_name.as_str(), chat.text.as_str()), ("ann", "from tcp"));
    web.chat("r", "from the browser").await.unwrap();
    loop {
        if let Body::Chat(chat) = next_body(&mut ann).await
            && chat.from_name == "web"
        {
            assert_eq!(chat.text, "from the browser");
            break;
        }
    }
    let page = support::observe::scrape(&server).await;
    assert_eq!(page["tavern_connections_open{transport=\"ws\"}"], 1.0);
    assert_eq!(page["tavern_connections_accepted_total{transport=\"ws\"}"], 1.0);
}

#[tokio::test]
async fn the_handshake_checks_the_origin_and_the_subprotocol() {
    let server = spawn_server(&["--ws-allowed-origins", "https://game.example"]);
    let status = |e: WsError| match e {
        WsError::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    };
    let evil = open(&server, Some("tavern.v1"), Some("https://evil.example")).await;
    assert_eq!(status(evil.unwrap_err()), 403);
    let none = open(&server, None, Some("https://game.example")).await;
    assert_eq!(status(none.unwrap_err()), 400);
    let mut good = open(&server, Some("tavern.v1"), Some("https://game.example"))
        .await
        .unwrap();
    good.send(Message::Binary(hello("good"))).await.unwrap();
    assert!(matches!(next(&mut good).await.unwrap().body, Some(Body::Welcome(_))));
    // A ping is answered.
    good.send(Message::Ping(Bytes::from_static(b"are you there")))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(WAIT, good.next()).await.unwrap() {
            Some(Ok(Message::Pong(payload))) => {
                assert_eq!(&payload[..], b"are you there");
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    // A program sends no Origin: allowed.
    open(&server, Some("tavern.v1"), None).await.unwrap();
    assert_eq!(server.stats.ws_handshake_failures.get(), 2);
}

#[tokio::test]
async fn bad_messages_close_only_their_connection() {
    let server = spawn_server(&["--ws-max-control-per-s", "20"]);
    let mut ann = server.member("ann", "r").await;
    // Before Welcome a message is held to max_hello_frame_len (4096).
    let mut big = open(&server, Some("tavern.v1"), None).await.unwrap();
    big.send(Message::Binary(vec![0; 5000].into())).await.unwrap();
    assert_eq!(
        refused(&mut big).await,
        (ErrorCode::FrameTooLarge, Some(CloseCode::Protocol))
    );
    let mut text = open(&server, Some("tavern.v1"), None).await.unwrap();
    text.send(Message::text("hello?")).await.unwrap();
    assert_eq!(
        refused(&mut text).await,
        (ErrorCode::BadFrame, Some(CloseCode::Protocol))
    );
    let mut pinger = open(&server, Some("tavern.v1"), None).await.unwrap();
    for _ in 0..50 {
        if pinger.send(Message::Ping(Bytes::new())).await.is_err() {
            break;
        }
    }
    let mut code = None;
    while code.is_none() {
        match next(&mut pinger).await {
            Ok(ServerMessage {
                body: Some(Body::Error(error)),
                ..
            }) => code = Some(error.code()),
            Ok(_) => {}
            Err(close) => panic!("closed ({close:?}) without saying why"),
        }
    }
    assert_eq!(code, Some(ErrorCode::RateLimited));
    // A message in fragments is one message, as WebSocket allows.
    let mut parts = open(&server, Some("tavern.v1"), None).await.unwrap();
    let whole = hello("parts");
    let (first, rest) = whole.split_at(3);
    let binary = OpCode::Data(Data::Binary);
    parts
        .send(Message::Frame(Frame::message(first.to_vec(), binary, false)))
        .await
        .unwrap();
    let continued = OpCode::Data(Data::Continue);
    parts
        .send(Message::Frame(Frame::message(rest.to_vec(), continued, true)))
        .await
        .unwrap();
    assert!(matches!(next(&mut parts).await.unwrap().body, Some(Body::Welcome(_))));
    // None of it reached the room.
    ann.chat("r", "still here").await.unwrap();
    let Body::Chat(chat) = next_body(&mut ann).await else {
        panic!("expected the chat")
    };
    assert_eq!(chat.text, "still here");
}

#[tokio::test]
async fn a_websocket_client_that_does_not_read_is_cut_off() {
    let server = spawn_server(&[
        "--outbound-queue-frames",
        "64",
        "--socket-send-buffer",
        "16384",
        "--resume-grace-ms",
        "0",
    ]);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr = server.ws.unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut stuck = tavern::ws::client::connect_over(stream, addr, None).await.unwrap();
    stuck.hello("stuck").await.unwrap();
    stuck.join("r").await.unwrap();
    let talker = server.member("talker", "r").await;
    let (mut writer, mut echoes) = talker.into_split();
    let text = "x".repeat(1000);
    loop {
        writer.chat("r", &text).await.unwrap();
        match echoes.next_event(WAIT).await.unwrap().body {
            Some(Body::Chat(_)) => {}
            Some(Body::MemberLeft(left)) => {
                assert_eq!(left.member.unwrap().name, "stuck");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(server.stats.slow_consumer_disconnects.get(), 1);
}

#[tokio::test]
async fn shutdown_says_goodbye_then_closes_with_going_away() {
    let mut server = spawn_server(&[]);
    let mut socket = open(&server, Some("tavern.v1"), None).await.unwrap();
    socket.send(Message::Binary(hello("web"))).await.unwrap();
    assert!(matches!(next(&mut socket).await.unwrap().body, Some(Body::Welcome(_))));
    server.begin_shutdown();
    let goodbye = next(&mut socket).await.unwrap();
    assert!(matches!(goodbye.body, Some(Body::Shutdown(_))), "{goodbye:?}");
    assert_eq!(next(&mut socket).await.unwrap_err(), Some(CloseCode::Away));
}

#[tokio::test]
async fn a_websocket_cut_without_a_close_is_held_and_resumed() {
    let server = spawn_server(&[]);
    let mut ann = server.member("ann", "r").await;
    let mut cut = open(&server, Some("tavern.v1"), None).await.unwrap();
    cut.send(Message::Binary(hello("web"))).await.unwrap();
    let Some(Body::Welcome(welcome)) = next(&mut cut).await.unwrap().body else {
        panic!("expected Welcome")
    };
    let join = ClientMessage {
        request_id: 2,
        body: Some(client_message::Body::JoinRoom(pb::JoinRoom {
            room: "r".into(),
            ..pb::JoinRoom::default()
        })),
    };
    cut.send(Message::Binary(join.encode_to_vec().into())).await.unwrap();
    let Some(Body::RoomJoined(joined)) = next(&mut cut).await.unwrap().body else {
        panic!("expected RoomJoined")
    };
    let Body::MemberJoined(_) = next_body(&mut ann).await else {
        panic!("expected MemberJoined")
    };
    // A reset, as a network drop looks: no Close frame.
    socket2::SockRef::from(cut.get_ref())
        .set_linger(Some(std::time::Duration::ZERO))
        .unwrap();
    drop(cut);
    ann.chat("r", "while you were gone").await.unwrap();
    let Body::Chat(own) = next_body(&mut ann).await else {
        panic!("Ann saw something before her own chat: the member left")
    };
    let mut back = tavern::ws::client::connect(server.ws.unwrap()).await.unwrap();
    let resumed = back.hello_resuming("web", "", &welcome.resume_token).await.unwrap();
    assert!(resumed.resumed, "held for the resume");
    let again = back.rejoin("r", joined.seq, joined.epoch).await.unwrap();
    assert!(again.recovered);
    let Body::Chat(missed) = next_body(&mut back).await else {
        panic!("expected the missed chat")
    };
    assert_eq!((missed.seq, missed.text.as_str()), (own.seq, "while you were gone"));
}
