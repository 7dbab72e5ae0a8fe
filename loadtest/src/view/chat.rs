//! A chat message read in place: its numbers copied out, its strings
//! borrowed from the frame.

use prost::encoding::{DecodeContext, WireType, decode_key, skip_field};
use tavern::protocol::pb::{self, ServerMessage, server_message::Body};

use super::{ViewError, text, varint};

/// `ChatMessage.room`.
const ROOM: u32 = 1;
/// `ChatMessage.seq`.
const SEQ: u32 = 2;
/// `ChatMessage.from_session`.
const FROM_SESSION: u32 = 3;
/// `ChatMessage.from_name`.
const FROM_NAME: u32 = 4;
/// `ChatMessage.text`.
const TEXT: u32 = 5;
/// `ChatMessage.server_time_us`.
const SERVER_TIME_US: u32 = 6;

/// A `ChatMessage` and its frame's `request_id`, borrowing the frame's
/// strings: what `pb::ChatMessage` holds, without an allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatView<'a> {
    /// `ServerMessage.request_id`: the sender's copy echoes its `SendChat`, others carry 0.
    pub request_id: u64,
    /// The room's name.
    pub room: &'a str,
    /// The room's sequence number of this message.
    pub seq: u64,
    /// The sender's session.
    pub from_session: u64,
    /// The sender's name.
    pub from_name: &'a str,
    /// The text.
    pub text: &'a str,
    /// Server wall clock when the room ordered the message, µs since the Unix epoch.
    pub server_time_us: u64,
}

impl<'a> ChatView<'a> {
    /// Reads a `ChatMessage` from `body` (the bytes of the message, without
    /// their length) as prost would: the last value of a field stands,
    /// unknown fields are skipped, strings must be UTF-8.
    ///
    /// # Errors
    /// `body` is not a valid `ChatMessage`, or holds a group ([`ViewError::Group`]).
    pub fn parse(request_id: u64, mut body: &'a [u8]) -> Result<ChatView<'a>, ViewError> {
        let mut chat = ChatView {
            request_id,
            room: "",
            seq: 0,
            from_session: 0,
            from_name: "",
            text: "",
            server_time_us: 0,
        };
        while !body.is_empty() {
            let (number, wire_type) = decode_key(&mut body)?;
            match number {
                ROOM => chat.room = text(wire_type, number, &mut body)?,
                SEQ => chat.seq = varint(wire_type, &mut body)?,
                FROM_SESSION => chat.from_session = varint(wire_type, &mut body)?,
                FROM_NAME => chat.from_name = text(wire_type, number, &mut body)?,
                TEXT => chat.text = text(wire_type, number, &mut body)?,
                SERVER_TIME_US => chat.server_time_us = varint(wire_type, &mut body)?,
                _ if wire_type == WireType::StartGroup => return Err(ViewError::Group),
                _ => skip_field(wire_type, number, &mut body, DecodeContext::default())?,
            }
        }
        Ok(chat)
    }

    /// The view of a decoded chat message, which came in a frame answering `request_id`.
    pub fn of(request_id: u64, chat: &'a pb::ChatMessage) -> ChatView<'a> {
        ChatView {
            request_id,
            room: &chat.room,
            seq: chat.seq,
            from_session: chat.from_session,
            from_name: &chat.from_name,
            text: &chat.text,
            server_time_us: chat.server_time_us,
        }
    }

    /// The message the frame holds, decoded (its strings copied).
    pub fn to_message(self) -> ServerMessage {
        let chat = pb::ChatMessage {
            room: self.room.to_owned(),
            seq: self.seq,
            from_session: self.from_session,
            from_name: self.from_name.to_owned(),
            text: self.text.to_owned(),
            server_time_us: self.server_time_us,
        };
        tavern::protocol::server_message(self.request_id, Body::Chat(chat))
    }
}
