//! The world actor: players entering and leaving, and the tick.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, AsyncContext, Context, StreamHandler};
use rayon::prelude::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info, warn};

use super::space::{Entity, Space, View};
use super::{Enter, Entered, InputSlot, POSITION_QUANTUM, WorldCommand, WorldContext, Worlds};
use crate::lifecycle::DisconnectReason;
use crate::outbox::{Outbox, Queued, SendError};
use crate::protocol::pb::server_message::Body;
use crate::protocol::{self, ErrorCode, WorldName, encode_frame, pb};

/// Players handled per rayon task in a tick (below this, splitting costs more than it saves).
const MIN_PLAYERS_PER_TASK: usize = 64;

/// A player in the world: its view, and where its frames and Moves go.
struct Player {
    view: View,
    outbox: Outbox,
    input: Arc<InputSlot>,
    /// Ticks in a row its last update was still unsent.
    stale: u32,
}

/// One world: its space, its players (index for index with the space's
/// entities), and its tick.
pub struct WorldSim {
    name: WorldName,
    id: u64,
    space: Space,
    players: Vec<Player>,
    context: WorldContext,
    registry: Worlds,
    tick: u64,
    period: Duration,
    /// When the last tick started.
    last_start: Option<Instant>,
    /// When the next tick is due.
    next_due: Instant,
    load: TickLoad,
    closing: bool,
}

impl Actor for WorldSim {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(world = %self.name, "world started");
        ctx.run_later(self.period, Self::on_tick);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        let stats = &self.context.stats;
        stats.world_players.sub(i64::try_from(self.players.len()).unwrap_or(0));
        info!(world = %self.name, ticks = self.tick, "world stopped");
    }
}

impl WorldSim {
    /// Starts the world on the current arbiter, reading `commands`.
    pub(crate) fn launch(
        name: WorldName,
        id: u64,
        context: WorldContext,
        registry: Worlds,
        commands: mpsc::Receiver<WorldCommand>,
    ) {
        let period = Duration::from_secs(1) / context.settings.tick_hz.max(1);
        WorldSim::create(move |ctx| {
            ctx.add_stream(ReceiverStream::new(commands));
            WorldSim {
                name,
                id,
                space: Space::new(context.settings.clone()),
                players: Vec::new(),
                context,
                registry,
                tick: 0,
                period,
                last_start: None,
                next_due: Instant::now() + period,
                load: TickLoad::default(),
                closing: false,
            }
        });
    }

    fn enter(&mut self, enter: Enter) {
        let answer = if self.closing {
            Entered::Closing
        } else if self.players.len() >= self.context.max_players {
            Entered::Full
        } else {
            let position = enter
                .spawn
                .map_or_else(|| self.space.random_point(), |spawn| self.context.settings.clamp(spawn));
            let name: Arc<str> = enter.name.as_str().into();
            self.space.insert(Entity::new(enter.session, name, position));
            self.players.push(Player {
                view: View::default(),
                outbox: enter.outbox.clone(),
                input: enter.input,
                stale: 0,
            });
            self.context.stats.world_players.inc();
            let settings = &self.context.settings;
            let entered = pb::WorldEntered {
                world: self.name.as_str().to_owned(),
                entity_id: enter.session,
                position: Some(pb::Position {
                    x: position.x,
                    y: position.y,
                }),
                tick_rate_hz: settings.tick_hz,
                aoi_radius: settings.aoi_radius,
                bounds: Some(pb::Position {
                    x: settings.width,
                    y: settings.height,
                }),
                max_speed: settings.max_speed,
                position_quantum: POSITION_QUANTUM,
                tick: self.tick,
            };
            let reply = protocol::server_message(enter.request_id, Body::WorldEntered(entered));
            self.reply(&enter.outbox, &reply);
            debug!(world = %self.name, session = enter.session, players = self.players.len(), "entered");
            Entered::Yes
        };
        let _ = enter.answer.send(answer);
    }

    fn leave(&mut self, ctx: &mut Context<Self>, request_id: u64, session: u64) {
        let outbox = self.remove(session);
        if request_id != 0
            && let Some(outbox) = outbox
        {
            let left = pb::WorldLeft {
                world: self.name.as_str().to_owned(),
                reason: "left".to_owned(),
            };
            self.reply(&outbox, &protocol::server_message(request_id, Body::WorldLeft(left)));
        }
        if self.players.is_empty() {
            self.close(ctx);
        }
    }

