//! WebSocket connections: the handshake (after TLS, where the port speaks
//! it), then the same Session as the game port, over [`WsFrames`] and
//! [`WsWriter`]; and refused connections told why in a WebSocket message.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message;
use tracing::debug;

use crate::ids::{DisconnectReason, TransportKind};
use crate::outbox::{Outbox, SharedReader};
use crate::session::{Session, SessionContext, Transport};
use crate::ws::{self, Control, Duplex, Origins, Pongs, WsFrames, WsWriter};

/// Bytes of the length prefix the frames of the game port carry and WebSocket messages do not.
const PREFIX: usize = 4;

/// Starts the session of a WebSocket connection whose halves are `read`
/// and `write`, once its handshake is done (within the Hello deadline).
pub(super) async fn open<R, W, S>(
    (read, write): (R, W),
    peer: SocketAddr,
    origins: &Origins,
    context: Arc<SessionContext>,
    slot: S,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
    S: Send + 'static,
{
    let read = SharedReader::new(read);
    let lingering = read.share();
    let config = &context.config;
    let handshake = ws::accept(Duplex::new(read, write), origins, ws::settings(config));
    let mut stream = match tokio::time::timeout(config.hello_timeout(), handshake).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            context.stats.ws_handshake_failures.inc();
            debug!(%peer, error = %e, "WebSocket handshake failed");
            return;
        }
        Err(_) => {
            context.stats.ws_handshake_failures.inc();
            debug!(%peer, "WebSocket handshake timed out (see Config::hello_timeout_ms)");
            return;
        }
    };
    // The session's writer writes to the socket itself; tungstenite only reads.
    let Some(write) = stream.get_mut().take_writer() else {
        return;
    };
    let per_second = config.ws.max_control_per_s;
    let control = Arc::new(Control::default());
    let pongs = control.clone();
    let transport = Transport {
        kind: TransportKind::WebSocket,
        frames: move |limit, outbox: &Outbox| {
            let pongs = Pongs {
                control: pongs,
                outbox: outbox.clone(),
            };
            WsFrames::new(stream, limit, per_second, pongs)
        },
        writer: move |outbox: &Outbox| WsWriter::new(write, outbox, control),
        lingering,
    };
    Session::launch(transport, peer, context, slot);
}

/// Tells a refused WebSocket client why: the handshake, `frame` (a
/// length-prefixed error frame) as one binary message, and a Close; all
/// within `deadline`.
pub(super) async fn tell<S>(stream: S, frame: &Bytes, deadline: Duration) -> Option<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(deadline, async {
        let mut socket = ws::accept(stream, &Origins::Any, Default::default()).await.ok()?;
        let body = frame.slice(PREFIX.min(frame.len())..);
        socket.send(Message::Binary(body)).await.ok()?;
        let close = ws::close_frame(Some(DisconnectReason::Internal));
        socket.close(Some(close)).await.ok()
    })
    .await
    .ok()
    .flatten()
}
