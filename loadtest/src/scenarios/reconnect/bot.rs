//! One bot of `reconnect`: a reconnecting client in its room that, in one
//! task, cuts its own connection when its round comes, publishes on the
//! chat schedule (a publisher), and reads: every chat goes through the
//! room's order check and the loss count, every `Reconnected` through the
//! recovery figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tavern::client::{ClientError, Event, Reconnected, Reconnecting};
use tavern::protocol::pb::ServerMessage;
use tavern::protocol::pb::server_message::Body;

use super::ReconnectWorkload;
use crate::bots::{self, describe, latency_us};
use crate::detect::SeqDetector;
use crate::payload::{self, Stamp};
use crate::scenarios::rooms::Role;
use crate::schedule::Schedule;
use crate::settings::{SAMPLE_BATCH, SAMPLE_FLUSH_NS};
use crate::share::{Shared, Signals};
use crate::tally::Tally;
use crate::timeline::{Timeline, wall_ns};
use crate::units::u64_from;

/// Time between two keep-alive pings.
const PING_NS: u64 = 2_000_000_000;
/// Longest wait for an event, so that the stop signal is seen soon.
const MAX_WAIT_NS: u64 = 50_000_000;
/// Shortest wait for an event.
const MIN_WAIT_NS: u64 = 1_000_000;

/// Counts a bot that has just joined its room `room`.
pub fn register(shared: &Shared, room: u64) {
    let mut tally = shared.tally();
    if let Some(receivers) = usize::try_from(room)
        .ok()
        .and_then(|room| tally.chat.receivers_per_room.get_mut(room))
    {
        *receivers += 1;
    }
    drop(tally);
    shared.add_receiver();
}

/// A joined bot and what it needs to run.
pub struct ReconnectBot {
    /// Its number in the step.
    pub index: u64,
    /// Publisher or receiver (no slow members here).
    pub role: Role,
    /// Its room's index.
    pub room: u64,
    /// Its room's name.
    pub room_name: String,
    /// The step's workload.
    pub workload: Arc<ReconnectWorkload>,
    /// Where it counts.
    pub shared: Arc<Shared>,
    /// Per room, window messages this process's publishers did not send.
    pub not_sent: Arc<Vec<AtomicU64>>,
}

/// The step's schedule and timeline, once known, and what the room expects.
struct Plan {
    schedule: Schedule,
    timeline: Timeline,
    /// The room's window messages on the schedule.
    expected: u64,
}

/// What a bot counts as it goes.
#[derive(Default)]
struct Counts {
    sent: u64,
    sent_window: u64,
    written_in_window: u64,
    not_sent: u64,
    /// The next message to publish, and whether what is due is skipped (it fell due while down).
    next: u64,
    skip: bool,
    /// The next round of cuts, and when the last cut was made.
    round: u64,
    cut_at_ns: Option<u64>,
    cuts: u64,
    reconnects: u64,
    resumed: u64,
    recovered: u64,
    not_recovered: u64,
    reconnect_us: Vec<u64>,
}

/// The read side's counts.
struct Receiver {
    detector: SeqDetector,
    received_window: u64,
    received_total: u64,
    unparsed: u64,
    done: bool,
    samples: Vec<u64>,
    unreported: u64,
    last_flush_ns: u64,
}

impl ReconnectBot {
    /// Runs the bot until told to stop, then adds what it counted to the tally.
    pub async fn run(self, mut client: Reconnecting, joined_seq: u64, mut signals: Signals) {
        let mut counts = Counts::default();
        let mut receiver = Receiver {
            detector: SeqDetector::new(joined_seq),
            received_window: 0,
            received_total: 0,
            unparsed: 0,
            done: false,
            samples: Vec::with_capacity(SAMPLE_BATCH),
            unreported: 0,
            last_flush_ns: 0,
        };
        let ended = self
            .run_loop(&mut client, &mut counts, &mut receiver, &mut signals)
            .await;
        if ended.is_some() {
            self.shared.live.connected.fetch_sub(1, Ordering::Relaxed);
        }
        receiver.flush(&self.shared, wall_ns());
        if !receiver.done {
            self.shared.receiver_done();
        }
        let mut tally = self.shared.tally();
        self.add_to(&mut tally, &counts, &receiver);
        if let Some(reason) = ended {
            tally.reconnect.failed += 1;
            crate::tally::bump(&mut tally.bots.disconnects, reason);
        }
    }

