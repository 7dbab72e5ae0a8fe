//! Test support: a real server on `127.0.0.1:0` in its own actix system, and
//! helpers that wait for events with bounded timeouts.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tavern::client::{Client, ClientError, ClientReader};
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::pb::{self, ServerMessage};
use tavern::stats::Stats;
use tavern::{Config, Server, ServerThread};

pub mod cluster;
pub mod fleet;
pub mod observe;

/// How long any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// Server flags for slow-consumer tests: a small outbound queue and kernel send
/// buffer, so a client that stops reading fills them quickly, and a long close
/// timeout, so the test can still read the SLOW_CONSUMER frame afterwards.
pub const TIGHT_QUEUES: &[&str] = &[
    "--outbound-queue-frames",
    "256",
    "--socket-send-buffer",
    "16384",
    "--close-timeout-ms",
    "60000",
];

/// Server flags that raise the per-session rate limit out of a test's way
/// (an optimised build sends faster than the default allows).
pub const NO_RATE_LIMIT: &[&str] = &["--rate-limit-per-s", "1000000", "--rate-limit-burst", "1000000"];

/// A running server; shut down (and waited for) on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The WebSocket listener (unless a test turned it off).
    pub ws: Option<SocketAddr>,
    pub stats: Arc<Stats>,
    server: Option<ServerThread>,
}

/// Starts a server with test defaults plus `args` (flags as on the command line).
pub fn spawn_server(args: &[&str]) -> TestServer {
    spawn_server_with(args, |server| server)
}

/// As [`spawn_server`], with `customize` applied to the server before it runs.
pub fn spawn_server_with(args: &[&str], customize: impl FnOnce(Server) -> Server + Send + 'static) -> TestServer {
    let mut all = vec![
        "tavern",
        "--addr",
        "127.0.0.1:0",
        "--session-threads",
        "2",
        "--broadcast-threads",
        "2",
        "--admin-addr",
        "127.0.0.1:0",
        "--ws-addr",
        "127.0.0.1:0",
    ];
    all.extend_from_slice(args);
    let config = Config::parse_from(all).expect("test config is valid");
    let server = ServerThread::start_with(config, customize).expect("server started");
    TestServer {
        addr: server.addr(),
        admin: server.admin_addr().expect("an admin endpoint"),
        ws: server.ws_addr(),
        stats: server.stats(),
        server: Some(server),
    }
}

impl TestServer {
    /// Triggers graceful shutdown and waits (bounded) for the server to return.
    pub async fn shutdown(mut self) -> Result<(), String> {
        let server = self.server.take().expect("not yet stopped");
        let joined = tokio::task::spawn_blocking(move || server.join());
        match tokio::time::timeout(Duration::from_secs(30), joined).await {
            Ok(Ok(result)) => result.map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(format!("joining the server: {e}")),
            Err(_) => Err("server did not stop within 30 s".into()),
        }
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        self.server.as_mut().expect("not yet stopped").shut_down();
    }

    /// `GET path` on the admin endpoint: the status and the body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        http_get(self.admin, path).await.expect("the admin endpoint answered")
    }

    /// Connects and says Hello as `name`.
    pub async fn connect(&self, name: &str) -> Client {
        Client::connect_as(self.addr, name).await.expect("connect and hello").0
    }

    /// A welcomed client whose socket's receive buffer is small (4 KiB), so
    /// that the server's writes to it stall soon after it stops reading.
    pub async fn connect_small_buffered(&self, name: &str) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.set_recv_buffer_size(4096).expect("a receive buffer size");
        let (read, write) = socket.connect(self.addr).await.expect("connected").into_split();
        let mut client = Client::over(read, write);
        client.hello(name).await.expect("welcomed");
        client
    }

    /// Connects, says Hello as `name` and joins `room`.
    pub async fn member(&self, name: &str, room: &str) -> Client {
        let mut client = self.connect(name).await;
        client.join(room).await.expect("join");
        client
    }
}

/// `GET path` from `addr` (within [`WAIT`]): the status and the body, whatever the status.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), ureq::Error> {
    let url = format!("http://{addr}{path}");
    let got = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(WAIT))
            .build()
            .into();
        let mut response = agent.get(&url).call()?;
        let status = response.status().as_u16();
        response.body_mut().read_to_string().map(|body| (status, body))
    });
    got.await.expect("the request ran")
}

/// The next message's body, within [`WAIT`].
pub async fn next_body(client: &mut Client) -> Body {
    let message = client.next_event(WAIT).await.expect("an event in time");
    message.body.expect("a body")
}

/// The next message, skipping presence events.
pub async fn next_non_presence(client: &mut Client) -> ServerMessage {
    loop {
        let message = client.next_event(WAIT).await.expect("an event in time");
        if !matches!(message.body, Some(Body::MemberJoined(_) | Body::MemberLeft(_))) {
            return message;
        }
    }
}

/// Reads until the server closes the connection; returns everything read.
pub async fn read_to_close(reader: &mut ClientReader) -> Vec<ServerMessage> {
    let mut all = Vec::new();
    loop {
        match reader.next_event(WAIT).await {
            Ok(message) => all.push(message),
            Err(ClientError::Closed) => return all,
            Err(ClientError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => return all,
            Err(e) => panic!("expected the connection to close, got {e}"),
        }
    }
}

/// The room sequence number of a room event, with its room.
pub fn room_event(body: &Body) -> Option<(&str, u64)> {
    match body {
        Body::Chat(c) => Some((&c.room, c.seq)),
        Body::MemberJoined(j) => Some((&j.room, j.seq)),
        Body::MemberLeft(l) => Some((&l.room, l.seq)),
        _ => None,
    }
}

/// The next event from `reader`, which must be a room event numbered `*seq + 1`; advances `seq`.
pub async fn next_in_order(reader: &mut ClientReader, seq: &mut u64) -> Body {
    let body = reader
        .next_event(WAIT)
        .await
        .expect("an event in time")
        .body
        .expect("a body");
    let (_, event_seq) = room_event(&body).unwrap_or_else(|| panic!("not a room event: {body:?}"));
    assert_eq!(event_seq, *seq + 1, "gap or reorder after seq {seq}");
    *seq = event_seq;
    body
}

/// The error in a message, or a panic saying what came instead.
pub fn expect_error(message: &ServerMessage) -> &pb::Error {
    match &message.body {
        Some(Body::Error(e)) => e,
        other => panic!("expected an Error, got {other:?}"),
    }
}
