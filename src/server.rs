//! The server: binds, accepts connections on its own thread, places each on
//! a session thread, and shuts down in order.
//!
//! Threads: the thread calling [`Server::run`] accepts; each accepted socket
//! moves to one of [`Config::session_threads`] arbiters (round robin), where
//! its Session lives; the World and the Rooms live on [`Config::room_threads`]
//! arbiters of their own (or, when that is 0, beside the sessions); large
//! broadcasts use a rayon pool.
//!
//! Shutdown, when the `shutdown` future resolves: stop accepting; sessions stop
//! reading; every room handles what it already has queued; every session gets
//! `ServerShutdown` after everything queued for it; writers flush within
//! [`Config::shutdown_grace_ms`]; then the threads stop.
//!
//! [`Config::session_threads`]: crate::Config::session_threads
//! [`Config::room_threads`]: crate::Config::room_threads
//! [`Config::shutdown_grace_ms`]: crate::Config::shutdown_grace_ms

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use dashmap::DashMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::admin;
use crate::auth::{self, Authority};
use crate::broadcast::Broadcaster;
use crate::config::{AdminAddr, AuthMode, Config};
use crate::lifecycle::{Hooks, LifecycleEvent, Observer};
use crate::mmo::Worlds;
use crate::overload::Monitor;
use crate::protocol::{self, ErrorCode, encode_frame};
use crate::room::{BehaviourFactory, RoomContext, chat_rooms};
use crate::session::Session;
use crate::stats::{OverloadLevel, Stats};
use crate::world::{Names, World, WorldHandle};

