//! Server frames read in place: a frame's kind, found from its envelope
//! without decoding the body, a chat message as a [`ChatView`] and a room
//! plugin's event as an [`EventView`], which borrow the frame's bytes
//! instead of allocating their strings and data. Any other kind of frame is
//! decoded into a `ServerMessage` as before; a frame the view cannot read is
//! left to prost, so it never refuses a frame that prost would accept.
//!
//! [`FrameReader`] reads the frames off a connection whose Hello and join
//! went through the library's client.
//!
//! Field numbers are those of `proto/tavern/v1/tavern.proto`; the tests check
//! them against messages that prost encodes.

mod chat;
mod event;
mod reader;

use std::fmt;
use std::ops::Range;

use prost::encoding::{DecodeContext, WireType, check_wire_type, decode_key, decode_varint, skip_field};
use prost::{DecodeError, Message as _};
use tavern::protocol::pb::ServerMessage;

pub use self::chat::ChatView;
pub use self::event::EventView;
pub use self::reader::FrameReader;

/// `ServerMessage.request_id`.
const REQUEST_ID: u32 = 1;
/// `ServerMessage.body`: `Welcome welcome`.
const BODY_WELCOME: u32 = 2;
/// `ServerMessage.body`: `Pong pong`.
const BODY_PONG: u32 = 3;
/// `ServerMessage.body`: `RoomJoined room_joined`.
const BODY_ROOM_JOINED: u32 = 4;
/// `ServerMessage.body`: `RoomLeft room_left`.
const BODY_ROOM_LEFT: u32 = 5;
/// `ServerMessage.body`: `ChatMessage chat`.
const BODY_CHAT: u32 = 6;
/// `ServerMessage.body`: `MemberJoined member_joined`.
const BODY_MEMBER_JOINED: u32 = 7;
/// `ServerMessage.body`: `MemberLeft member_left`.
const BODY_MEMBER_LEFT: u32 = 8;
/// `ServerMessage.body`: `Error error`.
const BODY_ERROR: u32 = 9;
/// `ServerMessage.body`: `ServerShutdown shutdown`.
const BODY_SHUTDOWN: u32 = 10;
/// `ServerMessage.body`: `Heartbeat heartbeat`.
const BODY_HEARTBEAT: u32 = 11;
/// `ServerMessage.body`: `RoomMembers room_members`.
const BODY_ROOM_MEMBERS: u32 = 12;
/// `ServerMessage.body`: `WorldEntered world_entered`.
const BODY_WORLD_ENTERED: u32 = 100;
/// `ServerMessage.body`: `WorldUpdate world_update`.
const BODY_WORLD_UPDATE: u32 = 101;
/// `ServerMessage.body`: `WorldLeft world_left`.
const BODY_WORLD_LEFT: u32 = 102;
/// `ServerMessage.body`: `RoomList room_list`.
const BODY_ROOM_LIST: u32 = 200;
/// `ServerMessage.body`: `RoomEvent room_event`.
const BODY_ROOM_EVENT: u32 = 201;

/// The kind of a frame's body, from the field number of `ServerMessage.body`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// No body.
    Empty,
    /// A `ChatMessage`.
    Chat,
    /// A `RoomEvent`.
    Event,
    /// An `Error`.
    Error,
    /// A `ServerShutdown`.
    Shutdown,
    /// A `Heartbeat`.
    Heartbeat,
    /// Another body: a reply, a presence event, a world's message.
    Other,
    /// More than one body field: only decoding tells which one stands.
    Several,
}

impl Kind {
    /// The kind of a body in field `number`; `None` if the field is not one
    /// of `ServerMessage.body` (a field this build does not know).
    fn of(number: u32) -> Option<Kind> {
        match number {
            BODY_CHAT => Some(Kind::Chat),
            BODY_ROOM_EVENT => Some(Kind::Event),
            BODY_ERROR => Some(Kind::Error),
            BODY_SHUTDOWN => Some(Kind::Shutdown),
            BODY_HEARTBEAT => Some(Kind::Heartbeat),
            BODY_WELCOME | BODY_PONG | BODY_ROOM_JOINED | BODY_ROOM_LEFT | BODY_MEMBER_JOINED | BODY_MEMBER_LEFT
            | BODY_ROOM_MEMBERS | BODY_WORLD_ENTERED | BODY_WORLD_UPDATE | BODY_WORLD_LEFT | BODY_ROOM_LIST => {
                Some(Kind::Other)
            }
            _ => None,
        }
    }
}

