//! The WebSocket transport: browsers reach Tavern here ([`Config::ws_addr`]).
//!
//! The handshake (tokio-tungstenite) checks the `Origin` against the
//! allow-list ([`Config::ws_allowed_origins`], against cross-site WebSocket
//! hijacking) and requires the subprotocol [`SUBPROTOCOL`]. Then each binary
//! message carries exactly one `ClientMessage` or `ServerMessage` (WebSocket
//! frames already, so there is no length prefix), and the connection feeds
//! the same Session actor as the game port: [`WsFrames`] turns messages into
//! the session's frames, and [`WsWriter`] rewrites the length-prefixed frames
//! of the session's outbox as binary WebSocket frames on the socket, so the
//! outbox, its writer, limits, deadlines and the lingering close are the
//! same code.
//!
//! [`Config::ws_addr`]: crate::Config::ws_addr
//! [`Config::ws_allowed_origins`]: crate::Config::ws_allowed_origins

pub mod client;
mod duplex;
mod frames;
mod prefixes;
mod sink;
mod writer;

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use self::duplex::Duplex;
pub use self::frames::{Pongs, WsFrames};
pub use self::sink::SinkWriter;
pub use self::writer::{Control, WsWriter, close_frame};
use crate::config::Config;

/// The subprotocol a client must offer (`Sec-WebSocket-Protocol`).
pub const SUBPROTOCOL: &str = "tavern.v1";

/// Bytes a connection's WebSocket reader allocates at first (it grows to the largest message).
const READ_BUFFER: usize = 4096;

/// Which browser origins may open a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// Any origin (`*`).
    Any,
    /// These origins, exactly (`scheme://host[:port]`), and clients that send
    /// no `Origin` (not browsers, which always send one).
    Only(Vec<String>),
}

impl Origins {
    /// Whether a handshake with `origin` (or none) may go on.
    pub fn allow(&self, origin: Option<&str>) -> bool {
        match (self, origin) {
            (Origins::Any, _) | (Origins::Only(_), None) => true,
            (Origins::Only(list), Some(origin)) => list.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)),
        }
    }
}

/// The WebSocket settings for a connection under `config`: messages no
/// larger than the frame limit, a small first read buffer, writes gathered
/// up to a write batch.
pub fn settings(config: &Config) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(config.write_batch_bytes)
        .max_write_buffer_size(
            config
                .write_batch_bytes
                .saturating_mul(2)
                .saturating_add(config.max_frame_len),
        )
        .max_message_size(Some(config.max_frame_len))
        .max_frame_size(Some(config.max_frame_len))
}

/// Accepts the WebSocket handshake on `stream` from `peer`: the origin must
/// be allowed and the client must offer [`SUBPROTOCOL`], which the answer
/// names.
///
/// # Errors
/// The handshake failed or was refused (the client got an HTTP error saying why).
#[allow(clippy::result_large_err, reason = "the check's signature is tungstenite's Callback")]
pub async fn accept<S>(
    stream: S,
    origins: &Origins,
    config: WebSocketConfig,
) -> Result<WebSocketStream<S>, tokio_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let check = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        let headers = request.headers();
        let origin = headers.get("origin").and_then(|value| value.to_str().ok());
        if !origins.allow(origin) {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "origin not allowed (see --ws-allowed-origins)",
            ));
        }
        let offered = headers
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|protocol| protocol.trim() == SUBPROTOCOL);
        if !offered {
            return Err(refusal(StatusCode::BAD_REQUEST, "offer the subprotocol tavern.v1"));
        }
        response
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
        Ok(response)
    };
    tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config)).await
}

fn refusal(status: StatusCode, why: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(why.to_owned()));
    *response.status_mut() = status;
    response
}

/// The address a WebSocket client of `addr` connects to.
pub fn url(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "wss" } else { "ws" };
    format!("{scheme}://{addr}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_matched_exactly_and_clients_without_one_pass() {
        let only = Origins::Only(vec!["http://127.0.0.1:4001".into()]);
        assert!(only.allow(None));
        assert!(only.allow(Some("http://127.0.0.1:4001")));
        assert!(!only.allow(Some("http://127.0.0.1:4001.evil.example")));
        assert!(!only.allow(Some("https://evil.example")));
        assert!(Origins::Any.allow(Some("https://evil.example")));
    }
}
