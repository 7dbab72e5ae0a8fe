//! The owner's side of a room with members on other nodes: the commands
//! those members send (subject `tavern.room.<room>.in`) go into the room's
//! inbox as if its members were here, and the room's relay is published, in
//! order, to the nodes they are on (`tavern.room.<room>.ev`).

use std::collections::HashMap;

use futures_util::StreamExt;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Cluster;
use super::wire::{self, pb};
use crate::ids::{RoomId, SessionId};
use crate::protocol::{ChatText, PlayerName, Recover, RoomName};
use crate::room::{
    Admission, ChatSent, Join, Leave, Member, PluginSent, Relay, RelayReader, RoomCommand, RoomHandle, Route, Seat,
};

impl Cluster {
    /// Serves room `room`, just made here, to members elsewhere: its
    /// commands in, until `stop`; its relay out, until the room is gone.
    pub fn serve_room(
        &self,
        room: &RoomName,
        (handle, relay): (RoomHandle, Relay),
        reader: RelayReader,
        stop: CancellationToken,
    ) {
        self.0.relays.insert(handle.id(), relay.downgrade());
        tokio::spawn(publish_relay(self.clone(), (room.clone(), handle.id()), reader));
        tokio::spawn(take_commands(self.clone(), room.clone(), handle, stop));
    }
}

/// Publishes the room's relay until the room drops it.
async fn publish_relay(cluster: Cluster, (room, handle_id): (RoomName, RoomId), mut reader: RelayReader) {
    let subject = wire::room_events(room.as_str());
    let client = cluster.client().clone();
    let id = handle_id;
    while let Some(relayed) = reader.frames.recv().await {
        let epoch = relayed.epoch;
        let message = pb::Relayed {
            epoch,
            seq: relayed.seq,
            sequenced: relayed.sequenced,
            to: relayed.to.map_or(0, SessionId::get),
            skip: relayed.skip.map_or(0, SessionId::get),
            ends: relayed.ends,
            frame: relayed.frame,
        };
        if reader.take_overflow() {
            warn!(room = %room, "relay full: the room's members elsewhere are dropped");
            let reset = pb::Relayed {
                epoch,
                ends: true,
                ..pb::Relayed::default()
            };
            let _ = client.publish(subject.clone(), wire::encode(&reset)).await;
        }
        if let Err(e) = client.publish(subject.clone(), wire::encode(&message)).await {
            debug!(room = %room, error = %e, "relay frame not published");
        }
    }
    cluster.0.relays.remove(&id);
}

/// Takes the commands of the room's members elsewhere until `stop`.
async fn take_commands(cluster: Cluster, room: RoomName, handle: RoomHandle, stop: CancellationToken) {
    let mut commands = match cluster.client().subscribe(wire::room_in(room.as_str())).await {
        Ok(commands) => commands,
        Err(e) => {
            warn!(room = %room, error = %e, "cannot take commands from other nodes");
            return;
        }
    };
    // The seats of members elsewhere (held when their node says so), and their nodes.
    let mut seats: Seats = HashMap::new();
    let mut sweeps = tokio::time::interval(cluster.timing().heartbeat);
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            _ = sweeps.tick() => {
                if sweep(&cluster, &handle, &mut seats).await.is_err() {
                    break;
                }
                continue;
            }
            message = commands.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        let Ok(command) = pb::ToOwner::decode(message.payload) else {
            debug!(room = %room, "undecodable command from another node");
            continue;
        };
        let Some(body) = command.body else { continue };
        let forwarded = match body {
            pb::to_owner::Body::Join(join) => {
                admit(&cluster, &handle, &mut seats, join, message.reply).await;
                Ok(())
            }
            other => match command_of(other, &mut seats) {
                Some(command) => handle.inbox().send(command).await,
                None => Ok(()),
            },
        };
        if forwarded.is_err() {
            break;
        }
    }
    let _ = commands.unsubscribe().await;
}

/// The members elsewhere: each one's seat here, and its node.
type Seats = HashMap<SessionId, (Seat, String)>;

/// Takes out of the room the members whose node died (their sessions are gone with it).
async fn sweep(cluster: &Cluster, handle: &RoomHandle, seats: &mut Seats) -> Result<(), crate::inbox::Gone> {
    seats.retain(|_, (seat, _)| !seat.is_vacated());
    let orphans: Vec<SessionId> = seats
        .iter()
        .filter(|(_, (_, node))| !cluster.is_alive(node))
        .map(|(&session, _)| session)
        .collect();
    for session in orphans {
        seats.remove(&session);
        let leave = Leave { request_id: 0, session };
        handle.inbox().send(RoomCommand::Leave(leave)).await?;
    }
    Ok(())
}

/// The room command a member elsewhere sent (a join aside), if it is one.
fn command_of(body: pb::to_owner::Body, seats: &mut Seats) -> Option<RoomCommand> {
    let command = match body {
        pb::to_owner::Body::Leave(leave) => RoomCommand::Leave(Leave {
            request_id: leave.request_id,
            session: SessionId::new(leave.session),
        }),
        pb::to_owner::Body::Chat(chat) => match ChatText::parse(chat.text, usize::MAX) {
            Ok(text) => RoomCommand::Chat(ChatSent {
                request_id: chat.request_id,
                session: SessionId::new(chat.session),
                text,
            }),
            // Its node checked it already.
            Err(_) => return None,
        },
        pb::to_owner::Body::Send(sent) => RoomCommand::Send(PluginSent {
            request_id: sent.request_id,
            session: SessionId::new(sent.session),
            op: sent.op,
            data: sent.data,
        }),
        pb::to_owner::Body::Hold(session) => {
            let session = SessionId::new(session);
            if let Some((seat, _)) = seats.get(&session) {
                seat.hold();
            }
            RoomCommand::Hold(session)
        }
        pb::to_owner::Body::Join(_) => return None,
    };
    Some(command)
}

/// Puts a member elsewhere in the room; its node hears the outcome on `reply`.
async fn admit(
    cluster: &Cluster,
    handle: &RoomHandle,
    seats: &mut Seats,
    join: pb::Join,
    reply: Option<async_nats::Subject>,
) {
    let Ok(name) = PlayerName::parse(&join.name) else {
        return;
    };
    let member = Member {
        id: SessionId::new(join.session),
        name,
    };
    let seat = Seat::taken();
    seats.retain(|_, (seat, _)| !seat.is_vacated());
    seats.insert(member.id, (seat.clone(), join.node.clone()));
    let recover = join.recover.then_some(Recover {
        since_seq: join.since_seq,
        epoch: join.epoch,
    });
    let asked = handle
        .inbox()
        .request(|accepted| {
            RoomCommand::Join(Join {
                request_id: join.request_id,
                member,
                route: Route::Relayed,
                seat,
                metadata: join.metadata,
                recover,
                accepted,
            })
        })
        .await;
    let Some(reply) = reply else { return };
    let client = cluster.client().clone();
    let (session, node) = (join.session, join.node);
    tokio::spawn(async move {
        let admission = match asked {
            Ok(answer) => answer.await.unwrap_or(Admission::Closing),
            Err(_) => Admission::Closing,
        };
        debug!(%session, node, ?admission, "member elsewhere joining");
        let _ = client
            .publish(reply, wire::encode(&wire::admission_to_pb(&admission)))
            .await;
    });
}
