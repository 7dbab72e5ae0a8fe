//! The worlds alive, by name: found or started for a player entering one,
//! forgotten when their last player leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use actix::ArbiterHandle;

use super::{Arrival, Enter, Entered, SpaceSettings, World, WorldCommand, WorldContext, WorldHandle};
use crate::broadcast::Broadcaster;
use crate::config::Config;
use crate::ids::WorldId;
use crate::inbox::{PostOnDrop, watched_inbox};
use crate::protocol::{ErrorCode, WorldName};
use crate::stats::Stats;

/// How often entering is tried when the world found was just closing.
const ENTER_ATTEMPTS: u32 = 3;

/// Why a player could not enter a world.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnterError {
    /// As many worlds as allowed exist.
    #[error("the server holds {0} worlds already (see Config::max_worlds)")]
    TooMany(usize),
    /// The world holds as many players as allowed.
    #[error("world {0} holds as many players as allowed (see Config::world_max_players)")]
    Full(WorldName),
    /// The server is stopping.
    #[error("the server is shutting down")]
    Stopping,
    /// Every world found was closing; the client may try again.
    #[error("world {0} could not be entered; try again")]
    Busy(WorldName),
}

impl EnterError {
    /// The error code the client is sent.
    pub fn code(&self) -> ErrorCode {
        match self {
            EnterError::TooMany(_) | EnterError::Full(_) => ErrorCode::WorldFull,
            EnterError::Stopping => ErrorCode::ServerShuttingDown,
            EnterError::Busy(_) => ErrorCode::Internal,
        }
    }
}

/// The worlds alive, by name; cheap to clone.
#[derive(Clone)]
pub struct Worlds {
    inner: Arc<Registry>,
}

struct Registry {
    context: WorldContext,
    max_worlds: usize,
    /// The threads worlds run on, made at start.
    homes: Vec<ArbiterHandle>,
    state: Mutex<RegistryState>,
}

#[derive(Default)]
struct RegistryState {
    worlds: HashMap<WorldName, WorldHandle>,
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
    /// A registry of worlds made with `config`'s settings, run on `homes`
    /// (at least one thread), spread round robin.
    pub fn new(config: &Config, homes: Vec<ArbiterHandle>, broadcaster: Arc<Broadcaster>, stats: Arc<Stats>) -> Worlds {
        let context = WorldContext {
            settings: SpaceSettings {
                tick_hz: config.world_tick_hz,
                width: config.world_width,
                height: config.world_height,
                aoi_radius: config.world_aoi_radius,
                aoi_hysteresis: config.world_aoi_hysteresis,
                cell_size: config.world_cell_size,
                max_speed: config.world_max_speed,
                max_entered_per_update: config.world_max_entered_per_update,
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
                homes,
                state: Mutex::new(RegistryState::default()),
            }),
        }
    }

    /// Puts the arriving player in world `name` (started if it does not
    /// exist); returns the world's handle. A world found closing is asked for
    /// again, a few times.
    ///
    /// # Errors
    /// [`EnterError`] saying why the player is not in the world.
    pub async fn enter(&self, name: &WorldName, arrival: &Arrival) -> Result<WorldHandle, EnterError> {
        for _ in 0..ENTER_ATTEMPTS {
            let world = self.get_or_start(name)?;
            // Leaves again if this call is dropped before the world answers (its session stopped).
            let leave = WorldCommand::Leave {
                request_id: 0,
                session: arrival.session,
            };
            let undo = PostOnDrop::new(&world.inbox, leave);
            let entered = world
                .inbox
                .ask(|answer| {
                    WorldCommand::Enter(Enter {
                        arrival: arrival.clone(),
                        answer,
                    })
                })
                .await;
            undo.disarm();
            match entered {
                Ok(Entered::Yes) => return Ok(world),
                Ok(Entered::Full) => return Err(EnterError::Full(name.clone())),
                Ok(Entered::Closing) | Err(_) => {}
            }
        }
        Err(EnterError::Busy(name.clone()))
    }

    /// The world named `name`, started on one of the world threads if it does not exist.
    fn get_or_start(&self, name: &WorldName) -> Result<WorldHandle, EnterError> {
        let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.stopped {
            return Err(EnterError::Stopping);
        }
        if let Some(world) = state.worlds.get(name) {
            return Ok(world.clone());
        }
        let Some(home) = self
            .inner
            .homes
            .get(usize::try_from(state.next_id).unwrap_or(0) % self.inner.homes.len().max(1))
        else {
            return Err(EnterError::Stopping);
        };
        if state.worlds.len() >= self.inner.max_worlds {
            return Err(EnterError::TooMany(self.inner.max_worlds));
        }
        state.next_id += 1;
        let id = WorldId::new(state.next_id);
        let context = &self.inner.context;
        let (tx, mailbox) = watched_inbox(context.inbox, context.stats.inbox_fill.clone());
        let world = WorldHandle { id, inbox: tx };
        let (context, registry, named) = (self.inner.context.clone(), self.clone(), name.clone());
        if !home.spawn_fn(move || World::launch(named, id, context, registry, mailbox)) {
            return Err(EnterError::Stopping);
        }
        state.worlds.insert(name.clone(), world.clone());
        self.inner.context.stats.worlds_open.inc();
        Ok(world)
    }

    /// Forgets world `id` named `name` (it is closing and stops).
    pub(crate) fn forget(&self, name: &WorldName, id: WorldId) {
        let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.worlds.get(name).is_some_and(|world| world.id == id) {
            state.worlds.remove(name);
            self.inner.context.stats.worlds_open.dec();
        }
    }

    /// Forgets every world (server shutdown): their inboxes end once the
    /// sessions' handles go, and they stop; no world starts after this.
    pub fn stop(&self) {
        let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.stopped = true;
        for _ in state.worlds.drain() {
            self.inner.context.stats.worlds_open.dec();
        }
    }
}
