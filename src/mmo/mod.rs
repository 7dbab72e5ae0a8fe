//! MMO worlds: shared spaces with server-authoritative movement, grid
//! interest management and a fixed tick.
//!
//! Each world is a [`WorldSim`] actor on a thread of its own, created by the
//! first player to enter it (at most [`Config::max_worlds`] at once) and gone
//! when the last one leaves. Sessions reach it through a bounded inbox for
//! entering and leaving; their Moves go through an [`InputSlot`] that holds
//! only the latest one, which the world takes at the start of each tick. A
//! tick moves every entity, rebuilds the grid, and computes every player's
//! update in parallel (rayon), each encoded once and handed to the session's
//! outbox as its latest-state frame (see [`Outbox::try_send_latest`]).
//!
//! [`Config::max_worlds`]: crate::Config::max_worlds
//! [`Outbox::try_send_latest`]: crate::outbox::Outbox::try_send_latest

mod actor;
pub mod space;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use actix::Arbiter;
use tokio::sync::{mpsc, oneshot};

pub use actor::{TickLoad, WorldSim};
pub use space::{POSITION_QUANTUM, SpaceSettings};

use crate::broadcast::Broadcaster;
use crate::config::Config;
use crate::outbox::Outbox;
use crate::protocol::{MoveInput, PlayerName, Point, WorldName};
use crate::stats::Stats;

/// The latest Move of a session, waiting for its world's next tick.
#[derive(Debug, Default)]
pub struct InputSlot(Mutex<Option<MoveInput>>);

impl InputSlot {
    /// Replaces whatever Move was waiting with `input`.
    pub fn put(&self, input: MoveInput) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(input);
    }

    /// Takes the waiting Move, if any.
    pub fn take(&self) -> Option<MoveInput> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Sent by a session entering a world.
#[derive(Debug)]
pub struct Enter {
    /// Echoed by `WorldEntered`.
    pub request_id: u64,
    /// The session, which is also the entity's id.
    pub session: u64,
    /// The player's name.
    pub name: PlayerName,
    /// Where the player's frames go.
    pub outbox: Outbox,
    /// Where the player's Moves wait.
    pub input: Arc<InputSlot>,
    /// Where to appear; a random point when absent.
    pub spawn: Option<Point>,
    /// The world's answer.
    pub answer: oneshot::Sender<Entered>,
}

/// A world's answer to [`Enter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entered {
    /// In; `WorldEntered` was queued.
    Yes,
    /// The world holds as many players as allowed.
    Full,
    /// The world is closing (its last player left): ask the registry again.
    Closing,
}

/// What a world's inbox carries.
#[derive(Debug)]
pub enum WorldCommand {
    /// A player enters.
    Enter(Enter),
    /// A player leaves: on request (`request_id` set, answered `WorldLeft`),
    /// or because its session ends (`request_id` 0).
    Leave {
        /// Echoed by `WorldLeft`; 0 sends none.
        request_id: u64,
        /// The session leaving.
        session: u64,
    },
}

/// The sending side of one world's bounded inbox.
#[derive(Debug, Clone)]
pub struct WorldLink {
    /// Which world of that name.
    pub id: u64,
    /// The inbox.
    pub inbox: mpsc::Sender<WorldCommand>,
}

/// What every world needs from the server.
#[derive(Debug, Clone)]
pub struct WorldContext {
    /// The space's settings.
    pub settings: SpaceSettings,
    /// Players per world.
    pub max_players: usize,
    /// Ticks an update may stay unsent before the player is dropped.
    pub stale_ticks: u32,
    /// Inbox capacity.
    pub inbox: usize,
    /// The rayon pool the ticks run their parallel work on.
    pub broadcaster: Arc<Broadcaster>,
    /// Metrics.
    pub stats: Arc<Stats>,
}

/// Why a world could not be found or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoWorld {
    /// As many worlds as allowed exist.
    TooMany,
    /// The server is stopping.
    Stopping,
}

/// The worlds alive, by name; cheap to clone.
#[derive(Clone)]
pub struct Worlds {
    inner: Arc<Registry>,
}

struct Registry {
    context: WorldContext,
    max_worlds: usize,
    state: Mutex<RegistryState>,
}

#[derive(Default)]
struct RegistryState {
    worlds: HashMap<WorldName, (WorldLink, Arbiter)>,
    next_id: u64,
    stopped: bool,
}

impl std::fmt::Debug for Worlds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worlds")
            .field("max_worlds", &self.inner.max_worlds)
            .finish()
    }
}

impl Worlds {
    /// A registry of worlds made with `config`'s settings.
    pub fn new(config: &Config, broadcaster: Arc<Broadcaster>, stats: Arc<Stats>) -> Worlds {
        let context = WorldContext {
            settings: SpaceSettings {
                tick_hz: config.world_tick_hz,
                width: config.world_width,
                height: config.world_height,
                aoi_radius: config.world_aoi_radius,
                aoi_hysteresis: config.world_aoi_hysteresis,
                cell_size: config.world_cell_size,
                max_speed: config.world_max_speed,
            },
            max_players: config.world_max_players,
            stale_ticks: config.world_stale_ticks,
            inbox: config.room_inbox,
            broadcaster,
            stats,
        };
        Worlds {
            inner: Arc::new(Registry {
                context,
                max_worlds: config.max_worlds,
                state: Mutex::new(RegistryState::default()),
            }),
        }
    }

    /// The world named `name`, started on a thread of its own if it does not exist.
    ///
    /// # Errors
    /// [`NoWorld`] when the limit is reached or the server is stopping.
    pub fn get_or_start(&self, name: &WorldName) -> Result<WorldLink, NoWorld> {
        let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.stopped {
            return Err(NoWorld::Stopping);
        }
        if let Some((link, _)) = state.worlds.get(name) {
            return Ok(link.clone());
        }
        if state.worlds.len() >= self.inner.max_worlds {
            return Err(NoWorld::TooMany);
        }
        state.next_id += 1;
        let id = state.next_id;
        let (tx, commands) = mpsc::channel(self.inner.context.inbox);
        let link = WorldLink { id, inbox: tx };
        let arbiter = Arbiter::new();
        let (context, registry, world) = (self.inner.context.clone(), self.clone(), name.clone());
        arbiter.spawn_fn(move || WorldSim::launch(world, id, context, registry, commands));
        state.worlds.insert(name.clone(), (link.clone(), arbiter));
        self.inner.context.stats.worlds_open.inc();
        Ok(link)
    }

    /// Forgets world `id` named `name` (it is closing); its thread ends.
    pub(crate) fn forget(&self, name: &WorldName, id: u64) {
        let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.worlds.get(name).is_some_and(|(link, _)| link.id == id)
            && let Some((_, arbiter)) = state.worlds.remove(name)
        {
            arbiter.stop();
            self.inner.context.stats.worlds_open.dec();
        }
    }

    /// Stops every world (server shutdown); no world starts after this.
    pub fn stop(&self) {
        let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.stopped = true;
        for (_, (_, arbiter)) in state.worlds.drain() {
            arbiter.stop();
            self.inner.context.stats.worlds_open.dec();
        }
    }
}
