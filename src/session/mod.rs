//! The Session actor: one per connection, on one of the session threads.
//!
//! A session reads frames through [`FrameCodec`] (its read buffer is bounded
//! by the frame limit: small until Welcome, [`Config::max_frame_len`] after),
//! turns each into a [`Request`], and answers it or forwards it to the World
//! or a Room. Everything it sends goes through its [`Outbox`], the same
//! bounded queue rooms push into, so replies and room events stay in order.
//!
//! Backpressure: when a room's inbox is full the session waits for space
//! without reading further frames, so a client sending faster than its rooms
//! are served is slowed by TCP, never buffered.
//!
//! [`Config::max_frame_len`]: crate::Config::max_frame_len

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Running, SpawnHandle, StreamHandler, WrapFuture,
};
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use crate::lifecycle::{DisconnectReason, LifecycleEvent};
use crate::mmo::{Enter, Entered, InputSlot, NoWorld, WorldCommand, WorldLink};
use crate::outbox::{Outbox, Queued, SendError, WriterEnd, outbox};
use crate::protocol::pb::{self, ClientMessage, ServerMessage, server_message::Body};
use crate::protocol::{
    self, ChatText, CodecError, Command, ErrorCode, FrameCodec, FrameLimit, MoveInput, PlayerName, Point,
    ProtocolError, Request, RoomName, WorldName, encode_frame,
};
use crate::room::{ChatSent, Join, Leave, Member, RoomCommand, RoomHandle};
use crate::server::{ConnectionSlot, ServerContext};
use crate::stats::{MessageKind, OverloadLevel};

/// The read buffer's first capacity. It grows to the largest frame the session
/// receives (at most the frame limit) and is reused from its start, so an idle
/// session keeps about this much.
const READ_BUFFER_START: usize = 1024;

/// A session's inbound rate limit, if the configuration sets one.
fn rate_limiter(config: &crate::Config) -> Option<DefaultDirectRateLimiter> {
    let rate = NonZeroU32::new(config.rate_limit_per_s)?;
    let burst = NonZeroU32::new(config.rate_limit_burst).unwrap_or(rate);
    Some(RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)))
}

/// The window in which dropped messages add up to a disconnect.
const DROP_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// How often a join is retried when the room it found was just closing.
const JOIN_ATTEMPTS: u32 = 3;

/// Identifies a session for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

impl SessionId {
    /// The id `id`.
    pub fn new(id: u64) -> Self {
        SessionId(id)
    }

    /// A new id, never handed out before.
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SessionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The number on the wire.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The world a session is in.
struct InWorld {
    name: WorldName,
    link: WorldLink,
    /// Where its Moves wait for the world's tick.
    input: Arc<InputSlot>,
    /// The client_tick of the last Move taken; Moves not above it are stale.
    last_client_tick: Option<u32>,
}

type Frame = Result<Result<ClientMessage, prost::DecodeError>, CodecError>;

/// The session actor. See the module documentation.
pub struct Session {
    id: SessionId,
    peer: SocketAddr,
    /// Set by Welcome.
    member: Option<Member>,
    /// Rooms joined, and the one being joined.
    rooms: HashMap<RoomName, RoomHandle>,
    /// The world entered (or being entered), if any.
    world: Option<InWorld>,
    outbox: Outbox,
    frame_limit: FrameLimit,
    reader: Option<SpawnHandle>,
    /// Set when reading from the socket failed, for the disconnect reason.
    read_failed: Option<DisconnectReason>,
    /// The inbound rate limit, from Welcome on (`None`: no limit).
    limiter: Option<DefaultDirectRateLimiter>,
    /// Messages dropped by the rate limit in the second that began at `dropping_since`.
    dropped: u32,
    dropping_since: Instant,
    last_heard: Instant,
    server: Arc<ServerContext>,
}

impl Session {
    /// Tunes a client's socket as the configuration asks (no Nagle delay; the
    /// kernel send buffer).
    pub(crate) fn tune(stream: &TcpStream, peer: SocketAddr, config: &crate::Config) {
        if let Err(e) = stream.set_nodelay(true) {
            debug!(%peer, error = %e, "could not set TCP_NODELAY");
        }
        if config.socket_send_buffer > 0
            && let Err(e) = socket2::SockRef::from(stream).set_send_buffer_size(config.socket_send_buffer)
        {
            debug!(%peer, error = %e, "could not set SO_SNDBUF");
        }
    }

