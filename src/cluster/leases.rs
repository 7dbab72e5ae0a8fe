//! Who owns a room, and who holds a name, in the cluster's key-value
//! buckets.
//!
//! A room's record names its owner. It is made with `create` (which fails
//! if the room has an owner) and taken over from a dead owner with an
//! `update` that names the revision read, so of two nodes racing for a room
//! exactly one wins, and the loser asks again. A record counts while its
//! owner is alive: the lease is the owner's liveness. Names work the same
//! way, with the session that holds the name.

use std::sync::Arc;

use async_nats::jetstream::kv::{CreateErrorKind, Operation, UpdateErrorKind};
use bytes::Bytes;
use futures_util::StreamExt;
use prost::Message;
use tracing::{debug, info, warn};

use super::live::pick;
use super::wire::{self, key, pb};
use super::{Cluster, ClusterError};
use crate::protocol::RoomName;

/// Put before a world's name to make its key (no room name has a space).
const WORLD_PREFIX: &str = "world ";

/// How often a join looks for a room's owner before it gives up.
const LOCATE_ATTEMPTS: usize = 4;

/// Where a room runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// On this node, which holds its lease.
    Here,
    /// On this other node.
    Elsewhere(String),
}

/// A room owned here: its record's revision.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) revision: u64,
}

/// Told that a room owned here was taken over by another node.
pub type OnLost = Arc<dyn Fn(RoomName) + Send + Sync>;

/// A record read from a bucket: its value, and its revision.
type Read<T> = Option<(T, u64)>;

impl Cluster {
    /// Where `room` runs: with its live owner, or, if it has none, on the
    /// node rendezvous hashing picks (asked to make it, with `kind` and
    /// `params`). With `here`, this node is the one picked.
    ///
    /// # Errors
    /// [`ClusterError::Unavailable`] without NATS, or when no owner settles.
    pub async fn locate(
        &self,
        room: &RoomName,
        (kind, params): (&str, &Bytes),
        here: bool,
    ) -> Result<Place, ClusterError> {
        self.check_up()?;
        // A dead owner's lease lapses within about a node TTL of this node finding it silent.
        let deadline = tokio::time::Instant::now() + self.0.timing.node_ttl * 2;
        let mut claims = 0;
        while claims < LOCATE_ATTEMPTS {
            let (record, revision) = match self.room_record(room).await? {
                Some((record, revision)) => (Some(record), Some(revision)),
                None => (None, None),
            };
            if let Some(record) = &record {
                let mine = record.owner == self.0.me && self.0.owned.contains_key(room);
                if mine {
                    return Ok(Place::Here);
                }
                if record.owner != self.0.me && self.is_alive(&record.owner) {
                    return Ok(Place::Elsewhere(record.owner.clone()));
                }
                if record.owner != self.0.me && self.still_alive(&record.owner).await? {
                    // Silent here, but its liveness record has not lapsed yet (or this node
                    // just started and has not heard from it): neither join it nor take over.
                    if tokio::time::Instant::now() >= deadline {
                        return Err(ClusterError::Unavailable(format!(
                            "room {room}'s node is neither alive nor gone"
                        )));
                    }
                    tokio::time::sleep(self.0.timing.heartbeat / 2).await;
                    continue;
                }
            }
            let chosen = if here {
                self.0.me.clone()
            } else {
                pick(room.as_str(), &self.live_nodes()).unwrap_or_else(|| self.0.me.clone())
            };
            if chosen != self.0.me {
                return self.ask_to_open(&chosen, room, (kind, params)).await;
            }
            if self.claim_room(room, kind, revision).await? {
                return Ok(Place::Here);
            }
            claims += 1;
        }
        Err(ClusterError::Unavailable(format!("no owner settled for room {room}")))
    }

    /// Whether `node` is alive: heard from lately, or, before a record of
    /// its is taken over, with a liveness record still in the bucket (a
    /// node that just started may not have heard from the others yet).
    async fn still_alive(&self, node: &str) -> Result<bool, ClusterError> {
        if self.is_alive(node) {
            return Ok(true);
        }
        let entry = self.0.nodes.entry(node).await.map_err(ClusterError::from)?;
        Ok(entry.is_some_and(|entry| entry.operation == Operation::Put))
    }

