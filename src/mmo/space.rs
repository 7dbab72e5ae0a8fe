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

use crate::protocol::pb;
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
    /// The player's session id.
    pub id: u64,
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
    pub fn new(id: u64, name: Arc<str>, position: Point) -> Entity {
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

    /// The position and heading as clients are sent them.
    fn quantised(&self) -> Quantised {
        Quantised {
            x: fixed_point(self.position.x),
            y: fixed_point(self.position.y),
            heading: heading_steps(self.heading),
        }
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

/// What a player was last sent about an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quantised {
    x: i32,
    y: i32,
    heading: u32,
}

/// An entity in a player's view: what the player holds for it, and the
/// last tick it was found within the leaving distance.
#[derive(Debug, Clone, Copy)]
struct Seen {
    sent: Quantised,
    tick: u64,
}

/// What one player has been sent: the entities in its view.
#[derive(Debug, Default)]
pub struct View {
    seen: HashMap<u64, Seen>,
}

impl View {
    /// Entities in the view.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// What changed around `me` since the last update made, as the next
    /// update; `None` when nothing did. The view then holds what the update
    /// tells, so the caller must send it (or drop the player).
    pub fn diff(&mut self, me: usize, space: &Space, tick: u64, far_every: u64) -> Option<pb::WorldUpdate> {
        let settings = &space.settings;
        let center = space.entities[me].position;
        let enter = settings.aoi_radius;
        let leave = settings.aoi_radius + settings.aoi_hysteresis;
        let near = settings.aoi_radius / 2.0;
        let (enter2, leave2, near2) = (enter * enter, leave * leave, near * near);
        let mut update = pb::WorldUpdate {
            tick,
            ack_client_tick: space.entities[me].ack,
            ..pb::WorldUpdate::default()
        };
        for j in space.grid.around(center, leave) {
            let entity = &space.entities[j];
            let d2 = distance2(center, entity.position);
            match self.seen.get_mut(&entity.id) {
                Some(seen) if d2 <= leave2 => {
                    seen.tick = tick;
                    let far = j != me && d2 > near2;
                    if far && (tick.wrapping_add(entity.id)) % far_every != 0 {
                        continue;
                    }
                    let now = entity.quantised();
                    if now != seen.sent {
                        update.moved.push(pb::EntityMoved {
                            id: entity.id,
                            dx: now.x.saturating_sub(seen.sent.x),
                            dy: now.y.saturating_sub(seen.sent.y),
                            heading: now.heading,
                        });
                        seen.sent = now;
                    }
                }
                Some(_) => {}
                None if d2 <= enter2 => {
                    let sent = entity.quantised();
                    update.entered.push(pb::EntityEntered {
                        id: entity.id,
                        x: sent.x,
                        y: sent.y,
                        heading: sent.heading,
                        name: entity.name.to_string(),
                    });
                    self.seen.insert(entity.id, Seen { sent, tick });
                }
                None => {}
            }
        }
        let left = &mut update.left;
        self.seen.retain(|id, seen| {
            let stays = seen.tick == tick;
            if !stays {
                left.push(*id);
            }
            stays
        });
        let changed = !(update.entered.is_empty() && update.left.is_empty() && update.moved.is_empty());
        changed.then_some(update)
    }
}

fn distance2(a: Point, b: Point) -> f32 {
    let (dx, dy) = (a.x - b.x, a.y - b.y);
    dx * dx + dy * dy
}

/// The uniform grid: entity indices bucketed by cell (a counting sort,
/// rebuilt every tick).
#[derive(Debug, Default)]
pub struct Grid {
    cell: f32,
    columns: usize,
    rows: usize,
    /// `starts[c]..starts[c + 1]` are cell `c`'s entries of `order`.
    starts: Vec<u32>,
    /// Entity indices, cell by cell.
    order: Vec<u32>,
    /// Each entity's cell, by entity index.
    cells: Vec<usize>,
    /// The next free place of each cell in `order`, while rebuilding.
    cursor: Vec<u32>,
}

impl Grid {
    fn new(settings: &SpaceSettings) -> Grid {
        let count = |side: f32| (side / settings.cell_size).ceil().to_usize().unwrap_or(1).max(1);
        let (columns, rows) = (count(settings.width), count(settings.height));
        Grid {
            cell: settings.cell_size,
            columns,
            rows,
            starts: vec![0; columns * rows + 1],
            order: Vec::new(),
            cells: Vec::new(),
            cursor: Vec::new(),
        }
    }

    fn column(&self, x: f32) -> usize {
        (x / self.cell).floor().to_usize().unwrap_or(0).min(self.columns - 1)
    }

    fn row(&self, y: f32) -> usize {
        (y / self.cell).floor().to_usize().unwrap_or(0).min(self.rows - 1)
    }

    fn rebuild(&mut self, entities: &[Entity]) {
        let mut cells = std::mem::take(&mut self.cells);
        cells.clear();
        cells.extend(
            entities
                .iter()
                .map(|e| self.row(e.position.y) * self.columns + self.column(e.position.x)),
        );
        self.cells = cells;
        self.starts.fill(0);
        for &cell in &self.cells {
            self.starts[cell + 1] += 1;
        }
        for c in 1..self.starts.len() {
            self.starts[c] += self.starts[c - 1];
        }
        self.cursor.clone_from(&self.starts);
        self.order.clear();
        self.order.resize(entities.len(), 0);
        for (i, &cell) in self.cells.iter().enumerate() {
            let slot = &mut self.cursor[cell];
            self.order[usize::try_from(*slot).unwrap_or(0)] = u32::try_from(i).unwrap_or(u32::MAX);
            *slot += 1;
        }
    }

    /// Indices of the entities in the cells within `radius` of `center`.
    fn around(&self, center: Point, radius: f32) -> impl Iterator<Item = usize> + '_ {
        let (c0, c1) = (self.column(center.x - radius), self.column(center.x + radius));
        let (r0, r1) = (self.row(center.y - radius), self.row(center.y + radius));
        (r0..=r1).flat_map(move |row| {
            let first = row * self.columns + c0;
            let last = row * self.columns + c1;
            let (from, to) = (self.starts[first], self.starts[last + 1]);
            self.order[usize::try_from(from).unwrap_or(0)..usize::try_from(to).unwrap_or(0)]
                .iter()
                .filter_map(|&i| usize::try_from(i).ok())
        })
    }
}

