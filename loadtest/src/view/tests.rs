//! The views read what prost encodes, and judge every frame as prost does.

use prost::encoding::{encode_key, encode_varint};
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::pb::{self, ServerMessage};
use tavern::protocol::{ErrorCode, error_message, server_message};

use super::*;

fn chat(request_id: u64, seq: u64, text: &str) -> ServerMessage {
    let chat = pb::ChatMessage {
        room: "room-7".into(),
        seq,
        from_session: 9_000_000_001,
        from_name: "bot-Ω".into(),
        text: text.into(),
        server_time_us: 1_763_791_234_567_890,
    };
    server_message(request_id, Body::Chat(chat))
}

fn room_event(request_id: u64, seq: u64, op: u32, data: &[u8]) -> ServerMessage {
    let event = pb::RoomEvent {
        room: "room-é".into(),
        seq,
        op,
        data: bytes::Bytes::copy_from_slice(data),
        from_session: 9_000_000_002,
    };
    server_message(request_id, Body::RoomEvent(event))
}

/// What the view makes of `bytes`, as a message (a view's contents copied out).
fn read_as_message(bytes: &[u8]) -> Result<ServerMessage, DecodeError> {
    match FrameView::scan(bytes)?.read()? {
        Incoming::Chat(chat) => Ok(chat.to_message()),
        Incoming::Event(event) => Ok(event.to_message()),
        Incoming::Message(message) => Ok(message),
    }
}

/// Asserts that the view and prost both refuse `bytes`, or read the same message.
fn agree(bytes: &[u8]) {
    match (read_as_message(bytes), ServerMessage::decode(bytes)) {
        (Ok(view), Ok(prost)) => assert_eq!(view, prost, "{bytes:?}"),
        (Err(_), Err(_)) => {}
        (view, prost) => panic!("view {view:?}, prost {prost:?}, bytes {bytes:?}"),
    }
}