    /// Starts a session for a connection's two halves (plain TCP or TLS) on
    /// the current arbiter. `slot` holds the connection's place under the
    /// connection limits until its socket closes.
    pub(crate) fn start<R, W>(read: R, write: W, peer: SocketAddr, server: Arc<ServerContext>, slot: ConnectionSlot)
    where
        R: AsyncRead + Unpin + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let config = &server.config;
        let (outbox, queue) = outbox(config.outbound_queue_frames, config.outbound_queue_bytes);
        let id = SessionId::next();
        let stats = server.stats.clone();
        stats.connections_open.inc();
        let writer = queue.write_to(
            write,
            config.write_batch_bytes,
            config.write_timeout(),
            config.close_timeout(),
            stats.clone(),
        );
        server.tracker.spawn(async move {
            if let WriterEnd::Failed(e) = writer.await {
                debug!(session = %id, error = %e, "connection ended while writing");
            }
            stats.connections_open.dec();
            drop(slot);
        });
        let frame_limit = FrameLimit::new(config.max_hello_frame_len);
        let codec = FrameCodec::<ClientMessage, ServerMessage>::new(frame_limit.clone());
        Session::create(move |ctx| {
            let reader = ctx.add_stream(FramedRead::with_capacity(read, codec, READ_BUFFER_START));
            Session {
                id,
                peer,
                member: None,
                rooms: HashMap::new(),
                world: None,
                outbox,
                frame_limit,
                reader: Some(reader),
                read_failed: None,
                limiter: rate_limiter(&server.config),
                dropped: 0,
                dropping_since: Instant::now(),
                last_heard: Instant::now(),
                server,
            }
        });
    }

    fn handle_request(&mut self, request: Request, ctx: &mut Context<Self>) {
        let Request { id, command } = request;
        match command {
            Command::Hello { name, token } => self.hello(ctx, id, name, &token),
            Command::Ping { client_time_us } => {
                let pong = pb::Pong {
                    client_time_us,
                    server_time_us: protocol::now_us(),
                };
                self.send(ctx, &protocol::server_message(id, Body::Pong(pong)));
            }
            Command::Join(room) => self.join(ctx, id, room, 1),
            Command::Leave(room) => self.leave(ctx, id, room),
            Command::Chat { room, text } => self.chat(ctx, id, room, text),
            Command::EnterWorld { world, spawn } => self.enter_world(ctx, id, world, spawn, 1),
            Command::Move(input) => self.move_in_world(ctx, id, input),
            Command::LeaveWorld(world) => self.leave_world(ctx, id, &world),
        }
    }

    fn hello(&mut self, ctx: &mut Context<Self>, request_id: u64, name: PlayerName, token: &str) {
        if self.member.is_some() {
            return self.reply_error(
                ctx,
                request_id,
                ErrorCode::AlreadyWelcomed,
                "Hello was already answered",
            );
        }
        if let Some(authority) = &self.server.authority
            && let Err(e) = authority.verify(token, name.as_str(), std::time::SystemTime::now())
        {
            debug!(session = %self.id, peer = %self.peer, error = %e, "token refused");
            let message = format!("{e}");
            let reason = DisconnectReason::Unauthenticated;
            return self.fail(ctx, request_id, ErrorCode::Unauthenticated, message, reason);
        }
        if !self.server.names.claim(&name, self.id) {
            return self.reply_error(
                ctx,
                request_id,
                ErrorCode::NameTaken,
                format!("the name {name:?} is taken"),
            );
        }
        let stats = &self.server.stats;
        stats.sessions_handshake.dec();
        stats.sessions_active.inc();
        self.server.hooks.emit(LifecycleEvent::SessionAuthenticated {
            session: self.id,
            name: name.clone(),
        });
        self.member = Some(Member { id: self.id, name });
        let config = &self.server.config;
        self.frame_limit.set(config.max_frame_len);
        let welcome = pb::Welcome {
            session_id: self.id.get(),
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            max_frame_len: u32::try_from(config.max_frame_len).unwrap_or(u32::MAX),
        };
        self.send(ctx, &protocol::server_message(request_id, Body::Welcome(welcome)));
    }

