//! A publisher's side of the open-loop schedule: write every message (a chat
//! text or a plugin's op) when it is due, stamped as it is written, in
//! batches; a publisher behind schedule writes everything due at once and
//! records how far behind it was.

use std::sync::atomic::Ordering;

use tavern::client::ClientWriter;

use super::workload::Traffic;
use crate::bots::describe;
use crate::payload::{self, Stamp};
use crate::schedule::Schedule;
use crate::share::{Live, Signals};
use crate::timeline::{Timeline, sleep_until_wall, wall_ns};

/// Most messages a publisher writes before one flush.
const MAX_BATCH: u64 = 64;

/// What one publisher publishes.
#[derive(Clone, Copy, Debug)]
pub struct Assignment<'a> {
    /// Its index in the schedule.
    pub index: u64,
    /// The step's schedule.
    pub schedule: &'a Schedule,
    /// The step's phases: it publishes every message scheduled before the window ends.
    pub timeline: &'a Timeline,
    /// Its room.
    pub room_name: &'a str,
    /// Bytes per text.
    pub size: usize,
    /// What it writes: chat texts or a plugin's ops.
    pub traffic: &'a Traffic,
}

/// What a publisher wrote.
#[derive(Debug, Default)]
pub struct Publisher {
    sent: u64,
    sent_window: u64,
    written_in_window: u64,
    max_lag_ns: u64,
}

impl Publisher {
    /// Writes every message scheduled before the end of the window: what is
    /// due, in batches, then sleeps until the next one is due. A publisher
    /// behind schedule writes everything due at once and records its lag.
    pub async fn publish(
        &mut self,
        writer: &mut ClientWriter,
        assignment: Assignment<'_>,
        live: &Live,
        signals: &mut Signals,
    ) -> Result<(), String> {
        let Assignment {
            index,
            schedule,
            timeline,
            room_name,
            size,
            traffic,
        } = assignment;
        let window_first = schedule.count_before(index, timeline.window_start_ns());
        let end = schedule.count_before(index, timeline.window_end_ns());
        let mut text = String::with_capacity(size);
        let mut next = 0;
        while next < end {
            let now = wall_ns();
            let due = schedule.due_count(index, now).min(end);
            if due <= next {
                tokio::select! {
                    biased;
                    () = signals.stopped() => return Ok(()),
                    () = sleep_until_wall(schedule.send_time_ns(index, next)) => continue,
                }
            }
            let scheduled = schedule.send_time_ns(index, next);
            if timeline.in_window(scheduled) {
                self.max_lag_ns = self.max_lag_ns.max(now.saturating_sub(scheduled));
            }
            let batch_end = due.min(next + MAX_BATCH);
            for counter in next..batch_end {
                let sent_ns = wall_ns();
                let stamp = Stamp {
                    publisher: index,
                    counter,
                    sent_ns,
                };
                payload::write(&mut text, size, stamp).map_err(|e| e.to_string())?;
                writer
                    .feed(traffic.request(room_name, &text))
                    .await
                    .map_err(|e| describe(&e))?;
                self.sent += 1;
                self.sent_window += u64::from(counter >= window_first);
                self.written_in_window += u64::from(timeline.in_window(sent_ns));
            }
            writer.flush().await.map_err(|e| describe(&e))?;
            live.sent.fetch_add(batch_end - next, Ordering::Relaxed);
            next = batch_end;
        }
        Ok(())
    }

    /// Adds what it wrote to the tally of room `room`.
    pub fn add_to(&self, tally: &mut crate::tally::Tally, room: u64) {
        let chat = &mut tally.chat;
        chat.sent += self.sent;
        chat.written_in_window += self.written_in_window;
        chat.max_lag_ns = chat.max_lag_ns.max(self.max_lag_ns);
        if let Some(sent) = usize::try_from(room)
            .ok()
            .and_then(|room| chat.sent_window_per_room.get_mut(room))
        {
            *sent += self.sent_window;
        }
    }
}
