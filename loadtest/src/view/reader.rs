//! Reading a connection's frames in place, after the library's client has
//! said Hello and joined: the messages it had stashed first, then each frame
//! as a [`FrameView`] of the one buffer the frames are read into.

use std::collections::VecDeque;
use std::io;

use bytes::BytesMut;
use futures_util::StreamExt as _;
use tavern::client::{ClientError, ClientReader, ReaderParts};
use tavern::protocol::CodecError;
use tavern::protocol::pb::ServerMessage;
use tokio::io::AsyncRead;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec, LengthDelimitedCodecError};

use super::{Envelope, Frame, FrameView, Kind};
use crate::timeline::wall_ns;

/// Bytes of a frame's length header (`u32`, as the codec is built).
const HEAD: usize = 4;

/// The receiving half of a connection, lending out one frame at a time.
pub struct FrameReader {
    /// The connection's frames, read into one buffer and split off it.
    frames: FramedRead<Box<dyn AsyncRead + Send + Unpin>, LengthDelimitedCodec>,
    /// Messages the client read before the hand-over, still to be returned.
    stashed: VecDeque<ServerMessage>,
    /// The frame lent out last. Dropped before the next read, so that the
    /// buffer it was split from is whole again and its space is reused.
    frame: BytesMut,
    /// Wall clock (ns) when the bytes of the frame lent out last were read
    /// off the socket: read once per socket read, not once per frame.
    arrived_ns: u64,
}

impl FrameReader {
    /// Goes on reading where `reader` left off.
    pub fn new(reader: ClientReader) -> FrameReader {
        let ReaderParts { frames, stashed } = reader.into_parts();
        FrameReader {
            frames,
            stashed,
            frame: BytesMut::new(),
            arrived_ns: 0,
        }
    }

    /// The next frame from the server, passing over its Heartbeats as the
    /// client's `next_message` does. Cancel-safe: a frame is only taken off
    /// the buffer once it is whole.
    ///
    /// # Errors
    /// The same as the client's `next_message`: [`ClientError::Closed`] at the end
    /// of the stream, [`ClientError::Frame`] for an oversize frame,
    /// [`ClientError::Decode`] for a frame whose envelope is not a `ServerMessage`.
    pub async fn next_frame(&mut self) -> Result<Frame<'_>, ClientError> {
        if let Some(message) = self.stashed.pop_front() {
            return Ok(Frame::Decoded(message));
        }
        let envelope = loop {
            self.frame = BytesMut::new();
            let buffered = self.frames.read_buffer().len();
            self.frame = match self.frames.next().await {
                Some(frame) => frame.map_err(|e| frame_error(e, self.frames.decoder()))?,
                None => return Err(ClientError::Closed),
            };
            // Without a socket read the buffer lost exactly this frame and
            // its header. (A header read earlier means the frame was not
            // whole then, so this call read.)
            let left = self.frames.read_buffer().len();
            if left + self.frame.len() + HEAD != buffered {
                self.arrived_ns = wall_ns();
            }
            let envelope = Envelope::scan(&self.frame)?;
            if envelope.kind != Kind::Heartbeat {
                break envelope;
            }
        };
        Ok(Frame::View(FrameView::over(&self.frame, envelope, self.arrived_ns)))
    }
}