    /// Asks `node` to make `room` (or to say who owns it); returns where it runs.
    ///
    /// # Errors
    /// [`ClusterError::Unavailable`] when the node does not answer in time.
    pub async fn ask_to_open(
        &self,
        node: &str,
        room: &RoomName,
        (kind, params): (&str, &Bytes),
    ) -> Result<Place, ClusterError> {
        let open = pb::Open {
            room: room.to_string(),
            kind: kind.to_owned(),
            params: params.clone(),
        };
        let asked = self.0.client.request(wire::node_open(node), wire::encode(&open));
        let reply = tokio::time::timeout(self.0.timing.request, asked)
            .await
            .map_err(|_| ClusterError::Unavailable(format!("node {node} did not answer in time")))?
            .map_err(ClusterError::from)?;
        let opened = pb::Opened::decode(reply.payload).map_err(ClusterError::from)?;
        if !opened.error.is_empty() {
            return Err(ClusterError::Unavailable(opened.error));
        }
        Ok(if opened.owner == self.0.me {
            Place::Here
        } else {
            Place::Elsewhere(opened.owner)
        })
    }

    /// The room's record, if it has a live one (a deleted record counts as none).
    async fn room_record(&self, room: &RoomName) -> Result<Read<pb::RoomRecord>, ClusterError> {
        read(&self.0.rooms, room.as_str()).await
    }

    /// Claims `room` for this node: made afresh, or taken over from the
    /// record at `revision`. Returns false if another node won.
    async fn claim_room(&self, room: &RoomName, kind: &str, revision: Option<u64>) -> Result<bool, ClusterError> {
        let record = pb::RoomRecord {
            owner: self.0.me.clone(),
            kind: kind.to_owned(),
        };
        let Some(revision) = put_if(&self.0.rooms, room.as_str(), wire::encode(&record), revision).await? else {
            return Ok(false);
        };
        info!(room = %room, node = %self.0.me, "owning room");
        self.0.owned.insert(room.clone(), Lease { revision });
        Ok(true)
    }

    /// Gives up `room` (it closed here): removes its record.
    pub fn release_room(&self, room: &RoomName) {
        let Some((room, lease)) = self.0.owned.remove(room) else {
            return;
        };
        let rooms = self.0.rooms.clone();
        tokio::spawn(async move {
            if let Err(e) = rooms
                .delete_expect_revision(key(room.as_str()), Some(lease.revision))
                .await
            {
                debug!(room = %room, error = %e, "room record not removed (taken over, or NATS away)");
            }
        });
    }

    /// Where game world `world` runs: here (its lease taken now if nobody
    /// holds it) or on another live node, with the address clients reach it at.
    ///
    /// # Errors
    /// [`ClusterError::Unavailable`] without NATS.
    pub async fn locate_world(&self, world: &str) -> Result<Result<(), (String, String)>, ClusterError> {
        self.check_up()?;
        let name = format!("{WORLD_PREFIX}{world}");
        for _ in 0..LOCATE_ATTEMPTS {
            let mut revision = None;
            if let Some((record, at)) = read::<pb::RoomRecord>(&self.0.rooms, &name).await? {
                if record.owner == self.0.me && self.0.worlds.contains_key(world) {
                    return Ok(Ok(()));
                }
                if record.owner != self.0.me && self.still_alive(&record.owner).await? {
                    let node = self
                        .0
                        .nodes
                        .entry(record.owner.as_str())
                        .await
                        .map_err(ClusterError::from)?;
                    let node = node.and_then(|entry| pb::NodeRecord::decode(entry.value).ok());
                    let advertise = node.map(|node| node.advertise).unwrap_or_default();
                    return Ok(Err((record.owner, advertise)));
                }
                revision = Some(at);
            }
            let record = pb::RoomRecord {
                owner: self.0.me.clone(),
                kind: "world".to_owned(),
            };
            if let Some(at) = put_if(&self.0.rooms, &name, wire::encode(&record), revision).await? {
                info!(world, node = %self.0.me, "running world");
                self.0.worlds.insert(world.to_owned(), at);
                return Ok(Ok(()));
            }
        }
        Err(ClusterError::Unavailable(format!("no node settled for world {world}")))
    }

