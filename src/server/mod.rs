//! The server: binds, accepts connections on its own thread, places each on
//! a session thread, and shuts down in order.
//!
//! Threads: the thread calling [`Server::run`] accepts; each accepted socket
//! moves to one of [`Config::session_threads`] arbiters (round robin), where
//! its Session lives; the room directory and the rooms live on
//! [`Config::room_threads`] arbiters of their own (or, when that is 0, beside
//! the sessions); large broadcasts use a rayon pool; the overload monitor and
//! the admin endpoint share one more thread.
//!
//! [`Server::run`] builds those parts (`wiring`), serves until its
//! `shutdown` future resolves (`accept`), then shuts down: stop accepting;
//! sessions stop reading; every room handles what it already has queued;
//! every session gets `ServerShutdown` after everything queued for it;
//! writers flush within [`Config::shutdown_grace_ms`]; then the threads stop.
//!
//! [`Config::session_threads`]: crate::Config::session_threads
//! [`Config::room_threads`]: crate::Config::room_threads
//! [`Config::shutdown_grace_ms`]: crate::Config::shutdown_grace_ms

mod accept;
mod thread;
pub(crate) mod wiring;
mod ws;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use actix::Arbiter;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use thread::ServerThread;

use self::wiring::{Core, Extras};
use crate::admin;
use crate::auth::{self, Authority, KeySources, SigningAlgorithm};
use crate::cluster::Cluster;
use crate::config::{AdminAddr, AuthMode, Config, ConfigError, InvalidSetting, WsAddr};
use crate::lifecycle::{Hooks, LifecycleEvent, Observer};
use crate::overload::Monitor;
use crate::room::{Factory, Kinds, RoomPlugin};
use crate::session::SessionContext;
use crate::stats::Stats;
use crate::tls::{self, TlsError};
use crate::ws::Origins;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration does not validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
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
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The deny-list could not be read.
    #[error("cannot read the auth deny-list {path} (auth_deny_list): {source}")]
    DenyList {
        /// The file from the configuration.
        path: std::path::PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A server thread could not be started or ended abnormally.
    #[error("server thread: {0}")]
    Thread(io::Error),
    /// The cluster (`--cluster`) could not be joined.
    #[error("cannot join the cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    config: Config,
    listener: TcpListener,
    /// The WebSocket listener, unless `ws_addr` is off.
    ws: Option<TcpListener>,
    admin: Option<std::net::TcpListener>,
    tls: Option<TlsAcceptor>,
    authority: Option<Authority>,
    stats: Arc<Stats>,
    kinds: Kinds,
    observer: Option<Arc<dyn Observer>>,
    /// This node's place in a cluster, with `--cluster`.
    cluster: Option<Cluster>,
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
        let tls = tls::acceptor(&config)?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.addr,
                source,
            })?;
        let ws = match config.ws.addr {
            WsAddr::Off => None,
            WsAddr::On(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServerError::Bind { addr, source })?,
            ),
        };
        let admin = match config.admin_addr {
            AdminAddr::Off => None,
            AdminAddr::On(addr) => Some(
                std::net::TcpListener::bind(addr)
                    .and_then(|admin| admin.set_nonblocking(true).map(|()| admin))
                    .map_err(|source| ServerError::Bind { addr, source })?,
            ),
        };
        let cluster = match &config.cluster.url {
            None => None,
            Some(_) => {
                let advertise = match &config.cluster.advertise {
                    Some(advertise) => advertise.clone(),
                    None => listener
                        .local_addr()
                        .map_or_else(|_| config.addr.to_string(), |a| a.to_string()),
                };
                Some(Cluster::connect(&config.cluster, advertise).await?)
            }
        };
        Ok(Server {
            cluster,
            stats: Arc::new(Stats::new(config.metrics)),
            config,
            listener,
            ws,
            admin,
            tls,
            authority,
            kinds: crate::plugins::shipped(),
            observer: None,
        })
    }

    /// The admin endpoint's address, if it has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|admin| admin.local_addr().ok())
    }

    /// The WebSocket listener's address, if it has one.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws.as_ref().and_then(|ws| ws.local_addr().ok())
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

    /// Registers plugin `P` as room kind `kind`, replacing any kind of that
    /// name: a join naming `kind` that creates a room makes it with
    /// [`RoomPlugin::create`]. `chat` (the default kind), `tictactoe`,
    /// `lobby` and `echo` are registered from the start.
    #[must_use]
    pub fn room_kind<P: RoomPlugin>(mut self, kind: &str) -> Server {
        self.kinds.register::<P>(kind);
        self
    }

    /// Registers `factory` as room kind `kind`, for plugins that need more
    /// than their params to be made (shared resources, settings).
    #[must_use]
    pub fn room_kind_with(mut self, kind: &str, factory: Factory) -> Server {
        self.kinds.register_factory(kind, factory);
        self
    }

    /// Tells `observer` of every [`LifecycleEvent`], off the hot path.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Server {
        self.observer = Some(observer);
        self
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully.
    ///
    /// # Errors
    /// [`ServerError::Pool`] or [`ServerError::Thread`] when the server's threads cannot start.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            config,
            listener,
            ws,
            admin,
            tls,
            authority,
            stats,
            kinds,
            observer,
            cluster,
        } = self;
        if config.overload_queue_depth.is_some() {
            warn!("overload_queue_depth is no longer read: overload is judged by the server's own saturation");
        }
        let hooks = match observer {
            Some(observer) => {
                Hooks::with_observer(observer, config.hook_queue, stats.clone()).map_err(ServerError::Thread)?
            }
            None => Hooks::log_only(stats.clone()),
        };
        let origins = origins(&config, admin.as_ref().and_then(|admin| admin.local_addr().ok()));
        let ws_url = ws
            .as_ref()
            .and_then(|ws| ws.local_addr().ok())
            .map(|addr| crate::ws::url(addr, tls.is_some()));
        let watch = Watch::start(admin, admin::Pages::new(ws_url), &config, &stats, &hooks);
        let extras = Extras {
            authority,
            kinds,
            hooks,
            cluster,
        };
        if let Some(cluster) = &extras.cluster {
            let cluster = cluster.clone();
            stats.set_cluster_report(Arc::new(move || cluster.report()));
        }
        let core = Core::build(config, stats, extras)?;
        let reloads = reload_deny_list_on_sighup(&core.context);
        let listeners = accept::Listeners {
            tcp: listener,
            ws,
            origins,
        };
        serve(&core, listeners, tls, shutdown).await;
        shut_down(&core).await;
        watch.stop();
        if let Some(reloads) = reloads {
            reloads.abort();
        }
        core.context.hooks.emit(LifecycleEvent::ServerStopped);
        Ok(())
    }
}

