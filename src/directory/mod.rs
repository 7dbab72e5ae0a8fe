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
//! The actor is in `actor`; in a cluster, `clustered` asks where a room runs
//! (here, or on another node through this node's edge for it).
//!
//! [`Config::world_inbox`]: crate::Config::world_inbox

mod actor;
mod clustered;
mod names;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use self::clustered::Clustered;
use crate::cluster::Cluster;

pub use actor::Directory;
pub use names::Names;

use crate::ids::RoomId;
use crate::inbox::{Gone, Inbox, PostOnDrop, Reply};
use crate::outbox::Outbox;
use crate::protocol::RoomName;
use crate::protocol::{Filter, Recover};
use crate::room::{Admission, Join, Kind, Kinds, Leave, Listing, Member, RoomCommand, RoomHandle, Route, Seat};

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
