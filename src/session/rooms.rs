//! A session's rooms: joining by name or quick join (one call on the room
//! directory), listing, leaving, chat and plugin messages, each routed to
//! its room's inbox. A room the session is in holds its seat; a room that
//! kicks the member or closes vacates it, and the session forgets the room
//! the next time it looks.

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};
use bytes::Bytes;

use super::{Phase, Session};
use crate::directory::{JoinError, Joiner, Wanted};
use crate::ids::{DisconnectReason, OverloadLevel};
use crate::inbox::{Inbox, TrySendError};
use crate::protocol::pb::server_message::Body;
use crate::protocol::{self, ChatText, ErrorCode, Filter, JoinSpec, ListSpec, RoomName, pb};
use crate::room::{
    Admission, ChatSent, Join, Leave, LeaveReason, PluginSent, RoomCommand, RoomHandle, Route, Seat, room_info,
};

/// A room the session is in (or is joining).
pub(super) struct InRoom {
    /// The room's inbox (all a member needs of its handle).
    inbox: Inbox<RoomCommand>,
    seat: Seat,
}

/// The rooms a session is in: a list sized to fit (a session is in a room
/// or two, and at most `max_rooms_per_session`), since an idle session's
/// size sets the server's memory per connection.
#[derive(Default)]
pub(super) struct JoinedRooms(Vec<(RoomName, InRoom)>);

impl JoinedRooms {
    fn position(&self, room: &RoomName) -> Option<usize> {
        self.0.iter().position(|(name, _)| name == room)
    }

    fn get(&self, room: &RoomName) -> Option<&InRoom> {
        self.position(room)
            .and_then(|i| self.0.get(i))
            .map(|(_, in_room)| in_room)
    }

    fn remove(&mut self, room: &RoomName) -> Option<InRoom> {
        self.position(room).map(|i| self.0.swap_remove(i).1)
    }

    /// Adds `room` (which the session is not in).
    fn insert(&mut self, room: RoomName, in_room: InRoom) {
        self.0.reserve_exact(1);
        self.0.push((room, in_room));
    }

    /// Forgets the rooms whose seat was vacated (kicked, or the room closed).
    fn prune(&mut self) {
        self.0.retain(|(_, in_room)| !in_room.seat.is_vacated());
        self.0.shrink_to_fit();
    }

    /// Takes out the rooms whose seat is held for a resume.
    fn take_held(&mut self) -> Vec<InRoom> {
        let (held, kept) = self.0.drain(..).partition(|(_, in_room)| in_room.seat.is_held());
        self.0 = kept;
        held.into_iter().map(|(_, in_room)| in_room).collect()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn drain(&mut self) -> impl Iterator<Item = InRoom> + '_ {
        self.0.drain(..).map(|(_, in_room)| in_room)
    }

    fn iter(&self) -> impl Iterator<Item = &InRoom> {
        self.0.iter().map(|(_, in_room)| in_room)
    }
}

impl Session {
    /// Joins `spec.room` through the directory; the room answers the client.
    /// A seat held since a resume is taken back from its room instead.
    pub(super) fn join(&mut self, ctx: &mut Context<Self>, request_id: u64, spec: JoinSpec) {
        if self.rooms.get(&spec.room).is_some_and(|in_room| in_room.seat.is_held()) {
            return self.reclaim(ctx, request_id, spec);
        }
        if let Err((code, message)) = self.may_join(Some(&spec.room)) {
            return self.reply_error(ctx, request_id, code, message);
        }
        let JoinSpec {
            room,
            kind,
            params,
            metadata,
            recover,
        } = spec;
        let wanted = Wanted {
            room,
            kind,
            params,
            metadata,
            recover,
        };
        self.enter(ctx, request_id, async move |directory, joiner| {
            directory
                .join(&wanted, joiner)
                .await
                .map(|handle| (wanted.room, handle))
        });
    }

    /// Joins the best open room of a kind whose label matches the filter, or a new one.
    pub(super) fn quick_join(
        &mut self,
        ctx: &mut Context<Self>,
        request_id: u64,
        (kind, filter): (String, Filter),
        made_with: (Bytes, Bytes),
    ) {
        if let Err((code, message)) = self.may_join(None) {
            return self.reply_error(ctx, request_id, code, message);
        }
        self.enter(ctx, request_id, async move |directory, joiner| {
            directory.quick_join(&kind, &filter, made_with, joiner).await
        });
    }