    /// Removes the player of `session`; returns its outbox.
    fn remove(&mut self, session: u64) -> Option<Outbox> {
        let index = self.space.index_of(session)?;
        self.space.remove(session);
        let player = self.players.swap_remove(index);
        self.context.stats.world_players.dec();
        Some(player.outbox)
    }

    /// Stops taking players, leaves the registry and stops.
    fn close(&mut self, ctx: &mut Context<Self>) {
        self.closing = true;
        self.registry.forget(&self.name, self.id);
        ctx.stop();
    }

    fn reply(&self, outbox: &Outbox, message: &pb::ServerMessage) {
        let frame = encode_frame(message);
        if let Err(SendError::Full) = outbox.try_send(frame) {
            self.drop_slow(outbox, "outbound queue full (see Config::outbound_queue_frames)");
        }
    }

    fn drop_slow(&self, outbox: &Outbox, why: &str) {
        let stats = &self.context.stats;
        let last = Some(encode_frame(&protocol::error_message(0, ErrorCode::SlowConsumer, why)));
        if outbox.close(Queued::Discard, last, DisconnectReason::SlowConsumer) {
            stats.disconnected(DisconnectReason::SlowConsumer);
            stats.error_sent(ErrorCode::SlowConsumer);
        }
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        let started = Instant::now();
        let time_scale = self.time_scale(started);
        self.last_start = Some(started);
        self.tick += 1;
        self.step(time_scale);
        let took = started.elapsed();
        self.account(took, time_scale);
        // Fixed world time per tick: a tick that overruns delays the next,
        // which slows the world clock (time dilation) instead of piling up.
        self.next_due = (self.next_due + self.period).max(Instant::now());
        ctx.run_later(self.next_due.saturating_duration_since(Instant::now()), Self::on_tick);
    }

    /// World time per wall time over the last tick interval, percent.
    fn time_scale(&self, now: Instant) -> u32 {
        let Some(last) = self.last_start else { return 100 };
        let interval = now.duration_since(last).max(self.period);
        let pct = self.period.as_secs_f64() / interval.as_secs_f64() * 100.0;
        num_traits::ToPrimitive::to_u32(&pct.round())
            .unwrap_or(100)
            .clamp(1, 100)
    }

