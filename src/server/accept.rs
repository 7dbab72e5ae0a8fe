//! The accept loop: the connection limits (in all, per source address, and
//! the accept rate), refusals, and the hand-over of each socket to its
//! session thread, after the TLS handshake where the port speaks TLS.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::config::Config;
use crate::ids::{OverloadLevel, TransportKind};
use crate::protocol::{self, ErrorCode, encode_frame};
use crate::session::{self, Session, SessionContext};
use crate::ws::Origins;

/// Longest pause between accept attempts after repeated accept errors.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Accepts between two prunings of the accept-rate limiter's idle addresses.
const PRUNE_EVERY: u32 = 1024;

/// Refusals on a TLS port whose handshake may run at once (each is finished
/// so that the client can read why); past this, a refused TLS connection is
/// closed without a frame.
const MAX_TLS_REFUSALS: usize = 64;

/// A connection's place under the connection limits, given back when dropped
/// (when its socket closes).
pub(crate) struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    _per_ip: Option<IpHold>,
}

/// One connection counted against its source address.
struct IpHold {
    counts: Arc<DashMap<IpAddr, usize>>,
    ip: IpAddr,
}

impl Drop for IpHold {
    fn drop(&mut self) {
        self.counts.remove_if_mut(&self.ip, |_, count| {
            *count = count.saturating_sub(1);
            *count == 0
        });
    }
}

/// The per-source-address limits: connections held and the accept rate.
struct PerIp {
    max_connections: usize,
    counts: Arc<DashMap<IpAddr, usize>>,
    accepts: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Accepts since the rate limiter last forgot idle addresses.
    since_pruned: u32,
}

impl PerIp {
    fn new(config: &Config) -> PerIp {
        PerIp {
            max_connections: config.max_connections_per_ip,
            counts: Arc::default(),
            accepts: NonZeroU32::new(config.accept_rate_per_ip).map(|rate| RateLimiter::keyed(Quota::per_second(rate))),
            since_pruned: 0,
        }
    }

    /// Whether `ip` may open one more connection now; if so, its hold (if
    /// connections per address are limited). The error names the limit.
    fn admit(&mut self, ip: IpAddr) -> Result<Option<IpHold>, &'static str> {
        if let Some(accepts) = &self.accepts {
            // The limiter keeps a cell per address seen: forget the idle ones now and then.
            self.since_pruned += 1;
            if self.since_pruned >= PRUNE_EVERY {
                self.since_pruned = 0;
                accepts.retain_recent();
            }
            if accepts.check_key(&ip).is_err() {
                return Err("accept_rate_per_ip");
            }
        }
        if self.max_connections == 0 {
            return Ok(None);
        }
        let mut count = self.counts.entry(ip).or_insert(0);
        if *count >= self.max_connections {
            return Err("max_connections_per_ip");
        }
        *count += 1;
        Ok(Some(IpHold {
            counts: self.counts.clone(),
            ip,
        }))
    }
}

/// What every accepted connection is checked against, and how a refused
/// one is told.
struct Gate {
    context: Arc<SessionContext>,
    connections: Arc<Semaphore>,
    per_ip: PerIp,
    refusals: Refusals,
}