    /// Cuts, publishes and reads until told to stop; returns why it ended, if it did.
    async fn run_loop(
        &self,
        client: &mut Reconnecting,
        counts: &mut Counts,
        receiver: &mut Receiver,
        signals: &mut Signals,
    ) -> Option<String> {
        let mut plan: Option<Plan> = None;
        let mut next_ping = wall_ns().saturating_add(PING_NS);
        loop {
            if *signals.stop.borrow() {
                return None;
            }
            let now = wall_ns();
            if plan.is_none() {
                let timeline = *signals.timeline.borrow();
                plan = timeline.and_then(|timeline| self.plan(timeline));
            }
            if let Some(plan) = &plan {
                self.cut_if_due(client, plan, counts, now);
                self.publish_due(client, plan, counts, now).await;
                receiver.check_done(plan, self.room_not_sent(), &self.shared);
            }
            if now >= next_ping {
                // Best effort: a failure shows in the next read.
                let _ = client.ping().await;
                next_ping = now.saturating_add(PING_NS);
            }
            let wake = self.next_wake(plan.as_ref(), counts, next_ping).min(now + MAX_WAIT_NS);
            let wait = Duration::from_nanos(wake.saturating_sub(now).max(MIN_WAIT_NS));
            match client.next_event(wait).await {
                Ok(Event::Message(message)) => {
                    if let Some(reason) = receiver.on_message(&message, plan.as_ref(), &self.shared) {
                        return Some(reason);
                    }
                }
                Ok(Event::Reconnected(reconnected)) => counts.reconnected(&reconnected),
                Err(ClientError::Timeout(_)) => {}
                Err(e) => return Some(describe(&e)),
            }
        }
    }

    /// The plan of a step that starts as `timeline` says.
    fn plan(&self, timeline: Timeline) -> Option<Plan> {
        let rooms = &self.workload.rooms;
        let schedule = Schedule::new(timeline.start_ns, rooms.rate, rooms.total_publishers()).ok()?;
        let expected = rooms
            .room_publishers(self.room)
            .map(|p| schedule.count_between(p, timeline.window_start_ns(), timeline.window_end_ns()))
            .sum();
        Some(Plan {
            schedule,
            timeline,
            expected,
        })
    }

    /// When round `round` of cuts comes (wall clock, ns).
    fn round_ns(&self, timeline: &Timeline, round: u64) -> u64 {
        let every_ns = self.workload.cut_every_ms.saturating_mul(1_000_000);
        timeline.start_ns.saturating_add(every_ns.saturating_mul(round + 1))
    }

    /// Cuts the connection (RST) if a round that takes this bot has come.
    fn cut_if_due(&self, client: &mut Reconnecting, plan: &Plan, counts: &mut Counts, now: u64) {
        loop {
            let at = self.round_ns(&plan.timeline, counts.round);
            if at > now || at >= plan.timeline.window_end_ns() {
                return;
            }
            if self.workload.cuts(self.index, counts.round) {
                client.disconnect();
                counts.cut_at_ns = Some(now);
                counts.cuts += 1;
            }
            counts.round += 1;
        }
    }

    /// A publisher sends what is due before the window ends; what fell due
    /// while its connection was down, or fails to go out, is not sent.
    async fn publish_due(&self, client: &mut Reconnecting, plan: &Plan, counts: &mut Counts, now: u64) {
        let Role::Publisher(index) = self.role else {
            return;
        };
        let (schedule, timeline) = (&plan.schedule, &plan.timeline);
        let window_first = schedule.count_before(index, timeline.window_start_ns());
        let end = schedule.count_before(index, timeline.window_end_ns());
        let due = schedule.due_count(index, now).min(end);
        let mut text = String::with_capacity(self.workload.rooms.size);
        for counter in counts.next..due {
            let sent_ns = wall_ns();
            let stamp = Stamp {
                publisher: index,
                counter,
                sent_ns,
            };
            let written = !counts.skip
                && payload::write(&mut text, self.workload.rooms.size, stamp).is_ok()
                && client.chat(&self.room_name, &text).await.is_ok();
            if written {
                counts.sent += 1;
                counts.sent_window += u64::from(counter >= window_first);
                counts.written_in_window += u64::from(timeline.in_window(sent_ns));
            } else {
                counts.not_sent += 1;
                if counter >= window_first {
                    self.count_not_sent();
                }
            }
        }
        counts.next = counts.next.max(due);
        counts.skip = false;
    }

