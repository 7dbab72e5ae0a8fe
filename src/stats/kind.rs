//! The kinds of client message `tavern_messages_in_total` counts.

use crate::protocol::pb::ClientMessage;

/// A kind of client message, as counted by `tavern_messages_in_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Hello.
    Hello,
    /// Ping.
    Ping,
    /// JoinRoom.
    Join,
    /// LeaveRoom.
    Leave,
    /// ChatSend.
    Chat,
    /// EnterWorld.
    EnterWorld,
    /// Move.
    Move,
    /// LeaveWorld.
    LeaveWorld,
    /// QuickJoin.
    QuickJoin,
    /// ListRooms.
    ListRooms,
    /// RoomSend.
    RoomSend,
    /// Goodbye.
    Goodbye,
    /// A frame that is not a valid message this server handles.
    Invalid,
}

impl MessageKind {
    pub(super) const ALL: [MessageKind; 13] = [
        MessageKind::Hello,
        MessageKind::Ping,
        MessageKind::Join,
        MessageKind::Leave,
        MessageKind::Chat,
        MessageKind::EnterWorld,
        MessageKind::Move,
        MessageKind::LeaveWorld,
        MessageKind::QuickJoin,
        MessageKind::ListRooms,
        MessageKind::RoomSend,
        MessageKind::Goodbye,
        MessageKind::Invalid,
    ];

    /// The kind of `message`, as counted.
    pub fn of(message: &ClientMessage) -> MessageKind {
        use crate::protocol::pb::client_message::Body;
        match &message.body {
            Some(Body::Hello(_)) => MessageKind::Hello,
            Some(Body::Ping(_)) => MessageKind::Ping,
            Some(Body::JoinRoom(_)) => MessageKind::Join,
            Some(Body::LeaveRoom(_)) => MessageKind::Leave,
            Some(Body::SendChat(_)) => MessageKind::Chat,
            Some(Body::EnterWorld(_)) => MessageKind::EnterWorld,
            Some(Body::Move(_)) => MessageKind::Move,
            Some(Body::LeaveWorld(_)) => MessageKind::LeaveWorld,
            Some(Body::QuickJoin(_)) => MessageKind::QuickJoin,
            Some(Body::ListRooms(_)) => MessageKind::ListRooms,
            Some(Body::RoomSend(_)) => MessageKind::RoomSend,
            Some(Body::Goodbye(_)) => MessageKind::Goodbye,
            None => MessageKind::Invalid,
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            MessageKind::Hello => "hello",
            MessageKind::Ping => "ping",
            MessageKind::Join => "join",
            MessageKind::Leave => "leave",
            MessageKind::Chat => "chat",
            MessageKind::EnterWorld => "enter_world",
            MessageKind::Move => "move",
            MessageKind::LeaveWorld => "leave_world",
            MessageKind::QuickJoin => "quick_join",
            MessageKind::ListRooms => "list_rooms",
            MessageKind::RoomSend => "room_send",
            MessageKind::Goodbye => "goodbye",
            MessageKind::Invalid => "invalid",
        }
    }
}