impl Gate {
    /// The connection's slot, or `None` once it was refused (with a frame
    /// saying why, best effort).
    fn admit(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        kind: TransportKind,
    ) -> Option<(TcpStream, ConnectionSlot)> {
        let context = &self.context;
        let stats = &context.stats;
        if stats.overload() >= OverloadLevel::Shedding {
            stats.connections_shed.inc();
            let message = "the server is overloaded; try again later";
            self.refusals
                .refuse(stream, context, kind, (ErrorCode::Overloaded, message.into()));
            return None;
        }
        let per_ip = match self.per_ip.admit(peer.ip()) {
            Ok(hold) => hold,
            Err(limit) => {
                stats.connections_per_ip.inc();
                debug!(%peer, limit, "connection refused: too many from this address");
                let message = format!("too many connections from this address (see Config::{limit})");
                self.refusals
                    .refuse(stream, context, kind, (ErrorCode::TooManyConnections, message));
                return None;
            }
        };
        let Ok(permit) = self.connections.clone().try_acquire_owned() else {
            stats.connections_refused.inc();
            let max_connections = context.config.max_connections;
            warn!(max_connections, "connection refused: server full");
            let message = "server full (see Config::max_connections)";
            self.refusals
                .refuse(stream, context, kind, (ErrorCode::ServerFull, message.into()));
            return None;
        };
        let slot = ConnectionSlot {
            _permit: permit,
            _per_ip: per_ip,
        };
        Some((stream, slot))
    }
}

/// The listeners: the game port, and the WebSocket listener with the origins it takes.
pub(super) struct Listeners {
    pub(super) tcp: TcpListener,
    pub(super) ws: Option<TcpListener>,
    pub(super) origins: Origins,
}

/// Accepts connections on both listeners until dropped, under the same
/// limits; backs off on errors and never gives up.
pub(super) async fn accept(
    listeners: Listeners,
    tls: Option<TlsAcceptor>,
    context: Arc<SessionContext>,
    arbiters: Vec<actix::ArbiterHandle>,
) {
    let Listeners { tcp, ws, origins } = listeners;
    let origins = Arc::new(origins);
    let mut gate = Gate {
        connections: Arc::new(Semaphore::new(context.config.max_connections)),
        per_ip: PerIp::new(&context.config),
        refusals: Refusals {
            tls: tls.clone(),
            handshakes: Arc::new(Semaphore::new(MAX_TLS_REFUSALS)),
        },
        context,
    };
    for next in (0..arbiters.len()).cycle() {
        let (stream, peer, kind) = tokio::select! {
            (stream, peer) = accept_one(&tcp) => (stream, peer, TransportKind::Tcp),
            (stream, peer) = accept_ws(ws.as_ref()) => (stream, peer, TransportKind::WebSocket),
        };
        let Some((stream, slot)) = gate.admit(stream, peer, kind) else {
            continue;
        };
        let context = gate.context.clone();
        context.stats.connection_accepted(kind);
        // Hand the socket to its session thread; registered there, it is polled there.
        let socket = match stream.into_std() {
            Ok(socket) => socket,
            Err(e) => {
                debug!(%peer, error = %e, "could not hand over the socket");
                continue;
            }
        };
        let (tls, origins) = (tls.clone(), origins.clone());
        arbiters[next].spawn(async move {
            match TcpStream::from_std(socket) {
                Ok(stream) => open(stream, peer, (tls, kind, &origins), context, slot).await,
                Err(e) => debug!(%peer, error = %e, "could not register the socket"),
            }
        });
    }
}

/// The next connection on the WebSocket listener; never, without one.
async fn accept_ws(listener: Option<&TcpListener>) -> (TcpStream, SocketAddr) {
    match listener {
        Some(listener) => accept_one(listener).await,
        None => std::future::pending().await,
    }
}

/// The next connection; accept errors are retried with a growing pause.
async fn accept_one(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    let mut backoff = Duration::from_millis(1);
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                warn!(error = %e, backoff_ms = backoff.as_millis(), "accept failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
            }
        }
    }
}

