//! Connecting bots and keeping them alive: connect to one of the server's
//! addresses from a chosen source address, say Hello, join a room (of a kind), with bounded concurrency and timeouts;
//! keep-alive pings; holding a session that only reads; and short names for
//! why a connection failed or ended.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tavern::client::{Client, ClientError, ClientReader, ClientWriter};
use tavern::protocol::pb::client_message::Body as Request;
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::pb::{self, ServerMessage};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::settings::Transport;
use crate::share::{Route, SetupError, ShareSpec, Shared, Signals};
use crate::tally::bump;
use crate::timeline::Timeline;
use crate::view::{ChatView, EventView, Frame, FrameReader, Incoming, Kind};

/// Longest a TCP connect may take before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive interval when the server announced none.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// A bot that has said Hello and joined its room.
pub struct Member {
    /// The sending half.
    pub writer: ClientWriter,
    /// The receiving half.
    pub reader: ClientReader,
    /// `RoomJoined.seq`: the next room event carries this plus one.
    pub joined_seq: u64,
    /// How often to send something so the server does not time the connection out.
    pub heartbeat: Duration,
    /// From starting to connect until `Welcome`.
    pub connect_latency: Duration,
}

/// Connects `name` along `route`, says Hello and joins `room`, a chat room.
///
/// # Errors
/// A [`SetupError`] naming the stage that failed and why.
pub async fn join_member(spec: &ShareSpec, name: &str, route: Route, room: &str) -> Result<Member, SetupError> {
    join_member_of_kind(spec, name, route, room, "").await
}

/// Connects `name` along `route`, says Hello and joins `room` of `kind`
/// (empty: chat, the default kind), with no params or metadata.
///
/// # Errors
/// A [`SetupError`] naming the stage that failed and why.
pub async fn join_member_of_kind(
    spec: &ShareSpec,
    name: &str,
    route: Route,
    room: &str,
    kind: &str,
) -> Result<Member, SetupError> {
    let started = Instant::now();
    let (mut client, welcome) = connect_hello(spec, name, route).await?;
    let connect_latency = started.elapsed();
    let mut backoff = FIRST_BACKOFF;
    let joined = loop {
        match client.join_kind(room, kind, Bytes::new(), Bytes::new()).await {
            Ok(joined) => break joined,
            Err(e) if overloaded(&e) && backoff <= LAST_BACKOFF => backoff = wait(backoff).await,
            Err(e) => return Err(SetupError(format!("join: {}", describe(&e)))),
        }
    };
    let (writer, reader) = client.into_split();
    Ok(Member {
        writer,
        reader,
        joined_seq: joined.seq,
        heartbeat: heartbeat(&welcome),
        connect_latency,
    })
}

/// Connects `name` along `route` and says Hello.
///
/// # Errors
/// A [`SetupError`] naming the stage that failed and why.
/// A server shedding load (OVERLOADED) is asked again after a backoff that
/// doubles from 100 ms up to 1.6 s, five times in all.
pub async fn connect_hello(spec: &ShareSpec, name: &str, route: Route) -> Result<(Client, pb::Welcome), SetupError> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let mut client = match tokio::time::timeout(CONNECT_TIMEOUT, connect(spec, route)).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(SetupError(format!("connect: {}", describe(&e)))),
            Err(_) => return Err(SetupError("connect: timeout".into())),
        };
        let welcome = match &spec.auth_key {
            Some(key) => client.hello_with_token(name, &key.token_for(name)).await,
            None => client.hello(name).await,
        };
        match welcome {
            Ok(welcome) => return Ok((client, welcome)),
            Err(e) if overloaded(&e) && backoff <= LAST_BACKOFF => backoff = wait(backoff).await,
            Err(e) => return Err(SetupError(format!("hello: {}", describe(&e)))),
        }
    }
}