/// Accepts connections until `shutdown` resolves, then goes on accepting for
/// [`Config::unready_delay_ms`] while `/readyz` says not ready, so that
/// balancers look elsewhere first.
async fn serve(
    core: &Core,
    listeners: accept::Listeners,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let context = &core.context;
    // Ready before the event says it started, so that whoever hears of the start finds it ready.
    context.stats.set_ready(true);
    if let Some(ws) = listeners.ws.as_ref().and_then(|ws| ws.local_addr().ok()) {
        info!(url = %crate::ws::url(ws, tls.is_some()), "WebSocket listener");
    }
    match listeners.tcp.local_addr() {
        Ok(addr) => context.hooks.emit(LifecycleEvent::ServerStarted { addr }),
        Err(e) => warn!(error = %e, "listening (address unknown)"),
    }
    // Boxed, so that dropping it closes the listeners.
    let mut accepting = Box::pin(accept::accept(listeners, tls, context.clone(), core.session_homes()));
    tokio::select! {
        () = &mut accepting => {}
        () = shutdown => {}
    }
    context.stats.set_ready(false);
    context.hooks.emit(LifecycleEvent::ServerDraining);
    let _ = tokio::time::timeout(context.config.unready_delay(), &mut accepting).await;
}

/// Drains within [`Config::shutdown_grace_ms`]: sessions stop reading, rooms
/// handle what they have, sessions say goodbye and their writers flush; then
/// the threads stop.
async fn shut_down(core: &Core) {
    let context = &core.context;
    let grace = context.config.shutdown_grace();
    let deadline = Instant::now() + grace;
    let _ = context.shutdown_deadline.set(deadline);
    info!(
        grace_ms = grace.as_millis(),
        sessions = context.stats.sessions_active.get(),
        "shutting down"
    );
    context.stop_reading.cancel();
    drain_rooms(context, deadline).await;
    if let Some(cluster) = &context.cluster {
        leave_cluster(context, cluster, deadline).await;
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
    core.stop_threads();
}

/// Closes the rooms owned here (their members, here and elsewhere, are told
/// the node is shutting down, after every message the rooms accepted), then
/// leaves the cluster: its names and leases go, and NATS gets what is queued.
async fn leave_cluster(context: &SessionContext, cluster: &Cluster, deadline: Instant) {
    let left = async {
        let _ = context.directory.close_all(crate::cluster::NODE_SHUTDOWN).await;
        cluster.leave().await;
    };
    if tokio::time::timeout_at(deadline, left).await.is_err() {
        warn!("the cluster was not left cleanly within the shutdown grace period");
    }
}

/// Drains the rooms once no session reads and no command waits for space
/// (see [`LateSends`](crate::session::LateSends)); a command that waited
/// meanwhile starts another round.
async fn drain_rooms(context: &SessionContext, deadline: Instant) {
    let late = &context.late_sends;
    loop {
        let waited = late.waited();
        let drained = async {
            late.settled().await;
            context.directory.drain().await
        };
        if tokio::time::timeout_at(deadline, drained).await.is_err() {
            warn!("rooms did not drain within the shutdown grace period");
            return;
        }
        if late.waited() == waited && late.is_settled() {
            return;
        }
    }
}

/// The overload monitor and the admin endpoint, on a thread of their own.
struct Watch {
    thread: Arbiter,
    stop_admin: CancellationToken,
}

impl Watch {
    fn start(
        admin: Option<std::net::TcpListener>,
        pages: admin::Pages,
        config: &Config,
        stats: &Arc<Stats>,
        hooks: &Hooks,
    ) -> Watch {
        let monitor = Arc::new(Monitor::new(stats.clone(), config, hooks.clone()));
        let thread = Arbiter::new();
        thread.spawn(monitor.clone().run());
        let stop_admin = CancellationToken::new();
        if let Some(admin) = admin {
            if let Ok(addr) = admin.local_addr() {
                info!(
                    console = %format!("http://{addr}/"),
                    playground = %format!("http://{addr}/play"),
                    "web pages"
                );
            }
            let stop = stop_admin.clone();
            thread.spawn(async move {
                match TcpListener::from_std(admin) {
                    Ok(admin) => admin::serve(admin, monitor, pages, stop).await,
                    Err(e) => warn!(error = %e, "could not start the admin endpoint"),
                }
            });
        }
        Watch { thread, stop_admin }
    }

    fn stop(self) {
        self.stop_admin.cancel();
        self.thread.stop();
    }
}

/// With a deny-list, reads it again on every SIGHUP, without a restart; a
/// file that cannot be read keeps the list in force.
fn reload_deny_list_on_sighup(context: &SessionContext) -> Option<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (authority, path) = (context.authority.clone()?, context.config.auth.deny_list.clone()?);
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGHUP: the deny-list will not be reloaded");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match auth::read_deny_list(&path) {
                Ok(denied) => {
                    info!(path = %path.display(), entries = denied.len(), "deny-list reloaded");
                    authority.replace_denied(denied);
                }
                Err(e) => warn!(path = %path.display(), error = %e, "deny-list not reloaded; the old one stays"),
            }
        }
    }))
}

