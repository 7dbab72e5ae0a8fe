//! The world actor: players entering and leaving, and the tick.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, AsyncContext, Context, StreamHandler};
use rayon::prelude::*;
use tracing::{debug, info, warn};

use super::load::TickLoad;
use super::space::{Entity, Space, View};
use super::{Arrival, Enter, Entered, InputSlot, POSITION_QUANTUM, WorldCommand, WorldContext, Worlds};
use crate::ids::{DisconnectReason, SessionId, WorldId};
use crate::inbox::Mailbox;
use crate::outbox::{Outbox, Queued, SendError};
use crate::protocol::pb::server_message::Body;
use crate::protocol::{self, ErrorCode, Point, WorldName, encode_frame, pb};

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
pub struct World {
    name: WorldName,
    id: WorldId,
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

impl Actor for World {
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

impl World {
    /// Starts the world on the current arbiter, reading `commands`.
    pub(crate) fn launch(
        name: WorldName,
        id: WorldId,
        context: WorldContext,
        registry: Worlds,
        mailbox: Mailbox<WorldCommand>,
    ) {
        let period = Duration::from_secs(1) / context.settings.tick_hz.max(1);
        World::create(move |ctx| {
            ctx.add_stream(mailbox);
            World {
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

    fn enter(&mut self, Enter { arrival, answer }: Enter) {
        let entered = if let Some(i) = self.space.index_of(arrival.session) {
            self.resume(i, arrival);
            Entered::Yes
        } else if self.closing {
            Entered::Closing
        } else if self.players.len() >= self.context.max_players {
            Entered::Full
        } else {
            self.admit(arrival);
            Entered::Yes
        };
        answer.send(entered);
    }

    /// Puts the arriving player in the world and queues its `WorldEntered`.
    fn admit(&mut self, arrival: Arrival) {
        let position = arrival
            .spawn
            .map_or_else(|| self.space.random_point(), |spawn| self.context.settings.clamp(spawn));
        let name: Arc<str> = arrival.name.as_str().into();
        self.space.insert(Entity::new(arrival.session, name, position));
        self.players.push(Player {
            view: View::default(),
            outbox: arrival.outbox.clone(),
            input: arrival.input.clone(),
            stale: 0,
        });
        self.context.stats.world_players.inc();
        self.welcome(&arrival, position);
        debug!(world = %self.name, session = %arrival.session, players = self.players.len(), "entered");
    }

    /// The player at `i` is back on a new connection (its session resumed):
    /// `WorldEntered` where its entity is, then a full view from scratch.
    fn resume(&mut self, i: usize, arrival: Arrival) {
        let Some(player) = self.players.get_mut(i) else { return };
        player.outbox = arrival.outbox.clone();
        player.input = arrival.input.clone();
        // Only now, with its new connection in place: until then a tick must not take the
        // closed one for a player gone.
        player.input.resume();
        player.view = View::default();
        player.stale = 0;
        let position = self.space.entities[i].position;
        self.welcome(&arrival, position);
        debug!(world = %self.name, session = %arrival.session, "player resumed");
    }

    /// Queues `arrival`'s `WorldEntered`, at `position`.
    fn welcome(&self, arrival: &Arrival, position: Point) {
        let settings = &self.context.settings;
        let entered = pb::WorldEntered {
            world: self.name.as_str().to_owned(),
            entity_id: arrival.session.get(),
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
        let reply = protocol::server_message(arrival.request_id, Body::WorldEntered(entered));
        self.reply(&arrival.outbox, &reply);
    }

    fn leave(&mut self, ctx: &mut Context<Self>, request_id: u64, session: SessionId) {
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
    fn remove(&mut self, session: SessionId) -> Option<Outbox> {
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
        let (sent, skipped, deferred) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
        let space = &self.space;
        let players = &mut self.players;
        let dropped: Vec<(SessionId, bool)> = self.context.broadcaster.install(|| {
            players
                .par_iter_mut()
                .enumerate()
                .with_min_len(MIN_PLAYERS_PER_TASK)
                .filter_map(|(i, player)| {
                    let id = space.entities[i].id;
                    if player.outbox.is_closed() {
                        // A held session's entity stays, unseen by its player, until it resumes or ends.
                        return (!player.input.is_held()).then_some((id, false));
                    }
                    if player.outbox.latest_pending() {
                        skipped.fetch_add(1, Ordering::Relaxed);
                        player.stale += 1;
                        return (player.stale > stale_limit).then_some((id, true));
                    }
                    player.stale = 0;
                    let update = player.view.diff(i, space, tick, far_every);
                    deferred.fetch_add(u64::from(player.view.deferred()), Ordering::Relaxed);
                    let mut update = update?;
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
        stats.world_entries_deferred.inc_by(deferred.into_inner());
        for (session, stale) in dropped {
            if let Some(outbox) = self.remove(session)
                && stale
            {
                debug!(world = %self.name, %session, "player dropped: it took no update for too long");
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

impl StreamHandler<WorldCommand> for World {
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