/// A frame of an envelope holding `body` as field `number`.
fn envelope_with(number: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_key(number, WireType::LengthDelimited, &mut bytes);
    encode_varint(u64::try_from(body.len()).unwrap(), &mut bytes);
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn a_chat_view_reads_what_prost_encoded() {
    let message = chat(7, 42, "3:1207:1763791234567890123:xxxx é");
    let bytes = message.encode_to_vec();
    let view = FrameView::scan(&bytes).unwrap();
    assert_eq!(view.kind(), Kind::Chat);
    let read = view.chat().unwrap();
    assert_eq!(read.request_id, 7);
    assert_eq!(read.room, "room-7");
    assert_eq!(read.seq, 42);
    assert_eq!(read.from_session, 9_000_000_001);
    assert_eq!(read.from_name, "bot-Ω");
    assert_eq!(read.text, "3:1207:1763791234567890123:xxxx é");
    assert_eq!(read.server_time_us, 1_763_791_234_567_890);
    assert_eq!(read.to_message(), message);
    let Some(Body::Chat(decoded)) = &message.body else {
        panic!("not a chat message");
    };
    assert_eq!(ChatView::of(7, decoded), read);
    assert!(matches!(view.read().unwrap(), Incoming::Chat(c) if c == read));
}

#[test]
fn a_chat_message_of_default_values_is_empty_but_a_chat() {
    let message = server_message(0, Body::Chat(pb::ChatMessage::default()));
    let bytes = message.encode_to_vec();
    let view = FrameView::scan(&bytes).unwrap();
    assert_eq!(view.kind(), Kind::Chat);
    assert_eq!(view.chat().unwrap().to_message(), message);
}

#[test]
fn every_kind_is_found_by_its_field_number() {
    let error = error_message(5, ErrorCode::SlowConsumer, "outbound queue full");
    let event = |body| server_message(5, body);
    let cases = [
        (chat(5, 1, "hi"), Kind::Chat),
        (room_event(5, 1, 7, b"hi"), Kind::Event),
        (room_event(0, 0, 0, b""), Kind::Event),
        (error, Kind::Error),
        (event(Body::Shutdown(pb::ServerShutdown::default())), Kind::Shutdown),
        (
            event(Body::Heartbeat(pb::Heartbeat { server_time_us: 3 })),
            Kind::Heartbeat,
        ),
        (event(Body::MemberJoined(pb::MemberJoined::default())), Kind::Other),
        (event(Body::MemberLeft(pb::MemberLeft::default())), Kind::Other),
        (event(Body::Welcome(pb::Welcome::default())), Kind::Other),
        (event(Body::WorldUpdate(pb::WorldUpdate::default())), Kind::Other),
        (ServerMessage::default(), Kind::Empty),
    ];
    for (message, kind) in cases {
        let bytes = message.encode_to_vec();
        let view = FrameView::scan(&bytes).unwrap();
        assert_eq!(view.kind(), kind, "{message:?}");
        assert_eq!(view.request_id, message.request_id);
        assert_eq!(view.decode().unwrap(), message);
        assert_eq!(read_as_message(&bytes).unwrap(), message);
        assert_eq!(view.chat().is_ok(), kind == Kind::Chat);
        assert_eq!(view.event().is_ok(), kind == Kind::Event);
    }
}

/// The field number of each body: no catch-all, so that a new kind of body
/// in the proto file cannot go unseen here.
fn number(body: &Body) -> u32 {
    match body {
        Body::Welcome(_) => BODY_WELCOME,
        Body::Pong(_) => BODY_PONG,
        Body::RoomJoined(_) => BODY_ROOM_JOINED,
        Body::RoomLeft(_) => BODY_ROOM_LEFT,
        Body::Chat(_) => BODY_CHAT,
        Body::MemberJoined(_) => BODY_MEMBER_JOINED,
        Body::MemberLeft(_) => BODY_MEMBER_LEFT,
        Body::Error(_) => BODY_ERROR,
        Body::Shutdown(_) => BODY_SHUTDOWN,
        Body::Heartbeat(_) => BODY_HEARTBEAT,
        Body::RoomMembers(_) => BODY_ROOM_MEMBERS,
        Body::WorldEntered(_) => BODY_WORLD_ENTERED,
        Body::WorldUpdate(_) => BODY_WORLD_UPDATE,
        Body::WorldLeft(_) => BODY_WORLD_LEFT,
        Body::RoomList(_) => BODY_ROOM_LIST,
        Body::RoomEvent(_) => BODY_ROOM_EVENT,
    }
}

#[test]
fn the_field_numbers_are_those_prost_writes() {
    let bodies = [
        Body::Welcome(pb::Welcome::default()),
        Body::Pong(pb::Pong::default()),
        Body::RoomJoined(pb::RoomJoined::default()),
        Body::RoomLeft(pb::RoomLeft::default()),
        Body::Chat(pb::ChatMessage::default()),
        Body::MemberJoined(pb::MemberJoined::default()),
        Body::MemberLeft(pb::MemberLeft::default()),
        Body::Error(pb::Error::default()),
        Body::Shutdown(pb::ServerShutdown::default()),
        Body::Heartbeat(pb::Heartbeat::default()),
        Body::RoomMembers(pb::RoomMembers::default()),
        Body::WorldEntered(pb::WorldEntered::default()),
        Body::WorldUpdate(pb::WorldUpdate::default()),
        Body::WorldLeft(pb::WorldLeft::default()),
        Body::RoomList(pb::RoomList::default()),
        Body::RoomEvent(pb::RoomEvent::default()),
    ];
    for body in bodies {
        let expected = number(&body);
        let bytes = server_message(0, body).encode_to_vec();
        let (written, wire_type) = decode_key(&mut &bytes[..]).unwrap();
        assert_eq!((written, wire_type), (expected, WireType::LengthDelimited));
        assert!(Kind::of(expected).is_some(), "field {expected} is not known as a body");
    }
    let chat = chat(1, 2, "x").encode_to_vec();
    assert_eq!(decode_key(&mut &chat[..]).unwrap().0, REQUEST_ID);
    assert_eq!(Kind::of(REQUEST_ID), None);
}

#[test]
fn an_error_is_read_whole() {
    let message = error_message(12, ErrorCode::NameTaken, "the name is taken");
    let bytes = message.encode_to_vec();
    let view = FrameView::scan(&bytes).unwrap();
    assert_eq!(view.kind(), Kind::Error);
    assert!(matches!(view.chat(), Err(ViewError::NotChat)));
    match view.read().unwrap() {
        Incoming::Message(read) => assert_eq!(read, message),
        Incoming::Chat(chat) => panic!("read as a chat message: {chat:?}"),
        Incoming::Event(event) => panic!("read as a room event: {event:?}"),
    }
}

#[test]
fn truncated_frames_are_refused_as_prost_refuses_them() {
    let messages = [
        chat(3, 77, "1:2:3:xxxxxxxx"),
        room_event(0, 78, 1, b"1:2:3:xxxxxxxx"),
        error_message(1, ErrorCode::SlowConsumer, "slow"),
    ];
    for message in messages {
        let bytes = message.encode_to_vec();
        for cut in 0..bytes.len() {
            agree(&bytes[..cut]);
        }
        // Cut within the body: the envelope announces more than there is.
        assert!(FrameView::scan(&bytes[..bytes.len() - 1]).is_err());
    }
}

#[test]
fn a_truncated_chat_body_is_an_error_unless_prost_reads_it() {
    let Some(Body::Chat(message)) = chat(0, 5, "1:2:3:xx").body else {
        panic!("not a chat message");
    };
    let body = message.encode_to_vec();
    for cut in 0..body.len() {
        match (ChatView::parse(0, &body[..cut]), pb::ChatMessage::decode(&body[..cut])) {
            (Ok(view), Ok(prost)) => assert_eq!(view.to_message(), server_message(0, Body::Chat(prost))),
            (Err(_), Err(_)) => {}
            (view, prost) => panic!("cut at {cut}: view {view:?}, prost {prost:?}"),
        }
    }
}

#[test]
fn malformed_chat_bodies_are_errors() {
    let mut bad_text = Vec::new();
    encode_key(5, WireType::LengthDelimited, &mut bad_text);
    bad_text.extend_from_slice(&[2, 0xc3, 0x28]);
    assert!(matches!(ChatView::parse(0, &bad_text), Err(ViewError::Utf8(_))));
    let mut seq_as_bytes = Vec::new();
    encode_key(2, WireType::LengthDelimited, &mut seq_as_bytes);
    seq_as_bytes.extend_from_slice(&[1, 7]);
    assert!(matches!(ChatView::parse(0, &seq_as_bytes), Err(ViewError::Decode(_))));
    let overlong_varint = [0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    assert!(ChatView::parse(0, &overlong_varint).is_err());
    assert!(ChatView::parse(0, &[0x00]).is_err(), "field number 0");
    let mut group = Vec::new();
    encode_key(9, WireType::StartGroup, &mut group);
    encode_key(9, WireType::EndGroup, &mut group);
    assert!(matches!(ChatView::parse(0, &group), Err(ViewError::Group)));
    for body in [bad_text, seq_as_bytes, overlong_varint.to_vec(), group] {
        let bytes = envelope_with(BODY_CHAT, &body);
        assert!(FrameView::scan(&bytes).unwrap().chat().is_err());
        agree(&bytes);
    }
}

#[test]
fn unknown_and_repeated_fields_are_read_as_prost_reads_them() {
    let Some(Body::Chat(message)) = chat(0, 5, "first").body else {
        panic!("not a chat message");
    };
    let mut body = message.encode_to_vec();
    encode_key(15, WireType::Varint, &mut body);
    encode_varint(99, &mut body);
    encode_key(5, WireType::LengthDelimited, &mut body);
    encode_varint(6, &mut body);
    body.extend_from_slice(b"second");
    let mut bytes = envelope_with(BODY_CHAT, &body);
    encode_key(REQUEST_ID, WireType::Varint, &mut bytes);
    encode_varint(8, &mut bytes);
    // A field this build does not know, after the body: skipped.
    bytes.extend_from_slice(&envelope_with(999, b"later"));
    let view = FrameView::scan(&bytes).unwrap();
    let read = view.chat().unwrap();
    assert_eq!((read.text, read.request_id, read.seq), ("second", 8, 5));
    agree(&bytes);
}

#[test]
fn two_bodies_are_left_to_prost() {
    let mut bytes = chat(0, 1, "hi").encode_to_vec();
    bytes.extend_from_slice(&error_message(0, ErrorCode::SlowConsumer, "slow").encode_to_vec());
    let view = FrameView::scan(&bytes).unwrap();
    assert_eq!(view.kind(), Kind::Several);
    assert!(matches!(view.chat(), Err(ViewError::NotChat)));
    agree(&bytes);
}

#[test]
fn a_body_of_the_wrong_wire_type_is_an_error() {
    for number in [BODY_SHUTDOWN, BODY_ROOM_LEFT, BODY_WORLD_LEFT] {
        let mut bytes = Vec::new();
        encode_key(number, WireType::Varint, &mut bytes);
        encode_varint(1, &mut bytes);
        assert!(FrameView::scan(&bytes).is_err());
        agree(&bytes);
    }
}

#[test]
fn garbage_is_an_error_or_what_prost_reads() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = usize::try_from(next() % 48).unwrap();
        let bytes: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
        agree(&bytes);
        // The same garbage as a chat body, and a real frame with one byte changed.
        agree(&envelope_with(BODY_CHAT, &bytes));
        let mut frame = chat(1, next(), "1:2:3:xxxx").encode_to_vec();
        let at = usize::try_from(next()).unwrap() % frame.len();
        frame[at] = next().to_le_bytes()[0];
        agree(&frame);
    }
}