    /// Asks the World for the room, then the room for a place; a room that
    /// was closing refuses, and the World is asked again.
    fn join(&mut self, ctx: &mut Context<Self>, request_id: u64, room: RoomName, attempt: u32) {
        let Some(member) = self.member.clone() else { return };
        if attempt == 1 {
            if self.rooms.contains_key(&room) {
                return self.reply_error(
                    ctx,
                    request_id,
                    ErrorCode::AlreadyInRoom,
                    format!("already in room {room}"),
                );
            }
            if self.server.stats.overload() >= OverloadLevel::Shedding {
                return self.reply_error(
                    ctx,
                    request_id,
                    ErrorCode::Overloaded,
                    "the server is overloaded; try again later",
                );
            }
            if self.rooms.len() >= self.server.config.max_rooms_per_session {
                let message = format!(
                    "already in {} rooms (see Config::max_rooms_per_session)",
                    self.server.config.max_rooms_per_session
                );
                return self.reply_error(ctx, request_id, ErrorCode::TooManyRooms, message);
            }
        }
        let world = self.server.world.clone();
        let found = room.clone();
        ctx.wait(
            async move { world.room(found).await }
                .into_actor(self)
                .map(move |handle, act, ctx| {
                    let Ok(handle) = handle else {
                        return act.fail(
                            ctx,
                            request_id,
                            ErrorCode::ServerShuttingDown,
                            "the server is shutting down",
                            DisconnectReason::ServerShutdown,
                        );
                    };
                    // Recorded before the room answers, so a session stopping meanwhile still leaves it.
                    act.rooms.insert(room.clone(), handle.clone());
                    let (accepted, answer) = oneshot::channel();
                    let join = Join {
                        request_id,
                        member,
                        outbox: act.outbox.clone(),
                        accepted,
                    };
                    let asked = async move {
                        handle.send(RoomCommand::Join(join)).await.ok()?;
                        answer.await.ok()
                    };
                    ctx.wait(asked.into_actor(act).map(move |accepted, act, ctx| {
                        if accepted == Some(true) {
                            return;
                        }
                        act.rooms.remove(&room);
                        if attempt < JOIN_ATTEMPTS {
                            act.join(ctx, request_id, room, attempt + 1);
                        } else {
                            act.reply_error(
                                ctx,
                                request_id,
                                ErrorCode::Internal,
                                format!("room {room} could not be joined; try again"),
                            );
                        }
                    }));
                }),
        );
    }

    /// Asks the registry for the world, then the world for a place; a world
    /// that was closing refuses, and the registry is asked again.
    fn enter_world(
        &mut self,
        ctx: &mut Context<Self>,
        request_id: u64,
        world: WorldName,
        spawn: Option<Point>,
        attempt: u32,
    ) {
        let Some(member) = self.member.clone() else { return };
        if attempt == 1 {
            if let Some(current) = &self.world {
                let message = format!("already in world {}", current.name);
                return self.reply_error(ctx, request_id, ErrorCode::AlreadyInWorld, message);
            }
            if self.server.stats.overload() >= OverloadLevel::Shedding {
                let message = "the server is overloaded; try again later";
                return self.reply_error(ctx, request_id, ErrorCode::Overloaded, message);
            }
        }
        let link = match self.server.worlds.get_or_start(&world) {
            Ok(link) => link,
            Err(NoWorld::TooMany) => {
                let message = format!(
                    "the server holds {} worlds already (see Config::max_worlds)",
                    self.server.config.max_worlds
                );
                return self.reply_error(ctx, request_id, ErrorCode::WorldFull, message);
            }
            Err(NoWorld::Stopping) => {
                let message = "the server is shutting down";
                return self.reply_error(ctx, request_id, ErrorCode::ServerShuttingDown, message);
            }
        };
        let input = Arc::new(InputSlot::default());
        // Recorded before the world answers, so a session stopping meanwhile still leaves it.
        self.world = Some(InWorld {
            name: world.clone(),
            link: link.clone(),
            input: input.clone(),
            last_client_tick: None,
        });
        let (answer, answered) = oneshot::channel();
        let enter = Enter {
            request_id,
            session: self.id.get(),
            name: member.name,
            outbox: self.outbox.clone(),
            input,
            spawn,
            answer,
        };
        let asked = async move {
            link.inbox.send(WorldCommand::Enter(enter)).await.ok()?;
            answered.await.ok()
        };
        ctx.wait(asked.into_actor(self).map(move |entered, act, ctx| {
            if entered == Some(Entered::Yes) {
                return;
            }
            act.world = None;
            match entered {
                Some(Entered::Full) => {
                    let message =
                        format!("world {world} holds as many players as allowed (see Config::world_max_players)");
                    act.reply_error(ctx, request_id, ErrorCode::WorldFull, message);
                }
                _ if attempt < JOIN_ATTEMPTS => act.enter_world(ctx, request_id, world, spawn, attempt + 1),
                _ => {
                    let message = format!("world {world} could not be entered; try again");
                    act.reply_error(ctx, request_id, ErrorCode::Internal, message);
                }
            }
        }));
    }