/// Longest pause between accept attempts after repeated accept errors.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration does not validate.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from the configuration.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The broadcast thread pool could not be started.
    #[error("cannot start the broadcast pool: {0}")]
    Pool(#[from] rayon::ThreadPoolBuildError),
    /// The TLS certificate, key or client CA could not be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The deny-list could not be read.
    #[error("cannot read the auth deny-list {path}: {source}")]
    DenyList {
        /// The file from the configuration.
        path: std::path::PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A server thread could not be started or ended abnormally.
    #[error("server thread: {0}")]
    Thread(io::Error),
}

/// What every session shares.
pub(crate) struct ServerContext {
    pub(crate) config: Config,
    pub(crate) world: WorldHandle,
    pub(crate) worlds: Worlds,
    pub(crate) names: Names,
    pub(crate) stats: Arc<Stats>,
    pub(crate) hooks: Hooks,
    /// Checks Hello's token, with `--auth token`.
    pub(crate) authority: Option<Authority>,
    /// Cancelled first at shutdown: sessions stop reading.
    pub(crate) stop_reading: CancellationToken,
    /// Cancelled once rooms are drained: sessions send ServerShutdown and close.
    pub(crate) closing: CancellationToken,
    /// Tracks every connection's writer, to wait for them at shutdown.
    pub(crate) tracker: TaskTracker,
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    config: Config,
    listener: TcpListener,
    admin: Option<std::net::TcpListener>,
    tls: Option<TlsAcceptor>,
    authority: Option<Authority>,
    stats: Arc<Stats>,
    behaviours: BehaviourFactory,
    observer: Option<Arc<dyn Observer>>,
}

impl Server {
    /// Validates `config` and binds its address. Must be called inside an
    /// actix system (`actix_rt::System`).
    ///
    /// # Errors
    /// [`ServerError`] when the configuration is invalid or the address cannot be bound.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        config.validate()?;
        let authority = authority(&config)?;
        let tls = crate::tls::acceptor(&config).map_err(ServerError::Tls)?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.addr,
                source,
            })?;
        let admin = match config.admin_addr {
            AdminAddr::Off => None,
            AdminAddr::On(addr) => Some(
                std::net::TcpListener::bind(addr)
                    .and_then(|admin| admin.set_nonblocking(true).map(|()| admin))
                    .map_err(|source| ServerError::Bind { addr, source })?,
            ),
        };
        Ok(Server {
            stats: Arc::new(Stats::new(config.metrics)),
            config,
            listener,
            admin,
            tls,
            authority,
            behaviours: chat_rooms(),
            observer: None,
        })
    }

    /// The admin endpoint's address, if it has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|admin| admin.local_addr().ok())
    }

    /// The address actually bound (useful with port 0).
    ///
    /// # Errors
    /// The OS could not tell.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The server's counters, readable while it runs.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Gives new rooms the behaviour `factory` builds (plain chat by default).
    #[must_use]
    pub fn with_room_behaviours(mut self, factory: BehaviourFactory) -> Server {
        self.behaviours = factory;
        self
    }

    /// Tells `observer` of every [`LifecycleEvent`](crate::LifecycleEvent), off the hot path.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Server {
        self.observer = Some(observer);
        self
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully.
    ///
    /// # Errors
    /// [`ServerError::Pool`] when the broadcast threads cannot start.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            config,
            listener,
            admin,
            tls,
            authority,
            stats,
            behaviours,
            observer,
        } = self;
        let hooks = match observer {
            Some(observer) => {
                Hooks::with_observer(observer, config.hook_queue, stats.clone()).map_err(ServerError::Thread)?
            }
            None => Hooks::log_only(stats.clone()),
        };
        let session_threads: Vec<Arbiter> = (0..config.session_threads).map(|_| Arbiter::new()).collect();
        let room_threads: Vec<Arbiter> = (0..config.room_threads).map(|_| Arbiter::new()).collect();
        let broadcaster = Arc::new(Broadcaster::new(
            config.broadcast_threads,
            config.broadcast_parallel_threshold,
        )?);
        let monitor = Arc::new(Monitor::new(stats.clone(), &config, hooks.clone()));
        let admin_thread = Arbiter::new();
        admin_thread.spawn(monitor.clone().run());
        let stop_admin = CancellationToken::new();
        if let Some(admin) = admin {
            let (monitor, stop) = (monitor.clone(), stop_admin.clone());
            admin_thread.spawn(async move {
                match TcpListener::from_std(admin) {
                    Ok(admin) => admin::serve(admin, monitor, stop).await,
                    Err(e) => warn!(error = %e, "could not start the admin endpoint"),
                }
            });
        }
        let worlds = Worlds::new(&config, broadcaster.clone(), stats.clone());
        let room_inbox = config.room_inbox;
        let (world_stats, world_hooks) = (stats.clone(), hooks.clone());
        // With no room threads, the World and the rooms share the session threads.
        let room_homes = if room_threads.is_empty() {
            &session_threads
        } else {
            &room_threads
        };
        let world = World::start(
            room_homes.iter().map(Arbiter::handle).collect(),
            config.world_inbox,
            |world| RoomContext {
                world,
                broadcaster,
                behaviours,
                stats: world_stats,
                hooks: world_hooks,
                inbox: room_inbox,
            },
        );
        let grace = config.shutdown_grace();
        let unready_delay = config.unready_delay();
        let context = Arc::new(ServerContext {
            config,
            world: world.clone(),
            worlds,
            names: Names::default(),
            stats,
            hooks,
            authority,
            stop_reading: CancellationToken::new(),
            closing: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        let session_handles = session_threads.iter().map(Arbiter::handle).collect();
        match listener.local_addr() {
            Ok(addr) => context.hooks.emit(LifecycleEvent::ServerStarted { addr }),
            Err(e) => warn!(error = %e, "listening (address unknown)"),
        }
        context.stats.set_ready(true);
        // Boxed, so that dropping it closes the listener.
        let mut accepting = Box::pin(accept(listener, tls, context.clone(), session_handles));
        tokio::select! {
            () = &mut accepting => {}
            () = shutdown => {}
        }

        // Not ready first; still accepting for `unready_delay`, so balancers look elsewhere.
        context.stats.set_ready(false);
        context.hooks.emit(LifecycleEvent::ServerDraining);
        let _ = tokio::time::timeout(unready_delay, &mut accepting).await;
        drop(accepting);
        let deadline = Instant::now() + grace;
        info!(
            grace_ms = grace.as_millis(),
            sessions = context.stats.sessions_active.get(),
            "shutting down"
        );
        context.stop_reading.cancel();
        if tokio::time::timeout_at(deadline, world.drain()).await.is_err() {
            warn!("rooms did not drain within the shutdown grace period");
        }
        context.worlds.stop();
        context.closing.cancel();
        context.tracker.close();
        if tokio::time::timeout_at(deadline, context.tracker.wait()).await.is_err() {
            warn!(
                open = context.tracker.len(),
                "connections still flushing at the end of the grace period; closing them"
            );
        }
        for arbiter in session_threads.iter().chain(&room_threads) {
            arbiter.stop();
        }
        stop_admin.cancel();
        admin_thread.stop();
        context.hooks.emit(LifecycleEvent::ServerStopped);
        Ok(())
    }
}