/// The browser origins the WebSocket listener takes: `*` for any, the ones
/// configured, or else the admin endpoint's own (its pages use the listener).
fn origins(config: &Config, admin: Option<SocketAddr>) -> Origins {
    let configured = &config.ws.allowed_origins;
    if configured.iter().any(|origin| origin.trim() == "*") {
        return Origins::Any;
    }
    if !configured.is_empty() {
        return Origins::Only(configured.iter().map(|origin| origin.trim().to_owned()).collect());
    }
    let mut own = Vec::new();
    if let Some(admin) = admin {
        own.push(format!("http://{admin}"));
        if admin.ip().is_loopback() {
            own.push(format!("http://localhost:{}", admin.port()));
        }
    }
    Origins::Only(own)
}

/// The token checker `config` asks for, if any, its key files and deny-list read.
fn authority(config: &Config) -> Result<Option<Authority>, ServerError> {
    let settings = &config.auth;
    if settings.mode != AuthMode::Token {
        return Ok(None);
    }
    // The shared key is used for HS256 only, and read only when HS256 is accepted.
    let shared = if settings.algorithms.contains(&SigningAlgorithm::Hs256) {
        Some(settings.shared_key().map_err(ConfigError::Invalid)?)
    } else {
        None
    };
    let denied = match &settings.deny_list {
        Some(path) => auth::read_deny_list(path).map_err(|source| ServerError::DenyList {
            path: path.clone(),
            source,
        })?,
        None => Default::default(),
    };
    let sources = KeySources {
        shared: shared.as_deref(),
        public_key: settings.public_key.as_deref(),
        jwks: settings.jwks.as_deref(),
    };
    Authority::build(&settings.policy(), sources, denied)
        .map(Some)
        .map_err(|e| ConfigError::Invalid(InvalidSetting::new(e.setting(), e.to_string())).into())
}
