//! The directory actor: the rooms by name, made on their first join (in a
//! cluster, with a relay and a port for members elsewhere) and forgotten
//! once empty.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, ActorContext, ArbiterHandle, AsyncContext, Context, StreamHandler};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::clustered::{self, Clustered};
use super::{DirectoryCommand, DirectoryHandle};
use crate::cluster::Cluster;
use crate::ids::RoomId;
use crate::inbox::{Inbox, Reply, inbox};
use crate::lifecycle::LifecycleEvent;
use crate::protocol::RoomName;
use crate::room::{Kind, OnEmpty, Room, RoomCommand, RoomContext, RoomHandle};

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
            clustered::answer_opens(handle.clone(), cluster);
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
