//! A client that reconnects by itself: when its connection drops it
//! connects again with exponential backoff and full jitter (up to a cap),
//! says Hello again with the last Welcome's resume token (so that the server
//! gives the session back, with its name and seats, if it still holds it),
//! and joins each of its rooms again from the last seq it saw, so that the
//! rooms replay what it missed ([`RoomJoined.recovered`]).
//! The application reads [`Event`]s: the server's messages, and a
//! [`Reconnected`] report after each reconnection saying which rooms
//! recovered.
//!
//! Requests fail fast while the connection is down ([`ClientError::Closed`]):
//! nothing is queued, so nothing is sent twice or out of order; the
//! application sends again after [`Event::Reconnected`].
//!
//! [`Reconnecting::disconnect`] ends the connection with a TCP reset (RST),
//! as a network failure looks to the server, not with an orderly close.
//!
//! [`RoomJoined.recovered`]: crate::protocol::pb::RoomJoined::recovered

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::{Client, ClientError};
use crate::protocol::ErrorCode;
use crate::protocol::pb::client_message::Body as Request;
use crate::protocol::pb::server_message::Body;
use crate::protocol::pb::{self, ServerMessage};

/// How reconnection waits between attempts: attempt `n` (from 0) waits a
/// uniformly random time up to `min(cap, first × 2ⁿ)` (full jitter), and
/// gives up after `attempts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first attempt's upper bound.
    pub first: Duration,
    /// The largest upper bound.
    pub cap: Duration,
    /// Attempts before giving up.
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(100),
            cap: Duration::from_secs(10),
            attempts: 20,
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt` (from 0).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.first.saturating_mul(2_u32.saturating_pow(attempt)).min(self.cap);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// What a [`Reconnecting`] client reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A message from the server.
    Message(ServerMessage),
    /// The connection dropped and is back.
    Reconnected(Reconnected),
}

/// A reconnection's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconnected {
    /// Whether the server gave the old session back (its name, its seats
    /// and world entity held, the others told nothing): `Welcome.resumed`.
    pub resumed: bool,
    /// Each room joined again, and whether it recovered what was missed.
    pub rooms: Vec<(String, bool)>,
    /// Connection attempts it took.
    pub attempts: u32,
}

/// Where the client is in a room: the last seq seen, in which epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    seq: u64,
    epoch: u64,
}

/// See the module documentation.
pub struct Reconnecting {
    /// Where it connects: the first address, then (a cluster's other nodes) the rest.
    addrs: Vec<SocketAddr>,
    /// The one it is connected to (or was, last).
    current: usize,
    name: String,
    token: String,
    /// The last Welcome's, for the next connection.
    resume_token: String,
    backoff: Backoff,
    client: Option<Client>,
    /// A second handle on the connection's socket, to reset it on [`Reconnecting::disconnect`].
    socket: Option<socket2::Socket>,
    rooms: BTreeMap<String, Position>,
}

impl Reconnecting {
    /// Connects to `addr` and says Hello as `name` with `token` (empty
    /// without `--auth token`); later connections do the same.
    ///
    /// # Errors
    /// The first connection or its Hello failed.
    pub async fn connect(addr: SocketAddr, name: &str, token: &str, backoff: Backoff) -> Result<Self, ClientError> {
        let (mut client, socket) = open(addr).await?;
        let welcome = client.hello_with_token(name, token).await?;
        Ok(Reconnecting {
            addrs: vec![addr],
            current: 0,
            name: name.to_owned(),
            token: token.to_owned(),
            resume_token: welcome.resume_token,
            backoff,
            client: Some(client),
            socket: Some(socket),
            rooms: BTreeMap::new(),
        })
    }

    /// Adds the other nodes of a cluster: a reconnection tries the node it
    /// was connected to first, then each of these in turn (one per attempt),
    /// so that the clients of a node that died come back on another.
    #[must_use]
    pub fn also(mut self, others: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.addrs.extend(others);
        self
    }

    /// The address it is connected to (or was, last).
    pub fn addr(&self) -> SocketAddr {
        self.addrs[self.current % self.addrs.len()]
    }

    /// Joins `room`, and keeps joining it again after each reconnection.
    ///
    /// # Errors
    /// [`ClientError::Closed`] while disconnected, or the server's refusal.
    pub async fn join(&mut self, room: &str) -> Result<pb::RoomJoined, ClientError> {
        let joined = self.connected()?.join(room).await?;
        let position = Position {
            seq: joined.seq,
            epoch: joined.epoch,
        };
        self.rooms.insert(room.to_owned(), position);
        Ok(joined)
    }

    /// Sends `text` to `room`; returns the request id.
    ///
    /// # Errors
    /// [`ClientError::Closed`] while disconnected.
    pub async fn chat(&mut self, room: &str, text: &str) -> Result<u64, ClientError> {
        self.connected()?.chat(room, text).await
    }

    /// Sends a `Ping` (keep-alive) without waiting for its `Pong`, which
    /// arrives as an [`Event::Message`]; returns the request id.
    ///
    /// # Errors
    /// [`ClientError::Closed`] while disconnected.
    pub async fn ping(&mut self) -> Result<u64, ClientError> {
        let ping = pb::Ping {
            client_time_us: crate::protocol::now_us(),
        };
        self.connected()?.send(Request::Ping(ping)).await
    }

    /// The next event within `timeout`. A dropped connection is not an
    /// error: it is reconnected, and the result is [`Event::Reconnected`].
    ///
    /// # Errors
    /// [`ClientError::Timeout`], a fatal error from the server, or every
    /// reconnection attempt failed.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<Event, ClientError> {
        let Some(client) = self.client.as_mut() else {
            return self.reconnect().await.map(Event::Reconnected);
        };
        match client.next_event(timeout).await {
            Ok(message) => {
                self.saw(&message);
                Ok(Event::Message(message))
            }
            Err(e) if dropped(&e) => {
                self.client = None;
                self.socket = None;
                self.reconnect().await.map(Event::Reconnected)
            }
            Err(e) => Err(e),
        }
    }

    /// Drops the connection with a TCP reset (`SO_LINGER` 0, then close), as
    /// a network failure would; the next [`Reconnecting::next_event`] reconnects.
    pub fn disconnect(&mut self) {
        if let Some(socket) = self.socket.take() {
            // Best effort: if it fails, the close below is an orderly one.
            let _ = socket.set_linger(Some(Duration::ZERO));
        }
        self.client = None;
    }

    fn connected(&mut self) -> Result<&mut Client, ClientError> {
        self.client.as_mut().ok_or(ClientError::Closed)
    }

    /// Notes the seq of a room event.
    fn saw(&mut self, message: &ServerMessage) {
        let (room, seq) = match &message.body {
            Some(Body::Chat(chat)) => (&chat.room, chat.seq),
            Some(Body::MemberJoined(joined)) => (&joined.room, joined.seq),
            Some(Body::MemberLeft(left)) => (&left.room, left.seq),
            Some(Body::RoomEvent(event)) if event.seq != 0 => (&event.room, event.seq),
            Some(Body::RoomLeft(left)) => {
                self.rooms.remove(&left.room);
                return;
            }
            _ => return,
        };
        if let Some(position) = self.rooms.get_mut(room) {
            position.seq = position.seq.max(seq);
        }
    }

    /// Connects again, with backoff, until it is back in every room.
    async fn reconnect(&mut self) -> Result<Reconnected, ClientError> {
        let mut last = ClientError::Closed;
        for attempt in 0..self.backoff.attempts {
            tokio::time::sleep(self.backoff.delay(attempt)).await;
            let at = (self.current + usize::try_from(attempt).unwrap_or(0)) % self.addrs.len();
            match self.rejoin(self.addrs[at]).await {
                Ok((client, socket, mut reconnected)) => {
                    self.current = at;
                    self.client = Some(client);
                    self.socket = Some(socket);
                    reconnected.attempts = attempt + 1;
                    return Ok(reconnected);
                }
                Err(e) if retryable(&e) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// One attempt: connect, Hello with the resume token, and join every
    /// room from where it left off (taking back the seats a resumed session
    /// held). A session that was not resumed rejoins its rooms as a new member.
    async fn rejoin(&mut self, addr: SocketAddr) -> Result<(Client, socket2::Socket, Reconnected), ClientError> {
        let (mut client, socket) = open(addr).await?;
        let welcome = client
            .hello_resuming(&self.name, &self.token, &self.resume_token)
            .await?;
        self.resume_token = welcome.resume_token;
        let mut rooms = Vec::with_capacity(self.rooms.len());
        for (room, position) in &mut self.rooms {
            let joined = client.rejoin(room, position.seq, position.epoch).await?;
            if !joined.recovered {
                // Starting again: the member list is the state, live events follow seq.
                position.seq = joined.seq;
            }
            position.epoch = joined.epoch;
            rooms.push((room.clone(), joined.recovered));
        }
        let reconnected = Reconnected {
            resumed: welcome.resumed,
            rooms,
            attempts: 0,
        };
        Ok((client, socket, reconnected))
    }
}

/// Connects to `addr` (no Hello yet), keeping a duplicate of the socket's
/// handle so that [`Reconnecting::disconnect`] can reset it.
async fn open(addr: SocketAddr) -> Result<(Client, socket2::Socket), ClientError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let socket = socket2::SockRef::from(&stream).try_clone()?;
    let (read, write) = stream.into_split();
    Ok((Client::over(read, write), socket))
}

/// Whether `error` means the connection is gone (not that the server refused something).
fn dropped(error: &ClientError) -> bool {
    matches!(error, ClientError::Closed | ClientError::Io(_))
}

/// Whether another attempt may succeed: the connection failed, or the old
/// session still holds the name, or the server is busy.
fn retryable(error: &ClientError) -> bool {
    dropped(error)
        || matches!(error, ClientError::Timeout(_))
        || matches!(
            error.code(),
            Some(
                ErrorCode::NameTaken
                    | ErrorCode::Overloaded
                    | ErrorCode::ServerFull
                    | ErrorCode::ServerShuttingDown
                    | ErrorCode::ClusterUnavailable
            )
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let backoff = Backoff {
            first: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            attempts: 10,
        };
        for attempt in 0..10 {
            let ceiling = Duration::from_millis(100 * 2_u64.pow(attempt)).min(Duration::from_secs(1));
            for _ in 0..50 {
                assert!(backoff.delay(attempt) <= ceiling);
            }
        }
        assert!(backoff.delay(u32::MAX) <= Duration::from_secs(1));
    }
}
