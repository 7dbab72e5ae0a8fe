//! Frames: a 4-byte big-endian length, then that many bytes of one protobuf
//! message. Built on tokio-util's `LengthDelimitedCodec`, whose maximum is
//! checked on the header, before anything is reserved for the body.

use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec, LengthDelimitedCodecError};

/// Why a stream of frames cannot go on. Both end the connection.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The length field announced more than the current limit.
    #[error("frame longer than {max} bytes (see Config::max_frame_len)")]
    FrameTooLarge {
        /// The limit in force when the header arrived.
        max: usize,
    },
    /// The socket failed.
    #[error(transparent)]
    Io(io::Error),
    /// The transport's own rules were broken (a WebSocket text message, a
    /// flood of control frames): the connection ends with `code`.
    #[error("{message}")]
    Violation {
        /// The fatal error the client is sent.
        code: super::ErrorCode,
        /// What was wrong.
        message: String,
    },
}

impl From<io::Error> for CodecError {
    fn from(error: io::Error) -> Self {
        CodecError::Io(error)
    }
}

/// The largest frame body a [`FrameCodec`] accepts; shared so a session can
/// raise it after the handshake while the codec sits inside its reader.
#[derive(Clone, Debug)]
pub struct FrameLimit(Arc<AtomicUsize>);

impl FrameLimit {
    /// A limit of `max` bytes.
    pub fn new(max: usize) -> Self {
        FrameLimit(Arc::new(AtomicUsize::new(max)))
    }

    /// The limit in bytes.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Changes the limit for frames whose header has not arrived yet.
    pub fn set(&self, max: usize) {
        self.0.store(max, Ordering::Relaxed);
    }
}

/// Decodes frames holding `In` messages and encodes `Out` messages into frames.
///
/// A frame whose length field exceeds the limit is a fatal
/// [`CodecError::FrameTooLarge`]; a well-framed body that is not a valid `In`
/// is an item (`Err(DecodeError)`), so the reader can answer it before closing.
#[derive(Debug)]
pub struct FrameCodec<In, Out> {
    frames: LengthDelimitedCodec,
    limit: FrameLimit,
    _messages: PhantomData<fn(Out) -> In>,
}

impl<In, Out> FrameCodec<In, Out> {
    /// A codec enforcing `limit` on every incoming frame.
    pub fn new(limit: FrameLimit) -> Self {
        let frames = LengthDelimitedCodec::builder()
            .length_field_type::<u32>()
            .max_frame_length(limit.get())
            .new_codec();
        FrameCodec {
            frames,
            limit,
            _messages: PhantomData,
        }
    }

    /// The length-delimited codec within, mid-frame state and all, for a
    /// reader that goes on reading the same stream as undecoded frames. The
    /// limit in force now stays its limit.
    pub fn into_frames(self) -> LengthDelimitedCodec {
        let mut frames = self.frames;
        frames.set_max_frame_length(self.limit.get());
        frames
    }
}

impl<In: Message + Default, Out> Decoder for FrameCodec<In, Out> {
    type Item = Result<In, prost::DecodeError>;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, CodecError> {
        let max = self.limit.get();
        self.frames.set_max_frame_length(max);
        match self.frames.decode(src) {
            Ok(Some(body)) => Ok(Some(In::decode(body.freeze()))),
            Ok(None) => Ok(None),
            Err(e) if e.get_ref().is_some_and(|inner| inner.is::<LengthDelimitedCodecError>()) => {
                Err(CodecError::FrameTooLarge { max })
            }
            Err(e) => Err(CodecError::Io(e)),
        }
    }
}

impl<In, Out: Message> Encoder<Out> for FrameCodec<In, Out> {
    type Error = CodecError;

    fn encode(&mut self, message: Out, dst: &mut BytesMut) -> Result<(), CodecError> {
        put_frame(&message, dst)
    }
}

/// Encodes `message` once into a complete frame (header included), ready to
/// be shared by every recipient.
pub fn encode_frame(message: &impl Message) -> Bytes {
    let mut frame = BytesMut::new();
    // A server message never nears 4 GiB: every field is bounded by config.
    let _ = put_frame(message, &mut frame);
    frame.freeze()
}