/// The client's error for a failed read: an oversize frame as its codec
/// reports one, anything else as the I/O error it is.
fn frame_error(error: io::Error, codec: &LengthDelimitedCodec) -> ClientError {
    if error
        .get_ref()
        .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>())
    {
        let max = codec.max_frame_length();
        ClientError::Frame(CodecError::FrameTooLarge { max })
    } else {
        ClientError::Io(error)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;
    use tavern::client::Client;
    use tavern::protocol::pb::server_message::Body;
    use tavern::protocol::pb::{self, ServerMessage};
    use tavern::protocol::{encode_frame, server_message};
    use tokio::io::{AsyncWriteExt as _, DuplexStream};

    use super::*;

    /// A client over one end of an in-memory connection; the other end plays the server.
    fn connection() -> (Client, DuplexStream) {
        let (near, far) = tokio::io::duplex(1 << 16);
        let (read, write) = tokio::io::split(near);
        (Client::over(read, write), far)
    }

    fn frame_reader() -> (FrameReader, DuplexStream) {
        let (client, far) = connection();
        let (_writer, reader) = client.into_split();
        (FrameReader::new(reader), far)
    }

    fn chat(seq: u64) -> ServerMessage {
        let chat = pb::ChatMessage {
            room: "r".into(),
            seq,
            text: "1:2:3:xx".into(),
            ..pb::ChatMessage::default()
        };
        server_message(0, Body::Chat(chat))
    }

    #[tokio::test]
    async fn goes_on_where_the_client_left_off() {
        let (mut client, mut far) = connection();
        let event = pb::MemberJoined {
            room: "r".into(),
            member: None,
            seq: 4,
        };
        let event = server_message(0, Body::MemberJoined(event));
        let joined = pb::RoomJoined {
            room: "r".into(),
            seq: 4,
            ..pb::RoomJoined::default()
        };
        let heartbeat = server_message(0, Body::Heartbeat(pb::Heartbeat { server_time_us: 1 }));
        // An event before the join's reply (stashed), then frames behind it (buffered).
        let frames = [
            &event,
            &server_message(1, Body::RoomJoined(joined)),
            &chat(5),
            &heartbeat,
            &chat(6),
        ];
        let wire: Vec<u8> = frames.iter().flat_map(|m| encode_frame(*m).to_vec()).collect();
        far.write_all(&wire).await.unwrap();
        assert_eq!(client.join("r").await.unwrap().seq, 4);
        let (_writer, reader) = client.into_split();
        let mut reader = FrameReader::new(reader);
        match reader.next_frame().await.unwrap() {
            Frame::Decoded(message) => assert_eq!(message, event),
            Frame::View(view) => panic!("the stashed event came as a view: {view:?}"),
        }
        for seq in [5, 6] {
            match reader.next_frame().await.unwrap() {
                Frame::View(view) => assert_eq!(view.chat().unwrap().to_message(), chat(seq)),
                Frame::Decoded(message) => panic!("decoded: {message:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_frame_in_pieces_is_lent_out_whole() {
        let (mut reader, mut far) = frame_reader();
        let frame = encode_frame(&chat(9));
        let (head, rest) = frame.split_at(3);
        far.write_all(head).await.unwrap();
        assert!(reader.next_frame().now_or_never().is_none());
        let (body, tail) = rest.split_at(4);
        far.write_all(body).await.unwrap();
        assert!(reader.next_frame().now_or_never().is_none());
        far.write_all(tail).await.unwrap();
        let Frame::View(view) = reader.next_frame().await.unwrap() else {
            panic!("not a view");
        };
        assert_eq!(view.chat().unwrap().seq, 9);
    }

    #[tokio::test]
    async fn frames_of_one_read_share_its_arrival() {
        let (mut reader, mut far) = frame_reader();
        let two: Vec<u8> = [chat(1), chat(2)]
            .iter()
            .flat_map(|m| encode_frame(m).to_vec())
            .collect();
        let before = wall_ns();
        far.write_all(&two).await.unwrap();
        let first = reader.next_frame().await.unwrap().arrived_ns();
        assert!(first >= before);
        assert_eq!(reader.next_frame().await.unwrap().arrived_ns(), first);
        // The third frame needs a read of its own, in two pieces.
        let third = encode_frame(&chat(3));
        let (head, tail) = third.split_at(5);
        far.write_all(head).await.unwrap();
        assert!(reader.next_frame().now_or_never().is_none());
        let between = wall_ns();
        far.write_all(tail).await.unwrap();
        assert!(reader.next_frame().await.unwrap().arrived_ns() >= between);
    }

    #[tokio::test]
    async fn ends_as_the_client_does() {
        let (mut reader, far) = frame_reader();
        drop(far);
        assert!(matches!(reader.next_frame().await, Err(ClientError::Closed)));

        let (mut reader, mut far) = frame_reader();
        far.write_all(&encode_frame(&chat(1))[..6]).await.unwrap();
        drop(far);
        assert!(matches!(reader.next_frame().await, Err(ClientError::Io(_))));

        let (mut reader, mut far) = frame_reader();
        far.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
        let max = tavern::client::MAX_SERVER_FRAME;
        match reader.next_frame().await {
            Err(ClientError::Frame(CodecError::FrameTooLarge { max: reported })) => assert_eq!(reported, max),
            other => panic!("{other:?}"),
        }

        let (mut reader, mut far) = frame_reader();
        far.write_all(&[0, 0, 0, 2, 0xff, 0xff]).await.unwrap();
        assert!(matches!(reader.next_frame().await, Err(ClientError::Decode(_))));
    }
}
