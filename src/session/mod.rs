//! The Session actor: one per connection, on one of the session threads.
//!
//! A session reads frames through [`FrameCodec`] (its read buffer is bounded
//! by the frame limit: small until Welcome, [`Config::max_frame_len`] after),
//! turns each into a [`Request`], and routes it: it answers Hello and Ping
//! itself, and hands everything else to the room directory, a room or a game
//! world, each reached with one call. Everything it sends goes through its
//! [`Outbox`], the same bounded queue rooms push into, so replies and room
//! events stay in order.
//!
//! Backpressure: when a room's inbox is full the session waits for space
//! without reading further frames, so a client sending faster than its rooms
//! are served is slowed by TCP, never buffered.
//!
//! A session whose connection drops is held for a resume (see `resume`).
//!
//! The files, by concern: `handshake` (socket options, Hello), `resume`
//! (resume tokens, holding and handing over), `limits` (rate limit,
//! heartbeat), `rooms`, `world`, `replies` (what the session sends of its
//! own), and `context` (what every session shares).
//!
//! [`Config::max_frame_len`]: crate::Config::max_frame_len

mod context;
mod handshake;
mod limits;
mod replies;
mod resume;
mod rooms;
mod world;

use std::net::SocketAddr;
use std::sync::Arc;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Running, SpawnHandle, StreamHandler, WrapFuture,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tracing::debug;

pub use context::{LateSends, SessionContext};
pub(crate) use handshake::tune;
pub use resume::ResumeTokens;

use self::limits::RateLimit;
use self::rooms::JoinedRooms;
use self::world::InWorld;
use crate::ids::{DisconnectReason, SessionId, TransportKind};
use crate::lifecycle::LifecycleEvent;
use crate::outbox::{CloseBudget, Outbox, Queued, SharedReader, WriterEnd, WriterSettings, outbox};
use crate::protocol::pb::{self, ClientMessage, ServerMessage, server_message::Body};
use crate::protocol::{self, CodecError, Command, ErrorCode, FrameCodec, FrameLimit, ProtocolError, Request};
use crate::room::Member;
use crate::stats::MessageKind;

/// The read buffer's first capacity. It grows to the largest frame the session
/// receives (at most the frame limit) and is reused from its start, so an idle
/// session keeps about this much.
const READ_BUFFER_START: usize = 1024;

/// What a session reads: a client message, one that did not decode, or why reading failed.
pub type Frame = Result<Result<ClientMessage, prost::DecodeError>, CodecError>;

/// A connection as a session uses it: its kind (for the metrics), the
/// frames it reads (made with the session's frame limit), the writer its
/// outbox is written to (made with the outbox, whose close reason a
/// transport may tell the client), and its read half shared for the
/// lingering close.
pub struct Transport<F, Make, L> {
    /// For the metrics.
    pub kind: TransportKind,
    /// Makes the stream of frames, given the frame limit and the outbox.
    pub frames: F,
    /// Makes the writer, given the outbox.
    pub writer: Make,
    /// The raw read half, for the lingering close.
    pub lingering: SharedReader<L>,
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for Hello.
    Handshake,
    /// Welcomed, with its connection.
    Active,
    /// Its connection dropped; held for a resume.
    Held,
    /// Ended, or handed over to the connection that resumed it.
    Gone,
}

/// The session actor. See the module documentation.
pub struct Session {
    /// The session's id: the connection's own until a resume adopts the resumed session's.
    id: SessionId,
    phase: Phase,
    peer: SocketAddr,
    /// Set by Welcome.
    member: Option<Member>,
    /// Rooms joined.
    rooms: JoinedRooms,
    /// The world entered, if any (boxed: most sessions never enter one, and
    /// an idle session's size sets the server's memory per connection).
    world: Option<Box<InWorld>>,
    outbox: Outbox,
    frame_limit: FrameLimit,
    reader: Option<SpawnHandle>,
    /// Set when reading from the socket failed, for the disconnect reason.
    read_failed: Option<DisconnectReason>,
    /// The inbound rate limit, from Welcome on.
    rate: RateLimit,
    /// Hellos received before Welcome.
    hellos: u32,
    /// When the session's token expires (with `--auth token`).
    token_expires: Option<std::time::SystemTime>,
    last_heard: Instant,
    server: Arc<SessionContext>,
}