/// The token checker `config` asks for, if any.
fn authority(config: &Config) -> Result<Option<Authority>, ServerError> {
    if config.auth != AuthMode::Token {
        return Ok(None);
    }
    let key = config.auth_key.as_ref().map(|key| auth::parse_hex_key(&key.0));
    let Some(Ok(key)) = key else {
        return Err(crate::config::ConfigError::Invalid("auth token needs a hex auth_key".into()).into());
    };
    let denied = match &config.auth_deny_list {
        Some(path) => auth::read_deny_list(path).map_err(|source| ServerError::DenyList {
            path: path.clone(),
            source,
        })?,
        None => Default::default(),
    };
    Authority::new(key, denied)
        .map(Some)
        .map_err(|e| crate::config::ConfigError::Invalid(e).into())
}

/// A connection's place under the connection limits, given back when dropped
/// (when its socket closes).
pub(crate) struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    _per_ip: Option<IpHold>,
}

impl ConnectionSlot {
    /// A place held only by `permit`, with no per-address count.
    pub(crate) fn unlimited(permit: OwnedSemaphorePermit) -> ConnectionSlot {
        ConnectionSlot {
            _permit: permit,
            _per_ip: None,
        }
    }
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

/// Accepts between two prunings of the accept-rate limiter's idle addresses.
const PRUNE_EVERY: u32 = 1024;

/// Accepts connections until dropped; backs off on errors and never gives up.
async fn accept(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    context: Arc<ServerContext>,
    arbiters: Vec<actix::ArbiterHandle>,
) {
    let connections = Arc::new(Semaphore::new(context.config.max_connections));
    let mut per_ip = PerIp::new(&context.config);
    let mut backoff = Duration::from_millis(1);
    for next in (0..arbiters.len()).cycle() {
        let (stream, peer) = loop {
            match listener.accept().await {
                Ok(accepted) => break accepted,
                Err(e) => {
                    warn!(error = %e, backoff_ms = backoff.as_millis(), "accept failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
            }
        };
        backoff = Duration::from_millis(1);
        let stats = &context.stats;
        if stats.overload() >= OverloadLevel::Shedding {
            stats.connections_shed.inc();
            refuse(
                &stream,
                &context,
                ErrorCode::Overloaded,
                "the server is overloaded; try again later",
            );
            continue;
        }
        let ip_slot = match per_ip.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(limit) => {
                stats.connections_per_ip.inc();
                debug!(%peer, limit, "connection refused: too many from this address");
                let message = format!("too many connections from this address (see Config::{limit})");
                refuse(&stream, &context, ErrorCode::TooManyConnections, &message);
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            stats.connections_refused.inc();
            warn!(
                max_connections = context.config.max_connections,
                "connection refused: server full"
            );
            refuse(
                &stream,
                &context,
                ErrorCode::ServerFull,
                "server full (see Config::max_connections)",
            );
            continue;
        };
        let slot = ConnectionSlot {
            _permit: permit,
            _per_ip: ip_slot,
        };
        stats.connections_accepted.inc();
        // Hand the socket to its session thread; registered there, it is polled there.
        let socket = match stream.into_std() {
            Ok(socket) => socket,
            Err(e) => {
                debug!(%peer, error = %e, "could not hand over the socket");
                continue;
            }
        };
        let context = context.clone();
        let tls = tls.clone();
        arbiters[next].spawn(async move {
            match TcpStream::from_std(socket) {
                Ok(stream) => open(stream, peer, tls, context, slot).await,
                Err(e) => debug!(%peer, error = %e, "could not register the socket"),
            }
        });
    }
}

/// Starts the session of an accepted connection, on its session thread,
/// after the TLS handshake if the port speaks TLS.
async fn open(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    context: Arc<ServerContext>,
    slot: ConnectionSlot,
) {
    Session::tune(&stream, peer, &context.config);
    let Some(tls) = tls else {
        let (read, write) = stream.into_split();
        return Session::start(read, write, peer, context, slot);
    };
    // Pinned here, so a timed-out handshake's socket closes only after it is counted.
    let handshake = tls.accept(stream);
    tokio::pin!(handshake);
    match tokio::time::timeout(context.config.tls_handshake_timeout(), &mut handshake).await {
        Ok(Ok(stream)) => {
            let (read, write) = tokio::io::split(stream);
            Session::start(read, write, peer, context, slot);
        }
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

/// Answers a connection with error `code` (best effort); dropping it closes it.
fn refuse(stream: &TcpStream, context: &ServerContext, code: ErrorCode, message: &str) {
    context.stats.error_sent(code);
    let error = protocol::error_message(0, code, message);
    let _ = stream.try_write(&encode_frame(&error));
}

/// A server running on a thread of its own, in its own actix system: for
/// embedding Tavern in a program that is not an actix system, and for tests.
/// Dropping it shuts the server down gracefully and waits for the thread.
pub struct ServerThread {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    stats: Arc<Stats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl ServerThread {
    /// Starts a server and returns once it listens.
    ///
    /// # Errors
    /// What [`Server::bind`] returns, or [`ServerError::Thread`] when the thread could not start.
    pub fn start(config: Config) -> Result<ServerThread, ServerError> {
        ServerThread::start_with(config, |server| server)
    }

    /// As [`ServerThread::start`], with `customize` applied to the bound
    /// server (to give it room behaviours or an observer) before it runs.
    ///
    /// # Errors
    /// As [`ServerThread::start`].
    pub fn start_with(
        config: Config,
        customize: impl FnOnce(Server) -> Server + Send + 'static,
    ) -> Result<ServerThread, ServerError> {
        let (ready, bound) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let wanted = config.addr;
        let thread = std::thread::Builder::new()
            .name("tavern-server".into())
            .spawn(move || {
                actix_rt::System::new().block_on(async move {
                    let bound = Server::bind(config).await.and_then(|server| match server.local_addr() {
                        Ok(addr) => Ok((addr, server)),
                        Err(source) => Err(ServerError::Bind { addr: wanted, source }),
                    });
                    let server = match bound {
                        Ok((addr, server)) => {
                            let _ = ready.send(Ok((addr, server.admin_addr(), server.stats())));
                            customize(server)
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return Ok(());
                        }
                    };
                    server
                        .run(async move {
                            let _ = stopped.await;
                        })
                        .await
                })
            })
            .map_err(ServerError::Thread)?;
        match bound.recv() {
            Ok(Ok((addr, admin_addr, stats))) => Ok(ServerThread {
                addr,
                admin_addr,
                stats,
                stop: Some(stop),
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ServerError::Thread(io::Error::other(
                "the server thread ended before listening",
            ))),
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin endpoint's address, if it has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The server's figures.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down gracefully and waits for the thread (blocking).
    ///
    /// # Errors
    /// What [`Server::run`] returned, or [`ServerError::Thread`] if the thread panicked.
    pub fn join(mut self) -> Result<(), ServerError> {
        self.shut_down();
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(ServerError::Thread(io::Error::other("the server thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.shut_down();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
