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

mod clustered;
mod names;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::{Actor, ActorContext, ArbiterHandle, AsyncContext, Context, StreamHandler};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use self::clustered::Clustered;
use crate::cluster::Cluster;

pub use names::Names;

use crate::ids::RoomId;
use crate::inbox::{Gone, Inbox, PostOnDrop, Reply, inbox};
use crate::lifecycle::LifecycleEvent;
use crate::outbox::Outbox;
use crate::protocol::RoomName;
use crate::protocol::{Filter, Recover};
use crate::room::{
    Admission, Join, Kind, Kinds, Leave, Listing, Member, OnEmpty, Room, RoomCommand, RoomContext, RoomHandle, Route,
    Seat,
};

/// How often a join is tried when the room it found was just closing.
const JOIN_ATTEMPTS: u32 = 3;
/// How many open rooms a quick join tries before it makes one.
const QUICK_CANDIDATES: usize = 4;

/// What a session asks for when it joins a room by name.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// The room.
    pub room: RoomName,
    /// Its kind; empty for `chat`.
    pub kind: String,
    /// For the plugin, if this join creates the room.
    pub params: Bytes,
    /// For the plugin's join attempt.
    pub metadata: Bytes,
    /// Where the joiner left off, to recover from.
    pub recover: Option<Recover>,
}

/// Who joins, and where its frames go.
#[derive(Debug, Clone, Copy)]
pub struct Joiner<'a> {
    /// The member.
    pub member: &'a Member,
    /// Its outbox.
    pub outbox: &'a Outbox,
    /// Its seat in the room it joins.
    pub seat: &'a Seat,
    /// Echoed by `RoomJoined`.
    pub request_id: u64,
}

/// What the directory's inbox carries.
#[derive(Debug)]
pub enum DirectoryCommand {
    /// Sent on behalf of a session joining `room`: answered with the room's
    /// handle, the room created if needed.
    Room {
        /// The room wanted.
        room: RoomName,
        /// Its kind, made with `params` if the room is created.
        kind: Kind,
        /// For the plugin, if the room is created.
        params: Bytes,
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
    /// Closes `room` (every room, if none): its members get `RoomLeft { reason }`.
    Close {
        /// The room.
        room: Option<RoomName>,
        /// What the members are told.
        reason: String,
    },
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
    #[error("room {0} is full")]
    Full(RoomName),
    /// The room's plugin locked it.
    #[error("room {0} is locked")]
    Locked(RoomName),
    /// The joiner is in the room already.
    #[error("already in room {0}")]
    AlreadyMember(RoomName),
    /// The room's plugin refused the joiner.
    #[error("join rejected: {0}")]
    Rejected(String),
    /// No such kind is registered.
    #[error("no room kind {0:?} on this server")]
    UnknownKind(String),
    /// The room is owned by another node, which cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// The room exists with another kind.
    #[error("room {room} is of kind {kind}")]
    KindMismatch {
        /// The room.
        room: RoomName,
        /// Its kind.
        kind: Kind,
    },
}

impl JoinError {
    /// Whether another room might take the joiner (a quick join tries the next).
    fn is_this_room(&self) -> bool {
        matches!(
            self,
            JoinError::Busy(_)
                | JoinError::AlreadyMember(_)
                | JoinError::Full(_)
                | JoinError::Locked(_)
                | JoinError::Rejected(_)
                | JoinError::KindMismatch { .. }
        )
    }
}

/// The directory's address; cheap to clone.
#[derive(Debug, Clone)]
pub struct DirectoryHandle {
    inbox: Inbox<DirectoryCommand>,
    kinds: Arc<Kinds>,
    listing: Arc<Listing>,
    /// Numbers the rooms quick joins make.
    made: Arc<AtomicU64>,
    /// In a cluster: where rooms run.
    clustered: Option<Arc<Clustered>>,
}

impl DirectoryHandle {
    /// Puts `joiner` in the room `wanted` (created if nobody is in it);
    /// returns the room's handle. A room found closing is asked for again, a few times.
    ///
    /// # Errors
    /// [`JoinError`] saying why the member is not in the room.
    pub async fn join(&self, wanted: &Wanted, joiner: Joiner<'_>) -> Result<RoomHandle, JoinError> {
        let kind = self.kind(&wanted.kind)?;
        let mut closing = None;
        for _ in 0..JOIN_ATTEMPTS {
            let handle = self.find((&wanted.room, kind.clone(), &wanted.params), closing).await?;
            if *handle.kind() != kind {
                let kind = handle.kind().clone();
                return Err(JoinError::KindMismatch {
                    room: wanted.room.clone(),
                    kind,
                });
            }
            match self
                .enter(&handle, (wanted.metadata.clone(), wanted.recover), joiner)
                .await
            {
                Ok(Admission::Joined) => return Ok(handle),
                Ok(Admission::Refused) => return Err(JoinError::Refused),
                Ok(Admission::AlreadyMember) => return Err(JoinError::AlreadyMember(wanted.room.clone())),
                Ok(Admission::Full) => return Err(JoinError::Full(wanted.room.clone())),
                Ok(Admission::Locked) => return Err(JoinError::Locked(wanted.room.clone())),
                Ok(Admission::Rejected(reason)) => return Err(JoinError::Rejected(reason)),
                Ok(Admission::Unavailable(reason)) => return Err(JoinError::Unavailable(reason)),
                Ok(Admission::Closing) | Err(_) => closing = Some(handle.id()),
            }
        }
        Err(JoinError::Busy(wanted.room.clone()))
    }

