//! One room member: its read side (latency, window counting, the room's
//! sequence check, over chat messages and plugin events alike) and its
//! write side (keep-alive, and for publishers the open-loop schedule).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tavern::client::{ClientReader, ClientWriter};
use tavern::protocol::pb::ServerMessage;
use tavern::protocol::pb::server_message::Body;

use super::publisher::{Assignment, Publisher};
use super::workload::{Role, RoomsWorkload};
use crate::bots::{self, Member, describe, keep_alive, latency_us};
use crate::detect::SeqDetector;
use crate::payload;
use crate::schedule::Schedule;
use crate::settings::{SAMPLE_BATCH, SAMPLE_FLUSH_NS};
use crate::share::{Shared, Signals, TaskGuard};
use crate::timeline::{Timeline, sleep_until_wall, wall_ns};
use crate::view::{ChatView, EventView, FrameReader};

/// Counts a member that has just joined.
pub fn register(shared: &Shared, member: &Member, role: Role, room: u64) {
    shared.count_connected(member.connect_latency);
    let mut tally = shared.tally();
    if role == Role::Slow {
        tally.slow.members += 1;
    } else if let Some(receivers) = usize::try_from(room)
        .ok()
        .and_then(|room| tally.chat.receivers_per_room.get_mut(room))
    {
        *receivers += 1;
    }
    drop(tally);
    // Slow members too: the drain waits until they have caught up or been cut off.
    shared.add_receiver();
}

/// A joined member and what it needs to run.
#[derive(Clone)]
pub struct MemberBot {
    /// What it does.
    pub role: Role,
    /// Its room's index.
    pub room: u64,
    /// Its room's name.
    pub room_name: String,
    /// The step's workload.
    pub workload: Arc<RoomsWorkload>,
    /// Where it counts.
    pub shared: Arc<Shared>,
}

impl MemberBot {
    /// Runs the member until told to stop, then adds what it counted to the tally.
    ///
    /// The read side runs as a task of its own, so that a publisher's writing
    /// never delays reading its echoes (a member whose queue fills up is
    /// disconnected by the server).
    pub async fn run(self, member: Member, signals: Signals) {
        let Member {
            mut writer,
            reader,
            joined_seq,
            heartbeat,
            ..
        } = member;
        let receiver = Receiver::new(
            self.role != Role::Slow,
            SeqDetector::new(joined_seq),
            self.shared.clone(),
        );
        let reading = TaskGuard::spawn(self.clone().read_side(reader, receiver, signals.clone()));
        let (publisher, write_end) = self.write_side(&mut writer, heartbeat, signals).await;
        // The writer stays open until the reader is done: closing it first would
        // make the server close the connection under the reader's feet.
        let read = reading.join().await;
        drop(writer);
        let Ok((receiver, read_end)) = read else {
            return;
        };
        let ended = read_end.or(write_end);
        let mut tally = self.shared.tally();
        receiver.add_to(&mut tally);
        publisher.add_to(&mut tally, self.room);
        if self.role == Role::Slow {
            let slow = &mut tally.slow;
            match ended.as_deref() {
                None => slow.still_connected += 1,
                Some("SLOW_CONSUMER") => slow.slow_consumer += 1,
                Some(reason) if reason == "closed" || reason.starts_with("io ") => slow.closed_silently += 1,
                Some(_) => slow.other_disconnects += 1,
            }
        } else if let Some(reason) = ended {
            crate::tally::bump(&mut tally.bots.disconnects, reason);
        }
    }