/// Starts the session of an accepted connection, on its session thread,
/// after the TLS handshake if the port speaks TLS (and the WebSocket
/// handshake on the WebSocket listener).
async fn open(
    stream: TcpStream,
    peer: SocketAddr,
    (tls, kind, origins): (Option<TlsAcceptor>, TransportKind, &Origins),
    context: Arc<SessionContext>,
    slot: ConnectionSlot,
) {
    session::tune(&stream, peer, &context.config);
    let Some(tls) = tls else {
        let halves = stream.into_split();
        return start(halves, peer, (kind, origins), context, slot).await;
    };
    // Pinned here, so a timed-out handshake's socket closes only after it is counted.
    let handshake = tls.accept(stream);
    tokio::pin!(handshake);
    match tokio::time::timeout(context.config.tls_handshake_timeout(), &mut handshake).await {
        Ok(Ok(stream)) => start(tokio::io::split(stream), peer, (kind, origins), context, slot).await,
        Ok(Err(e)) => {
            context.stats.tls_handshake_failures.inc();
            debug!(%peer, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            context.stats.tls_handshake_failures.inc();
            debug!(%peer, "TLS handshake timed out (see Config::tls_handshake_timeout_ms)");
        }
    }
}

/// Starts the session over the connection's halves, as its transport speaks.
async fn start<R, W>(
    (read, write): (R, W),
    peer: SocketAddr,
    (kind, origins): (TransportKind, &Origins),
    context: Arc<SessionContext>,
    slot: ConnectionSlot,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    match kind {
        TransportKind::Tcp => Session::start(read, write, peer, context, slot),
        TransportKind::WebSocket => super::ws::open((read, write), peer, origins, context, slot).await,
    }
}

/// How refused connections are told why: a frame in plain TCP, or on a TLS
/// port a frame over TLS after the handshake (so that the client can tell
/// "full, retry later" from "broken"). At most [`MAX_TLS_REFUSALS`] such
/// handshakes run at once; past that a refused TLS connection is closed
/// without a frame.
struct Refusals {
    tls: Option<TlsAcceptor>,
    handshakes: Arc<Semaphore>,
}

impl Refusals {
    /// Tells the client `code` (best effort) and closes the connection.
    fn refuse(
        &self,
        stream: TcpStream,
        context: &SessionContext,
        kind: TransportKind,
        (code, message): (ErrorCode, String),
    ) {
        context.stats.error_sent(code);
        let frame = encode_frame(&protocol::error_message(0, code, message));
        if kind == TransportKind::WebSocket {
            return self.refuse_ws(stream, context, frame);
        }
        let Some(tls) = &self.tls else {
            let _ = stream.try_write(&frame);
            return;
        };
        let Ok(permit) = self.handshakes.clone().try_acquire_owned() else {
            debug!("refused TLS connection closed without a frame: too many refusals under way");
            return;
        };
        let (tls, deadline) = (tls.clone(), context.config.tls_handshake_timeout());
        let close = context.config.close_timeout();
        tokio::spawn(async move {
            let told = async {
                let mut stream = tokio::time::timeout(deadline, tls.accept(stream)).await.ok()?.ok()?;
                tokio::time::timeout(close, async {
                    stream.write_all(&frame).await?;
                    stream.shutdown().await
                })
                .await
                .ok()?
                .ok()
            };
            if told.await.is_none() {
                debug!("a refused TLS connection could not be told why");
            }
            drop(permit);
        });
    }

    /// Tells a refused WebSocket client why, in a message after the
    /// handshake (and TLS), as the TLS refusals are bounded.
    fn refuse_ws(&self, stream: TcpStream, context: &SessionContext, frame: bytes::Bytes) {
        let Ok(permit) = self.handshakes.clone().try_acquire_owned() else {
            debug!("refused WebSocket connection closed without a message: too many refusals under way");
            return;
        };
        let (tls, deadline) = (self.tls.clone(), context.config.hello_timeout());
        tokio::spawn(async move {
            let told = match tls {
                None => super::ws::tell(stream, &frame, deadline).await,
                Some(tls) => match tokio::time::timeout(deadline, tls.accept(stream)).await {
                    Ok(Ok(stream)) => super::ws::tell(stream, &frame, deadline).await,
                    _ => None,
                },
            };
            if told.is_none() {
                debug!("a refused WebSocket connection could not be told why");
            }
            drop(permit);
        });
    }
}
