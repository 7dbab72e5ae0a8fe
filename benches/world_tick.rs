//! One world tick without sockets: N players random-walking, dispersed over a
//! 2000 × 2000 world or clustered in a 200 × 200 square, each tick moving
//! every entity, rebuilding the grid and computing and encoding every
//! player's update on the rayon pool (as many threads as cores), as the world
//! actor does. The tick budget at 20 Hz is 50 ms.
//!
//! `cargo bench --bench world_tick`; each figure is the time of one tick.

#![allow(missing_docs)] // criterion_group! defines an undocumented public function.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rayon::prelude::*;
use tavern::ids::SessionId;
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::{MoveInput, Point, encode_frame, server_message};
use tavern::world::SpaceSettings;
use tavern::world::space::{Entity, Space, View};

fn settings() -> SpaceSettings {
    SpaceSettings {
        tick_hz: 20,
        width: 2000.0,
        height: 2000.0,
        aoi_radius: 50.0,
        aoi_hysteresis: 5.0,
        cell_size: 55.0,
        max_speed: 10.0,
        max_entered_per_update: usize::MAX,
    }
}

/// A space of `players` in a square of `side` at the world's centre, and their views.
fn world(players: u64, side: f32) -> (Space, Vec<View>) {
    let mut space = Space::new(settings());
    let offset = (2000.0 - side) / 2.0;
    for id in 1..=players {
        let at = Point {
            x: offset + fastrand::f32() * side,
            y: offset + fastrand::f32() * side,
        };
        space.insert(Entity::new(SessionId::new(id), format!("p{id}").into(), at));
    }
    let views = (0..players).map(|_| View::default()).collect();
    (space, views)
}

/// One tick: every player walks a little (as at 10 Moves a second, half of them
/// steer each tick), the space advances, every view is diffed and encoded.
fn tick(space: &mut Space, views: &mut [View], tick: u64) -> usize {
    let settings = space.settings.clone();
    for entity in space
        .entities
        .iter_mut()
        .filter(|e| (e.id.get() + tick).is_multiple_of(2))
    {
        let to = Point {
            x: entity.position.x + fastrand::f32() * 4.0 - 2.0,
            y: entity.position.y + fastrand::f32() * 4.0 - 2.0,
        };
        let client_tick = u32::try_from(tick).unwrap_or(u32::MAX);
        entity.steer(
            MoveInput {
                to,
                heading: 0.0,
                client_tick,
            },
            &settings,
        );
    }
    space.advance();
    let space = &*space;
    views
        .par_iter_mut()
        .enumerate()
        .with_min_len(64)
        .filter_map(|(i, view)| {
            let update = view.diff(i, space, tick, 2)?;
            Some(encode_frame(&server_message(0, Body::WorldUpdate(update))).len())
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("world_tick");
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    for (layout, side) in [("dispersed", 2000.0_f32), ("clustered", 200.0)] {
        for players in [1_000_u64, 5_000, 10_000] {
            let (mut space, mut views) = world(players, side);
            let mut n = 0;
            // Fill the views first: the first tick sends everyone everything.
            tick(&mut space, &mut views, n);
            group.bench_with_input(BenchmarkId::new(layout, players), &players, |b, _| {
                b.iter(|| {
                    n += 1;
                    tick(&mut space, &mut views, n)
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