    /// Reads until told to stop or the connection ends; returns why it ended, if it did.
    async fn read_side(
        self,
        reader: ClientReader,
        mut receiver: Receiver,
        mut signals: Signals,
    ) -> (Receiver, Option<String>) {
        let mut reader = FrameReader::new(reader);
        let ended = 'read: {
            // Setup: only presence events arrive until the start time is known.
            let timeline = match bots::read_until_start(&mut reader, &mut receiver, &mut signals).await {
                Ok(timeline) => timeline,
                Err(ended) => break 'read ended,
            };
            receiver.start(&self.workload, self.room, timeline);
            if self.role == Role::Slow {
                tokio::select! {
                    () = sleep_until_wall(timeline.window_end_ns()) => {}
                    () = signals.stopped() => break 'read None,
                }
            }
            bots::read_until_stopped(&mut reader, &mut receiver, &mut signals).await
        };
        if ended.is_some() {
            self.shared.live.connected.fetch_sub(1, Ordering::Relaxed);
        }
        receiver.finish();
        (receiver, ended)
    }

    /// Keeps the connection alive and, for a publisher, publishes on the
    /// schedule; returns what it sent and why the connection ended, if it did.
    async fn write_side(
        &self,
        writer: &mut ClientWriter,
        heartbeat: Duration,
        mut signals: Signals,
    ) -> (Publisher, Option<String>) {
        let mut publisher = Publisher::default();
        let timeline = loop {
            tokio::select! {
                biased;
                timeline = signals.timeline() => match timeline {
                    Some(timeline) => break timeline,
                    None => return (publisher, None),
                },
                () = tokio::time::sleep(heartbeat) => {
                    if let Err(e) = bots::send_ping(writer).await {
                        return (publisher, Some(describe(&e)));
                    }
                }
            }
        };
        if let Role::Publisher(index) = self.role {
            let Ok(schedule) = Schedule::new(timeline.start_ns, self.workload.rate, self.workload.total_publishers())
            else {
                return (publisher, None);
            };
            let assignment = Assignment {
                index,
                schedule: &schedule,
                timeline: &timeline,
                room_name: &self.room_name,
                size: self.workload.size,
                traffic: &self.workload.traffic,
            };
            let publishing = publisher.publish(writer, assignment, &self.shared.live, &mut signals);
            if let Err(reason) = publishing.await {
                return (publisher, Some(reason));
            }
        }
        let ended = keep_alive(writer, heartbeat, &mut signals).await;
        (publisher, ended)
    }
}

/// What one member's read side counts. Every member takes part in the
/// drain (it is done once it has every window message, or its connection
/// ended), but only the figures of members that kept reading count.
#[derive(Debug)]
struct Receiver {
    /// Whether its figures count (not for slow members).
    counted: bool,
    detector: SeqDetector,
    /// The schedule and window, once known, and the window messages expected.
    window: Option<(Schedule, Timeline, u64)>,
    received_window: u64,
    received_total: u64,
    unparsed: u64,
    done: bool,
    samples: Vec<u64>,
    unreported_deliveries: u64,
    last_flush_ns: u64,
    shared: Arc<Shared>,
}

impl bots::OnMessage for Receiver {
    fn on_message(&mut self, message: &ServerMessage) -> Option<String> {
        Receiver::on_message(self, message)
    }

    fn on_chat(&mut self, chat: &ChatView<'_>, arrived_ns: u64) -> Option<String> {
        Receiver::on_chat(self, chat, arrived_ns);
        None
    }

    fn on_event(&mut self, event: &EventView<'_>, arrived_ns: u64) -> Option<String> {
        Receiver::on_event(self, event, arrived_ns);
        None
    }
}

impl Receiver {
    fn new(counted: bool, detector: SeqDetector, shared: Arc<Shared>) -> Receiver {
        Receiver {
            counted,
            detector,
            window: None,
            received_window: 0,
            received_total: 0,
            unparsed: 0,
            done: false,
            samples: Vec::with_capacity(SAMPLE_BATCH),
            unreported_deliveries: 0,
            last_flush_ns: 0,
            shared,
        }
    }

