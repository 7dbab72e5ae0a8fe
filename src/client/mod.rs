//! A typed async client for protocol v1 over tokio, used by the tests and by
//! `loadtest`: connect, say hello, join, chat, and read events with a timeout.
//!
//! Requests that have a reply ([`Client::hello`], [`Client::join`], …) wait
//! for the frame echoing their request id; events arriving meanwhile are kept
//! (up to [`MAX_STASHED`]) and returned by [`Client::next_message`] in order.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::protocol::pb::client_message::Body as Request;
use crate::protocol::pb::server_message::Body as Reply;
use crate::protocol::pb::{self, ClientMessage, ServerMessage};
use crate::protocol::{CodecError, ErrorCode, FrameCodec, FrameLimit, PROTOCOL_VERSION};

pub use self::reader::ReaderParts;
use self::reader::unexpected;
pub use self::reconnect::{Backoff, Event, Reconnected, Reconnecting};

mod plugin;
mod reader;
mod reconnect;
mod resume;

/// Largest frame the client accepts from a server.
pub const MAX_SERVER_FRAME: usize = 64 << 20;
/// Most events kept while waiting for a reply; more is an error.
pub const MAX_STASHED: usize = 1 << 20;
/// How long a request waits for its reply unless told otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type Codec = FrameCodec<ServerMessage, ClientMessage>;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The server sent a frame over [`MAX_SERVER_FRAME`].
    #[error("server frame: {0}")]
    Frame(CodecError),
    /// The server sent a body that is not a `ServerMessage`.
    #[error("undecodable server frame: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The server answered with an `Error`.
    #[error("server error {code:?} (request {request_id}): {message}")]
    Server {
        /// The error's code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
        /// The request it answers (0: none).
        request_id: u64,
    },
    /// Nothing came in time.
    #[error("nothing received within {0:?}")]
    Timeout(Duration),
    /// The server closed the connection.
    #[error("connection closed by the server")]
    Closed,
    /// The server answered with something other than the expected reply.
    #[error("unexpected reply: {0:?}")]
    Unexpected(Box<ServerMessage>),
    /// More than [`MAX_STASHED`] events arrived while waiting for a reply.
    #[error("more than {MAX_STASHED} events arrived while waiting for a reply")]
    TooManyEvents,
}

impl From<CodecError> for ClientError {
    fn from(error: CodecError) -> Self {
        match error {
            CodecError::Io(e) => ClientError::Io(e),
            e @ (CodecError::FrameTooLarge { .. } | CodecError::Violation { .. }) => ClientError::Frame(e),
        }
    }
}

impl ClientError {
    /// The server's error code, if this is a server error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A connection to a Tavern server.
pub struct Client {
    writer: ClientWriter,
    reader: ClientReader,
    request_timeout: Duration,
}

/// The sending half of a [`Client`].
pub struct ClientWriter {
    frames: FramedWrite<Box<dyn AsyncWrite + Send + Unpin>, Codec>,
    next_request_id: u64,
}

/// The receiving half of a [`Client`].
pub struct ClientReader {
    frames: FramedRead<Box<dyn AsyncRead + Send + Unpin>, Codec>,
    stash: VecDeque<ServerMessage>,
}

impl Client {
    /// Connects (no Hello yet).
    ///
    /// # Errors
    /// The connection failed.
    pub async fn connect(addr: SocketAddr) -> Result<Client, ClientError> {
        Client::connect_from(addr, None).await
    }

    /// Connects from a chosen local address (e.g. one of several 127.0.0.x, so
    /// many connections do not run out of one address's ephemeral ports).
    ///
    /// # Errors
    /// The connection failed.
    pub async fn connect_from(addr: SocketAddr, source: Option<IpAddr>) -> Result<Client, ClientError> {
        let stream = match source {
            None => TcpStream::connect(addr).await?,
            Some(ip) => {
                let socket = if ip.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(addr).await?
            }
        };
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        Ok(Client::over(read, write))
    }