    /// Hands a Move to the world's next tick, unless it is stale.
    fn move_in_world(&mut self, ctx: &mut Context<Self>, request_id: u64, input: MoveInput) {
        let Some(world) = &mut self.world else {
            return self.reply_error(ctx, request_id, ErrorCode::NotInWorld, "not in a world");
        };
        if world.last_client_tick.is_some_and(|last| input.client_tick <= last) {
            self.server.stats.world_moves_stale.inc();
            return;
        }
        world.last_client_tick = Some(input.client_tick);
        world.input.put(input);
    }

    fn leave_world(&mut self, ctx: &mut Context<Self>, request_id: u64, name: &WorldName) {
        match self.world.take_if(|world| world.name == *name) {
            Some(world) => {
                let leave = WorldCommand::Leave {
                    request_id,
                    session: self.id.get(),
                };
                let inbox = world.link.inbox;
                ctx.wait(
                    async move { inbox.send(leave).await }
                        .into_actor(self)
                        .map(|_, _, _| ()),
                );
            }
            None => self.reply_error(ctx, request_id, ErrorCode::NotInWorld, format!("not in world {name}")),
        }
    }

    fn leave(&mut self, ctx: &mut Context<Self>, request_id: u64, room: RoomName) {
        match self.rooms.remove(&room) {
            Some(handle) => self.send_to_room(
                ctx,
                &handle,
                RoomCommand::Leave(Leave {
                    request_id,
                    session: self.id,
                }),
            ),
            None => self.reply_error(ctx, request_id, ErrorCode::NotInRoom, format!("not in room {room}")),
        }
    }

    fn chat(&mut self, ctx: &mut Context<Self>, request_id: u64, room: RoomName, text: ChatText) {
        let Some(handle) = self.rooms.get(&room) else {
            return self.reply_error(ctx, request_id, ErrorCode::NotInRoom, format!("not in room {room}"));
        };
        let handle = handle.clone();
        self.send_to_room(
            ctx,
            &handle,
            RoomCommand::Chat(ChatSent {
                request_id,
                session: self.id,
                text,
            }),
        );
    }

    /// Queues `command` for the room; while the room's inbox is full, this
    /// session reads nothing more.
    fn send_to_room(&mut self, ctx: &mut Context<Self>, room: &RoomHandle, command: RoomCommand) {
        use tokio::sync::mpsc::error::TrySendError;
        match room.try_send(command) {
            Ok(()) => {}
            Err(TrySendError::Full(command)) => {
                let room = room.clone();
                ctx.wait(
                    async move { room.send(command).await }
                        .into_actor(self)
                        .map(|sent, act, ctx| {
                            if sent.is_err() {
                                act.fail(ctx, 0, ErrorCode::Internal, "room stopped", DisconnectReason::Internal);
                            }
                        }),
                );
            }
            Err(TrySendError::Closed(_)) => {
                self.fail(ctx, 0, ErrorCode::Internal, "room stopped", DisconnectReason::Internal);
            }
        }
    }

    /// Queues a reply; a client too slow to take its own replies is closed.
    fn send(&mut self, ctx: &mut Context<Self>, message: &ServerMessage) {
        match self.outbox.try_send(encode_frame(message)) {
            Ok(()) => {}
            Err(SendError::Full) => {
                warn!(session = %self.id, peer = %self.peer, "slow consumer: outbound queue full, disconnecting");
                self.server.stats.error_sent(ErrorCode::SlowConsumer);
                let error = protocol::error_message(0, ErrorCode::SlowConsumer, SendError::Full.to_string());
                self.close(
                    Queued::Discard,
                    Some(encode_frame(&error)),
                    DisconnectReason::SlowConsumer,
                );
                ctx.stop();
            }
            Err(SendError::Closed) => ctx.stop(),
        }
    }