#[test]
fn an_event_view_reads_what_prost_encoded() {
    let message = room_event(0, 42, 3, b"3:1207:1763791234567890123:xx\xff\x00");
    let bytes = message.encode_to_vec();
    let view = FrameView::scan(&bytes).unwrap();
    assert_eq!(view.kind(), Kind::Event);
    assert!(matches!(view.chat(), Err(ViewError::NotChat)));
    let read = view.event().unwrap();
    assert_eq!(read.request_id, 0);
    assert_eq!(read.room, "room-é");
    assert_eq!(read.seq, 42);
    assert_eq!(read.op, 3);
    assert_eq!(read.data, b"3:1207:1763791234567890123:xx\xff\x00");
    assert_eq!(read.from_session, 9_000_000_002);
    assert_eq!(read.to_message(), message);
    let Some(Body::RoomEvent(decoded)) = &message.body else {
        panic!("not a room event");
    };
    assert_eq!(EventView::of(0, decoded), read);
    assert!(matches!(view.read().unwrap(), Incoming::Event(e) if e == read));
    let chat = chat(0, 1, "x").encode_to_vec();
    assert!(matches!(
        FrameView::scan(&chat).unwrap().event(),
        Err(ViewError::NotEvent)
    ));
}

#[test]
fn a_truncated_event_body_is_an_error_unless_prost_reads_it() {
    let Some(Body::RoomEvent(message)) = room_event(0, 5, 300, b"1:2:3:xx").body else {
        panic!("not a room event");
    };
    let body = message.encode_to_vec();
    for cut in 0..body.len() {
        match (EventView::parse(0, &body[..cut]), pb::RoomEvent::decode(&body[..cut])) {
            (Ok(view), Ok(prost)) => assert_eq!(view.to_message(), server_message(0, Body::RoomEvent(prost))),
            (Err(_), Err(_)) => {}
            (view, prost) => panic!("cut at {cut}: view {view:?}, prost {prost:?}"),
        }
    }
}