    /// A client over an established connection's two halves (e.g. of a TLS
    /// stream, split with `tokio::io::split`); no Hello yet.
    pub fn over(
        read: impl AsyncRead + Send + Unpin + 'static,
        write: impl AsyncWrite + Send + Unpin + 'static,
    ) -> Client {
        let limit = FrameLimit::new(MAX_SERVER_FRAME);
        let read: Box<dyn AsyncRead + Send + Unpin> = Box::new(read);
        let write: Box<dyn AsyncWrite + Send + Unpin> = Box::new(write);
        Client {
            writer: ClientWriter {
                frames: FramedWrite::new(write, Codec::new(limit.clone())),
                next_request_id: 1,
            },
            reader: ClientReader {
                frames: FramedRead::new(read, Codec::new(limit)),
                stash: VecDeque::new(),
            },
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Connects and says Hello as `name`.
    ///
    /// # Errors
    /// The connection failed or Hello was refused.
    pub async fn connect_as(addr: SocketAddr, name: &str) -> Result<(Client, pb::Welcome), ClientError> {
        let mut client = Client::connect(addr).await?;
        let welcome = client.hello(name).await?;
        Ok((client, welcome))
    }

    /// Sets how long requests wait for their reply.
    pub fn set_request_timeout(&mut self, timeout: Duration) {
        self.request_timeout = timeout;
    }

    /// Says Hello with protocol version 1 and an empty token.
    ///
    /// # Errors
    /// [`ClientError::Server`] with NAME_TAKEN, INVALID_NAME, …
    pub async fn hello(&mut self, name: &str) -> Result<pb::Welcome, ClientError> {
        self.hello_with_token(name, "").await
    }

    /// Says Hello with protocol version 1 and `token` (for `--auth token`).
    ///
    /// # Errors
    /// [`ClientError::Server`] with UNAUTHENTICATED, NAME_TAKEN, INVALID_NAME, …
    pub async fn hello_with_token(&mut self, name: &str, token: &str) -> Result<pb::Welcome, ClientError> {
        let hello = pb::Hello {
            protocol_version: PROTOCOL_VERSION,
            name: name.into(),
            token: token.into(),
            resume_token: String::new(),
        };
        match self.request(Request::Hello(hello)).await? {
            Reply::Welcome(welcome) => Ok(welcome),
            other => Err(unexpected(other)),
        }
    }

    /// Measures a round trip.
    ///
    /// # Errors
    /// The connection failed or no Pong came in time.
    pub async fn ping(&mut self) -> Result<pb::Pong, ClientError> {
        let ping = pb::Ping {
            client_time_us: crate::protocol::now_us(),
        };
        match self.request(Request::Ping(ping)).await? {
            Reply::Pong(pong) => Ok(pong),
            other => Err(unexpected(other)),
        }
    }

    /// Joins `room`; the reply holds every member, gathered from the
    /// `RoomMembers` frames that follow `RoomJoined` in a big room.
    ///
    /// # Errors
    /// [`ClientError::Server`] with INVALID_ROOM, ALREADY_IN_ROOM, ROOM_FULL, …
    pub async fn join(&mut self, room: &str) -> Result<pb::RoomJoined, ClientError> {
        let join = pb::JoinRoom {
            room: room.into(),
            ..pb::JoinRoom::default()
        };
        self.join_with(Request::JoinRoom(join)).await
    }

    /// Sends `join` (a `JoinRoom` or a `QuickJoin`) and reads its
    /// `RoomJoined`, with the whole member list.
    ///
    /// # Errors
    /// [`ClientError::Server`] with the server's refusal.
    pub async fn join_with(&mut self, join: Request) -> Result<pb::RoomJoined, ClientError> {
        let id = self.writer.send(join).await?;
        let mut joined = match self.reply_to(id).await? {
            Reply::RoomJoined(joined) => joined,
            other => return Err(unexpected(other)),
        };
        let count = usize::try_from(joined.member_count).unwrap_or(usize::MAX);
        while joined.members.len() < count {
            match self.reply_to(id).await? {
                Reply::RoomMembers(more) => joined.members.extend(more.members),
                other => return Err(unexpected(other)),
            }
        }
        Ok(joined)
    }

    /// Leaves `room`.
    ///
    /// # Errors
    /// [`ClientError::Server`] with NOT_IN_ROOM, …
    pub async fn leave(&mut self, room: &str) -> Result<pb::RoomLeft, ClientError> {
        match self
            .request(Request::LeaveRoom(pb::LeaveRoom { room: room.into() }))
            .await?
        {
            Reply::RoomLeft(left) => Ok(left),
            other => Err(unexpected(other)),
        }
    }

    /// Enters `world`, at `spawn` if given.
    ///
    /// # Errors
    /// [`ClientError::Server`] with INVALID_WORLD, ALREADY_IN_WORLD, WORLD_FULL, …
    pub async fn enter_world(
        &mut self,
        world: &str,
        spawn: Option<(f32, f32)>,
    ) -> Result<pb::WorldEntered, ClientError> {
        let enter = pb::EnterWorld {
            world: world.into(),
            spawn: spawn.map(|(x, y)| pb::Position { x, y }),
        };
        match self.request(Request::EnterWorld(enter)).await? {
            Reply::WorldEntered(entered) => Ok(entered),
            other => Err(unexpected(other)),
        }
    }

    /// Asks the world to move this player's entity toward (`x`, `y`), without
    /// waiting; `client_tick` must grow from Move to Move.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn move_to(&mut self, x: f32, y: f32, heading: f32, client_tick: u32) -> Result<u64, ClientError> {
        self.writer.move_to(x, y, heading, client_tick).await
    }

    /// Sends chat `text` to `room` without waiting; the echo carries the
    /// returned request id.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn chat(&mut self, room: &str, text: &str) -> Result<u64, ClientError> {
        self.writer.chat(room, text).await
    }

