//! The World actor: the directory of rooms. It creates a room on its first
//! join, hands out [`RoomHandle`]s, and forgets a room when the room reports
//! itself empty. Its inbox is bounded ([`Config::world_inbox`]).
//!
//! A room that reported itself empty refuses joins; a session refused that way
//! asks the World again, and by then the World has processed the report (it
//! was queued first) and creates a fresh room. So a name never maps to two
//! live rooms, and no count of members is kept twice.
//!
//! [`Config::world_inbox`]: crate::Config::world_inbox

mod names;

use std::collections::HashMap;

use actix::{Actor, ActorContext, ArbiterHandle, AsyncContext, Context, StreamHandler};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tracing::debug;

pub use names::Names;

use crate::lifecycle::LifecycleEvent;
use crate::protocol::RoomName;
use crate::room::{Room, RoomCommand, RoomContext, RoomHandle};

/// What the World's inbox carries.
#[derive(Debug)]
pub enum WorldCommand {
    /// Sent by a Session joining `room`: answered with the room's handle,
    /// the room created if needed.
    Room {
        /// The room wanted.
        room: RoomName,
        /// The room's handle.
        reply: oneshot::Sender<RoomHandle>,
    },
    /// Sent by a Room whose last member left.
    RoomEmpty {
        /// The room.
        room: RoomName,
        /// Which room of that name ([`RoomHandle::id`]).
        id: u64,
    },
    /// Sent at shutdown: answered once every room handled what was queued before.
    Drain(oneshot::Sender<()>),
}

/// Delivers `message` to an actor's bounded `inbox` without making the
/// caller wait: at once when there is room, else from a task that waits for
/// room. For the few messages that must not be lost and are sent where
/// waiting is impossible (an actor stopping, a room emptying); each such
/// task is one message of a session or room that is ending.
pub(crate) fn post<T: Send + 'static>(inbox: &mpsc::Sender<T>, message: T) {
    if let Err(mpsc::error::TrySendError::Full(message)) = inbox.try_send(message) {
        let inbox = inbox.clone();
        actix_rt::spawn(async move { inbox.send(message).await });
    }
}

/// The sending side of the World's bounded inbox; cheap to clone.
#[derive(Debug, Clone)]
pub struct WorldHandle {
    inbox: mpsc::Sender<WorldCommand>,
}

/// The World went away (the server is stopping).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the world directory is gone (server stopping)")]
pub struct WorldGone;

impl WorldHandle {
    /// A handle to `room`, created if nobody is in it.
    ///
    /// # Errors
    /// [`WorldGone`] when the server is stopping.
    pub async fn room(&self, room: RoomName) -> Result<RoomHandle, WorldGone> {
        let (reply, handle) = oneshot::channel();
        self.inbox
            .send(WorldCommand::Room { room, reply })
            .await
            .map_err(|_| WorldGone)?;
        handle.await.map_err(|_| WorldGone)
    }

    /// Tells the World that room `id` named `room` is empty; never waits.
    pub fn room_empty(&self, room: RoomName, id: u64) {
        post(&self.inbox, WorldCommand::RoomEmpty { room, id });
    }

    /// Resolves once every room handled everything queued before this call.
    ///
    /// # Errors
    /// [`WorldGone`] when the World already stopped.
    pub async fn drain(&self) -> Result<(), WorldGone> {
        let (reply, done) = oneshot::channel();
        self.inbox
            .send(WorldCommand::Drain(reply))
            .await
            .map_err(|_| WorldGone)?;
        done.await.map_err(|_| WorldGone)
    }
}

/// The room directory actor. See the module documentation.
pub struct World {
    rooms: HashMap<RoomName, RoomHandle>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    next_room_id: u64,
    rooms_context: RoomContext,
}

impl Actor for World {
    type Context = Context<Self>;
}

impl World {
    /// Starts the World on the first of `arbiters`; rooms are spread over all of them.
    /// `rooms_context` gives each room its surroundings; its `world` field is
    /// filled in here.
    pub fn start(
        arbiters: Vec<ArbiterHandle>,
        inbox: usize,
        rooms_context: impl FnOnce(WorldHandle) -> RoomContext,
    ) -> WorldHandle {
        let (tx, commands) = mpsc::channel(inbox);
        let handle = WorldHandle { inbox: tx };
        let rooms_context = rooms_context(handle.clone());
        let home = arbiters[0].clone();
        World::start_in_arbiter(&home, move |ctx| {
            ctx.add_stream(ReceiverStream::new(commands));
            World {
                rooms: HashMap::new(),
                arbiters,
                next_arbiter: 0,
                next_room_id: 0,
                rooms_context,
            }
        });
        handle
    }

    fn room(&mut self, room: RoomName) -> RoomHandle {
        if let Some(handle) = self.rooms.get(&room) {
            return handle.clone();
        }
        self.next_room_id += 1;
        let arbiter = &self.arbiters[self.next_arbiter % self.arbiters.len()];
        self.next_arbiter += 1;
        debug!(room = %room, id = self.next_room_id, "creating room");
        self.rooms_context.stats.rooms_created.inc();
        self.rooms_context.stats.rooms_open.inc();
        self.rooms_context
            .hooks
            .emit(LifecycleEvent::RoomCreated { room: room.clone() });
        let handle = Room::start(room.clone(), self.next_room_id, self.rooms_context.clone(), arbiter);
        self.rooms.insert(room, handle.clone());
        handle
    }
}

impl StreamHandler<WorldCommand> for World {
    fn handle(&mut self, command: WorldCommand, _ctx: &mut Context<Self>) {
        match command {
            WorldCommand::Room { room, reply } => {
                let _ = reply.send(self.room(room));
            }
            WorldCommand::RoomEmpty { room, id } => {
                if self.rooms.get(&room).is_some_and(|handle| handle.id() == id) {
                    self.rooms.remove(&room);
                }
            }
            WorldCommand::Drain(done) => {
                let rooms: Vec<RoomHandle> = self.rooms.values().cloned().collect();
                actix_rt::spawn(async move {
                    futures_util::future::join_all(rooms.into_iter().map(|room| async move {
                        let (reply, drained) = oneshot::channel();
                        if room.send(RoomCommand::Drain(reply)).await.is_ok() {
                            let _ = drained.await;
                        }
                    }))
                    .await;
                    let _ = done.send(());
                });
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