/// Every entity of a world and the grid over them.
#[derive(Debug)]
pub struct Space {
    /// The world's settings.
    pub settings: SpaceSettings,
    /// The entities, densely packed.
    pub entities: Vec<Entity>,
    index: HashMap<u64, usize>,
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
    pub fn remove(&mut self, id: u64) -> Option<usize> {
        let i = self.index.remove(&id)?;
        self.entities.swap_remove(i);
        if let Some(moved) = self.entities.get(i) {
            self.index.insert(moved.id, i);
        }
        Some(i)
    }

    /// The index of entity `id`.
    pub fn index_of(&self, id: u64) -> Option<usize> {
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
mod tests {
    use super::*;

    fn settings() -> SpaceSettings {
        SpaceSettings {
            tick_hz: 20,
            width: 1000.0,
            height: 1000.0,
            aoi_radius: 50.0,
            aoi_hysteresis: 5.0,
            cell_size: 55.0,
            max_speed: 10.0,
        }
    }

    fn at(x: f32, y: f32) -> Point {
        Point { x, y }
    }

    /// A space of players at `points` (ids 1, 2, …) with a view each.
    fn space(points: &[Point]) -> (Space, Vec<View>) {
        let mut space = Space::new(settings());
        for (i, point) in points.iter().enumerate() {
            let id = u64::try_from(i).unwrap() + 1;
            space.insert(Entity::new(id, format!("p{id}").into(), *point));
        }
        space.grid.rebuild(&space.entities);
        let views = points.iter().map(|_| View::default()).collect();
        (space, views)
    }

    fn teleport(space: &mut Space, id: u64, to: Point) {
        let i = space.index_of(id).unwrap();
        space.entities[i].position = to;
        space.entities[i].target = to;
        space.grid.rebuild(&space.entities);
    }

    fn ids(entered: &[pb::EntityEntered]) -> Vec<u64> {
        let mut ids: Vec<u64> = entered.iter().map(|e| e.id).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn neighbours_enter_far_ones_do_not() {
        let (space, mut views) = space(&[at(100.0, 100.0), at(130.0, 100.0), at(400.0, 400.0)]);
        let update = views[0].diff(0, &space, 1, 2).unwrap();
        assert_eq!(ids(&update.entered), vec![1, 2]);
        assert!(update.left.is_empty() && update.moved.is_empty());
        assert_eq!(
            update.entered[0].x,
            fixed_point(update_position(&space, update.entered[0].id).x)
        );
        let lonely = views[2].diff(2, &space, 1, 2).unwrap();
        assert_eq!(ids(&lonely.entered), vec![3], "only itself");
    }

    fn update_position(space: &Space, id: u64) -> Point {
        space.entities[space.index_of(id).unwrap()].position
    }

    #[test]
    fn nothing_changed_means_no_update() {
        let (space, mut views) = space(&[at(100.0, 100.0), at(130.0, 100.0)]);
        assert!(views[0].diff(0, &space, 1, 2).is_some());
        assert_eq!(views[0].diff(0, &space, 2, 2), None);
        assert_eq!(views[0].diff(0, &space, 3, 2), None);
    }

    #[test]
    fn leaving_needs_the_hysteresis_margin_and_coming_back_enters_again() {
        let (mut space, mut views) = space(&[at(100.0, 100.0), at(130.0, 100.0)]);
        views[0].diff(0, &space, 1, 1);
        // Just beyond the radius, within the margin: still in view, only moved.
        teleport(&mut space, 2, at(153.0, 100.0));
        let update = views[0].diff(0, &space, 2, 1).unwrap();
        assert!(update.left.is_empty());
        assert_eq!(update.moved.len(), 1);
        assert_eq!(update.moved[0].dx, fixed_point(153.0) - fixed_point(130.0));
        // Beyond the margin: left.
        teleport(&mut space, 2, at(156.0, 100.0));
        assert_eq!(views[0].diff(0, &space, 3, 1).unwrap().left, vec![2]);
        // Back within the margin but outside the radius: not in view again yet.
        teleport(&mut space, 2, at(153.0, 100.0));
        assert_eq!(views[0].diff(0, &space, 4, 1), None);
        // Within the radius: entered.
        teleport(&mut space, 2, at(149.0, 100.0));
        assert_eq!(ids(&views[0].diff(0, &space, 5, 1).unwrap().entered), vec![2]);
    }

    #[test]
    fn a_removed_entity_leaves_every_view() {
        let (mut space, mut views) = space(&[at(100.0, 100.0), at(130.0, 100.0)]);
        views[0].diff(0, &space, 1, 1);
        space.remove(2);
        views.swap_remove(1);
        space.grid.rebuild(&space.entities);
        assert_eq!(views[0].diff(0, &space, 2, 1).unwrap().left, vec![2]);
    }

    #[test]
    fn far_entities_are_updated_every_far_every_ticks() {
        let (mut space, mut views) = space(&[at(100.0, 100.0), at(140.0, 100.0)]);
        views[0].diff(0, &space, 1, 2);
        let mut moves = 0;
        for tick in 2..10 {
            let x = 140.0 + f32::from(u8::try_from(tick).unwrap()) * 0.1;
            teleport(&mut space, 2, at(x, 100.0));
            if let Some(update) = views[0].diff(0, &space, tick, 2) {
                moves += update.moved.len();
            }
        }
        assert_eq!(moves, 4, "every second tick of 8");
    }

    #[test]
    fn movement_is_clamped_to_the_top_speed_and_the_bounds() {
        let settings = settings();
        let mut entity = Entity::new(1, "a".into(), at(10.0, 10.0));
        let input = |x, y, tick| MoveInput {
            to: at(x, y),
            heading: 0.0,
            client_tick: tick,
        };
        entity.steer(input(500.0, 10.0, 1), &settings);
        entity.advance(&settings);
        assert!((entity.position.x - 10.5).abs() < 1e-4, "{:?}", entity.position);
        assert!((entity.velocity.x - 10.0).abs() < 1e-3);
        entity.steer(input(-50.0, 2000.0, 2), &settings);
        assert_eq!(entity.target, at(0.0, 1000.0));
        for _ in 0..10_000 {
            entity.advance(&settings);
        }
        assert_eq!(entity.position, at(0.0, 1000.0));
    }

    #[test]
    fn fixed_point_and_headings() {
        assert_eq!(fixed_point(1.234), 123);
        assert_eq!(fixed_point(1.235_1), 124);
        assert_eq!(heading_steps(0.0), 0);
        assert_eq!(heading_steps(std::f32::consts::PI), 128);
        assert_eq!(heading_steps(-std::f32::consts::FRAC_PI_2), 192);
        assert_eq!(heading_steps(std::f32::consts::TAU - 0.001), 0);
    }

    #[test]
    fn the_grid_finds_everything_within_the_radius() {
        let points: Vec<Point> = (0..400_u16)
            .map(|i| at(f32::from(i % 20) * 49.0 + 3.0, f32::from(i / 20) * 47.0 + 5.0))
            .collect();
        let (space, _) = space(&points);
        let center = at(500.0, 480.0);
        let mut found: Vec<usize> = space
            .grid
            .around(center, 80.0)
            .filter(|&i| distance2(center, space.entities[i].position) <= 6400.0)
            .collect();
        found.sort_unstable();
        let expected: Vec<usize> = (0..points.len())
            .filter(|&i| distance2(center, points[i]) <= 6400.0)
            .collect();
        assert_eq!(found, expected);
        assert!(!expected.is_empty());
    }
}
