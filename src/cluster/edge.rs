//! An edge: this node's stand-in for a room owned by another node. Sessions
//! here join and talk to it exactly as to a room (it reads the same
//! [`RoomCommand`]s); it forwards their commands to the owner and fans the
//! owner's frames, each encoded once by the owner, out to its members here.
//!
//! It subscribes to the room's frames before it forwards the first join, and
//! lives while it has members here. It checks that the room's `seq` runs on
//! without a jump; frames lost on the way (NATS dropped them, or the owner's
//! relay overflowed) end every membership here with `RoomLeft`, so no member
//! sees a gap without being told, and a rejoin recovers from the owner's
//! history. So does the owner's death, found by its liveness.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, StreamHandler, WrapFuture};
use bytes::Bytes;
use dashmap::DashMap;
use prost::Message;
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::wire::{self, pb};
use super::{Cluster, NODE_LOST, ROOM_MOVED, STREAM_BROKEN};
use crate::broadcast::Recipient;
use crate::ids::{RoomId, SessionId};
use crate::inbox::{Mailbox, Reply, watched_inbox};
use crate::outbox::{Outbox, SendError};
use crate::protocol::{self, ErrorCode, RoomName, encode_frame};
use crate::room::{
    Admission, Join, Kind, Member, RoomCommand, RoomContext, RoomHandle, Route, Seat, room_left, slow_consumer,
};

/// The edges on this node, by room; each with its owner.
#[derive(Debug, Default)]
pub struct EdgeRooms(DashMap<RoomName, (String, RoomHandle)>);

impl EdgeRooms {
    pub(super) fn names(&self) -> Vec<String> {
        self.0.iter().map(|entry| entry.key().to_string()).collect()
    }
}

impl Cluster {
    /// The owner of `room` if `id` is this node's edge for it.
    pub fn edge_owner(&self, room: &RoomName, id: RoomId) -> Option<String> {
        let entry = self.0.edges.0.get(room)?;
        (entry.1.id() == id).then(|| entry.0.clone())
    }
}

/// A member here of a room owned elsewhere.
struct Local {
    member: Member,
    outbox: Outbox,
    seat: Seat,
    /// Its `RoomJoined` came: it gets the room's frames from here on.
    started: bool,
    /// Its session is held for a resume: it gets nothing.
    held: bool,
    /// Where its join is answered: by the owner's reply, or by its
    /// `RoomJoined` if that comes first (it proves the room took it).
    admitted: Option<Reply<Admission>>,
}

impl Recipient for Local {
    fn outbox(&self) -> Option<&Outbox> {
        (self.started && !self.held).then_some(&self.outbox)
    }
}

/// The edge actor. See the module documentation.
struct Edge {
    cluster: Cluster,
    room: RoomName,
    id: RoomId,
    owner: String,
    context: Arc<RoomContext>,
    members: Vec<Local>,
    /// Where each member is in `members`.
    index: HashMap<SessionId, usize>,
    /// The epoch and seq of the last frame, while members here get frames.
    last: Option<(u64, u64)>,
    /// Commands for the owner, published in order by one task.
    out: mpsc::Sender<Bytes>,
    /// Every member was sent away (the owner died, frames were lost): the
    /// edge is stopping and takes no more joins.
    over: bool,
}

impl Cluster {
    /// The handle of the edge for `room`, owned by `owner`: the running one,
    /// or a new one on `arbiter`.
    pub fn edge(
        &self,
        room: &RoomName,
        (owner, kind): (&str, Kind),
        context: &Arc<RoomContext>,
        arbiter: &actix::ArbiterHandle,
    ) -> RoomHandle {
        if let Some(entry) = self.0.edges.0.get(room)
            && entry.0 == owner
            && self.is_alive(owner)
            && !entry.1.inbox().is_closed()
        {
            return entry.1.clone();
        }
        let (inbox, mailbox): (_, Mailbox<RoomCommand>) =
            watched_inbox(context.inbox, context.stats.inbox_fill.clone());
        let id = RoomId::new(fastrand::u64(1..));
        let handle = RoomHandle::new(inbox, id, kind);
        let (out, commands) = mpsc::channel(context.inbox);
        tokio::spawn(forward_in_order(
            self.client().clone(),
            wire::room_in(room.as_str()),
            commands,
        ));
        let edge = Edge {
            cluster: self.clone(),
            room: room.clone(),
            id,
            owner: owner.to_owned(),
            context: context.clone(),
            members: Vec::new(),
            index: HashMap::new(),
            last: None,
            out,
            over: false,
        };
        Edge::start_in_arbiter(arbiter, move |ctx| {
            edge.subscribe(ctx);
            ctx.add_stream(mailbox);
            edge
        });
        self.0.edges.0.insert(room.clone(), (owner.to_owned(), handle.clone()));
        handle
    }
}