    /// Sends any body; returns its request id.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send(&mut self, body: Request) -> Result<u64, ClientError> {
        self.writer.send(body).await
    }

    /// Writes raw bytes to the socket, framing and all (for testing the server's defences).
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.writer.send_raw(bytes).await
    }

    /// The next frame from the server; an `Error` frame is returned as a message, not an error.
    ///
    /// # Errors
    /// [`ClientError::Closed`] at the end of the stream.
    pub async fn next_message(&mut self) -> Result<ServerMessage, ClientError> {
        self.reader.next_message().await
    }

    /// [`Client::next_message`], waiting at most `timeout`.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] when nothing came.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<ServerMessage, ClientError> {
        self.reader.next_event(timeout).await
    }

    /// Splits into halves that can be used from different tasks.
    pub fn into_split(self) -> (ClientWriter, ClientReader) {
        (self.writer, self.reader)
    }

    /// Sends `body` and waits for the frame answering it.
    async fn request(&mut self, body: Request) -> Result<Reply, ClientError> {
        let id = self.writer.send(body).await?;
        self.reply_to(id).await
    }

    /// The next reply to request `id`, within the request timeout.
    async fn reply_to(&mut self, id: u64) -> Result<Reply, ClientError> {
        let timeout = self.request_timeout;
        tokio::time::timeout(timeout, self.reader.reply_to(id))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }
}

impl ClientWriter {
    /// See [`Client::move_to`].
    ///
    /// # Errors
    /// The connection failed.
    pub async fn move_to(&mut self, x: f32, y: f32, heading: f32, client_tick: u32) -> Result<u64, ClientError> {
        let movement = pb::Move {
            x,
            y,
            heading,
            client_tick,
        };
        self.send(Request::Move(movement)).await
    }

    /// See [`Client::chat`].
    ///
    /// # Errors
    /// The connection failed.
    pub async fn chat(&mut self, room: &str, text: &str) -> Result<u64, ClientError> {
        self.send(Request::SendChat(pb::SendChat {
            room: room.into(),
            text: text.into(),
        }))
        .await
    }

    /// See [`Client::send`].
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send(&mut self, body: Request) -> Result<u64, ClientError> {
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        self.frames
            .send(ClientMessage {
                request_id,
                body: Some(body),
            })
            .await?;
        Ok(request_id)
    }

    /// Buffers `body` without writing it (see [`ClientWriter::flush`]); returns its request id.
    /// Buffered bytes are written once they exceed the codec's backpressure boundary (8 KiB).
    ///
    /// # Errors
    /// The connection failed.
    pub async fn feed(&mut self, body: Request) -> Result<u64, ClientError> {
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        self.frames
            .feed(ClientMessage {
                request_id,
                body: Some(body),
            })
            .await?;
        Ok(request_id)
    }

    /// Writes everything buffered by [`ClientWriter::feed`].
    ///
    /// # Errors
    /// The connection failed.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        SinkExt::<ClientMessage>::flush(&mut self.frames).await?;
        Ok(())
    }

    /// See [`Client::send_raw`].
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.flush().await?;
        let socket = self.frames.get_mut();
        socket.write_all(bytes).await?;
        socket.flush().await?;
        Ok(())
    }
}
