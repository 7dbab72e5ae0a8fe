//! The ids and small shared types that every layer above the protocol names:
//! who a session is, which incarnation of a room or world is meant, why a
//! session ended, and how hard the server is shedding load. They live here,
//! below everything that uses them, so that no layer imports another's
//! actor to name one of these.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The next session id.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Identifies a session for the life of the process (and, in a world, the
/// session's entity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

impl SessionId {
    /// The id `id`.
    pub fn new(id: u64) -> Self {
        SessionId(id)
    }

    /// A new id, never handed out before.
    pub(crate) fn next() -> Self {
        SessionId(NEXT_SESSION.fetch_add(1, Ordering::Relaxed))
    }

    /// Hands out ids from `prefix` (of 23 bits) times 2^40 on: a cluster
    /// gives each node a prefix of its own, so that ids are unique across nodes.
    pub fn number_from(prefix: u64) {
        NEXT_SESSION.fetch_max(((prefix & 0x7F_FFFF) << 40) | 1, Ordering::Relaxed);
    }

    /// The number on the wire.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which room, among all rooms ever created under one name: a name that
/// empties and fills again gets a room with a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(u64);

impl RoomId {
    /// The id `id`.
    pub fn new(id: u64) -> Self {
        RoomId(id)
    }

    /// The number, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which game world, among all worlds ever started under one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorldId(u64);

impl WorldId {
    /// The id `id`.
    pub fn new(id: u64) -> Self {
        WorldId(id)
    }

    /// The number, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client closed the connection.
    ClientClosed,
    /// Reading from the socket failed.
    ReadError,
    /// Writing to the socket failed.
    WriteError,
    /// The socket took no bytes for `write_timeout_ms` while frames waited.
    WriteTimeout,
    /// The client broke the protocol (a bad or oversized frame, no Hello first, an unsupported version).
    ProtocolError,
    /// No Hello within `hello_timeout_ms`.
    HelloTimeout,
    /// Silent for three heartbeat intervals.
    IdleTimeout,
    /// The client did not read fast enough: its outbound queue was full.
    SlowConsumer,
    /// The client went on sending past its rate limit.
    RateLimited,
    /// Hello's token was refused.
    Unauthenticated,
    /// The server shut down.
    ServerShutdown,
    /// Something inside the server failed (a room stopped).
    Internal,
    /// The client said Goodbye.
    Goodbye,
    /// Another connection resumed the session (`Hello.resume_token`).
    Resumed,
}

/// What a connection speaks: length-prefixed frames over TCP (or TLS), or
/// WebSocket messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// The game port.
    Tcp,
    /// The WebSocket listener.
    WebSocket,
}

impl TransportKind {
    /// Every kind, in the order of the metrics' labels.
    pub const ALL: [TransportKind; 2] = [TransportKind::Tcp, TransportKind::WebSocket];

    /// The label value: `tcp` or `ws`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Tcp => "tcp",
            TransportKind::WebSocket => "ws",
        }
    }

    fn index(self) -> usize {
        match self {
            TransportKind::Tcp => 0,
            TransportKind::WebSocket => 1,
        }
    }

    /// The element of `values` (in the order of [`TransportKind::ALL`]) for this kind.
    pub fn of<T>(self, values: &[T; 2]) -> &T {
        &values[self.index()]
    }
}

impl DisconnectReason {
    /// Whether the connection dropped (reset, closed without Goodbye, silent,
    /// or unwritable), rather than being ended on purpose by the client or the
    /// server: a session whose connection drops is held for a resume.
    pub fn is_drop(self) -> bool {
        matches!(
            self,
            DisconnectReason::ClientClosed
                | DisconnectReason::ReadError
                | DisconnectReason::IdleTimeout
                | DisconnectReason::WriteError
                | DisconnectReason::WriteTimeout
        )
    }

    /// Every reason, in the order of the metric's labels.
    pub const ALL: [DisconnectReason; 14] = [
        DisconnectReason::ClientClosed,
        DisconnectReason::ReadError,
        DisconnectReason::WriteError,
        DisconnectReason::WriteTimeout,
        DisconnectReason::ProtocolError,
        DisconnectReason::HelloTimeout,
        DisconnectReason::IdleTimeout,
        DisconnectReason::SlowConsumer,
        DisconnectReason::RateLimited,
        DisconnectReason::Unauthenticated,
        DisconnectReason::ServerShutdown,
        DisconnectReason::Internal,
        DisconnectReason::Goodbye,
        DisconnectReason::Resumed,
    ];

    /// The name used in metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::ClientClosed => "client_closed",
            DisconnectReason::ReadError => "read_error",
            DisconnectReason::WriteError => "write_error",
            DisconnectReason::WriteTimeout => "write_timeout",
            DisconnectReason::ProtocolError => "protocol_error",
            DisconnectReason::HelloTimeout => "hello_timeout",
            DisconnectReason::IdleTimeout => "idle_timeout",
            DisconnectReason::SlowConsumer => "slow_consumer",
            DisconnectReason::RateLimited => "rate_limited",
            DisconnectReason::Unauthenticated => "unauthenticated",
            DisconnectReason::ServerShutdown => "server_shutdown",
            DisconnectReason::Internal => "internal",
            DisconnectReason::Goodbye => "goodbye",
            DisconnectReason::Resumed => "resumed",
        }
    }
}

/// How hard the server is shedding load; see [`crate::overload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OverloadLevel {
    /// Everything is served.
    Normal,
    /// New connections and joins are refused with OVERLOADED.
    Shedding,
    /// As `Shedding`, and presence (MemberLeft) is held back until load falls.
    PresencePaused,
}

impl OverloadLevel {
    /// The name used in `/stats` and the logs.
    pub fn as_str(self) -> &'static str {
        match self {
            OverloadLevel::Normal => "normal",
            OverloadLevel::Shedding => "shedding",
            OverloadLevel::PresencePaused => "presence_paused",
        }
    }

    /// The level as the number kept in an atomic and shown by the gauge.
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            OverloadLevel::Normal => 0,
            OverloadLevel::Shedding => 1,
            OverloadLevel::PresencePaused => 2,
        }
    }

    /// The level [`OverloadLevel::to_u8`] gave `level`.
    pub(crate) fn from_u8(level: u8) -> OverloadLevel {
        match level {
            0 => OverloadLevel::Normal,
            1 => OverloadLevel::Shedding,
            _ => OverloadLevel::PresencePaused,
        }
    }
}