impl Actor for Edge {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        debug!(room = %self.room, owner = %self.owner, "edge started");
        let every = self.cluster.timing().heartbeat;
        ctx.run_interval(every, |edge, ctx| {
            if !edge.cluster.is_alive(&edge.owner) {
                info!(room = %edge.room, owner = %edge.owner, "the room's node is lost");
                edge.over = true;
                edge.everyone_out(NODE_LOST);
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.everyone_out(NODE_LOST);
        let id = self.id;
        self.cluster
            .0
            .edges
            .0
            .remove_if(&self.room, |_, (_, handle)| handle.id() == id);
    }
}

impl Edge {
    /// Subscribes to the room's frames before any command is read.
    fn subscribe(&self, ctx: &mut Context<Self>) {
        let client = self.cluster.client().clone();
        let subject = wire::room_events(self.room.as_str());
        let subscribing = async move { client.subscribe(subject).await };
        ctx.wait(
            subscribing
                .into_actor(self)
                .map(|subscribed, edge, ctx| match subscribed {
                    Ok(frames) => {
                        ctx.add_stream(frames);
                    }
                    Err(e) => {
                        info!(room = %edge.room, error = %e, "cannot subscribe to the room's frames");
                        ctx.stop();
                    }
                }),
        );
    }

    fn position(&self, session: SessionId) -> Option<usize> {
        self.index.get(&session).copied()
    }

    /// Takes the member at `i` out of the list (the last one takes its place).
    fn take_at(&mut self, i: usize) -> Local {
        let local = self.members.swap_remove(i);
        self.index.remove(&local.member.id);
        if let Some(moved) = self.members.get(i) {
            self.index.insert(moved.member.id, i);
        }
        local
    }

    /// Sends the owner `body`, after everything sent before; false if NATS
    /// is away or too much waits for it.
    fn forward(&self, body: pb::to_owner::Body) -> bool {
        self.cluster.is_up()
            && self
                .out
                .try_send(wire::encode(&pb::ToOwner { body: Some(body) }))
                .is_ok()
    }

    /// Tells the owner that `session` left (its session is gone); without
    /// NATS, once it is back (the NATS client keeps what waits meanwhile).
    fn forward_leave(&self, session: SessionId) {
        let leave = pb::Leave {
            request_id: 0,
            session: session.get(),
        };
        let body = Some(pb::to_owner::Body::Leave(leave));
        if self.out.try_send(wire::encode(&pb::ToOwner { body })).is_err() {
            debug!(room = %self.room, %session, "a leave for the room's node was dropped: its queue is full");
        }
    }

    fn join(&mut self, join: Join, ctx: &mut Context<Self>) {
        let Route::Local(outbox) = join.route else {
            return join.accepted.send(Admission::Refused);
        };
        if self.over {
            // The directory asks again, and finds where the room is now.
            return join.accepted.send(Admission::Closing);
        }
        match self.position(join.member.id) {
            // A resumed session taking its seat back: frames go to its new connection.
            Some(i) if self.members[i].held => {
                let local = &mut self.members[i];
                (local.outbox, local.seat, local.started, local.held) = (outbox, join.seat.clone(), false, false);
            }
            Some(_) => return join.accepted.send(Admission::AlreadyMember),
            None => {
                self.index.insert(join.member.id, self.members.len());
                self.members.push(Local {
                    member: join.member.clone(),
                    outbox,
                    seat: join.seat,
                    started: false,
                    held: false,
                    admitted: None,
                });
            }
        }
        if !self.cluster.is_up() {
            self.drop_unstarted(join.member.id);
            join.accepted
                .send(Admission::Unavailable("no connection to NATS".to_owned()));
            if self.members.is_empty() {
                ctx.stop();
            }
            return;
        }
        if let Some(i) = self.position(join.member.id) {
            self.members[i].admitted = Some(join.accepted);
        }
        let recover = join.recover;
        let request = pb::Join {
            request_id: join.request_id,
            session: join.member.id.get(),
            name: join.member.name.to_string(),
            node: self.cluster.node_id().to_owned(),
            metadata: join.metadata,
            recover: recover.is_some(),
            since_seq: recover.map_or(0, |r| r.since_seq),
            epoch: recover.map_or(0, |r| r.epoch),
        };
        let payload = wire::encode(&pb::ToOwner {
            body: Some(pb::to_owner::Body::Join(request)),
        });
        let client = self.cluster.client().clone();
        let (subject, timeout) = (wire::room_in(self.room.as_str()), self.cluster.timing().request);
        let asked = async move { tokio::time::timeout(timeout, client.request(subject, payload)).await };
        let session = join.member.id;
        ctx.spawn(asked.into_actor(self).map(move |answer, edge, ctx| {
            let admission = match answer {
                Ok(Ok(reply)) => pb::Admission::decode(reply.payload).map_or(Admission::Closing, wire::admission_of),
                // No port for the room: it closed, or moved.
                Ok(Err(_)) => Admission::Closing,
                Err(_) => Admission::Unavailable(format!("the room's node ({}) did not answer in time", edge.owner)),
            };
            debug!(room = %edge.room, %session, ?admission, "join answered by the room's node");
            let waiting = edge.position(session).and_then(|i| edge.members[i].admitted.take());
            if admission != Admission::Joined {
                edge.drop_unstarted(session);
            }
            if let Some(waiting) = waiting {
                waiting.send(admission);
            }
            if edge.members.is_empty() {
                ctx.stop();
            }
        }));
    }

    /// Forgets a member whose join did not go through.
    fn drop_unstarted(&mut self, session: SessionId) {
        if let Some(i) = self.position(session).filter(|&i| !self.members[i].started) {
            self.take_at(i);
        }
    }

    /// Takes `session` out here (its seat vacated); true if it was in.
    fn remove(&mut self, session: SessionId) -> Option<Local> {
        let i = self.position(session)?;
        let local = self.take_at(i);
        local.seat.vacate();
        Some(local)
    }

    /// Ends every membership here with `RoomLeft { reason }`, and tells the owner.
    fn everyone_out(&mut self, reason: &str) {
        self.index.clear();
        for local in std::mem::take(&mut self.members) {
            local.seat.vacate();
            if let Err(SendError::Full) = local.outbox.try_send(room_left(&self.room, 0, reason)) {
                slow_consumer(&self.room, &local.member, &local.outbox, &self.context.stats);
            }
            self.forward_leave(local.member.id);
        }
        self.last = None;
    }

    /// Tells the member at `i` that its message could not reach the room's node.
    fn unavailable(&mut self, session: SessionId, request_id: u64) {
        let Some(i) = self.position(session) else { return };
        let message = format!(
            "room {} is owned by node {}, which cannot be reached now",
            self.room, self.owner
        );
        self.context.stats.error_sent(ErrorCode::ClusterUnavailable);
        let error = protocol::error_message(request_id, ErrorCode::ClusterUnavailable, message);
        let _ = self.members[i].outbox.try_send(encode_frame(&error));
    }
}

impl StreamHandler<RoomCommand> for Edge {
    fn handle(&mut self, command: RoomCommand, ctx: &mut Context<Self>) {
        let (session, request_id, body) = match command {
            RoomCommand::Join(join) => return self.join(join, ctx),
            RoomCommand::Drain(done) => return done.send(()),
            RoomCommand::Close(reason) => return self.everyone_out(&reason),
            RoomCommand::Leave(leave) => {
                if leave.request_id == 0 {
                    self.remove(leave.session);
                }
                let body = pb::to_owner::Body::Leave(pb::Leave {
                    request_id: leave.request_id,
                    session: leave.session.get(),
                });
                (leave.session, leave.request_id, body)
            }
            RoomCommand::Chat(chat) => {
                let body = pb::to_owner::Body::Chat(pb::Chat {
                    request_id: chat.request_id,
                    session: chat.session.get(),
                    text: chat.text.into_string(),
                });
                (chat.session, chat.request_id, body)
            }
            RoomCommand::Send(sent) => {
                let body = pb::to_owner::Body::Send(pb::Send {
                    request_id: sent.request_id,
                    session: sent.session.get(),
                    op: sent.op,
                    data: sent.data,
                });
                (sent.session, sent.request_id, body)
            }
            RoomCommand::Hold(session) => {
                if let Some(i) = self.position(session) {
                    self.members[i].held = true;
                }
                (session, 0, pb::to_owner::Body::Hold(session.get()))
            }
        };
        if !self.forward(body) {
            self.unavailable(session, request_id);
        }
        if self.members.is_empty() {
            ctx.stop();
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl StreamHandler<async_nats::Message> for Edge {
    fn handle(&mut self, message: async_nats::Message, ctx: &mut Context<Self>) {
        let Ok(relayed) = pb::Relayed::decode(message.payload) else {
            return;
        };
        if self.is_break(&relayed) {
            let reason = if self.last.is_some_and(|(epoch, _)| epoch != relayed.epoch) {
                ROOM_MOVED
            } else {
                STREAM_BROKEN
            };
            info!(room = %self.room, reason, "frames from the room's node were lost; its members here are told");
            self.over = true;
            self.everyone_out(reason);
            return ctx.stop();
        }
        if self.members.iter().any(|local| local.started) {
            self.last = Some((relayed.epoch, relayed.seq));
        }
        match relayed.to {
            0 => self.fan_out(&relayed.frame, SessionId::new(relayed.skip)),
            to => self.deliver(SessionId::new(to), relayed.frame, relayed.ends),
        }
        if self.members.is_empty() {
            ctx.stop();
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Edge {
    /// Whether `relayed` shows that frames were lost (or the room was made again).
    fn is_break(&self, relayed: &pb::Relayed) -> bool {
        if relayed.to == 0 && relayed.ends {
            return true;
        }
        match self.last {
            Some((epoch, seq)) => epoch != relayed.epoch || relayed.seq != seq + u64::from(relayed.sequenced),
            None => false,
        }
    }

    /// Queues a frame for every member here that gets frames, but `skip`.
    fn fan_out(&mut self, frame: &Bytes, skip: SessionId) {
        let skip = self.position(skip);
        let refusals = self.context.broadcaster.send(frame, &self.members, skip);
        let sent = self.members.iter().filter(|local| local.outbox().is_some()).count() - refusals.len();
        let sent = sent - skip.filter(|&i| self.members[i].outbox().is_some()).map_or(0, |_| 1);
        self.context.stats.deliveries.inc_by(u64::try_from(sent).unwrap_or(0));
        let refused: Vec<(SessionId, SendError)> = refusals
            .into_iter()
            .map(|(i, e)| (self.members[i].member.id, e))
            .collect();
        for (session, error) in refused {
            self.refused(session, error);
        }
    }

    /// Queues a frame for one member here; `ends` takes it out after.
    fn deliver(&mut self, session: SessionId, frame: Bytes, ends: bool) {
        let Some(i) = self.position(session) else { return };
        self.members[i].started = true;
        if let Some(waiting) = self.members[i].admitted.take() {
            waiting.send(Admission::Joined);
        }
        let sent = self.members[i].outbox.try_send(frame);
        if ends {
            self.remove(session);
        } else if let Err(error) = sent {
            self.refused(session, error);
        }
    }

    /// A member here refused a frame: a full queue is a slow consumer; a
    /// closed one is a session gone (or held, which its session says itself).
    fn refused(&mut self, session: SessionId, error: SendError) {
        let Some(i) = self.position(session) else { return };
        if error == SendError::Closed && self.members[i].seat.is_held() {
            self.members[i].held = true;
            return;
        }
        let Some(local) = self.remove(session) else { return };
        if error == SendError::Full {
            slow_consumer(&self.room, &local.member, &local.outbox, &self.context.stats);
        }
        self.forward_leave(session);
    }
}

/// Publishes the edge's commands to `subject`, one after the other, until the edge is gone.
async fn forward_in_order(client: async_nats::Client, subject: String, mut commands: mpsc::Receiver<Bytes>) {
    while let Some(payload) = commands.recv().await {
        if let Err(e) = client.publish(subject.clone(), payload).await {
            debug!(subject, error = %e, "command for the room's node not published");
        }
    }
}