    /// One tick: inputs, movement, the grid, every player's update.
    fn step(&mut self, time_scale: u32) {
        let settings = self.context.settings.clone();
        for (entity, player) in self.space.entities.iter_mut().zip(&self.players) {
            if let Some(input) = player.input.take() {
                entity.steer(input, &settings);
            }
        }
        self.space.advance();
        let (tick, far_every) = (self.tick, self.load.far_every());
        let server_time_us = protocol::now_us();
        let stale_limit = self.context.stale_ticks;
        let (sent, skipped) = (AtomicU64::new(0), AtomicU64::new(0));
        let space = &self.space;
        let players = &mut self.players;
        let dropped: Vec<(u64, bool)> = self.context.broadcaster.install(|| {
            players
                .par_iter_mut()
                .enumerate()
                .with_min_len(MIN_PLAYERS_PER_TASK)
                .filter_map(|(i, player)| {
                    let id = space.entities[i].id;
                    if player.outbox.is_closed() {
                        return Some((id, false));
                    }
                    if player.outbox.latest_pending() {
                        skipped.fetch_add(1, Ordering::Relaxed);
                        player.stale += 1;
                        return (player.stale > stale_limit).then_some((id, true));
                    }
                    player.stale = 0;
                    let mut update = player.view.diff(i, space, tick, far_every)?;
                    update.time_scale_pct = time_scale;
                    update.server_time_us = server_time_us;
                    let message = protocol::server_message(0, Body::WorldUpdate(update));
                    let frame = encode_frame(&message);
                    match player.outbox.try_send_latest(frame) {
                        Ok(()) => {
                            sent.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                        Err(SendError::Closed) => Some((id, false)),
                        // Not pending a moment ago: only the writer takes it, so this cannot be.
                        Err(SendError::Full) => None,
                    }
                })
                .collect()
        });
        let stats = &self.context.stats;
        stats.world_updates.inc_by(sent.into_inner());
        stats.world_updates_skipped.inc_by(skipped.into_inner());
        for (session, stale) in dropped {
            if let Some(outbox) = self.remove(session)
                && stale
            {
                debug!(world = %self.name, session, "player dropped: it took no update for too long");
                self.drop_slow(
                    &outbox,
                    "the client did not take its world updates (see Config::world_stale_ticks)",
                );
            }
        }
    }

    fn account(&mut self, took: Duration, time_scale: u32) {
        let stats = &self.context.stats;
        stats.world_tick(took);
        if took > self.period {
            stats.world_tick_overruns.inc();
            debug!(world = %self.name, tick = self.tick, took_ms = took.as_secs_f64() * 1e3, "tick over budget");
        }
        if let Some(level) = self.load.record(took, self.period) {
            warn!(
                world = %self.name,
                level,
                far_every = self.load.far_every(),
                tick_ms = took.as_secs_f64() * 1e3,
                budget_ms = self.period.as_secs_f64() * 1e3,
                players = self.players.len(),
                "world degradation level changed"
            );
        }
        stats.world_degrade_level.set(i64::from(self.load.level));
        stats.world_time_scale.set(i64::from(time_scale));
    }
}

impl StreamHandler<WorldCommand> for WorldSim {
    fn handle(&mut self, command: WorldCommand, ctx: &mut Context<Self>) {
        match command {
            WorldCommand::Enter(enter) => self.enter(enter),
            WorldCommand::Leave { request_id, session } => self.leave(ctx, request_id, session),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.close(ctx);
    }
}

/// Ticks in the window the degradation level looks at.
const LOAD_WINDOW: usize = 20;
/// Overruns within the window that raise the level.
const OVERRUNS_TO_DEGRADE: usize = 3;
/// The highest level.
const MAX_LEVEL: u8 = 2;

/// The tick budget's record: recent tick durations and the degradation
/// level they led to. Level 0 updates the far tier every 2 ticks; each level
/// doubles that. The level rises when 3 of the last 20 ticks overran the
/// budget, and falls when all of the last 20 took under 70% of it; at most
/// one change per 20 ticks. Beyond the top level, overrunning ticks dilate
/// the world's time (see [`WorldSim`]).
#[derive(Debug, Default)]
pub struct TickLoad {
    recent: VecDeque<Duration>,
    /// The degradation level, 0 to 2.
    pub level: u8,
    since_change: usize,
}

impl TickLoad {
    /// Records a tick; returns the new level when it changed.
    pub fn record(&mut self, took: Duration, budget: Duration) -> Option<u8> {
        if self.recent.len() == LOAD_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(took);
        self.since_change += 1;
        if self.since_change < LOAD_WINDOW {
            return None;
        }
        let overruns = self.recent.iter().filter(|t| **t > budget).count();
        let calm = self.recent.iter().all(|t| *t < budget * 7 / 10);
        let level = if overruns >= OVERRUNS_TO_DEGRADE && self.level < MAX_LEVEL {
            self.level + 1
        } else if calm && self.level > 0 {
            self.level - 1
        } else {
            return None;
        };
        self.level = level;
        self.since_change = 0;
        Some(level)
    }

    /// Every how many ticks the far tier is updated.
    pub fn far_every(&self) -> u64 {
        2 << self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_rises_with_overruns_and_falls_with_calm() {
        let budget = Duration::from_millis(50);
        let mut load = TickLoad::default();
        let over = Duration::from_millis(60);
        let calm = Duration::from_millis(10);
        let changes: Vec<Option<u8>> = (0..60).map(|_| load.record(over, budget)).collect();
        assert_eq!(changes.iter().flatten().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(load.far_every(), 8);
        let changes: Vec<Option<u8>> = (0..60).map(|_| load.record(calm, budget)).collect();
        assert_eq!(changes.iter().flatten().copied().collect::<Vec<_>>(), vec![1, 0]);
        assert_eq!(load.far_every(), 2);
    }

    #[test]
    fn a_few_overruns_change_nothing() {
        let budget = Duration::from_millis(50);
        let mut load = TickLoad::default();
        for i in 0..200 {
            let took = if i % 10 == 0 { budget * 2 } else { budget / 2 };
            assert_eq!(load.record(took, budget), None);
        }
    }
}
