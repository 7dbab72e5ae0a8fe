//! The room directory: the actor that knows which room each name maps to. It
//! creates a room on its first join, hands out [`RoomHandle`]s, and forgets a
//! room when the room reports itself empty. Its inbox is bounded
//! ([`Config::world_inbox`]). Player names are kept unique beside it, in
//! [`Names`].
//!
//! A room that emptied refuses joins as closing; [`DirectoryHandle::join`]
//! then asks the directory again, naming the closing room, and the directory
//! forgets that room (whether or not its emptiness report has arrived) and
//! creates a fresh one. So a name never maps to two live rooms, no count of
//! members is kept twice, and no retry depends on when a report arrives.
//!
//! [`Config::world_inbox`]: crate::Config::world_inbox

mod names;

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, ActorContext, ArbiterHandle, AsyncContext, Context, StreamHandler};
use tracing::debug;

pub use names::Names;

use crate::ids::RoomId;
use crate::inbox::{Gone, Inbox, PostOnDrop, Reply, inbox};
use crate::lifecycle::LifecycleEvent;
use crate::outbox::Outbox;
use crate::protocol::RoomName;
use crate::room::{Admission, Join, Leave, Member, OnEmpty, Room, RoomCommand, RoomContext, RoomHandle};

/// How often a join is tried when the room it found was just closing.
const JOIN_ATTEMPTS: u32 = 3;

/// What the directory's inbox carries.
#[derive(Debug)]
pub enum DirectoryCommand {
    /// Sent on behalf of a session joining `room`: answered with the room's
    /// handle, the room created if needed.
    Room {
        /// The room wanted.
        room: RoomName,
        /// A room of that name found closing: if the directory still maps the
        /// name to it, it forgets it now (its emptiness report may be queued
        /// behind this request) and makes a fresh room.
        closing: Option<RoomId>,
        /// The room's handle.
        reply: Reply<RoomHandle>,
    },
    /// Sent by a Room whose last member left.
    RoomEmpty {
        /// The room.
        room: RoomName,
        /// Which room of that name.
        id: RoomId,
    },
    /// Sent at shutdown: answered once every room handled what was queued before.
    Drain(Reply<()>),
}

/// Why a session could not join a room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The directory or the room is gone: the server is stopping.
    #[error("the server is shutting down")]
    Stopping,
    /// Every room found was closing; the client may try again.
    #[error("room {0} could not be joined; try again")]
    Busy(RoomName),
    /// The room refused the member: its connection is closing.
    #[error("the connection is closing")]
    Refused,
    /// The room holds as many members as allowed.
    #[error("room {0} is full (see Config::max_room_members)")]
    Full(RoomName),
}

/// The directory's address; cheap to clone.
#[derive(Debug, Clone)]
pub struct DirectoryHandle {
    inbox: Inbox<DirectoryCommand>,
}

impl DirectoryHandle {
    /// Puts `member` in room `room` (created if nobody is in it), its frames
    /// going to `outbox` and `RoomJoined` echoing `request_id`; returns the
    /// room's handle. A room found closing is asked for again, a few times.
    ///
    /// # Errors
    /// [`JoinError`] saying why the member is not in the room.
    pub async fn join(
        &self,
        room: &RoomName,
        member: &Member,
        outbox: &Outbox,
        request_id: u64,
    ) -> Result<RoomHandle, JoinError> {
        let mut closing = None;
        for _ in 0..JOIN_ATTEMPTS {
            let handle = self
                .room(room.clone(), closing)
                .await
                .map_err(|_| JoinError::Stopping)?;
            // Leaves again if this call is dropped before the room answers (its session stopped).
            let leave = RoomCommand::Leave(Leave {
                request_id: 0,
                session: member.id,
            });
            let undo = PostOnDrop::new(handle.inbox(), leave);
            let accepted = handle
                .inbox()
                .ask(|accepted| {
                    RoomCommand::Join(Join {
                        request_id,
                        member: member.clone(),
                        outbox: outbox.clone(),
                        accepted,
                    })
                })
                .await;
            undo.disarm();
            match accepted {
                Ok(Admission::Joined) => return Ok(handle),
                Ok(Admission::Refused) => return Err(JoinError::Refused),
                Ok(Admission::Full) => return Err(JoinError::Full(room.clone())),
                Ok(Admission::Closing) | Err(_) => closing = Some(handle.id()),
            }
        }
        Err(JoinError::Busy(room.clone()))
    }