/// Why a view could not read a frame.
#[derive(Debug)]
pub enum ViewError {
    /// The frame is not a chat message.
    NotChat,
    /// The frame is not a room plugin's event.
    NotEvent,
    /// The bytes are not a valid message.
    Decode(DecodeError),
    /// A string field is not UTF-8.
    Utf8(std::str::Utf8Error),
    /// A group (a proto2 field, which Tavern never sends), left to prost,
    /// whose nesting limit the view does not track.
    Group,
}

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ViewError::NotChat => f.write_str("not a chat message"),
            ViewError::NotEvent => f.write_str("not a room event"),
            ViewError::Decode(e) => write!(f, "undecodable frame: {e}"),
            ViewError::Utf8(e) => write!(f, "a string field is not UTF-8: {e}"),
            ViewError::Group => f.write_str("a group field"),
        }
    }
}

impl std::error::Error for ViewError {}

impl From<DecodeError> for ViewError {
    fn from(error: DecodeError) -> Self {
        ViewError::Decode(error)
    }
}

impl From<std::str::Utf8Error> for ViewError {
    fn from(error: std::str::Utf8Error) -> Self {
        ViewError::Utf8(error)
    }
}

/// A frame from the server: a message the client had already decoded, or
/// the bytes of one, viewed in place.
#[derive(Debug)]
pub enum Frame<'a> {
    /// Read and decoded before the frames were handed over.
    Decoded(ServerMessage),
    /// Viewed in place.
    View(FrameView<'a>),
}

impl<'a> Frame<'a> {
    /// Wall clock (ns) when the frame's bytes were read off the socket;
    /// for a message decoded before the hand-over, now.
    pub fn arrived_ns(&self) -> u64 {
        match self {
            Frame::Decoded(_) => crate::timeline::wall_ns(),
            Frame::View(view) => view.arrived_ns(),
        }
    }

    /// A chat message or a room event as a view, anything else decoded.
    ///
    /// # Errors
    /// The frame is not a valid `ServerMessage`.
    pub fn read(self) -> Result<Incoming<'a>, DecodeError> {
        match self {
            Frame::Decoded(message) => Ok(Incoming::Message(message)),
            Frame::View(view) => view.read(),
        }
    }
}

/// A frame's contents, as cheaply as they can be had.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// A chat message, borrowed from the frame.
    Chat(ChatView<'a>),
    /// A room plugin's event, borrowed from the frame.
    Event(EventView<'a>),
    /// Any other frame, decoded.
    Message(ServerMessage),
}

/// One frame's bytes, with what its envelope says.
#[derive(Clone, Debug)]
pub struct FrameView<'a> {
    /// The whole frame (without its length header).
    bytes: &'a [u8],
    /// The bytes of the body's message.
    body: &'a [u8],
    /// `ServerMessage.request_id`.
    request_id: u64,
    /// The body's kind.
    kind: Kind,
    /// Wall clock (ns) when the frame's bytes were read off the socket.
    arrived_ns: u64,
}

impl<'a> FrameView<'a> {
    /// Reads the envelope of `bytes` (a frame without its length header).
    ///
    /// # Errors
    /// The envelope is not that of a valid message.
    #[cfg(test)]
    pub fn scan(bytes: &'a [u8]) -> Result<FrameView<'a>, DecodeError> {
        Ok(FrameView::over(bytes, Envelope::scan(bytes)?, 0))
    }

    /// The view of `bytes` (a frame without its length header), whose
    /// envelope is `envelope`, read off the socket at `arrived_ns`.
    fn over(bytes: &'a [u8], envelope: Envelope, arrived_ns: u64) -> FrameView<'a> {
        FrameView {
            bytes,
            // The envelope's body lies within the bytes it was scanned from.
            body: bytes.get(envelope.body).unwrap_or_default(),
            request_id: envelope.request_id,
            kind: envelope.kind,
            arrived_ns,
        }
    }

    /// Wall clock (ns) when the frame's bytes were read off the socket.
    pub fn arrived_ns(&self) -> u64 {
        self.arrived_ns
    }

    /// The body's kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The chat message, read in place.
    ///
    /// # Errors
    /// The frame is not a chat message ([`ViewError::NotChat`]) or not a valid one.
    pub fn chat(&self) -> Result<ChatView<'a>, ViewError> {
        match self.kind {
            Kind::Chat => ChatView::parse(self.request_id, self.body),
            _ => Err(ViewError::NotChat),
        }
    }

    /// The room plugin's event, read in place.
    ///
    /// # Errors
    /// The frame is not a room event ([`ViewError::NotEvent`]) or not a valid one.
    pub fn event(&self) -> Result<EventView<'a>, ViewError> {
        match self.kind {
            Kind::Event => EventView::parse(self.request_id, self.body),
            _ => Err(ViewError::NotEvent),
        }
    }

