//! The server's parts, built from its configuration: the threads, the
//! broadcast pool, the room directory, the worlds and the context every
//! session shares. The server and the fuzzing entry points build them the
//! same way.

use std::sync::Arc;
use std::time::Duration;

use actix::{Arbiter, ArbiterHandle};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ServerError;
use crate::auth::Authority;
use crate::broadcast::Broadcaster;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::directory::{Directory, Names};
use crate::lifecycle::Hooks;
use crate::overload;
use crate::room::{Kinds, PluginLimits, RoomContext};
use crate::session::{LateSends, ResumeTokens, SessionContext};
use crate::stats::Stats;
use crate::world::Worlds;

/// The running parts of a server. Dropping them does not stop the threads:
/// [`Core::stop_threads`] does, at the end of shutdown.
pub(crate) struct Core {
    /// What every session shares.
    pub(crate) context: Arc<SessionContext>,
    /// Where sessions live, one arbiter per thread.
    pub(crate) session_threads: Vec<Arbiter>,
    /// Where the directory and the rooms live (none: beside the sessions).
    room_threads: Vec<Arbiter>,
    /// Where the game worlds live.
    world_threads: Vec<Arbiter>,
}

/// What the embedding application adds to a configuration.
pub(crate) struct Extras {
    /// Checks Hello's token.
    pub(crate) authority: Option<Authority>,
    /// The room kinds.
    pub(crate) kinds: Kinds,
    /// Where lifecycle events go.
    pub(crate) hooks: Hooks,
    /// This node's place in a cluster, if it is in one.
    pub(crate) cluster: Option<Cluster>,
}

impl Core {
    /// Starts the threads and actors `config` asks for. Must be called inside
    /// an actix system.
    ///
    /// # Errors
    /// [`ServerError::Pool`] when the broadcast threads cannot start.
    pub(crate) fn build(config: Config, stats: Arc<Stats>, extras: Extras) -> Result<Core, ServerError> {
        let Extras {
            authority,
            kinds,
            hooks,
            cluster,
        } = extras;
        let session_threads: Vec<Arbiter> = (0..config.session_threads).map(|_| Arbiter::new()).collect();
        let room_threads: Vec<Arbiter> = (0..config.room_threads).map(|_| Arbiter::new()).collect();
        let world_threads: Vec<Arbiter> = (0..config.world_threads).map(|_| Arbiter::new()).collect();
        let policy = config.sched_policy;
        for thread in session_threads.iter().chain(&room_threads).chain(&world_threads) {
            thread.spawn_fn(move || policy.apply_or_warn("actor"));
            thread.spawn(overload::probe_loop_lag(stats.clone()));
        }
        let broadcaster = Arc::new(Broadcaster::new(
            config.broadcast_threads,
            config.broadcast_parallel_threshold,
            policy,
        )?);
        let world_homes = world_threads.iter().map(Arbiter::handle).collect();
        let worlds = Worlds::new(&config, world_homes, broadcaster.clone(), stats.clone());
        // With no room threads, the directory and the rooms share the session threads.
        let room_homes = if room_threads.is_empty() {
            &session_threads
        } else {
            &room_threads
        };
        let (room_stats, room_hooks, room_inbox) = (stats.clone(), hooks.clone(), config.room_inbox);
        let (max_members, members_per_frame) = (config.max_room_members, config.members_per_frame());
        let history_size = config.room_history_size;
        let history_ttl = Duration::from_millis(config.room_history_ttl_ms);
        let resume_grace = config.resume_grace();
        let plugins = PluginLimits {
            kinds: Arc::new(kinds),
            hook_budget: Duration::from_micros(config.plugin_hook_budget_us),
            max_timers: config.plugin_max_timers,
            max_inputs: config.plugin_max_inputs,
            max_tick_hz: config.plugin_max_tick_hz,
        };
        let directory = Directory::start(
            room_homes.iter().map(Arbiter::handle).collect(),
            (config.world_inbox, cluster.clone()),
            |on_empty| RoomContext {
                on_empty,
                broadcaster,
                plugins,
                listing: Arc::default(),
                stats: room_stats,
                hooks: room_hooks,
                inbox: room_inbox,
                max_members,
                members_per_frame,
                history_size,
                history_ttl,
                resume_grace,
            },
        );
        let context = Arc::new(SessionContext {
            config,
            directory,
            worlds,
            names: Names::default(),
            cluster,
            stats,
            hooks,
            authority,
            stop_reading: CancellationToken::new(),
            closing: CancellationToken::new(),
            tracker: TaskTracker::new(),
            shutdown_deadline: Arc::default(),
            late_sends: LateSends::default(),
            resume: ResumeTokens::default(),
        });
        Ok(Core {
            context,
            session_threads,
            room_threads,
            world_threads,
        })
    }

    /// The session threads' handles, to place connections on.
    pub(crate) fn session_homes(&self) -> Vec<ArbiterHandle> {
        self.session_threads.iter().map(Arbiter::handle).collect()
    }

    /// Stops the session, room and world threads (the end of shutdown).
    pub(crate) fn stop_threads(&self) {
        for arbiter in self
            .session_threads
            .iter()
            .chain(&self.room_threads)
            .chain(&self.world_threads)
        {
            arbiter.stop();
        }
    }
}