    /// A handle to `room`, created if nobody is in it (or if the room it
    /// maps to is the one found `closing`).
    async fn room(&self, room: RoomName, closing: Option<RoomId>) -> Result<RoomHandle, Gone> {
        self.inbox
            .ask(|reply| DirectoryCommand::Room { room, closing, reply })
            .await
    }

    /// Resolves once every room handled everything queued before this call.
    ///
    /// # Errors
    /// [`Gone`] when the directory already stopped.
    pub async fn drain(&self) -> Result<(), Gone> {
        self.inbox.ask(DirectoryCommand::Drain).await
    }

    /// The callback rooms report their emptiness through: a message to the directory.
    fn on_empty(&self) -> OnEmpty {
        let inbox = self.inbox.clone();
        Arc::new(move |room, id| inbox.post(DirectoryCommand::RoomEmpty { room, id }))
    }
}

/// The room directory actor. See the module documentation.
pub struct Directory {
    rooms: HashMap<RoomName, RoomHandle>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    next_room_id: u64,
    rooms_context: RoomContext,
}

impl Actor for Directory {
    type Context = Context<Self>;
}

impl Directory {
    /// Starts the directory on the first of `arbiters` (there must be one);
    /// rooms are spread over all of them. `rooms_context` gives each room its
    /// surroundings from the callback through which rooms report emptiness.
    pub fn start(
        arbiters: Vec<ArbiterHandle>,
        capacity: usize,
        rooms_context: impl FnOnce(OnEmpty) -> RoomContext,
    ) -> DirectoryHandle {
        let (inbox, mut mailbox) = inbox(capacity);
        let handle = DirectoryHandle { inbox };
        let rooms_context = rooms_context(handle.on_empty());
        mailbox.watch(rooms_context.stats.inbox_fill.clone());
        let home = arbiters[0].clone();
        Directory::start_in_arbiter(&home, move |ctx| {
            ctx.add_stream(mailbox);
            Directory {
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
        let id = RoomId::new(self.next_room_id);
        let arbiter = &self.arbiters[self.next_arbiter % self.arbiters.len()];
        self.next_arbiter += 1;
        debug!(room = %room, %id, "creating room");
        self.rooms_context.stats.rooms_created.inc();
        self.rooms_context.stats.rooms_open.inc();
        self.rooms_context
            .hooks
            .emit(LifecycleEvent::RoomCreated { room: room.clone() });
        let handle = Room::start(room.clone(), id, self.rooms_context.clone(), arbiter);
        self.rooms.insert(room, handle.clone());
        handle
    }

    /// Forgets room `id` named `room`, if the name still maps to it.
    fn forget(&mut self, room: &RoomName, id: RoomId) {
        if self.rooms.get(room).is_some_and(|handle| handle.id() == id) {
            self.rooms.remove(room);
        }
    }

    /// Answers `done` once every room answered a Drain of its own.
    fn drain(&self, done: Reply<()>) {
        let rooms: Vec<RoomHandle> = self.rooms.values().cloned().collect();
        actix_rt::spawn(async move {
            let drains = rooms
                .iter()
                .map(|room| async move { room.inbox().ask(RoomCommand::Drain).await });
            futures_util::future::join_all(drains).await;
            done.send(());
        });
    }
}

impl StreamHandler<DirectoryCommand> for Directory {
    fn handle(&mut self, command: DirectoryCommand, _ctx: &mut Context<Self>) {
        match command {
            DirectoryCommand::Room { room, closing, reply } => {
                if let Some(id) = closing {
                    self.forget(&room, id);
                }
                reply.send(self.room(room));
            }
            DirectoryCommand::RoomEmpty { room, id } => self.forget(&room, id),
            DirectoryCommand::Drain(done) => self.drain(done),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