    /// The whole frame, decoded.
    ///
    /// # Errors
    /// The frame is not a valid `ServerMessage`.
    pub fn decode(&self) -> Result<ServerMessage, DecodeError> {
        ServerMessage::decode(self.bytes)
    }

    /// A chat message or a room event as a view, anything else (or a chat
    /// message or event the view cannot read, which prost then judges) decoded.
    ///
    /// # Errors
    /// The frame is not a valid `ServerMessage`.
    pub fn read(&self) -> Result<Incoming<'a>, DecodeError> {
        let viewed = match self.kind {
            Kind::Chat => self.chat().map(Incoming::Chat).ok(),
            Kind::Event => self.event().map(Incoming::Event).ok(),
            _ => None,
        };
        match viewed {
            Some(incoming) => Ok(incoming),
            None => self.decode().map(Incoming::Message),
        }
    }
}

/// What a frame's envelope says; the body as a range, so that a reader can
/// look at it before lending the frame out.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Envelope {
    /// `ServerMessage.request_id` (0 when absent).
    request_id: u64,
    /// The body's kind.
    kind: Kind,
    /// Where the (last) body's message lies in the frame.
    body: Range<usize>,
}

impl Envelope {
    /// Reads the envelope's fields, skipping over the body's contents. As
    /// prost does, the last `request_id` stands, a body must be a message,
    /// and unknown fields are skipped.
    fn scan(frame: &[u8]) -> Result<Envelope, DecodeError> {
        let mut envelope = Envelope {
            request_id: 0,
            kind: Kind::Empty,
            body: 0..0,
        };
        let mut buf = frame;
        while !buf.is_empty() {
            let (number, wire_type) = decode_key(&mut buf)?;
            if number == REQUEST_ID {
                envelope.request_id = varint(wire_type, &mut buf)?;
                continue;
            }
            let Some(kind) = Kind::of(number) else {
                skip_field(wire_type, number, &mut buf, DecodeContext::default())?;
                continue;
            };
            check_wire_type(WireType::LengthDelimited, wire_type)?;
            let value = field(wire_type, number, &mut buf)?;
            let end = frame.len() - buf.len();
            envelope.body = end - value.len()..end;
            envelope.kind = match envelope.kind {
                Kind::Empty => kind,
                _ => Kind::Several,
            };
        }
        Ok(envelope)
    }
}

/// A varint field's value (its key already read), as prost reads a `uint64`.
fn varint(wire_type: WireType, buf: &mut &[u8]) -> Result<u64, DecodeError> {
    check_wire_type(WireType::Varint, wire_type)?;
    decode_varint(buf)
}

/// A string field's value (its key already read), checked as prost checks it.
fn text<'a>(wire_type: WireType, number: u32, buf: &mut &'a [u8]) -> Result<&'a str, ViewError> {
    check_wire_type(WireType::LengthDelimited, wire_type)?;
    Ok(std::str::from_utf8(field(wire_type, number, buf)?)?)
}

/// Moves `buf` past one field's value (its key already read) and returns the
/// value's bytes: for a length-delimited field, its contents without their length.
fn field<'a>(wire_type: WireType, number: u32, buf: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let start: &'a [u8] = buf;
    skip_field(wire_type, number, buf, DecodeContext::default())?;
    // What `skip_field` moved past: `buf` is what is left of `start`.
    let mut value = start.get(..start.len() - buf.len()).unwrap_or_default();
    if wire_type == WireType::LengthDelimited {
        decode_varint(&mut value)?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests;