    /// Puts `joiner` in the fullest open room of `kind` whose label matches
    /// `filter`, or in a new one made with `params`; returns the room's name and handle.
    ///
    /// # Errors
    /// [`JoinError`] saying why the member is in no room.
    pub async fn quick_join(
        &self,
        kind: &str,
        filter: &Filter,
        (params, metadata): (Bytes, Bytes),
        joiner: Joiner<'_>,
    ) -> Result<(RoomName, RoomHandle), JoinError> {
        let kind = self.kind(kind)?;
        let wanted = |room: RoomName, params: &Bytes| Wanted {
            room,
            kind: kind.to_string(),
            params: params.clone(),
            metadata: metadata.clone(),
            recover: None,
        };
        for room in self.candidates(&kind, filter).await? {
            match self.join(&wanted(room.clone(), &Bytes::new()), joiner).await {
                Ok(handle) => return Ok((room, handle)),
                Err(e) if e.is_this_room() => {}
                Err(e) => return Err(e),
            }
        }
        let mut last = JoinError::UnknownKind(kind.to_string());
        for _ in 0..JOIN_ATTEMPTS {
            let Some(room) = self.fresh_name(&kind) else { break };
            match self.join(&wanted(room.clone(), &params), joiner).await {
                Ok(handle) => return Ok((room, handle)),
                // A name taken by a room joined by name: try the next number.
                Err(e @ JoinError::KindMismatch { .. }) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// The open rooms of `kind` whose label matches `filter` a quick join
    /// tries first: those of this node, or of the whole cluster.
    async fn candidates(&self, kind: &Kind, filter: &Filter) -> Result<Vec<RoomName>, JoinError> {
        let Some(clustered) = &self.clustered else {
            let found = self.listing.find(Some(kind), filter, true, QUICK_CANDIDATES);
            return Ok(found.into_iter().map(|(room, _)| room).collect());
        };
        let spec = crate::protocol::ListSpec {
            kind: Some(kind.to_string()),
            filter: filter.clone(),
            limit: 0,
            only_open: true,
        };
        let rooms = clustered.cluster.list(&spec, QUICK_CANDIDATES).await;
        let rooms = rooms.map_err(|e| JoinError::Unavailable(e.to_string()))?;
        Ok(rooms
            .iter()
            .filter_map(|info| RoomName::parse(&info.room).ok())
            .collect())
    }

    /// In a cluster, this node's place in it.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.clustered.as_ref().map(|clustered| &clustered.cluster)
    }

    /// The public rooms.
    pub fn listing(&self) -> &Listing {
        &self.listing
    }

    /// Kind `name` as registered.
    fn kind(&self, name: &str) -> Result<Kind, JoinError> {
        match self.kinds.get(name) {
            Some((kind, _)) => Ok(kind.clone()),
            None => Err(JoinError::UnknownKind(name.to_owned())),
        }
    }

    /// A name for a room a quick join makes: the kind and a number (or
    /// `room` and a number, for a kind whose name is not a room name's).
    fn fresh_name(&self, kind: &str) -> Option<RoomName> {
        let n = self.made.fetch_add(1, Ordering::Relaxed) + 1;
        RoomName::parse(&format!("{kind}-{n}"))
            .or_else(|_| RoomName::parse(&format!("room-{n}")))
            .ok()
    }

    /// The handle of `room`: see [`DirectoryHandle::room`] (and, in a
    /// cluster, [`DirectoryHandle::find_clustered`]).
    async fn find(
        &self,
        (room, kind, params): (&RoomName, Kind, &Bytes),
        closing: Option<RoomId>,
    ) -> Result<RoomHandle, JoinError> {
        match &self.clustered {
            Some(clustered) => self.find_clustered(clustered, (room, kind, params), closing).await,
            None => self
                .room(room.clone(), kind, params.clone(), closing)
                .await
                .map_err(|_| JoinError::Stopping),
        }
    }

    /// Closes every room this node runs: each member gets `RoomLeft { reason }`.
    ///
    /// # Errors
    /// [`Gone`] when the directory already stopped.
    pub async fn close_all(&self, reason: &str) -> Result<(), Gone> {
        let reason = reason.to_owned();
        self.inbox.send(DirectoryCommand::Close { room: None, reason }).await?;
        self.drain().await
    }

    /// Asks `handle`'s room to take `joiner`.
    async fn enter(
        &self,
        handle: &RoomHandle,
        (metadata, recover): (Bytes, Option<Recover>),
        joiner: Joiner<'_>,
    ) -> Result<Admission, Gone> {
        // Leaves again if this call is dropped before the room answers (its session stopped).
        let leave = RoomCommand::Leave(Leave {
            request_id: 0,
            session: joiner.member.id,
        });
        let undo = PostOnDrop::new(handle.inbox(), leave);
        let accepted = handle
            .inbox()
            .ask(|accepted| {
                RoomCommand::Join(Join {
                    request_id: joiner.request_id,
                    member: joiner.member.clone(),
                    route: Route::Local(joiner.outbox.clone()),
                    seat: joiner.seat.clone(),
                    metadata,
                    recover,
                    accepted,
                })
            })
            .await;
        undo.disarm();
        accepted
    }

    /// A handle to `room`, created with `kind` and `params` if nobody is in
    /// it (or if the room it maps to is the one found `closing`).
    async fn room(
        &self,
        room: RoomName,
        kind: Kind,
        params: Bytes,
        closing: Option<RoomId>,
    ) -> Result<RoomHandle, Gone> {
        self.inbox
            .ask(|reply| DirectoryCommand::Room {
                room,
                kind,
                params,
                closing,
                reply,
            })
            .await
    }

    /// Resolves once every room handled everything queued before this call.
    ///
    /// # Errors
    /// [`Gone`] when the directory already stopped.
    pub async fn drain(&self) -> Result<(), Gone> {
        self.inbox.ask(DirectoryCommand::Drain).await
    }
}

/// The callback rooms report their emptiness through: a message to the directory.
fn on_empty(inbox: &Inbox<DirectoryCommand>) -> OnEmpty {
    let inbox = inbox.clone();
    Arc::new(move |room, id| inbox.post(DirectoryCommand::RoomEmpty { room, id }))
}

/// The room directory actor. See the module documentation.
pub struct Directory {
    rooms: HashMap<RoomName, RoomHandle>,
    /// In a cluster: this node's place, and what stops each room's port.
    cluster: Option<(Cluster, HashMap<RoomId, CancellationToken>)>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    next_room_id: u64,
    rooms_context: Arc<RoomContext>,
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
        (capacity, cluster): (usize, Option<Cluster>),
        rooms_context: impl FnOnce(OnEmpty) -> RoomContext,
    ) -> DirectoryHandle {
        let (inbox, mut mailbox) = inbox(capacity);
        let rooms_context = Arc::new(rooms_context(on_empty(&inbox)));
        let clustered = cluster
            .clone()
            .map(|cluster| Arc::new(Clustered::new(cluster, rooms_context.clone(), arbiters.clone())));
        let handle = DirectoryHandle {
            inbox,
            kinds: rooms_context.plugins.kinds.clone(),
            listing: rooms_context.listing.clone(),
            made: Arc::default(),
            clustered,
        };
        if let Some(cluster) = &cluster {
            cluster.on_lost(clustered::on_lost(&handle.inbox));
            cluster.answer_lists(handle.listing.clone());
            clustered::answer_opens(handle.clone(), cluster.clone());
        }
        mailbox.watch(rooms_context.stats.inbox_fill.clone());
        let home = arbiters[0].clone();
        Directory::start_in_arbiter(&home, move |ctx| {
            ctx.add_stream(mailbox);
            Directory {
                rooms: HashMap::new(),
                cluster: cluster.map(|cluster| (cluster, HashMap::new())),
                arbiters,
                next_arbiter: 0,
                next_room_id: 0,
                rooms_context,
            }
        });
        handle
    }

    fn room(&mut self, room: RoomName, kind: Kind, params: Bytes) -> RoomHandle {
        if let Some(handle) = self.rooms.get(&room) {
            return handle.clone();
        }
        // The handle checked the kind against the same registry.
        let factory = match self.rooms_context.plugins.kinds.get(&kind) {
            Some((_, factory)) => factory.clone(),
            None => crate::room::factory::<crate::room::Chat>(),
        };
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
        let context = self.rooms_context.clone();
        let Some((cluster, ports)) = &mut self.cluster else {
            let handle = Room::start(room.clone(), id, (kind, factory), params, (context, None), arbiter);
            self.rooms.insert(room, handle.clone());
            return handle;
        };
        let (relay, reader) = crate::room::relay(cluster.timing().relay_queue);
        let relay_sender = relay.clone();
        let handle = Room::start(
            room.clone(),
            id,
            (kind, factory),
            params,
            (context, Some(relay)),
            arbiter,
        );
        let stop = CancellationToken::new();
        cluster.serve_room(&room, (handle.clone(), relay_sender), reader, stop.clone());
        ports.insert(id, stop);
        self.rooms.insert(room, handle.clone());
        handle
    }

    /// Forgets room `id` named `room`, if the name still maps to it; in a
    /// cluster, stops its port, and with `release`, gives up its lease.
    fn forget(&mut self, room: &RoomName, id: RoomId, release: bool) {
        if let Some((cluster, ports)) = &mut self.cluster
            && let Some(stop) = ports.remove(&id)
        {
            stop.cancel();
            if release && self.rooms.get(room).is_some_and(|handle| handle.id() == id) {
                cluster.release_room(room);
            }
        }
        if self.rooms.get(room).is_some_and(|handle| handle.id() == id) {
            self.rooms.remove(room);
        }
    }

    /// Closes `room` (or every room), telling its members `reason`.
    fn close(&self, room: Option<&RoomName>, reason: &str) {
        let rooms: Vec<&RoomHandle> = match room {
            Some(room) => self.rooms.get(room).into_iter().collect(),
            None => self.rooms.values().collect(),
        };
        for handle in rooms {
            handle.inbox().post(RoomCommand::Close(reason.to_owned()));
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
            DirectoryCommand::Room {
                room,
                kind,
                params,
                closing,
                reply,
            } => {
                if let Some(id) = closing {
                    self.forget(&room, id, false);
                }
                reply.send(self.room(room, kind, params));
            }
            DirectoryCommand::RoomEmpty { room, id } => self.forget(&room, id, true),
            DirectoryCommand::Drain(done) => self.drain(done),
            DirectoryCommand::Close { room, reason } => self.close(room.as_ref(), &reason),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
