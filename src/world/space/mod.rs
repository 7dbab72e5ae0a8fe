//! A world's space, free of actors and sockets: entities and their movement,
//! the interest grid, and each player's view (what it was last sent) with the
//! diff that becomes its next `WorldUpdate`. The world actor drives it once
//! per tick; the tests drive it directly.
//!
//! Interest rule: an entity enters a player's view within `aoi_radius` and
//! leaves it beyond `aoi_radius + aoi_hysteresis`. Entities of the view within
//! half the radius (the near tier, the player's own entity included) are
//! checked for movement every tick; the others (the far tier) every
//! `far_every` ticks, staggered by entity id, where `far_every` is 2 and
//! doubles with each degradation level.

use std::sync::Arc;

use num_traits::ToPrimitive;
// Entity ids are session ids, chosen by the server: a fast hash is safe here.
use rustc_hash::FxHashMap as HashMap;

mod grid;
mod view;

pub use view::View;

use self::grid::Grid;
use crate::ids::SessionId;
use crate::protocol::{MoveInput, Point};

/// Units per step of the fixed point positions sent to clients.
pub const POSITION_QUANTUM: f32 = 0.01;

/// The fixed settings of a world.
#[derive(Debug, Clone, PartialEq)]
pub struct SpaceSettings {
    /// Ticks per second.
    pub tick_hz: u32,
    /// x runs from 0 to this.
    pub width: f32,
    /// y runs from 0 to this.
    pub height: f32,
    /// Entities within this distance enter a player's view.
    pub aoi_radius: f32,
    /// Entities in view leave it beyond `aoi_radius` plus this.
    pub aoi_hysteresis: f32,
    /// Side of a grid cell.
    pub cell_size: f32,
    /// Fastest movement, units per second of world time.
    pub max_speed: f32,
    /// Entities one update may announce as entered; more wait for later
    /// updates, so that one update (entering a crowd) stays bounded.
    pub max_entered_per_update: usize,
}

impl SpaceSettings {
    /// World time one tick advances, seconds.
    pub fn dt(&self) -> f32 {
        1.0 / self.tick_hz.to_f32().unwrap_or(1.0)
    }

    /// Clamps `point` into the bounds.
    pub fn clamp(&self, point: Point) -> Point {
        Point {
            x: point.x.clamp(0.0, self.width),
            y: point.y.clamp(0.0, self.height),
        }
    }
}

/// One entity: a player's avatar.
#[derive(Debug, Clone)]
pub struct Entity {
    /// The player's session (an entity is a player's avatar).
    pub id: SessionId,
    /// The player's name.
    pub name: Arc<str>,
    /// Where it is.
    pub position: Point,
    /// Where its player wants it to be.
    pub target: Point,
    /// Its movement over the last tick, units per second.
    pub velocity: Point,
    /// Radians counter-clockwise from east.
    pub heading: f32,
    /// The client_tick of the latest Move taken.
    pub ack: u32,
}

impl Entity {
    /// An entity standing at `position`.
    pub fn new(id: SessionId, name: Arc<str>, position: Point) -> Entity {
        Entity {
            id,
            name,
            position,
            target: position,
            velocity: Point { x: 0.0, y: 0.0 },
            heading: 0.0,
            ack: 0,
        }
    }

    /// Takes a player's Move: the target (clamped into the world) and heading.
    pub fn steer(&mut self, input: MoveInput, settings: &SpaceSettings) {
        self.target = settings.clamp(input.to);
        self.heading = input.heading;
        self.ack = input.client_tick;
    }

    /// Moves toward the target by at most `max_speed × dt`.
    pub fn advance(&mut self, settings: &SpaceSettings) {
        let dt = settings.dt();
        let (dx, dy) = (self.target.x - self.position.x, self.target.y - self.position.y);
        let distance = dx.hypot(dy);
        let reach = settings.max_speed * dt;
        let previous = self.position;
        self.position = if distance <= reach {
            self.target
        } else {
            let scale = reach / distance;
            settings.clamp(Point {
                x: self.position.x + dx * scale,
                y: self.position.y + dy * scale,
            })
        };
        self.velocity = Point {
            x: (self.position.x - previous.x) / dt,
            y: (self.position.y - previous.y) / dt,
        };
    }
}

/// A coordinate in fixed point ([`POSITION_QUANTUM`]).
pub fn fixed_point(coordinate: f32) -> i32 {
    (coordinate / POSITION_QUANTUM).round().to_i32().unwrap_or(0)
}

/// A heading in 1/256ths of a turn counter-clockwise from east, 0 to 255.
pub fn heading_steps(radians: f32) -> u32 {
    let turns = (radians / std::f32::consts::TAU).rem_euclid(1.0);
    (turns * 256.0).round().to_u32().unwrap_or(0) % 256
}

/// The squared distance between two points.
fn distance2(a: Point, b: Point) -> f32 {
    let (dx, dy) = (a.x - b.x, a.y - b.y);
    dx * dx + dy * dy
}

/// Every entity of a world and the grid over them.
#[derive(Debug)]
pub struct Space {
    /// The world's settings.
    pub settings: SpaceSettings,
    /// The entities, densely packed.
    pub entities: Vec<Entity>,
    index: HashMap<SessionId, usize>,
    grid: Grid,
}

impl Space {
    /// An empty space.
    pub fn new(settings: SpaceSettings) -> Space {
        Space {
            grid: Grid::new(&settings),
            settings,
            entities: Vec::new(),
            index: HashMap::default(),
        }
    }

    /// Adds an entity; returns its index (until the next removal).
    pub fn insert(&mut self, entity: Entity) -> usize {
        let i = self.entities.len();
        self.index.insert(entity.id, i);
        self.entities.push(entity);
        i
    }

    /// Removes entity `id`; the last entity takes its index, which is returned
    /// with that entity's id so that parallel arrays can follow.
    pub fn remove(&mut self, id: SessionId) -> Option<usize> {
        let i = self.index.remove(&id)?;
        self.entities.swap_remove(i);
        if let Some(moved) = self.entities.get(i) {
            self.index.insert(moved.id, i);
        }
        Some(i)
    }

    /// The index of entity `id`.
    pub fn index_of(&self, id: SessionId) -> Option<usize> {
        self.index.get(&id).copied()
    }

    /// Moves every entity one tick and rebuilds the grid.
    pub fn advance(&mut self) {
        for entity in &mut self.entities {
            entity.advance(&self.settings);
        }
        self.grid.rebuild(&self.entities);
    }

    /// A random point of the world.
    pub fn random_point(&self) -> Point {
        Point {
            x: fastrand::f32() * self.settings.width,
            y: fastrand::f32() * self.settings.height,
        }
    }
}

#[cfg(test)]
mod tests;