    fn reply_error(&mut self, ctx: &mut Context<Self>, request_id: u64, code: ErrorCode, message: impl Into<String>) {
        self.server.stats.error_sent(code);
        self.send(ctx, &protocol::error_message(request_id, code, message));
    }

    /// Ends the connection for `reason` after what is queued and a last error frame.
    fn fail(
        &mut self,
        ctx: &mut Context<Self>,
        request_id: u64,
        code: ErrorCode,
        message: impl Into<String>,
        reason: DisconnectReason,
    ) {
        let message = message.into();
        info!(session = %self.id, peer = %self.peer, code = code.as_str_name(), error = %message, "closing session");
        self.server.stats.error_sent(code);
        let error = protocol::error_message(request_id, code, message);
        self.close(Queued::Flush, Some(encode_frame(&error)), reason);
        ctx.stop();
    }

    /// Whether a message may pass the rate limit. A dropped one is answered
    /// RATE_LIMITED; `rate_limit_disconnect_after` of them within one second
    /// close the session.
    fn within_rate(&mut self, ctx: &mut Context<Self>, request_id: u64) -> bool {
        let Some(limiter) = &self.limiter else { return true };
        if limiter.check().is_ok() {
            return true;
        }
        if self.dropping_since.elapsed() > DROP_WINDOW {
            self.dropping_since = Instant::now();
            self.dropped = 0;
        }
        self.dropped = self.dropped.saturating_add(1);
        let config = &self.server.config;
        if self.dropped >= config.rate_limit_disconnect_after {
            let message = format!(
                "{} messages over the rate limit within a second (see Config::rate_limit_disconnect_after)",
                self.dropped
            );
            self.fail(
                ctx,
                request_id,
                ErrorCode::RateLimited,
                message,
                DisconnectReason::RateLimited,
            );
        } else {
            let message = format!(
                "over the rate limit of {}/s (see Config::rate_limit_per_s); message dropped",
                config.rate_limit_per_s
            );
            self.reply_error(ctx, request_id, ErrorCode::RateLimited, message);
        }
        false
    }

    /// Closes the outbox; the first close counts the disconnect under its reason.
    fn close(&self, queued: Queued, last: Option<Bytes>, reason: DisconnectReason) {
        if self.outbox.close(queued, last, reason) {
            self.server.stats.disconnected(reason);
        }
    }

    /// Closes the connection after everything queued and `ServerShutdown`.
    fn say_goodbye(&mut self) {
        let goodbye = pb::ServerShutdown {
            reason: "server shutting down".into(),
            reconnect_after_ms: self.server.config.reconnect_after_ms,
        };
        let frame = encode_frame(&protocol::server_message(0, Body::Shutdown(goodbye)));
        self.close(Queued::Flush, Some(frame), DisconnectReason::ServerShutdown);
    }

    /// Runs every heartbeat interval: a session silent for one interval gets
    /// a Heartbeat to answer; silent for three, it is closed.
    fn check_idle(&mut self, ctx: &mut Context<Self>) {
        let silent = self.last_heard.elapsed();
        if silent > self.server.config.idle_timeout() {
            self.fail(
                ctx,
                0,
                ErrorCode::IdleTimeout,
                "silent for three heartbeat intervals (see Config::heartbeat_interval_ms)",
                DisconnectReason::IdleTimeout,
            );
        } else if self.member.is_some() && silent >= self.server.config.heartbeat_interval() {
            let heartbeat = pb::Heartbeat {
                server_time_us: protocol::now_us(),
            };
            self.send(ctx, &protocol::server_message(0, Body::Heartbeat(heartbeat)));
        }
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.server.stats.sessions_handshake.inc();
        self.server.hooks.emit(LifecycleEvent::ConnectionOpened {
            session: self.id,
            peer: self.peer,
        });
        // The connection ends when its outbox closes, whoever closed it.
        ctx.spawn(self.outbox.closed().into_actor(self).map(|(), _, ctx| ctx.stop()));
        // Shutdown, first phase: accept no more requests.
        let stop_reading = self.server.stop_reading.clone().cancelled_owned();
        ctx.spawn(stop_reading.into_actor(self).map(|(), act, ctx| {
            if let Some(reader) = act.reader.take() {
                ctx.cancel_future(reader);
            }
        }));
        // Second phase, once the rooms delivered what they had: say goodbye after all that.
        let closing = self.server.closing.clone().cancelled_owned();
        ctx.spawn(closing.into_actor(self).map(|(), act, _| act.say_goodbye()));
        let config = &self.server.config;
        ctx.run_later(config.hello_timeout(), |act, ctx| {
            if act.member.is_none() {
                act.fail(
                    ctx,
                    0,
                    ErrorCode::HandshakeTimeout,
                    "no Hello in time (see Config::hello_timeout_ms)",
                    DisconnectReason::HelloTimeout,
                );
            }
        });
        ctx.run_interval(config.heartbeat_interval(), Self::check_idle);
    }