impl Session {
    /// Starts a session for a connection's two halves (plain TCP or TLS) on
    /// the current arbiter: length-prefixed frames both ways. `slot` is held
    /// until the socket closes (the connection's place under the server's
    /// connection limits).
    pub(crate) fn start<R, W, S>(read: R, write: W, peer: SocketAddr, server: Arc<SessionContext>, slot: S)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
        S: Send + 'static,
    {
        let read = SharedReader::new(read);
        let lingering = read.share();
        let transport = Transport {
            kind: TransportKind::Tcp,
            frames: move |limit, _: &Outbox| {
                let codec = FrameCodec::<ClientMessage, ServerMessage>::new(limit);
                FramedRead::with_capacity(read, codec, READ_BUFFER_START)
            },
            writer: move |_: &Outbox| write,
            lingering,
        };
        Session::launch(transport, peer, server, slot);
    }

    /// Starts a session over `transport` on the current arbiter (see [`Session::start`]).
    pub(crate) fn launch<F, Frames, Make, W, L, S>(
        transport: Transport<F, Make, L>,
        peer: SocketAddr,
        server: Arc<SessionContext>,
        slot: S,
    ) where
        F: FnOnce(FrameLimit, &Outbox) -> Frames + 'static,
        Frames: futures_util::Stream<Item = Frame> + 'static,
        Make: FnOnce(&Outbox) -> W,
        W: AsyncWrite + Unpin + Send + 'static,
        L: AsyncRead + Unpin + Send + 'static,
        S: Send + 'static,
    {
        let Transport {
            kind,
            frames,
            writer,
            lingering,
        } = transport;
        let config = &server.config;
        let (outbox, queue) = outbox(config.outbound_queue_frames, config.outbound_queue_bytes);
        let close = CloseBudget::new(config.close_timeout(), server.shutdown_deadline.clone());
        let id = SessionId::next();
        let stats = server.stats.clone();
        stats.connection_opened(kind);
        let write = writer(&outbox);
        let settings = WriterSettings {
            batch_bytes: config.write_batch_bytes,
            coalesce: config.write_coalesce(),
            write_timeout: config.write_timeout(),
        };
        // The writer is made inside the task: a future awaited from a task's
        // captures would be held twice in every idle connection's task.
        let task = async move {
            let end = queue.write_to(write, settings, close.clone(), stats.clone());
            match end.await {
                // Boxed: its state is allocated only by a connection that closes, not held by every writer.
                WriterEnd::Closed => Box::pin(lingering.linger(close.linger_limit())).await,
                WriterEnd::Failed(e) => debug!(session = %id, error = %e, "connection ended while writing"),
            }
            stats.connection_closed(kind);
            drop(slot);
        };
        server.tracker.spawn(task);
        let frame_limit = FrameLimit::new(config.max_hello_frame_len);
        let frames = frames(frame_limit.clone(), &outbox);
        Session::create(move |ctx| {
            let reader = ctx.add_stream(frames);
            Session {
                id,
                phase: Phase::Handshake,
                peer,
                member: None,
                rooms: JoinedRooms::default(),
                world: None,
                outbox,
                frame_limit,
                reader: Some(reader),
                read_failed: None,
                rate: RateLimit::new(&server.config),
                hellos: 0,
                token_expires: None,
                last_heard: Instant::now(),
                server,
            }
        });
    }

    /// Routes a request to the code that answers it.
    fn handle_request(&mut self, request: Request, ctx: &mut Context<Self>) {
        let Request { id, command } = request;
        match command {
            Command::Hello {
                name,
                token,
                resume_token,
            } => self.hello(ctx, id, name, (&token, &resume_token)),
            Command::Goodbye => {
                debug!(session = %self.id, "goodbye");
                self.close(Queued::Flush, None, DisconnectReason::Goodbye);
                ctx.stop();
            }
            Command::Ping { client_time_us } => {
                let pong = pb::Pong {
                    client_time_us,
                    server_time_us: protocol::now_us(),
                };
                self.send(ctx, &protocol::server_message(id, Body::Pong(pong)));
            }
            Command::Join(spec) => self.join(ctx, id, spec),
            Command::QuickJoin {
                kind,
                filter,
                params,
                metadata,
            } => self.quick_join(ctx, id, (kind, filter), (params, metadata)),
            Command::ListRooms(spec) => self.list_rooms(ctx, id, &spec),
            Command::Leave(room) => self.leave(ctx, id, room),
            Command::Chat { room, text } => self.chat(ctx, id, room, text),
            Command::RoomSend { room, op, data } => self.room_send(ctx, id, room, op, data),
            Command::EnterWorld { world, spawn } => self.enter_world(ctx, id, world, spawn),
            Command::Move(input) => self.move_in_world(ctx, id, input),
            Command::LeaveWorld(world) => self.leave_world(ctx, id, &world),
        }
    }