    /// Runs `joining` with this session as the joiner, keeping the room once
    /// it is in. The room answers the client; errors are answered here.
    fn enter<F>(&mut self, ctx: &mut Context<Self>, request_id: u64, joining: F)
    where
        F: AsyncFnOnce(crate::directory::DirectoryHandle, Joiner<'_>) -> Result<(RoomName, RoomHandle), JoinError>
            + 'static,
    {
        let Some(member) = self.member.clone() else { return };
        let (directory, outbox) = (self.server.directory.clone(), self.outbox.clone());
        let seat = Seat::taken();
        let kept = seat.clone();
        let joined = async move {
            let joiner = Joiner {
                member: &member,
                outbox: &outbox,
                seat: &seat,
                request_id,
            };
            joining(directory, joiner).await
        };
        ctx.wait(joined.into_actor(self).map(move |joined, act, ctx| match joined {
            Ok((room, handle)) => {
                let inbox = handle.inbox().clone();
                // Joined while the connection dropped: held like the others.
                if act.phase == Phase::Held && kept.hold() {
                    inbox.post(RoomCommand::Hold(act.id));
                }
                act.rooms.insert(room, InRoom { inbox, seat: kept });
            }
            Err(JoinError::Stopping) => {
                let (code, reason) = (ErrorCode::ServerShuttingDown, DisconnectReason::ServerShutdown);
                act.fail(ctx, request_id, code, JoinError::Stopping.to_string(), reason);
            }
            // Refused only when this session's connection is closing: nobody is left to answer.
            Err(JoinError::Refused) => {}
            Err(e) => act.reply_error(ctx, request_id, join_error_code(&e), e.to_string()),
        }));
    }

    /// Whether this session may join `room` (or any room) now; if not, the error to answer.
    fn may_join(&mut self, room: Option<&RoomName>) -> Result<(), (ErrorCode, String)> {
        self.rooms.prune();
        if let Some(room) = room
            && self.rooms.get(room).is_some()
        {
            return Err((ErrorCode::AlreadyInRoom, format!("already in room {room}")));
        }
        if self.server.stats.overload() >= OverloadLevel::Shedding {
            let message = "the server is overloaded; try again later".to_owned();
            return Err((ErrorCode::Overloaded, message));
        }
        let max = self.server.config.max_rooms_per_session;
        if self.rooms.len() >= max {
            let message = format!("already in {max} rooms (see Config::max_rooms_per_session)");
            return Err((ErrorCode::TooManyRooms, message));
        }
        Ok(())
    }

    /// Answers with the public rooms that `spec` asks for.
    pub(super) fn list_rooms(&mut self, ctx: &mut Context<Self>, request_id: u64, spec: &ListSpec) {
        let max = self.server.config.list_rooms_max;
        let limit = match usize::try_from(spec.limit) {
            Ok(0) | Err(_) => max,
            Ok(limit) => limit.min(max),
        };
        if let Some(cluster) = self.server.directory.cluster().cloned() {
            let spec = spec.clone();
            let listed = async move { cluster.list(&spec, limit).await };
            let answered = listed.into_actor(self).map(move |listed, act, ctx| match listed {
                Ok(rooms) => act.send(
                    ctx,
                    &protocol::server_message(request_id, Body::RoomList(pb::RoomList { rooms })),
                ),
                Err(e) => act.reply_error(ctx, request_id, ErrorCode::ClusterUnavailable, e.to_string()),
            });
            ctx.spawn(answered);
            return;
        }
        let found = self
            .server
            .directory
            .listing()
            .find(spec.kind.as_deref(), &spec.filter, spec.only_open, limit);
        let rooms = found.iter().map(|(room, listed)| room_info(room, listed)).collect();
        let list = Body::RoomList(pb::RoomList { rooms });
        self.send(ctx, &protocol::server_message(request_id, list));
    }

    pub(super) fn leave(&mut self, ctx: &mut Context<Self>, request_id: u64, room: RoomName) {
        match self.rooms.remove(&room).and_then(InRoom::current) {
            // A seat held since a resume: the room has no connection to answer on.
            Some((inbox, true)) => {
                inbox.post(RoomCommand::Leave(Leave {
                    request_id: 0,
                    session: self.id,
                }));
                let left = pb::RoomLeft {
                    room: room.to_string(),
                    reason: LeaveReason::Left.as_str().to_owned(),
                };
                self.send(ctx, &protocol::server_message(request_id, Body::RoomLeft(left)));
            }
            Some((inbox, false)) => {
                let session = self.id;
                self.send_to_room(ctx, &inbox, RoomCommand::Leave(Leave { request_id, session }));
            }
            None => self.reply_error(ctx, request_id, ErrorCode::NotInRoom, format!("not in room {room}")),
        }
    }

    pub(super) fn chat(&mut self, ctx: &mut Context<Self>, request_id: u64, room: RoomName, text: ChatText) {
        let session = self.id;
        let chat = ChatSent {
            request_id,
            session,
            text,
        };
        self.send_as_member(ctx, request_id, &room, RoomCommand::Chat(chat));
    }

    pub(super) fn room_send(&mut self, ctx: &mut Context<Self>, request_id: u64, room: RoomName, op: u32, data: Bytes) {
        let session = self.id;
        let sent = PluginSent {
            request_id,
            session,
            op,
            data,
        };
        self.send_as_member(ctx, request_id, &room, RoomCommand::Send(sent));
    }

    /// Sends `command` to `room` if this session is in it; answers NOT_IN_ROOM if not.
    fn send_as_member(&mut self, ctx: &mut Context<Self>, request_id: u64, room: &RoomName, command: RoomCommand) {
        match self.rooms.get(room).and_then(InRoom::current_ref) {
            Some(inbox) => {
                let inbox = inbox.clone();
                self.send_to_room(ctx, &inbox, command);
            }
            None => {
                let message = match self.rooms.get(room) {
                    Some(_) => {
                        format!("room {room} holds this session's seat since the resume: JoinRoom takes it back")
                    }
                    None => format!("not in room {room}"),
                };
                self.reply_error(ctx, request_id, ErrorCode::NotInRoom, message);
            }
        }
    }

    /// Queues `command` for the room; while the room's inbox is full, this
    /// session reads nothing more (and shutdown waits for the command). A
    /// room that stopped has already vacated this member's seat: nothing to do.
    fn send_to_room(&mut self, ctx: &mut Context<Self>, room: &Inbox<RoomCommand>, command: RoomCommand) {
        match room.try_send(command) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(command)) => {
                self.server.late_sends.wait_begins();
                let inbox = room.clone();
                let sent = async move { inbox.send(command).await }.into_actor(self);
                ctx.wait(sent.map(|_, act, _| act.server.late_sends.wait_ends()));
            }
        }
    }

    /// Takes back the seat in `spec.room` held since a resume: the room sends
    /// `RoomJoined` (recovering from `spec.recover` if it can) without telling
    /// the others, who never saw the member leave. A room that let the seat
    /// go meanwhile is joined afresh.
    fn reclaim(&mut self, ctx: &mut Context<Self>, request_id: u64, spec: JoinSpec) {
        let (Some(member), Some(in_room)) = (self.member.clone(), self.rooms.get(&spec.room)) else {
            return;
        };
        let (inbox, seat, outbox) = (in_room.inbox.clone(), in_room.seat.clone(), self.outbox.clone());
        let (metadata, recover) = (spec.metadata.clone(), spec.recover);
        let asked = async move {
            let join = |accepted| {
                RoomCommand::Join(Join {
                    request_id,
                    member,
                    route: Route::Local(outbox),
                    seat,
                    metadata,
                    recover,
                    accepted,
                })
            };
            inbox.ask(join).await
        };
        ctx.wait(asked.into_actor(self).map(move |answer, act, ctx| match answer {
            // Back in (the room took the seat back), or this connection is closing.
            Ok(Admission::Joined | Admission::Refused) => {}
            _ => {
                if let Some(in_room) = act.rooms.remove(&spec.room) {
                    in_room.seat.vacate();
                    let session = act.id;
                    in_room.inbox.post(RoomCommand::Leave(Leave { request_id: 0, session }));
                }
                act.join(ctx, request_id, spec);
            }
        }));
    }

    /// Holds every seat for a resume and tells each room, so that none
    /// announces the member leaving when its connection closes.
    pub(super) fn hold_rooms(&mut self) {
        self.rooms.prune();
        for in_room in self.rooms.iter() {
            if in_room.seat.hold() {
                in_room.inbox.post(RoomCommand::Hold(self.id));
            }
        }
    }

    /// Gives up the seats held since the resume that the client did not take back.
    pub(super) fn leave_unclaimed_rooms(&mut self) {
        // Dropped again meanwhile: the seats wait for the next resume.
        if self.phase != Phase::Active {
            return;
        }
        for in_room in self.rooms.take_held() {
            let session = self.id;
            in_room.inbox.post(RoomCommand::Leave(Leave { request_id: 0, session }));
        }
    }

    /// Leaves every room without waiting (the session is ending).
    pub(super) fn leave_all_rooms(&mut self) {
        for in_room in self.rooms.drain() {
            if let Some((room, _)) = in_room.current() {
                let session = self.id;
                room.post(RoomCommand::Leave(Leave { request_id: 0, session }));
            }
        }
    }
}

