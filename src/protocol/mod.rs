//! The wire protocol, version 1: the types generated from `proto/tavern/v1`,
//! the frame codec (u32 big-endian length + one protobuf message), and the
//! edge where client frames become typed, validated [`Request`]s. Past this
//! module nothing is a raw string or an unchecked length.

mod codec;
mod command;
mod label;
mod names;

pub use codec::{CodecError, FrameCodec, FrameLimit, encode_frame};
pub use command::{Command, JoinSpec, ListSpec, MoveInput, Recover, Request};
pub use label::{Filter, FilterError, Label, MAX_FILTER_LEN};
pub use names::{ChatText, PlayerName, Point, ProtocolError, RoomName, WorldName};

/// Types generated from `proto/tavern/v1/*.proto` by `build.rs`.
#[allow(missing_docs, clippy::all, clippy::as_conversions)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/tavern.v1.rs"));
}

pub use pb::ErrorCode;

impl ErrorCode {
    /// Whether the server closes the connection after sending this error (see the proto file).
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            ErrorCode::BadFrame
                | ErrorCode::FrameTooLarge
                | ErrorCode::HelloRequired
                | ErrorCode::UnsupportedVersion
                | ErrorCode::SlowConsumer
                | ErrorCode::ServerShuttingDown
                | ErrorCode::ServerFull
                | ErrorCode::Timeout
                | ErrorCode::Unauthenticated
                | ErrorCode::TooManyConnections
                | ErrorCode::HandshakeTimeout
                | ErrorCode::IdleTimeout
                | ErrorCode::TooManyHellos
                | ErrorCode::TokenExpired
                | ErrorCode::ResumedElsewhere
        )
    }
}

/// The protocol version this server speaks (`Hello.protocol_version`).
pub const PROTOCOL_VERSION: u32 = 1;

/// Builds a `ServerMessage` frame body with the given request id.
pub fn server_message(request_id: u64, body: pb::server_message::Body) -> pb::ServerMessage {
    pb::ServerMessage {
        request_id,
        body: Some(body),
    }
}

/// An `Error` reply echoing `request_id`.
pub fn error_message(request_id: u64, code: ErrorCode, message: impl Into<String>) -> pb::ServerMessage {
    let error = pb::Error {
        code: code.into(),
        message: message.into(),
    };
    server_message(request_id, pb::server_message::Body::Error(error))
}

/// Microseconds since the Unix epoch, the unit of every `*_time_us` field.
pub fn now_us() -> u64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX)
}