    /// Notes a window message of this room that was not sent.
    fn count_not_sent(&self) {
        if let Some(count) = usize::try_from(self.room).ok().and_then(|room| self.not_sent.get(room)) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Window messages of this room that this process's publishers did not send.
    fn room_not_sent(&self) -> u64 {
        usize::try_from(self.room)
            .ok()
            .and_then(|room| self.not_sent.get(room))
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    /// When something is next due: a message, a round of cuts, a ping.
    fn next_wake(&self, plan: Option<&Plan>, counts: &Counts, next_ping: u64) -> u64 {
        let Some(plan) = plan else {
            return next_ping;
        };
        let mut wake = next_ping;
        let cut = self.round_ns(&plan.timeline, counts.round);
        if cut < plan.timeline.window_end_ns() {
            wake = wake.min(cut);
        }
        if let Role::Publisher(index) = self.role
            && counts.next < plan.schedule.count_before(index, plan.timeline.window_end_ns())
        {
            wake = wake.min(plan.schedule.send_time_ns(index, counts.next));
        }
        wake
    }

    /// Adds the bot's counts to the tally.
    fn add_to(&self, tally: &mut Tally, counts: &Counts, receiver: &Receiver) {
        let chat = &mut tally.chat;
        chat.sent += counts.sent;
        chat.written_in_window += counts.written_in_window;
        if let Some(sent) = usize::try_from(self.room)
            .ok()
            .and_then(|room| chat.sent_window_per_room.get_mut(room))
        {
            *sent += counts.sent_window;
        }
        chat.received_window += receiver.received_window;
        chat.received_total += receiver.received_total;
        chat.unparsed += receiver.unparsed;
        chat.seq.merge(receiver.detector.counts());
        let reconnect = &mut tally.reconnect;
        reconnect.cuts += counts.cuts;
        reconnect.reconnects += counts.reconnects;
        reconnect.resumed += counts.resumed;
        reconnect.recovered += counts.recovered;
        reconnect.not_recovered += counts.not_recovered;
        reconnect.not_sent += counts.not_sent;
        for &sample in &counts.reconnect_us {
            reconnect.latency.record_us(sample);
        }
    }
}

impl Counts {
    /// Notes a reconnection: how long since the cut, which rooms recovered;
    /// what fell due meanwhile is not sent.
    fn reconnected(&mut self, reconnected: &Reconnected) {
        let now = wall_ns();
        self.reconnects += 1;
        self.resumed += u64::from(reconnected.resumed);
        if let Some(cut) = self.cut_at_ns.take() {
            self.reconnect_us.push(latency_us(cut, now));
        }
        let recovered = u64_from(reconnected.rooms.iter().filter(|(_, recovered)| *recovered).count());
        self.recovered += recovered;
        self.not_recovered += u64_from(reconnected.rooms.len()).saturating_sub(recovered);
        self.skip = true;
    }
}

impl Receiver {
    /// Handles one message; returns why the connection ends, if it does.
    fn on_message(&mut self, message: &ServerMessage, plan: Option<&Plan>, shared: &Shared) -> Option<String> {
        match &message.body {
            Some(Body::Chat(chat)) => {
                self.detector.observe(chat.seq);
                self.on_delivery(chat.text.as_bytes(), plan, shared);
            }
            Some(Body::MemberJoined(joined)) => self.detector.observe(joined.seq),
            Some(Body::MemberLeft(left)) => self.detector.observe(left.seq),
            _ => return bots::ending(message),
        }
        None
    }

    /// Counts a delivery, and for a window message its latency.
    fn on_delivery(&mut self, stamped: &[u8], plan: Option<&Plan>, shared: &Shared) {
        let now = wall_ns();
        self.received_total += 1;
        self.unreported += 1;
        let Some(stamp) = payload::parse(stamped) else {
            self.unparsed += 1;
            return;
        };
        if let Some(plan) = plan
            && plan.schedule.is_between(
                stamp.publisher,
                stamp.counter,
                plan.timeline.window_start_ns(),
                plan.timeline.window_end_ns(),
            )
        {
            self.received_window += 1;
            self.samples.push(latency_us(stamp.sent_ns, now));
        }
        if self.samples.len() >= SAMPLE_BATCH || now.saturating_sub(self.last_flush_ns) >= SAMPLE_FLUSH_NS {
            self.flush(shared, now);
        }
    }

    /// Done (for the drain) once every window message that was sent has come.
    fn check_done(&mut self, plan: &Plan, not_sent: u64, shared: &Shared) {
        if !self.done && self.received_window.saturating_add(not_sent) >= plan.expected {
            self.done = true;
            shared.receiver_done();
        }
    }

    /// Adds the kept samples to the shared histogram and the live counter.
    fn flush(&mut self, shared: &Shared, now: u64) {
        self.last_flush_ns = now;
        shared.live.delivered.fetch_add(self.unreported, Ordering::Relaxed);
        if !self.samples.is_empty() {
            let mut tally = shared.tally();
            for &sample in &self.samples {
                tally.chat.latency.record_us(sample);
            }
        }
        self.unreported = 0;
        self.samples.clear();
    }
}