    /// Claims `name` for `session` across the cluster; false if another
    /// session holds it.
    ///
    /// # Errors
    /// [`ClusterError::Unavailable`] without NATS.
    pub async fn claim_name(&self, name: &str, session: u64) -> Result<bool, ClusterError> {
        self.check_up()?;
        let record = pb::NameRecord {
            node: self.0.me.clone(),
            session,
        };
        let mut revision = None;
        if let Some((held, at)) = read::<pb::NameRecord>(&self.0.names, name).await? {
            let ours = held.node == self.0.me && self.0.names_held.get(name).is_some_and(|h| h.0 == held.session);
            if ours {
                return Ok(held.session == session);
            }
            // A name recorded by a live node is taken; one left by a dead node (or this node's past) is free.
            if held.node != self.0.me && self.still_alive(&held.node).await? {
                return Ok(false);
            }
            revision = Some(at);
        }
        match put_if(&self.0.names, name, wire::encode(&record), revision).await? {
            Some(at) => {
                self.0.names_held.insert(name.to_owned(), (session, at));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Frees `name` if `session` holds it here.
    pub fn release_name(&self, name: &str, session: u64) {
        let Some((name, (_, revision))) = self.0.names_held.remove_if(name, |_, held| held.0 == session) else {
            return;
        };
        let names = self.0.names.clone();
        tokio::spawn(async move {
            if let Err(e) = names.delete_expect_revision(key(&name), Some(revision)).await {
                debug!(name = %name, error = %e, "name record not removed");
            }
        });
    }

    /// Sets what is told when a room owned here was taken over.
    pub fn on_lost(&self, on_lost: OnLost) {
        let _ = self.0.on_lost.set(on_lost);
    }
}

/// The key of the counter that numbers nodes (no room's key has a `.`).
const NODE_NUMBERS: &str = "meta.node-numbers";

/// A number no other node got (session ids start from it, so they are
/// unique across the cluster): the next of a counter in the rooms bucket.
pub(super) async fn node_number(rooms: &async_nats::jetstream::kv::Store) -> Result<u64, ClusterError> {
    for _ in 0..LOCATE_ATTEMPTS * 4 {
        let entry = rooms.entry(NODE_NUMBERS).await.map_err(ClusterError::from)?;
        let (last, revision) = match entry.filter(|entry| entry.operation == Operation::Put) {
            Some(entry) => (
                std::str::from_utf8(&entry.value)
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
                Some(entry.revision),
            ),
            None => (0, None),
        };
        let next: u64 = last + 1;
        let written = match revision {
            None => rooms.create(NODE_NUMBERS, Bytes::from(next.to_string())).await.is_ok(),
            Some(revision) => rooms
                .update(NODE_NUMBERS, Bytes::from(next.to_string()), revision)
                .await
                .is_ok(),
        };
        if written {
            return Ok(next);
        }
    }
    Err(ClusterError::Unavailable("could not number this node".to_owned()))
}

/// The live record at `name` in `store`, decoded, with its revision.
async fn read<T: Message + Default>(
    store: &async_nats::jetstream::kv::Store,
    name: &str,
) -> Result<Read<T>, ClusterError> {
    let entry = store.entry(key(name)).await.map_err(ClusterError::from)?;
    Ok(entry
        .filter(|entry| entry.operation == Operation::Put)
        .and_then(|entry| Some((T::decode(entry.value).ok()?, entry.revision))))
}

/// Writes `value` at `name` if the record is still as read: absent (no
/// `revision`) or at `revision`. Returns the new revision, or none if
/// someone else wrote first.
async fn put_if(
    store: &async_nats::jetstream::kv::Store,
    name: &str,
    value: Bytes,
    revision: Option<u64>,
) -> Result<Option<u64>, ClusterError> {
    match revision {
        None => match store.create(key(name), value).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(ClusterError::from(e)),
        },
        Some(revision) => match store.update(key(name), value, revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(ClusterError::from(e)),
        },
    }
}

/// After NATS came back: re-checks the record of every room owned here. A
/// record lost with the NATS server's state is made again; a room another
/// node took over meanwhile is closed here (its members are told).
pub(super) async fn reassert(cluster: &Cluster) {
    let rooms: Vec<RoomName> = cluster.0.owned.iter().map(|lease| lease.key().clone()).collect();
    for room in rooms {
        let kept = match cluster.room_record(&room).await {
            Ok(Some((record, revision))) if record.owner == cluster.0.me => {
                if let Some(mut lease) = cluster.0.owned.get_mut(&room) {
                    lease.revision = revision;
                }
                true
            }
            Ok(Some(_)) => false,
            Ok(None) => {
                let record = pb::RoomRecord {
                    owner: cluster.0.me.clone(),
                    kind: String::new(),
                };
                match put_if(&cluster.0.rooms, room.as_str(), wire::encode(&record), None).await {
                    Ok(Some(revision)) => cluster.0.owned.get_mut(&room).is_some_and(|mut lease| {
                        lease.revision = revision;
                        true
                    }),
                    Ok(None) => false,
                    Err(_) => true,
                }
            }
            Err(e) => {
                warn!(room = %room, error = %e, "could not re-check a room's lease");
                true
            }
        };
        if !kept {
            warn!(room = %room, "another node took this room over while NATS was away; closing it here");
            cluster.0.owned.remove(&room);
            if let Some(on_lost) = cluster.0.on_lost.get() {
                on_lost(room);
            }
        }
    }
}

/// Watches the rooms bucket until the node leaves: a room owned here whose
/// record now names another node (which took it over while this one was
/// not heard from) is closed here, so that no room runs on two nodes for
/// longer than it takes the record's change to arrive.
pub(super) async fn watch_leases(cluster: &Cluster) -> Result<(), ClusterError> {
    let mut changes = cluster.0.rooms.watch_all().await.map_err(ClusterError::from)?;
    let cluster = cluster.clone();
    tokio::spawn(async move {
        let stop = cluster.stopping();
        loop {
            let change = tokio::select! {
                () = stop.cancelled() => return,
                change = changes.next() => change,
            };
            match change {
                Some(Ok(entry)) if entry.operation == Operation::Put => {
                    lost_if_taken(&cluster, &entry.key, (entry.value, entry.revision));
                }
                Some(_) => {}
                None => match cluster.0.rooms.watch_all().await {
                    Ok(again) => changes = again,
                    Err(e) => {
                        debug!(error = %e, "room lease watch not restarted yet");
                        tokio::time::sleep(cluster.0.timing.heartbeat).await;
                    }
                },
            }
        }
    });
    Ok(())
}

/// Closes the room at `key` here if it is owned here and `value`, written
/// after this node's claim (at `revision`), names another owner.
fn lost_if_taken(cluster: &Cluster, key: &str, (value, revision): (Bytes, u64)) {
    let Some(room) = wire::name_of(key).and_then(|name| RoomName::parse(&name).ok()) else {
        return;
    };
    let Ok(record) = pb::RoomRecord::decode(value) else {
        return;
    };
    let later = |_: &RoomName, lease: &Lease| revision > lease.revision;
    if record.owner == cluster.0.me || cluster.0.owned.remove_if(&room, later).is_none() {
        return;
    }
    warn!(room = %room, owner = %record.owner, "another node took this room over; closing it here");
    if let Some(on_lost) = cluster.0.on_lost.get() {
        on_lost(room);
    }
}

/// Removes every record this node holds (it is leaving the cluster).
pub(super) async fn release_all(cluster: &Cluster) {
    let rooms: Vec<(RoomName, u64)> = cluster.0.owned.iter().map(|l| (l.key().clone(), l.revision)).collect();
    for (room, revision) in rooms {
        let _ = cluster
            .0
            .rooms
            .delete_expect_revision(key(room.as_str()), Some(revision))
            .await;
    }
    let worlds: Vec<(String, u64)> = cluster.0.worlds.iter().map(|w| (w.key().clone(), *w.value())).collect();
    for (world, revision) in worlds {
        let name = format!("{WORLD_PREFIX}{world}");
        let _ = cluster.0.rooms.delete_expect_revision(key(&name), Some(revision)).await;
    }
    let names: Vec<(String, u64)> = cluster.0.names_held.iter().map(|h| (h.key().clone(), h.1)).collect();
    for (name, revision) in names {
        let _ = cluster.0.names.delete_expect_revision(key(&name), Some(revision)).await;
    }
}