impl InRoom {
    /// The room's inbox while the member has a seat there, and whether it is held.
    fn current(self) -> Option<(Inbox<RoomCommand>, bool)> {
        let held = self.seat.is_held();
        (!self.seat.is_vacated()).then_some((self.inbox, held))
    }

    /// The room's inbox while the member is in it with this connection.
    fn current_ref(&self) -> Option<&Inbox<RoomCommand>> {
        self.seat.is_taken().then_some(&self.inbox)
    }
}

/// The error code a failed join is answered with.
fn join_error_code(error: &JoinError) -> ErrorCode {
    match error {
        JoinError::Stopping => ErrorCode::ServerShuttingDown,
        JoinError::Busy(_) | JoinError::Refused => ErrorCode::Internal,
        JoinError::Full(_) => ErrorCode::RoomFull,
        JoinError::Locked(_) => ErrorCode::RoomLocked,
        JoinError::AlreadyMember(_) => ErrorCode::AlreadyInRoom,
        JoinError::Rejected(_) => ErrorCode::JoinRejected,
        JoinError::Unavailable(_) => ErrorCode::ClusterUnavailable,
        JoinError::UnknownKind(_) => ErrorCode::UnknownRoomKind,
        JoinError::KindMismatch { .. } => ErrorCode::RoomKindMismatch,
    }
}