/// A connection along `route` over `spec.transport`.
///
/// # Errors
/// The connection (or the WebSocket handshake) failed.
pub async fn connect(spec: &ShareSpec, route: Route) -> Result<Client, ClientError> {
    let Route { target, source } = route;
    match spec.transport {
        Transport::Tcp => Client::connect_from(target, source).await,
        Transport::Ws => {
            let socket = match target {
                std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            if let Some(source) = source {
                socket.bind(std::net::SocketAddr::new(source, 0))?;
            }
            let stream = socket.connect(target).await?;
            stream.set_nodelay(true)?;
            tavern::ws::client::connect_over(stream, target, None).await
        }
    }
}

/// First and last wait before asking an overloaded server again.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const LAST_BACKOFF: Duration = Duration::from_millis(1600);

fn overloaded(error: &ClientError) -> bool {
    error.code() == Some(tavern::protocol::ErrorCode::Overloaded)
}

/// Waits `backoff` (the server asked for it); returns the next, doubled.
async fn wait(backoff: Duration) -> Duration {
    tokio::time::sleep(backoff).await;
    backoff * 2
}

/// The keep-alive interval a `Welcome` asks for.
pub fn heartbeat(welcome: &pb::Welcome) -> Duration {
    match welcome.heartbeat_interval_ms {
        0 => DEFAULT_HEARTBEAT,
        ms => Duration::from_millis(u64::from(ms)),
    }
}

/// Runs `setup` for every bot, at most `spec.connect_concurrency` at once,
/// all within the setup timeout. Returns each bot's result in no particular order.
///
/// # Errors
/// The setup did not finish within the timeout.
pub async fn setup_all<T, F, Fut>(
    spec: &ShareSpec,
    bots: impl Iterator<Item = u64>,
    setup: F,
) -> anyhow::Result<Vec<Result<T, SetupError>>>
where
    T: Send + 'static,
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<T, SetupError>> + Send + 'static,
{
    let limit = spec.connect_concurrency.max(1);
    let all = async {
        let mut running = JoinSet::new();
        let mut results = Vec::new();
        for bot in bots {
            while running.len() >= limit {
                if let Some(done) = running.join_next().await {
                    results.push(done.unwrap_or_else(|e| Err(SetupError(format!("setup task: {e}")))));
                }
            }
            running.spawn(setup(bot));
        }
        while let Some(done) = running.join_next().await {
            results.push(done.unwrap_or_else(|e| Err(SetupError(format!("setup task: {e}")))));
        }
        results
    };
    tokio::time::timeout(spec.setup_timeout(), all).await.map_err(|_| {
        anyhow::anyhow!(
            "connecting the bots took longer than --setup-timeout ({:?})",
            spec.setup_timeout()
        )
    })
}

/// Sends a `Ping` every `heartbeat` until told to stop, so that a bot that
/// does not chat is not timed out. Returns why the connection ended, if it did.
pub async fn keep_alive(writer: &mut ClientWriter, heartbeat: Duration, signals: &mut Signals) -> Option<String> {
    loop {
        tokio::select! {
            biased;
            () = signals.stopped() => return None,
            () = tokio::time::sleep(heartbeat) => {
                if let Err(e) = send_ping(writer).await {
                    return Some(describe(&e));
                }
            }
        }
    }
}

/// Reads and drops everything until told to stop; returns why the
/// connection ended, if the server ended it first. Only the frames that
/// may end it (errors, shutdown) are decoded.
pub async fn discard(mut reader: FrameReader, signals: &mut Signals) -> Option<String> {
    loop {
        tokio::select! {
            biased;
            frame = reader.next_frame() => match frame {
                Ok(frame) => {
                    if let Some(reason) = frame_ending(frame) {
                        return Some(reason);
                    }
                }
                Err(e) => return Some(describe(&e)),
            },
            () = signals.stopped() => return None,
        }
    }
}

/// Keeps one session alive, reading and dropping what the server sends,
/// until told to stop; counts it if the server ends it first.
pub async fn hold(member: Member, shared: Arc<Shared>, mut signals: Signals) {
    let Member {
        mut writer,
        reader,
        heartbeat,
        ..
    } = member;
    let mut read_signals = signals.clone();
    let (read_end, write_end) = tokio::join!(
        discard(FrameReader::new(reader), &mut read_signals),
        keep_alive(&mut writer, heartbeat, &mut signals)
    );
    if let Some(reason) = read_end.or(write_end) {
        shared.live.connected.fetch_sub(1, Ordering::Relaxed);
        bump(&mut shared.tally().bots.disconnects, reason);
    }
}

/// What a reading bot does with each message; `Some(reason)` ends the connection.
pub trait OnMessage {
    /// Handles one decoded message.
    fn on_message(&mut self, message: &ServerMessage) -> Option<String>;

    /// Handles a chat message read in place, whose bytes were read off the
    /// socket at `arrived_ns` (wall clock); unless overridden, as the
    /// message it is, decoded.
    fn on_chat(&mut self, chat: &ChatView<'_>, _arrived_ns: u64) -> Option<String> {
        self.on_message(&chat.to_message())
    }

    /// Handles a room plugin's event read in place, whose bytes were read
    /// off the socket at `arrived_ns` (wall clock); unless overridden, as
    /// the message it is, decoded.
    fn on_event(&mut self, event: &EventView<'_>, _arrived_ns: u64) -> Option<String> {
        self.on_message(&event.to_message())
    }
}

/// Hands `frame` to `handler`: a chat message or a room event as a view,
/// anything else decoded. Returns why the connection ends, if it does.
fn deliver(frame: Frame<'_>, handler: &mut impl OnMessage) -> Option<String> {
    let arrived_ns = frame.arrived_ns();
    match frame.read() {
        Ok(Incoming::Chat(chat)) => handler.on_chat(&chat, arrived_ns),
        Ok(Incoming::Event(event)) => handler.on_event(&event, arrived_ns),
        Ok(Incoming::Message(message)) => handler.on_message(&message),
        Err(e) => Some(describe(&ClientError::Decode(e))),
    }
}

/// Reads, handing each message to `handler`, until the step's timeline is
/// known (setup: messages arrive and must be read before the start).
///
/// # Errors
/// Why the read ended first: the connection ended (`Some(reason)`), or the step was abandoned (`None`).
pub async fn read_until_start(
    reader: &mut FrameReader,
    handler: &mut impl OnMessage,
    signals: &mut Signals,
) -> Result<Timeline, Option<String>> {
    loop {
        tokio::select! {
            biased;
            timeline = signals.timeline() => return timeline.ok_or(None),
            frame = reader.next_frame() => match frame {
                Ok(frame) => if let Some(reason) = deliver(frame, handler) {
                    return Err(Some(reason));
                },
                Err(e) => return Err(Some(describe(&e))),
            },
        }
    }
}

/// Reads, handing each message to `handler`, until told to stop; returns
/// why the connection ended, if it ended first.
pub async fn read_until_stopped(
    reader: &mut FrameReader,
    handler: &mut impl OnMessage,
    signals: &mut Signals,
) -> Option<String> {
    loop {
        tokio::select! {
            biased;
            frame = reader.next_frame() => match frame {
                Ok(frame) => if let Some(reason) = deliver(frame, handler) {
                    return Some(reason);
                },
                Err(e) => return Some(describe(&e)),
            },
            () = signals.stopped() => return None,
        }
    }
}

/// Sends a `Ping` without waiting for the `Pong` (the reader discards it).
///
/// # Errors
/// The connection failed.
pub async fn send_ping(writer: &mut ClientWriter) -> Result<u64, ClientError> {
    let ping = pb::Ping {
        client_time_us: tavern::protocol::now_us(),
    };
    writer.send(Request::Ping(ping)).await
}

/// Why a server message ends the connection, if it does: fatal errors by
/// code (e.g. `SLOW_CONSUMER`), and `ServerShutdown`.
pub fn ending(message: &ServerMessage) -> Option<String> {
    match &message.body {
        Some(Body::Error(error)) if error.code().is_fatal() => Some(error.code().as_str_name().to_owned()),
        Some(Body::Shutdown(_)) => Some("SERVER_SHUTDOWN".to_owned()),
        _ => None,
    }
}

/// [`ending`] for a frame, decoding it only if it is of a kind that may end
/// the connection (an undecodable one ends it too).
pub fn frame_ending(frame: Frame<'_>) -> Option<String> {
    let view = match frame {
        Frame::Decoded(message) => return ending(&message),
        Frame::View(view) => view,
    };
    match view.kind() {
        Kind::Error | Kind::Shutdown | Kind::Several => match view.decode() {
            Ok(message) => ending(&message),
            Err(e) => Some(describe(&ClientError::Decode(e))),
        },
        Kind::Empty | Kind::Chat | Kind::Event | Kind::Heartbeat | Kind::Other => None,
    }
}

/// A short name for a client error, for counting: the server's error code,
/// the I/O error kind, `closed` or `timeout`.
pub fn describe(error: &ClientError) -> String {
    match error {
        ClientError::Server { code, .. } => code.as_str_name().to_owned(),
        ClientError::Io(e) if e.kind() == std::io::ErrorKind::Other => format!("io {e}"),
        ClientError::Io(e) => format!("io {:?}", e.kind()),
        ClientError::Frame(_) => "frame too large".to_owned(),
        ClientError::Decode(_) => "undecodable frame".to_owned(),
        ClientError::Timeout(_) => "timeout".to_owned(),
        ClientError::Closed => "closed".to_owned(),
        ClientError::Unexpected(_) => "unexpected reply".to_owned(),
        ClientError::TooManyEvents => "too many events".to_owned(),
    }
}

/// Microseconds from `sent_ns` to `received_ns` (0 if the clock went backwards).
pub fn latency_us(sent_ns: u64, received_ns: u64) -> u64 {
    received_ns.saturating_sub(sent_ns) / 1_000
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::units::micros;
    use crate::view::FrameView;

    fn error(code: pb::ErrorCode) -> ServerMessage {
        tavern::protocol::error_message(0, code, "test")
    }

    #[test]
    fn fatal_errors_and_shutdown_end_a_connection() {
        assert_eq!(
            ending(&error(pb::ErrorCode::SlowConsumer)).as_deref(),
            Some("SLOW_CONSUMER")
        );
        assert_eq!(ending(&error(pb::ErrorCode::NameTaken)), None);
        let shutdown = tavern::protocol::server_message(0, Body::Shutdown(pb::ServerShutdown::default()));
        assert_eq!(ending(&shutdown).as_deref(), Some("SERVER_SHUTDOWN"));
    }

    #[test]
    fn frames_that_may_end_a_connection_are_decoded() {
        let shutdown = tavern::protocol::server_message(0, Body::Shutdown(pb::ServerShutdown::default()));
        let chat = tavern::protocol::server_message(0, Body::Chat(pb::ChatMessage::default()));
        let cases = [
            (error(pb::ErrorCode::SlowConsumer), Some("SLOW_CONSUMER")),
            (error(pb::ErrorCode::NameTaken), None),
            (shutdown, Some("SERVER_SHUTDOWN")),
            (chat, None),
        ];
        for (message, expected) in cases {
            let bytes = message.encode_to_vec();
            let view = FrameView::scan(&bytes).unwrap();
            assert_eq!(frame_ending(Frame::View(view)).as_deref(), expected, "{message:?}");
            assert_eq!(frame_ending(Frame::Decoded(message)).as_deref(), expected);
        }
        // An error frame whose body does not decode ends the connection too.
        let mut bytes = error(pb::ErrorCode::SlowConsumer).encode_to_vec();
        bytes.truncate(bytes.len() - 1);
        bytes[1] -= 1;
        let view = FrameView::scan(&bytes).unwrap();
        assert_eq!(view.kind(), Kind::Error);
        assert_eq!(frame_ending(Frame::View(view)).as_deref(), Some("undecodable frame"));
    }

    #[test]
    fn errors_have_short_names() {
        let refused = ClientError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(describe(&refused), "io ConnectionRefused");
        assert_eq!(describe(&ClientError::Closed), "closed");
        assert_eq!(latency_us(5_000, 2_000), 0);
        assert_eq!(latency_us(1_000, 3_500), 2);
        assert_eq!(micros(Duration::from_millis(2)), 2_000);
    }
}