    fn stopping(&mut self, _ctx: &mut Context<Self>) -> Running {
        if self.server.stop_reading.is_cancelled() {
            self.say_goodbye();
        }
        self.close(
            Queued::Flush,
            None,
            self.read_failed.unwrap_or(DisconnectReason::ClientClosed),
        );
        if let Some(member) = &self.member {
            self.server.names.release(&member.name, self.id);
        }
        if let Some(world) = self.world.take() {
            let leave = WorldCommand::Leave {
                request_id: 0,
                session: self.id.get(),
            };
            crate::world::post(&world.link.inbox, leave);
        }
        for (_, room) in self.rooms.drain() {
            let leave = RoomCommand::Leave(Leave {
                request_id: 0,
                session: self.id,
            });
            room.post(leave);
        }
        Running::Stop
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        let stats = &self.server.stats;
        if self.member.is_some() {
            stats.sessions_active.dec();
        } else {
            stats.sessions_handshake.dec();
        }
        let reason = self.outbox.close_reason().unwrap_or(DisconnectReason::ClientClosed);
        self.server.hooks.emit(LifecycleEvent::ConnectionClosed {
            session: self.id,
            peer: self.peer,
            reason,
        });
    }
}

impl StreamHandler<Frame> for Session {
    fn handle(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        use pb::client_message::Body as In;
        const BROKEN: DisconnectReason = DisconnectReason::ProtocolError;
        self.last_heard = Instant::now();
        let stats = &self.server.stats;
        let message = match frame {
            Ok(Ok(message)) => message,
            Ok(Err(e)) => {
                stats.message_in(MessageKind::Invalid);
                return self.fail(ctx, 0, ErrorCode::BadFrame, format!("not a ClientMessage: {e}"), BROKEN);
            }
            Err(e @ CodecError::FrameTooLarge { .. }) => {
                stats.message_in(MessageKind::Invalid);
                return self.fail(ctx, 0, ErrorCode::FrameTooLarge, e.to_string(), BROKEN);
            }
            Err(CodecError::Io(e)) => {
                debug!(session = %self.id, error = %e, "read failed");
                self.read_failed = Some(DisconnectReason::ReadError);
                return ctx.stop();
            }
        };
        stats.message_in(match &message.body {
            Some(In::Hello(_)) => MessageKind::Hello,
            Some(In::Ping(_)) => MessageKind::Ping,
            Some(In::JoinRoom(_)) => MessageKind::Join,
            Some(In::LeaveRoom(_)) => MessageKind::Leave,
            Some(In::SendChat(_)) => MessageKind::Chat,
            Some(In::EnterWorld(_)) => MessageKind::EnterWorld,
            Some(In::Move(_)) => MessageKind::Move,
            Some(In::LeaveWorld(_)) => MessageKind::LeaveWorld,
            None => MessageKind::Invalid,
        });
        if self.member.is_none() && !matches!(message.body, Some(In::Hello(_))) {
            return self.fail(
                ctx,
                message.request_id,
                ErrorCode::HelloRequired,
                "the first message must be Hello",
                BROKEN,
            );
        }
        if self.member.is_some() && !self.within_rate(ctx, message.request_id) {
            return;
        }
        match Request::parse(message, self.server.config.max_text_len) {
            Ok(request) => self.handle_request(request, ctx),
            Err((id, e @ ProtocolError::UnsupportedVersion(_))) => {
                self.fail(ctx, id, e.code(), e.to_string(), BROKEN);
            }
            Err((id, e)) => self.reply_error(ctx, id, e.code(), e.to_string()),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        debug!(session = %self.id, "client closed the connection");
        ctx.stop();
    }
}