fn put_frame(message: &impl Message, dst: &mut BytesMut) -> Result<(), CodecError> {
    let len = message.encoded_len();
    let header = u32::try_from(len).map_err(|_| CodecError::FrameTooLarge { max: usize::MAX })?;
    dst.reserve(4 + len);
    dst.put_u32(header);
    message.encode(dst).map_err(|e| CodecError::Io(io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::pb::{self, ClientMessage, client_message::Body};
    use proptest::prelude::*;

    type ServerSide = FrameCodec<ClientMessage, pb::ServerMessage>;
    type ClientSide = FrameCodec<pb::ServerMessage, ClientMessage>;

    fn chat(request_id: u64, room: &str, text: &str) -> ClientMessage {
        let body = Body::SendChat(pb::SendChat {
            room: room.into(),
            text: text.into(),
        });
        ClientMessage {
            request_id,
            body: Some(body),
        }
    }

    #[test]
    fn decodes_a_fixture_frame() {
        // request_id 7, send_chat { room "r", text "hi" }
        let bytes: &[u8] = &[0, 0, 0, 11, 0x08, 7, 0x32, 7, 0x0a, 1, b'r', 0x12, 2, b'h', b'i'];
        let mut codec = ServerSide::new(FrameLimit::new(64));
        let mut src = BytesMut::from(bytes);
        let decoded = codec.decode(&mut src).unwrap().unwrap().unwrap();
        assert_eq!(decoded, chat(7, "r", "hi"));
        assert!(src.is_empty());
    }

    #[test]
    fn oversize_header_is_fatal_before_any_body_is_buffered() {
        let mut codec = ServerSide::new(FrameLimit::new(1024));
        let mut src = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        let err = codec.decode(&mut src).unwrap_err();
        assert!(matches!(err, CodecError::FrameTooLarge { max: 1024 }), "{err:?}");
        assert!(src.capacity() < 64 * 1024, "reserved {} bytes", src.capacity());
    }

    #[test]
    fn raising_the_limit_applies_to_the_next_frame() {
        let limit = FrameLimit::new(8);
        let mut codec = ServerSide::new(limit.clone());
        let frame = encode_frame(&chat(1, "room", "some text"));
        assert!(codec.decode(&mut BytesMut::from(&frame[..])).is_err());
        limit.set(64);
        let mut codec = ServerSide::new(limit);
        assert!(codec.decode(&mut BytesMut::from(&frame[..])).unwrap().is_some());
    }

    #[test]
    fn garbage_body_is_an_item_not_a_stream_error() {
        let mut codec = ServerSide::new(FrameLimit::new(64));
        let mut src = BytesMut::from(&[0, 0, 0, 3, 0xff, 0xff, 0xff][..]);
        assert!(codec.decode(&mut src).unwrap().unwrap().is_err());
    }

    #[test]
    fn encoder_and_encode_frame_agree() {
        let message = pb::ServerMessage {
            request_id: 3,
            body: None,
        };
        let mut codec = ClientSide::new(FrameLimit::new(64));
        let mut encoded = BytesMut::new();
        Encoder::<ClientMessage>::encode(&mut codec, chat(3, "a", "b"), &mut encoded).unwrap();
        assert_eq!(&encoded[..], &encode_frame(&chat(3, "a", "b"))[..]);
        assert_eq!(&encode_frame(&message)[..], &[0, 0, 0, 2, 0x08, 3]);
    }

    fn any_message() -> impl Strategy<Value = ClientMessage> {
        let body = prop_oneof![
            Just(None),
            (any::<u32>(), ".{0,40}", ".{0,40}").prop_map(|(protocol_version, name, token)| Some(Body::Hello(
                pb::Hello {
                    protocol_version,
                    name,
                    token,
                    resume_token: String::new(),
                }
            ))),
            any::<u64>().prop_map(|client_time_us| Some(Body::Ping(pb::Ping { client_time_us }))),
            ".{0,70}".prop_map(|room| Some(Body::JoinRoom(pb::JoinRoom {
                room,
                ..pb::JoinRoom::default()
            }))),
            ".{0,70}".prop_map(|room| Some(Body::LeaveRoom(pb::LeaveRoom { room }))),
            (".{0,70}", ".{0,300}").prop_map(|(room, text)| Some(Body::SendChat(pb::SendChat { room, text }))),
        ];
        (any::<u64>(), body).prop_map(|(request_id, body)| ClientMessage { request_id, body })
    }

    proptest! {
        #[test]
        fn round_trip(messages in prop::collection::vec(any_message(), 1..8)) {
            let mut codec = ClientSide::new(FrameLimit::new(4096));
            let mut stream = BytesMut::new();
            for m in &messages {
                Encoder::<ClientMessage>::encode(&mut codec, m.clone(), &mut stream).unwrap();
            }
            let mut decoder = ServerSide::new(FrameLimit::new(4096));
            let mut decoded = Vec::new();
            while let Some(item) = decoder.decode(&mut stream).unwrap() {
                decoded.push(item.unwrap());
            }
            prop_assert_eq!(decoded, messages);
            prop_assert!(stream.is_empty());
        }

        #[test]
        fn split_at_any_byte(messages in prop::collection::vec(any_message(), 1..6), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
            let wire: Vec<u8> = messages.iter().flat_map(|m| encode_frame(m).to_vec()).collect();
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
            points.push(wire.len());
            points.sort_unstable();
            let mut decoder = ServerSide::new(FrameLimit::new(4096));
            let mut src = BytesMut::new();
            let mut decoded = Vec::new();
            let mut start = 0;
            for end in points {
                src.extend_from_slice(&wire[start..end]);
                start = end;
                while let Some(item) = decoder.decode(&mut src).unwrap() {
                    decoded.push(item.unwrap());
                }
            }
            prop_assert_eq!(decoded, messages);
        }
    }
}
