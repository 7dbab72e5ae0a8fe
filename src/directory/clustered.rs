//! The directory in a cluster: a join asks the cluster where its room runs
//! and gets the room itself (owned here) or this node's edge for it (owned
//! elsewhere); other nodes ask this one to make rooms rendezvous hashing
//! gave it; and the rooms made here get a relay for their members elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::ArbiterHandle;
use bytes::Bytes;
use prost::Message;

use super::{DirectoryCommand, DirectoryHandle, JoinError};
use crate::cluster::wire::{self, pb};
use crate::cluster::{Cluster, Place, ROOM_MOVED};
use crate::ids::RoomId;
use crate::inbox::Inbox;
use crate::protocol::RoomName;
use crate::room::{Kind, RoomContext, RoomHandle};

/// What the directory's handle needs in a cluster.
pub(super) struct Clustered {
    pub(super) cluster: Cluster,
    /// For the edges this node runs.
    context: Arc<RoomContext>,
    arbiters: Vec<ArbiterHandle>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Clustered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clustered")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Clustered {
    pub(super) fn new(cluster: Cluster, context: Arc<RoomContext>, arbiters: Vec<ArbiterHandle>) -> Clustered {
        Clustered {
            cluster,
            context,
            arbiters,
            next: AtomicUsize::new(0),
        }
    }

    fn arbiter(&self) -> Option<&ArbiterHandle> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.arbiters.get(n % self.arbiters.len().max(1))
    }
}

impl DirectoryHandle {
    /// The handle of `room` in the cluster: the room, owned here (made if
    /// need be), or this node's edge for it. A `closing` handle that was an
    /// edge means the owner had no such room: the owner is asked to make it.
    pub(super) async fn find_clustered(
        &self,
        clustered: &Clustered,
        (room, kind, params): (&RoomName, Kind, &Bytes),
        closing: Option<RoomId>,
    ) -> Result<RoomHandle, JoinError> {
        let cluster = &clustered.cluster;
        // An edge whose room was not at its (live) owner: the owner is asked to make it.
        let stale_edge = closing
            .and_then(|id| cluster.edge_owner(room, id))
            .filter(|owner| cluster.is_alive(owner));
        let place = match stale_edge {
            Some(owner) => cluster.ask_to_open(&owner, room, (&kind, params)).await,
            None => cluster.locate(room, (&kind, params), false).await,
        }
        .map_err(|e| JoinError::Unavailable(e.to_string()))?;
        match place {
            Place::Here => self
                .room(room.clone(), kind, params.clone(), closing)
                .await
                .map_err(|_| JoinError::Stopping),
            Place::Elsewhere(owner) => {
                let arbiter = clustered.arbiter().ok_or(JoinError::Stopping)?;
                Ok(cluster.edge(room, (&owner, kind), &clustered.context, arbiter))
            }
        }
    }
}

/// Answers the other nodes' requests to make a room here, until the node leaves the cluster.
pub(super) fn answer_opens(directory: DirectoryHandle, cluster: &Cluster) {
    let subject = wire::node_open(cluster.node_id());
    cluster.answer(subject, "requests to make a room", move |cluster, payload| {
        let directory = directory.clone();
        async move { wire::encode(&open(&directory, &cluster, payload).await) }
    });
}

/// Makes the room `payload` asks for here, unless it has a live owner; says who owns it.
async fn open(directory: &DirectoryHandle, cluster: &Cluster, payload: Bytes) -> pb::Opened {
    let failed = |error: String| pb::Opened {
        owner: String::new(),
        error,
    };
    let Ok(open) = pb::Open::decode(payload) else {
        return failed("undecodable request".to_owned());
    };
    let Ok(room) = RoomName::parse(&open.room) else {
        return failed(format!("{:?} is not a room name", open.room));
    };
    let kind = match directory.kind(&open.kind) {
        Ok(kind) => kind,
        Err(e) => return failed(e.to_string()),
    };
    match cluster.locate(&room, (&kind, &open.params), true).await {
        Ok(Place::Here) => match directory.room(room, kind, open.params, None).await {
            Ok(_) => pb::Opened {
                owner: cluster.node_id().to_owned(),
                error: String::new(),
            },
            Err(_) => failed("the node is stopping".to_owned()),
        },
        Ok(Place::Elsewhere(owner)) => pb::Opened {
            owner,
            error: String::new(),
        },
        Err(e) => failed(e.to_string()),
    }
}

/// What the cluster tells when a room owned here was taken over: the directory closes it.
pub(super) fn on_lost(inbox: &Inbox<DirectoryCommand>) -> crate::cluster::OnLost {
    let inbox = inbox.clone();
    Arc::new(move |room| {
        inbox.post(DirectoryCommand::Close {
            room: Some(room),
            reason: ROOM_MOVED.to_owned(),
        });
    })
}