#[test]
fn malformed_event_bodies_are_errors_and_an_op_keeps_its_low_bits() {
    let mut bad_room = Vec::new();
    encode_key(1, WireType::LengthDelimited, &mut bad_room);
    bad_room.extend_from_slice(&[2, 0xc3, 0x28]);
    assert!(matches!(EventView::parse(0, &bad_room), Err(ViewError::Utf8(_))));
    let mut data_as_varint = Vec::new();
    encode_key(4, WireType::Varint, &mut data_as_varint);
    encode_varint(7, &mut data_as_varint);
    assert!(matches!(
        EventView::parse(0, &data_as_varint),
        Err(ViewError::Decode(_))
    ));
    let mut group = Vec::new();
    encode_key(9, WireType::StartGroup, &mut group);
    encode_key(9, WireType::EndGroup, &mut group);
    assert!(matches!(EventView::parse(0, &group), Err(ViewError::Group)));
    for body in [bad_room, data_as_varint, group] {
        let bytes = envelope_with(BODY_ROOM_EVENT, &body);
        assert!(FrameView::scan(&bytes).unwrap().event().is_err());
        agree(&bytes);
    }
    // An op above u32::MAX, and data given twice: prost keeps the low 32 bits and the last data.
    let mut body = Vec::new();
    encode_key(3, WireType::Varint, &mut body);
    encode_varint((7 << 32) | 5, &mut body);
    for data in [&b"first"[..], b"second"] {
        encode_key(4, WireType::LengthDelimited, &mut body);
        encode_varint(u64::try_from(data.len()).unwrap(), &mut body);
        body.extend_from_slice(data);
    }
    let read = EventView::parse(0, &body).unwrap();
    assert_eq!((read.op, read.data), (5, &b"second"[..]));
    agree(&envelope_with(BODY_ROOM_EVENT, &body));
}

#[test]
fn garbage_as_an_event_is_an_error_or_what_prost_reads() {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = usize::try_from(next() % 48).unwrap();
        let bytes: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
        agree(&envelope_with(BODY_ROOM_EVENT, &bytes));
        let mut frame = room_event(0, next(), 1, b"1:2:3:xxxx").encode_to_vec();
        let at = usize::try_from(next()).unwrap() % frame.len();
        frame[at] = next().to_le_bytes()[0];
        agree(&frame);
    }
}
