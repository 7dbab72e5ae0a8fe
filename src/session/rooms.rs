//! A session's rooms: joining (one call on the room directory), leaving, and
//! chat, each routed to its room's inbox.

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};

use super::Session;
use crate::directory::JoinError;
use crate::ids::{DisconnectReason, OverloadLevel};
use crate::inbox::TrySendError;
use crate::protocol::{ChatText, ErrorCode, RoomName};
use crate::room::{ChatSent, Leave, RoomCommand, RoomHandle};

impl Session {
    /// Joins `room` through the directory; the room answers the client.
    pub(super) fn join(&mut self, ctx: &mut Context<Self>, request_id: u64, room: RoomName) {
        let Some(member) = self.member.clone() else { return };
        if let Err((code, message)) = self.may_join(&room) {
            return self.reply_error(ctx, request_id, code, message);
        }
        let (directory, outbox) = (self.server.directory.clone(), self.outbox.clone());
        let joining = async move {
            let joined = directory.join(&room, &member, &outbox, request_id).await;
            (room, joined)
        };
        ctx.wait(
            joining
                .into_actor(self)
                .map(move |(room, joined), act, ctx| match joined {
                    Ok(handle) => {
                        act.rooms.insert(room, handle);
                    }
                    Err(e @ JoinError::Stopping) => {
                        let reason = DisconnectReason::ServerShutdown;
                        act.fail(ctx, request_id, ErrorCode::ServerShuttingDown, e.to_string(), reason);
                    }
                    Err(e @ JoinError::Busy(_)) => act.reply_error(ctx, request_id, ErrorCode::Internal, e.to_string()),
                    Err(e @ JoinError::Full(_)) => act.reply_error(ctx, request_id, ErrorCode::RoomFull, e.to_string()),
                    // Refused only when this session's connection is closing: nobody is left to answer.
                    Err(JoinError::Refused) => {}
                }),
        );
    }

    /// Whether this session may join `room` now; if not, the error to answer.
    fn may_join(&self, room: &RoomName) -> Result<(), (ErrorCode, String)> {
        if self.rooms.contains_key(room) {
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

    pub(super) fn leave(&mut self, ctx: &mut Context<Self>, request_id: u64, room: RoomName) {
        match self.rooms.remove(&room) {
            Some(handle) => {
                let session = self.id;
                self.send_to_room(ctx, &handle, RoomCommand::Leave(Leave { request_id, session }));
            }
            None => self.reply_error(ctx, request_id, ErrorCode::NotInRoom, format!("not in room {room}")),
        }
    }

    pub(super) fn chat(&mut self, ctx: &mut Context<Self>, request_id: u64, room: RoomName, text: ChatText) {
        let Some(handle) = self.rooms.get(&room).cloned() else {
            return self.reply_error(ctx, request_id, ErrorCode::NotInRoom, format!("not in room {room}"));
        };
        let session = self.id;
        let chat = ChatSent {
            request_id,
            session,
            text,
        };
        self.send_to_room(ctx, &handle, RoomCommand::Chat(chat));
    }

    /// Queues `command` for the room; while the room's inbox is full, this
    /// session reads nothing more (and shutdown waits for the command).
    fn send_to_room(&mut self, ctx: &mut Context<Self>, room: &RoomHandle, command: RoomCommand) {
        match room.inbox().try_send(command) {
            Ok(()) => {}
            Err(TrySendError::Full(command)) => {
                self.server.late_sends.wait_begins();
                let inbox = room.inbox().clone();
                let sent = async move { inbox.send(command).await }.into_actor(self);
                ctx.wait(sent.map(|sent, act, ctx| {
                    act.server.late_sends.wait_ends();
                    if sent.is_err() {
                        act.fail(ctx, 0, ErrorCode::Internal, "room stopped", DisconnectReason::Internal);
                    }
                }));
            }
            Err(TrySendError::Closed(_)) => {
                self.fail(ctx, 0, ErrorCode::Internal, "room stopped", DisconnectReason::Internal);
            }
        }
    }

    /// Leaves every room without waiting (the session is ending).
    pub(super) fn leave_all_rooms(&mut self) {
        for (_, room) in self.rooms.drain() {
            let session = self.id;
            room.inbox().post(RoomCommand::Leave(Leave { request_id: 0, session }));
        }
    }
}
