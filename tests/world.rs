//! MMO worlds over real TCP: entering, interest (enter, leave, hysteresis),
//! server-authoritative movement, stale inputs, quiet players, the tick, and
//! a player that stops reading.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;

use support::{WAIT, spawn_server};
use tavern::client::{Client, ClientReader};
use tavern::protocol::ErrorCode;
use tavern::protocol::pb::server_message::Body;
use tavern::protocol::pb::{self, WorldUpdate};
use tavern::world::POSITION_QUANTUM;
use tavern::world::space::fixed_point;

/// A world of 1000 × 1000, AOI 50 with a 5 margin, 20 Hz; `extra` flags after.
fn world_server(extra: &[&str]) -> support::TestServer {
    let mut args = vec![
        "--world-width",
        "1000",
        "--world-height",
        "1000",
        "--world-aoi-radius",
        "50",
        "--world-aoi-hysteresis",
        "5",
        "--world-tick-hz",
        "20",
    ];
    args.extend_from_slice(extra);
    spawn_server(&args)
}

/// A player in the world and what it holds of it, in fixed point.
struct Player {
    client: Client,
    id: u64,
    quantum: f32,
    /// Every entity in view: its fixed point position.
    known: HashMap<u64, (i32, i32)>,
    last_tick: u64,
    next_client_tick: u32,
}

impl Player {
    async fn enter(server: &support::TestServer, name: &str, at: (f32, f32)) -> Player {
        let mut client = server.connect(name).await;
        let entered = client.enter_world("w", Some(at)).await.expect("entered");
        assert_eq!(entered.world, "w");
        assert_eq!(entered.tick_rate_hz, 20);
        assert!((entered.aoi_radius - 50.0).abs() < f32::EPSILON);
        Player {
            client,
            id: entered.entity_id,
            quantum: entered.position_quantum,
            known: HashMap::new(),
            last_tick: entered.tick,
            next_client_tick: 1,
        }
    }

    /// The next WorldUpdate, applied to what the player holds.
    async fn update(&mut self) -> WorldUpdate {
        loop {
            let message = self.client.next_event(WAIT).await.expect("a world update in time");
            if let Some(Body::WorldUpdate(update)) = message.body {
                apply(&mut self.known, &update);
                assert!(update.tick > self.last_tick, "ticks grow");
                self.last_tick = update.tick;
                return update;
            }
        }
    }

    /// Reads updates until `done` says so.
    async fn until(&mut self, mut done: impl FnMut(&WorldUpdate, &HashMap<u64, (i32, i32)>) -> bool) -> WorldUpdate {
        loop {
            let update = self.update().await;
            if done(&update, &self.known) {
                return update;
            }
        }
    }

    async fn move_to(&mut self, x: f32, y: f32) -> u32 {
        let tick = self.next_client_tick;
        self.next_client_tick += 1;
        self.client.move_to(x, y, 0.0, tick).await.expect("move sent");
        tick
    }

    fn fixed(&self, coordinate: f32) -> i32 {
        assert!((self.quantum - POSITION_QUANTUM).abs() < f32::EPSILON);
        fixed_point(coordinate)
    }
}

fn apply(known: &mut HashMap<u64, (i32, i32)>, update: &WorldUpdate) {
    for entered in &update.entered {
        assert!(
            known.insert(entered.id, (entered.x, entered.y)).is_none(),
            "entered twice"
        );
    }
    for moved in &update.moved {
        let at = known.get_mut(&moved.id).expect("moved only what is in view");
        at.0 += moved.dx;
        at.1 += moved.dy;
    }
    for left in &update.left {
        assert!(known.remove(left).is_some(), "left only what was in view");
    }
}

