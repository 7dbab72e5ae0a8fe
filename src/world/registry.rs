//! The worlds alive, by name: found or started for a player entering one,
//! forgotten when their last player leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use actix::Arbiter;

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
    state: Mutex<RegistryState>,
}

#[derive(Default)]
struct RegistryState {
    worlds: HashMap<WorldName, (WorldHandle, Arbiter)>,
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

    /// The world named `name`, started on a thread of its own if it does not exist.
    fn get_or_start(&self, name: &WorldName) -> Result<WorldHandle, EnterError> {
        let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.stopped {
            return Err(EnterError::Stopping);
        }
        if let Some((world, _)) = state.worlds.get(name) {
            return Ok(world.clone());
        }
        if state.worlds.len() >= self.inner.max_worlds {
            return Err(EnterError::TooMany(self.inner.max_worlds));
        }
        state.next_id += 1;
        let id = WorldId::new(state.next_id);
        let context = &self.inner.context;
        let (tx, mailbox) = watched_inbox(context.inbox, context.stats.inbox_fill.clone());
        let world = WorldHandle { id, inbox: tx };
        let arbiter = Arbiter::new();
        let (context, registry, named) = (self.inner.context.clone(), self.clone(), name.clone());
        arbiter.spawn_fn(move || World::launch(named, id, context, registry, mailbox));
        state.worlds.insert(name.clone(), (world.clone(), arbiter));
        self.inner.context.stats.worlds_open.inc();
        Ok(world)
    }

    /// Forgets world `id` named `name` (it is closing); its thread ends.
    pub(crate) fn forget(&self, name: &WorldName, id: WorldId) {
        let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.worlds.get(name).is_some_and(|(world, _)| world.id == id)
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
