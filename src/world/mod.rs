//! Game worlds: shared spaces with server-authoritative movement, grid
//! interest management and a fixed tick. (Rooms are found through the room
//! directory, [`crate::directory`]; worlds through [`Worlds`] here.)
//!
//! Each world is a [`World`] actor on one of the world threads made at
//! start ([`Config::world_threads`]), created by the
//! first player to enter it (at most [`Config::max_worlds`] at once) and gone
//! when the last one leaves. Sessions reach it through a bounded inbox for
//! entering and leaving; their Moves go through an [`InputSlot`] that holds
//! only the latest one, which the world takes at the start of each tick. A
//! tick moves every entity, rebuilds the grid, and computes every player's
//! update in parallel (rayon), each encoded once and handed to the session's
//! outbox as its latest-state frame (see [`Outbox::try_send_latest`]).
//!
//! [`Config::max_worlds`]: crate::Config::max_worlds
//! [`Config::world_threads`]: crate::Config::world_threads

mod actor;
mod load;
mod registry;
pub mod space;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub use actor::World;
pub use load::TickLoad;
pub use registry::{EnterError, Worlds};
pub use space::{POSITION_QUANTUM, SpaceSettings};

use crate::broadcast::Broadcaster;
use crate::ids::{SessionId, WorldId};
use crate::inbox::{Inbox, Reply};
use crate::outbox::Outbox;
use crate::protocol::{MoveInput, PlayerName, Point};
use crate::stats::Stats;

/// The latest Move of a session, waiting for its world's next tick; and
/// whether the session is held for a resume (its connection gone, its
/// entity kept).
#[derive(Debug, Default)]
pub struct InputSlot {
    latest: Mutex<Option<MoveInput>>,
    held: AtomicBool,
}

impl InputSlot {
    /// Replaces whatever Move was waiting with `input`.
    pub fn put(&self, input: MoveInput) {
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(input);
    }

    /// Takes the waiting Move, if any.
    pub fn take(&self) -> Option<MoveInput> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// The session is held: its world keeps the entity though its connection closes.
    pub fn hold(&self) {
        self.held.store(true, Ordering::Release);
    }

    /// The session was resumed (or never held).
    pub fn resume(&self) {
        self.held.store(false, Ordering::Release);
    }

    /// Whether the session is held for a resume.
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }
}

/// A player arriving in a world.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Echoed by `WorldEntered`.
    pub request_id: u64,
    /// The session, which is also the entity's id.
    pub session: SessionId,
    /// The player's name.
    pub name: PlayerName,
    /// Where the player's frames go.
    pub outbox: Outbox,
    /// Where the player's Moves wait.
    pub input: Arc<InputSlot>,
    /// Where to appear; a random point when absent.
    pub spawn: Option<Point>,
}

/// Sent on behalf of a session entering a world.
#[derive(Debug)]
pub struct Enter {
    /// Who arrives.
    pub arrival: Arrival,
    /// The world's answer.
    pub answer: Reply<Entered>,
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
    /// A player enters; a player already in (its session resumed) gets
    /// `WorldEntered` and a fresh full view on its new connection.
    Enter(Enter),
    /// A player leaves: on request (`request_id` set, answered `WorldLeft`),
    /// or because its session ends (`request_id` 0).
    Leave {
        /// Echoed by `WorldLeft`; 0 sends none.
        request_id: u64,
        /// The session leaving.
        session: SessionId,
    },
}

/// A world's address: its bounded inbox and which world of its name it is.
#[derive(Debug, Clone)]
pub struct WorldHandle {
    /// Which world of that name.
    pub id: WorldId,
    /// The inbox.
    pub inbox: Inbox<WorldCommand>,
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