    /// Learns the timeline, and from the schedule how many window messages its room gets.
    fn start(&mut self, workload: &RoomsWorkload, room: u64, timeline: Timeline) {
        let Ok(schedule) = Schedule::new(timeline.start_ns, workload.rate, workload.total_publishers()) else {
            return;
        };
        let expected = workload
            .room_publishers(room)
            .map(|p| schedule.count_between(p, timeline.window_start_ns(), timeline.window_end_ns()))
            .sum();
        self.window = Some((schedule, timeline, expected));
        self.check_done();
    }

    /// Handles one message; returns why the connection ends, if it does.
    fn on_message(&mut self, message: &ServerMessage) -> Option<String> {
        match &message.body {
            Some(Body::Chat(chat)) => self.on_chat(&ChatView::of(message.request_id, chat), wall_ns()),
            Some(Body::RoomEvent(event)) => self.on_event(&EventView::of(message.request_id, event), wall_ns()),
            Some(Body::MemberJoined(joined)) => self.detector.observe(joined.seq),
            Some(Body::MemberLeft(left)) => self.detector.observe(left.seq),
            _ => return bots::ending(message),
        }
        None
    }

    /// Handles a chat message, read in place or decoded, whose bytes
    /// arrived at `now` (wall clock, ns).
    fn on_chat(&mut self, chat: &ChatView<'_>, now: u64) {
        self.detector.observe(chat.seq);
        self.on_delivery(chat.text.as_bytes(), now);
    }

    /// Handles a room plugin's event, read in place or decoded, whose bytes
    /// arrived at `now` (wall clock, ns). One sent to some members only
    /// (seq 0) has no place in the room's order.
    fn on_event(&mut self, event: &EventView<'_>, now: u64) {
        if event.seq != 0 {
            self.detector.observe(event.seq);
        }
        self.on_delivery(event.data, now);
    }

    /// Counts a delivery whose stamp is in `stamped` (a chat text, an
    /// event's data) and whose bytes arrived at `now`: its reception and,
    /// for a window message, its latency.
    fn on_delivery(&mut self, stamped: &[u8], now: u64) {
        self.received_total += 1;
        self.unreported_deliveries += 1;
        let Some(stamp) = payload::parse(stamped) else {
            self.unparsed += 1;
            return;
        };
        if let Some((schedule, timeline, _)) = &self.window
            && schedule.is_between(
                stamp.publisher,
                stamp.counter,
                timeline.window_start_ns(),
                timeline.window_end_ns(),
            )
        {
            self.received_window += 1;
            self.samples.push(latency_us(stamp.sent_ns, now));
            self.check_done();
        }
        if self.samples.len() >= SAMPLE_BATCH || now.saturating_sub(self.last_flush_ns) >= SAMPLE_FLUSH_NS {
            self.flush(now);
        }
    }

    fn check_done(&mut self) {
        if let Some((_, _, expected)) = self.window
            && !self.done
            && self.received_window >= expected
        {
            self.done = true;
            self.shared.receiver_done();
        }
    }

    /// Adds the kept samples to the shared histogram and the live counter.
    fn flush(&mut self, now: u64) {
        self.last_flush_ns = now;
        if self.counted {
            self.shared
                .live
                .delivered
                .fetch_add(self.unreported_deliveries, Ordering::Relaxed);
            if !self.samples.is_empty() {
                let mut tally = self.shared.tally();
                for &sample in &self.samples {
                    tally.chat.latency.record_us(sample);
                }
            }
        }
        self.unreported_deliveries = 0;
        self.samples.clear();
    }

    /// The connection ended or the step stopped: flush, and stop the drain waiting for this one.
    fn finish(&mut self) {
        self.flush(wall_ns());
        if !self.done {
            self.done = true;
            self.shared.receiver_done();
        }
    }

    fn add_to(&self, tally: &mut crate::tally::Tally) {
        if self.counted {
            let chat = &mut tally.chat;
            chat.received_window += self.received_window;
            chat.received_total += self.received_total;
            chat.unparsed += self.unparsed;
            chat.seq.merge(self.detector.counts());
        }
    }
}
