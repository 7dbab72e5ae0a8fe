//! Lifecycle events, for the logs and for an [`Observer`] the embedding
//! application registers with [`Server::with_observer`].
//!
//! Every event is logged through `tracing` under its [`LifecycleEvent::name`]
//! (field `event`), so the logs and the hooks share one vocabulary. Observers
//! are called off the hot path, in order, on a thread of their own: events
//! wait in a queue bounded by [`Config::hook_queue`]; when it is full the event
//! is dropped, counted (`tavern_hook_events_dropped_total`) and logged.
//!
//! [`Server::with_observer`]: crate::Server::with_observer
//! [`Config::hook_queue`]: crate::Config::hook_queue

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use tracing::{debug, info, warn};

use crate::ids::{DisconnectReason, OverloadLevel, SessionId};
use crate::protocol::{PlayerName, RoomName};
use crate::stats::Stats;

/// Something that happened in the server's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// The server listens and takes connections.
    ServerStarted {
        /// The game address.
        addr: SocketAddr,
    },
    /// Shutdown began: no new connections; sessions finish what is queued.
    ServerDraining,
    /// Every connection is closed or abandoned; the server's threads stop.
    ServerStopped,
    /// A connection was accepted and given a session.
    ConnectionOpened {
        /// Its session.
        session: SessionId,
        /// The client's address.
        peer: SocketAddr,
    },
    /// A session ended.
    ConnectionClosed {
        /// The session.
        session: SessionId,
        /// The client's address.
        peer: SocketAddr,
        /// Why.
        reason: DisconnectReason,
    },
    /// A connection took over a session with its resume token: from now on
    /// the connection's events carry `session`, the resumed session's id.
    SessionResumed {
        /// The resumed session.
        session: SessionId,
        /// The connection's own id, as `ConnectionOpened` gave it.
        connection: SessionId,
        /// The new connection's address.
        peer: SocketAddr,
    },
    /// A session's Hello was accepted.
    SessionAuthenticated {
        /// The session.
        session: SessionId,
        /// The player's name.
        name: PlayerName,
    },
    /// A room was created by its first join.
    RoomCreated {
        /// The room.
        room: RoomName,
    },
    /// A room stopped after its last member left.
    RoomDisposed {
        /// The room.
        room: RoomName,
    },
    /// The overload level changed (see [`crate::overload`]).
    OverloadChanged {
        /// The new level.
        level: OverloadLevel,
    },
}

impl LifecycleEvent {
    /// The event's name in the logs (`event` field).
    pub fn name(&self) -> &'static str {
        match self {
            LifecycleEvent::ServerStarted { .. } => "server_started",
            LifecycleEvent::ServerDraining => "server_draining",
            LifecycleEvent::ServerStopped => "server_stopped",
            LifecycleEvent::ConnectionOpened { .. } => "connection_opened",
            LifecycleEvent::ConnectionClosed { .. } => "connection_closed",
            LifecycleEvent::SessionAuthenticated { .. } => "session_authenticated",
            LifecycleEvent::SessionResumed { .. } => "session_resumed",
            LifecycleEvent::RoomCreated { .. } => "room_created",
            LifecycleEvent::RoomDisposed { .. } => "room_disposed",
            LifecycleEvent::OverloadChanged { .. } => "overload_changed",
        }
    }

    fn log(&self) {
        let event = self.name();
        match self {
            LifecycleEvent::ServerStarted { addr } => info!(event, %addr, "listening on {addr}"),
            LifecycleEvent::ServerDraining => info!(event, "draining"),
            LifecycleEvent::ServerStopped => info!(event, "stopped"),
            LifecycleEvent::ConnectionOpened { session, peer } => debug!(event, %session, %peer),
            LifecycleEvent::ConnectionClosed { session, peer, reason } => {
                debug!(event, %session, %peer, reason = reason.as_str());
            }
            LifecycleEvent::SessionAuthenticated { session, name } => debug!(event, %session, %name),
            LifecycleEvent::SessionResumed {
                session,
                connection,
                peer,
            } => debug!(event, %session, %connection, %peer),
            LifecycleEvent::RoomCreated { room } | LifecycleEvent::RoomDisposed { room } => debug!(event, %room),
            // Logged by the monitor, with the figure behind the change.
            LifecycleEvent::OverloadChanged { .. } => {}
        }
    }
}

/// Told of every [`LifecycleEvent`], in order, on a thread of its own.
pub trait Observer: Send + Sync + 'static {
    /// Called once per event. A slow observer delays only later events (and,
    /// once the queue is full, loses some); it never slows the server.
    fn on_event(&self, event: &LifecycleEvent);
}

/// Where events go: the log, and the observer's queue if there is one. Cheap to clone.
#[derive(Clone)]
pub struct Hooks {
    queue: Option<SyncSender<LifecycleEvent>>,
    stats: Arc<Stats>,
}

impl Hooks {
    /// Events are logged only.
    pub fn log_only(stats: Arc<Stats>) -> Hooks {
        Hooks { queue: None, stats }
    }

    /// Events are logged and passed to `observer` on a new thread, through a
    /// queue of `capacity` events. The thread ends once every `Hooks` is dropped.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn with_observer(observer: Arc<dyn Observer>, capacity: usize, stats: Arc<Stats>) -> std::io::Result<Hooks> {
        let (queue, events) = sync_channel::<LifecycleEvent>(capacity);
        std::thread::Builder::new().name("tavern-hooks".into()).spawn(move || {
            for event in events {
                observer.on_event(&event);
            }
        })?;
        Ok(Hooks {
            queue: Some(queue),
            stats,
        })
    }

    /// Logs `event` and queues it for the observer, dropping it if the queue is full.
    pub fn emit(&self, event: LifecycleEvent) {
        event.log();
        let Some(queue) = &self.queue else { return };
        if let Err(TrySendError::Full(event)) = queue.try_send(event) {
            self.stats.hook_events_dropped.inc();
            let dropped = self.stats.hook_events_dropped.get();
            if dropped.is_power_of_two() {
                warn!(
                    event = event.name(),
                    dropped, "lifecycle events dropped: the observer is behind (see Config::hook_queue)"
                );
            }
        }
    }
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("observer", &self.queue.is_some())
            .finish()
    }
}
