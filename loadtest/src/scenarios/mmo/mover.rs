//! A bot's write side: its random walk, one Move per slot of the open-loop
//! schedule, each recorded for its echo.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use tavern::client::ClientWriter;
use tavern::protocol::pb;
use tavern::protocol::pb::client_message::Body as Request;

use super::echo::PendingMoves;
use super::walk::{Point, Region, Rng, next_target};
use crate::bots::describe;
use crate::schedule::Schedule;
use crate::share::{Shared, Signals};
use crate::tally::Tally;
use crate::timeline::{Timeline, sleep_until_wall, wall_ns};
use crate::units::f32_from;

/// Most Moves a bot writes before one flush (when it is behind schedule).
const MAX_BATCH: u64 = 64;

/// What one bot's writer follows.
#[derive(Clone, Copy)]
pub struct Plan<'a> {
    /// The bot's place on the schedule.
    pub bot: u64,
    /// Every bot's Moves.
    pub schedule: &'a Schedule,
    /// The step's phases: it moves until the window ends.
    pub timeline: &'a Timeline,
    /// Where it walks.
    pub region: &'a Region,
    /// How far each target is from the last.
    pub step: f64,
}

/// A bot's write side: its walk and what it sent.
#[derive(Debug)]
pub struct Mover {
    /// The last target sent (at first, the spawn point).
    at: Point,
    /// Its random numbers.
    rng: Rng,
    /// Its Moves awaiting their echo (shared with its read side).
    pending: Arc<Mutex<PendingMoves>>,
    /// Moves written.
    sent: u64,
    /// Moves written while the window was open.
    sent_in_window: u64,
    /// The longest it was behind its schedule in the window, ns.
    max_lag_ns: u64,
}

impl Mover {
    /// A walk from `at`, recording its Moves in `pending`.
    pub fn new(at: Point, rng: Rng, pending: Arc<Mutex<PendingMoves>>) -> Mover {
        Mover {
            at,
            rng,
            pending,
            sent: 0,
            sent_in_window: 0,
            max_lag_ns: 0,
        }
    }

    /// Sends every Move scheduled before the end of the window: what is due,
    /// in batches, then sleeps until the next one is due. A bot behind
    /// schedule sends everything due at once and records its lag.
    pub async fn walk(
        &mut self,
        writer: &mut ClientWriter,
        plan: Plan<'_>,
        shared: &Shared,
        signals: &mut Signals,
    ) -> Result<(), String> {
        let Plan {
            bot,
            schedule,
            timeline,
            region,
            step,
        } = plan;
        let end = schedule.count_before(bot, timeline.window_end_ns());
        let mut next = 0;
        while next < end {
            let now = wall_ns();
            let due = schedule.due_count(bot, now).min(end);
            if due <= next {
                tokio::select! {
                    biased;
                    () = signals.stopped() => return Ok(()),
                    () = sleep_until_wall(schedule.send_time_ns(bot, next)) => continue,
                }
            }
            let scheduled = schedule.send_time_ns(bot, next);
            if timeline.in_window(scheduled) {
                self.max_lag_ns = self.max_lag_ns.max(now.saturating_sub(scheduled));
            }
            let batch_end = due.min(next + MAX_BATCH);
            for k in next..batch_end {
                // Client ticks start at 1: the server takes a Move only above the last tick (0 at first).
                let Ok(client_tick) = u32::try_from(k + 1) else {
                    return Ok(());
                };
                let (target, heading) = next_target(region, self.at, step, &mut self.rng);
                let body = Request::Move(pb::Move {
                    x: f32_from(target.x),
                    y: f32_from(target.y),
                    heading: f32_from(heading),
                    client_tick,
                });
                let sent_ns = wall_ns();
                let in_window = timeline.in_window(sent_ns);
                self.pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .sent(client_tick, sent_ns, in_window);
                writer.feed(body).await.map_err(|e| describe(&e))?;
                self.at = target;
                self.sent += 1;
                self.sent_in_window += u64::from(in_window);
            }
            writer.flush().await.map_err(|e| describe(&e))?;
            shared.live.sent.fetch_add(batch_end - next, Ordering::Relaxed);
            next = batch_end;
        }
        Ok(())
    }

    /// Adds what it sent to the tally.
    pub fn add_to(&self, tally: &mut Tally) {
        let mmo = &mut tally.mmo;
        mmo.moves_sent += self.sent;
        mmo.moves_in_window += self.sent_in_window;
        mmo.max_lag_ns = mmo.max_lag_ns.max(self.max_lag_ns);
    }
}