    /// The client message in `frame`, counted; `None` when the frame ended
    /// the session (a broken frame, or the socket failed).
    fn decode(&mut self, frame: Frame, ctx: &mut Context<Self>) -> Option<ClientMessage> {
        const BROKEN: DisconnectReason = DisconnectReason::ProtocolError;
        let stats = &self.server.stats;
        let message = match frame {
            Ok(Ok(message)) => message,
            Ok(Err(e)) => {
                stats.message_in(MessageKind::Invalid);
                self.fail(ctx, 0, ErrorCode::BadFrame, format!("not a ClientMessage: {e}"), BROKEN);
                return None;
            }
            Err(e @ CodecError::FrameTooLarge { .. }) => {
                stats.message_in(MessageKind::Invalid);
                self.fail(ctx, 0, ErrorCode::FrameTooLarge, e.to_string(), BROKEN);
                return None;
            }
            Err(CodecError::Violation { code, message }) => {
                stats.message_in(MessageKind::Invalid);
                let reason = match code {
                    ErrorCode::RateLimited => DisconnectReason::RateLimited,
                    _ => BROKEN,
                };
                self.fail(ctx, 0, code, message, reason);
                return None;
            }
            Err(CodecError::Io(e)) => {
                debug!(session = %self.id, error = %e, "read failed");
                self.read_failed = Some(DisconnectReason::ReadError);
                ctx.stop();
                return None;
            }
        };
        stats.message_in(MessageKind::of(&message));
        Some(message)
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.server.late_sends.reading_starts();
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
                act.server.late_sends.reading_stops();
            }
            if act.phase == Phase::Held {
                ctx.stop();
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

    fn stopping(&mut self, ctx: &mut Context<Self>) -> Running {
        if self.phase == Phase::Held {
            // Its own connection closing stops nothing: only the grace period's end, a
            // resume or shutdown ends a held session.
            if !self.server.stop_reading.is_cancelled() {
                return Running::Continue;
            }
            self.end_hold();
        }
        if self.hold(ctx) {
            return Running::Continue;
        }
        if self.server.stop_reading.is_cancelled() {
            self.say_goodbye();
        }
        self.release();
        Running::Stop
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        let stats = &self.server.stats;
        match self.phase {
            Phase::Handshake => stats.sessions_handshake.dec(),
            Phase::Active => stats.sessions_active.dec(),
            Phase::Held | Phase::Gone => {}
        }
        let reason = self.outbox.close_reason().unwrap_or(DisconnectReason::ClientClosed);
        self.server.hooks.emit(LifecycleEvent::ConnectionClosed {
            session: self.id,
            peer: self.peer,
            reason,
        });
    }
}

impl Session {
    /// Gives back what the session holds: its connection (closed after what
    /// is queued), its name, its world and its rooms. Runs when the actor
    /// stops, and again (finding nothing left) when it is dropped, so even a
    /// session dropped without stopping leaves nothing behind.
    fn release(&mut self) {
        if self.reader.take().is_some() {
            self.server.late_sends.reading_stops();
        }
        self.close(
            Queued::Flush,
            None,
            self.read_failed.unwrap_or(DisconnectReason::ClientClosed),
        );
        if let Some(member) = &self.member {
            self.server.names.release(&member.name, self.id);
            if let Some(cluster) = &self.server.cluster {
                cluster.release_name(member.name.as_str(), self.id.get());
            }
            self.forget_resume_token();
        }
        self.leave_world_now();
        self.leave_all_rooms();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.release();
    }
}

impl StreamHandler<Frame> for Session {
    fn handle(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        // Once reading stopped (shutdown), frames the stream still yields are not taken:
        // the rooms may already be draining.
        if self.reader.is_none() {
            return;
        }
        self.last_heard = Instant::now();
        let Some(message) = self.decode(frame, ctx) else { return };
        let is_hello = matches!(message.body, Some(pb::client_message::Body::Hello(_)));
        if self.member.is_none() {
            if !is_hello {
                let (id, reason) = (message.request_id, DisconnectReason::ProtocolError);
                return self.fail(
                    ctx,
                    id,
                    ErrorCode::HelloRequired,
                    "the first message must be Hello",
                    reason,
                );
            }
            if !self.may_say_hello(ctx, message.request_id) {
                return;
            }
        }
        if self.member.is_some() && !self.within_rate(ctx, message.request_id) {
            return;
        }
        match Request::parse(message, self.server.config.max_text_len) {
            Ok(request) => self.handle_request(request, ctx),
            Err((id, e @ ProtocolError::UnsupportedVersion(_))) => {
                self.fail(ctx, id, e.code(), e.to_string(), DisconnectReason::ProtocolError);
            }
            Err((id, e)) => self.reply_error(ctx, id, e.code(), e.to_string()),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        debug!(session = %self.id, "client closed the connection");
        ctx.stop();
    }
}
