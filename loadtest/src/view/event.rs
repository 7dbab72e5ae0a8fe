//! A room plugin's event read in place: its numbers copied out, its room
//! and data borrowed from the frame.

use bytes::Bytes;
use prost::encoding::{DecodeContext, WireType, check_wire_type, decode_key, skip_field};
use tavern::protocol::pb::{self, ServerMessage, server_message::Body};

use super::{ViewError, field, text, varint};

/// `RoomEvent.room`.
const ROOM: u32 = 1;
/// `RoomEvent.seq`.
const SEQ: u32 = 2;
/// `RoomEvent.op`.
const OP: u32 = 3;
/// `RoomEvent.data`.
const DATA: u32 = 4;
/// `RoomEvent.from_session`.
const FROM_SESSION: u32 = 5;

/// A `RoomEvent` and its frame's `request_id`, borrowing the frame's room
/// name and data: what `pb::RoomEvent` holds, without an allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventView<'a> {
    /// `ServerMessage.request_id` (0: events answer no request).
    pub request_id: u64,
    /// The room's name.
    pub room: &'a str,
    /// The room's sequence number of this event; 0 for one sent to some members only.
    pub seq: u64,
    /// The plugin's opcode.
    pub op: u32,
    /// The plugin's bytes.
    pub data: &'a [u8],
    /// The member the event is about or from, as the plugin says; 0 for none.
    pub from_session: u64,
}

impl<'a> EventView<'a> {
    /// Reads a `RoomEvent` from `body` (the bytes of the message, without
    /// their length) as prost would: the last value of a field stands,
    /// unknown fields are skipped, the room's name must be UTF-8, and an
    /// `op` above `u32::MAX` keeps its low 32 bits.
    ///
    /// # Errors
    /// `body` is not a valid `RoomEvent`, or holds a group ([`ViewError::Group`]).
    pub fn parse(request_id: u64, mut body: &'a [u8]) -> Result<EventView<'a>, ViewError> {
        let mut event = EventView {
            request_id,
            room: "",
            seq: 0,
            op: 0,
            data: &[],
            from_session: 0,
        };
        while !body.is_empty() {
            let (number, wire_type) = decode_key(&mut body)?;
            match number {
                ROOM => event.room = text(wire_type, number, &mut body)?,
                SEQ => event.seq = varint(wire_type, &mut body)?,
                OP => event.op = low_32_bits(varint(wire_type, &mut body)?),
                DATA => {
                    check_wire_type(WireType::LengthDelimited, wire_type)?;
                    event.data = field(wire_type, number, &mut body)?;
                }
                FROM_SESSION => event.from_session = varint(wire_type, &mut body)?,
                _ if wire_type == WireType::StartGroup => return Err(ViewError::Group),
                _ => skip_field(wire_type, number, &mut body, DecodeContext::default())?,
            }
        }
        Ok(event)
    }

    /// The view of a decoded event, which came in a frame answering `request_id`.
    pub fn of(request_id: u64, event: &'a pb::RoomEvent) -> EventView<'a> {
        EventView {
            request_id,
            room: &event.room,
            seq: event.seq,
            op: event.op,
            data: &event.data,
            from_session: event.from_session,
        }
    }

    /// The message the frame holds, decoded (its room and data copied).
    pub fn to_message(self) -> ServerMessage {
        let event = pb::RoomEvent {
            room: self.room.to_owned(),
            seq: self.seq,
            op: self.op,
            data: Bytes::copy_from_slice(self.data),
            from_session: self.from_session,
        };
        tavern::protocol::server_message(self.request_id, Body::RoomEvent(event))
    }
}

/// A `uint32` read from a varint, as prost reads one: the low 32 bits.
fn low_32_bits(value: u64) -> u32 {
    let [a, b, c, d, ..] = value.to_le_bytes();
    u32::from_le_bytes([a, b, c, d])
}
