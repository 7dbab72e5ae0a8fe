//! The space's movement, interest and grid rules.

use super::*;
use crate::protocol::pb;

fn settings() -> SpaceSettings {
    SpaceSettings {
        tick_hz: 20,
        width: 1000.0,
        height: 1000.0,
        aoi_radius: 50.0,
        aoi_hysteresis: 5.0,
        cell_size: 55.0,
        max_speed: 10.0,
        max_entered_per_update: usize::MAX,
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
        space.insert(Entity::new(SessionId::new(id), format!("p{id}").into(), *point));
    }
    space.grid.rebuild(&space.entities);
    let views = points.iter().map(|_| View::default()).collect();
    (space, views)
}

fn teleport(space: &mut Space, id: u64, to: Point) {
    let i = space.index_of(SessionId::new(id)).unwrap();
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
    space.entities[space.index_of(SessionId::new(id)).unwrap()].position
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
    space.remove(SessionId::new(2));
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
    let mut entity = Entity::new(SessionId::new(1), "a".into(), at(10.0, 10.0));
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