#[tokio::test]
async fn neighbours_see_each_other_enter_leave_and_come_back() {
    let server = world_server(&["--world-max-speed", "100000"]);
    let mut ann = Player::enter(&server, "ann", (100.0, 100.0)).await;
    let mut bob = Player::enter(&server, "bob", (130.0, 100.0)).await;
    let (ann_id, bob_id) = (ann.id, bob.id);
    ann.until(|_, known| known.contains_key(&bob_id)).await;
    bob.until(|_, known| known.contains_key(&ann_id)).await;
    assert_eq!(ann.known[&bob_id], (bob.fixed(130.0), bob.fixed(100.0)));

    // Within the margin (50 < 53 < 55): still in view.
    bob.move_to(153.0, 100.0).await;
    let fixed = ann.fixed(153.0);
    let update = ann.until(|_, known| known[&bob_id].0 == fixed).await;
    assert!(update.left.is_empty());
    // Beyond it: gone, for both.
    bob.move_to(300.0, 100.0).await;
    ann.until(|update, _| update.left.contains(&bob_id)).await;
    bob.until(|update, _| update.left.contains(&ann_id)).await;
    // Back: entered again, where it is.
    bob.move_to(120.0, 100.0).await;
    let update = ann.until(|update, _| !update.entered.is_empty()).await;
    assert_eq!(update.entered[0].id, bob_id);
    assert_eq!(update.entered[0].name, "bob");
    assert_eq!(ann.known[&bob_id], (ann.fixed(120.0), ann.fixed(100.0)));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn movement_is_clamped_to_the_top_speed() {
    // 10 units per second at 20 Hz: half a unit a tick.
    let server = world_server(&["--world-max-speed", "10"]);
    let mut cheat = Player::enter(&server, "cheat", (100.0, 100.0)).await;
    let id = cheat.id;
    cheat.until(|_, known| known.contains_key(&id)).await;
    let asked = cheat.move_to(900.0, 100.0).await;
    let mut previous = cheat.known[&id].0;
    let mut steps = 0;
    while steps < 10 {
        let update = cheat.update().await;
        if update.ack_client_tick < asked {
            continue;
        }
        let now = cheat.known[&id].0;
        // 0.5 units = 50 fixed point steps, and never more (one of rounding).
        assert!(now - previous <= 51, "moved {} steps in a tick", now - previous);
        assert!(now > previous, "moves while its target is ahead");
        previous = now;
        steps += 1;
    }
    assert!(previous < cheat.fixed(110.0), "nowhere near the target yet");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn stale_moves_are_ignored() {
    let server = world_server(&["--world-max-speed", "100000"]);
    let mut amy = Player::enter(&server, "amy", (100.0, 100.0)).await;
    let id = amy.id;
    amy.until(|_, known| known.contains_key(&id)).await;
    amy.client.move_to(200.0, 100.0, 0.0, 10).await.unwrap();
    amy.client.move_to(50.0, 100.0, 0.0, 9).await.unwrap();
    amy.client.move_to(60.0, 100.0, 0.0, 10).await.unwrap();
    let target = amy.fixed(200.0);
    let update = amy.until(|_, known| known[&id].0 == target).await;
    assert_eq!(update.ack_client_tick, 10);
    // A later, fresh move goes through: the stale ones left no trace.
    amy.client.move_to(210.0, 100.0, 0.0, 11).await.unwrap();
    let target = amy.fixed(210.0);
    amy.until(|_, known| known[&id].0 == target).await;
    let metrics = server.admin_get("/metrics").await.1;
    assert!(metrics.contains("tavern_world_moves_stale_total 2"), "{metrics}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_quiet_neighbourhood_sends_nothing_and_updates_come_every_tick() {
    let server = world_server(&["--world-max-speed", "10"]);
    let mut still = Player::enter(&server, "still", (100.0, 100.0)).await;
    let id = still.id;
    let first = still.until(|_, known| known.contains_key(&id)).await;
    // Far away, a walker: each of its updates is a tick (it moves every tick).
    let mut walker = Player::enter(&server, "walker", (800.0, 800.0)).await;
    let walker_id = walker.id;
    walker.until(|_, known| known.contains_key(&walker_id)).await;
    walker.move_to(900.0, 800.0).await;
    let mut ticks = Vec::new();
    let mut times = Vec::new();
    while ticks.len() < 20 {
        let update = walker.update().await;
        if !update.moved.is_empty() {
            ticks.push(update.tick);
            times.push(update.server_time_us);
        }
    }
    assert!(
        ticks.windows(2).all(|w| w[1] == w[0] + 1),
        "one update a tick: {ticks:?}"
    );
    let spread_us = times[19] - times[0];
    // 19 intervals of 50 ms, within a generous tolerance for a loaded machine.
    assert!(
        (19 * 40_000..=19 * 100_000).contains(&spread_us),
        "{spread_us} µs for 19 ticks"
    );
    // Meanwhile the still player got nothing: its next update is its own move, ticks later.
    still.move_to(101.0, 100.0).await;
    let update = still.update().await;
    assert!(update.tick > ticks[19] && first.tick < ticks[0], "no update in between");
    assert_eq!(update.moved.len(), 1);
    assert_eq!(update.moved[0].id, id);
    assert!(update.entered.is_empty() && update.left.is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn errors_name_what_is_wrong() {
    let server = world_server(&["--max-worlds", "1"]);
    let mut client = server.connect("eve").await;
    let not_in = client
        .send(pb::client_message::Body::Move(pb::Move::default()))
        .await
        .unwrap();
    let error = next_error(&mut client, not_in).await;
    assert_eq!(error.code(), ErrorCode::NotInWorld);
    let bad = client.enter_world("no spaces", None).await.unwrap_err();
    assert_eq!(bad.code(), Some(ErrorCode::InvalidWorld));
    let nan = client.enter_world("w", Some((f32::NAN, 1.0))).await.unwrap_err();
    assert_eq!(nan.code(), Some(ErrorCode::InvalidPosition));
    client.enter_world("w", None).await.unwrap();
    let twice = client.enter_world("w", None).await.unwrap_err();
    assert_eq!(twice.code(), Some(ErrorCode::AlreadyInWorld));
    let mut other = server.connect("fay").await;
    let full = other.enter_world("second", None).await.unwrap_err();
    assert_eq!(full.code(), Some(ErrorCode::WorldFull));
    server.shutdown().await.unwrap();
}

async fn next_error(client: &mut Client, request_id: u64) -> pb::Error {
    loop {
        let message = client.next_event(WAIT).await.expect("an answer");
        if message.request_id == request_id
            && let Some(Body::Error(error)) = message.body
        {
            return error;
        }
    }
}

/// Reads every update on `reader` until `done`, applying them to `known`; returns the ticks seen.
async fn read_updates(
    reader: &mut ClientReader,
    known: &mut HashMap<u64, (i32, i32)>,
    mut done: impl FnMut(&HashMap<u64, (i32, i32)>) -> bool,
) -> Vec<u64> {
    let mut ticks = Vec::new();
    while !done(known) {
        let message = reader.next_event(WAIT).await.expect("an update in time");
        if let Some(Body::WorldUpdate(update)) = message.body {
            apply(known, &update);
            ticks.push(update.tick);
        }
    }
    ticks
}

#[tokio::test]
async fn a_player_that_stops_reading_gets_fresh_state_not_a_backlog() {
    const WALKERS: usize = 40;
    // Fast ticks and a small send buffer, so that the sleeper's socket fills quickly.
    let server = spawn_server(&[
        "--world-tick-hz",
        "50",
        "--world-max-speed",
        "10",
        "--socket-send-buffer",
        "4096",
        "--world-stale-ticks",
        "100000",
    ]);
    let sleeper = {
        let mut sleeper = server.connect_small_buffered("sleeper").await;
        sleeper.enter_world("w", Some((500.0, 500.0))).await.unwrap();
        sleeper
    };
    // Walkers around it, each walking 20 units (2 s at 10 units/s), all reading.
    let mut walkers = Vec::new();
    let mut targets = HashMap::new();
    for i in 0..WALKERS {
        let angle = f32::from(u16::try_from(i).unwrap()) / 40.0 * std::f32::consts::TAU;
        let start = (500.0 + 8.0 * angle.cos(), 500.0 + 8.0 * angle.sin());
        let mut walker = server.connect(&format!("walker{i}")).await;
        let entered = walker.enter_world("w", Some(start)).await.unwrap();
        let target = (start.0 + 20.0 * angle.cos(), start.1 + 20.0 * angle.sin());
        targets.insert(entered.entity_id, target);
        walkers.push((walker, target));
    }
    let (_sleeper_writer, mut sleeper) = sleeper.into_split();
    let mut readers = Vec::new();
    for (walker, target) in walkers {
        let (mut writer, mut reader) = walker.into_split();
        writer.move_to(target.0, target.1, 0.0, 1).await.unwrap();
        readers.push(tokio::spawn(async move {
            while reader.next_event(WAIT).await.is_ok() {}
            drop(writer);
        }));
    }
    // The sleeper reads nothing until the server has had to hold its updates back.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let metrics = server.admin_get("/metrics").await.1;
        let skipped = metric(&metrics, "tavern_world_updates_skipped_total");
        if skipped >= 20.0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never held back: {skipped}");
        tokio::task::yield_now().await;
    }
    // Now it reads, until everyone stands at the end of their walk.
    let fixed = fixed_point;
    let mut known = HashMap::new();
    let ticks = read_updates(&mut sleeper, &mut known, |known| {
        targets.iter().all(|(id, target)| {
            known
                .get(id)
                .is_some_and(|at| (at.0 - fixed(target.0)).abs() <= 1 && (at.1 - fixed(target.1)).abs() <= 1)
        })
    })
    .await;
    // Fresh state: some ticks were skipped (no backlog of every tick), and
    // what it holds is exactly where everyone is.
    let span = ticks.last().unwrap() - ticks.first().unwrap() + 1;
    assert!(
        u64::try_from(ticks.len()).unwrap() < span,
        "{} updates for {span} ticks",
        ticks.len()
    );
    assert!(!known.is_empty());
    server.shutdown().await.unwrap();
    for reader in readers {
        reader.abort();
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}
