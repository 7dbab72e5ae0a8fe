//! Input-to-echo bookkeeping of one MMO bot: the send time of each Move by
//! its `client_tick`, until a `WorldUpdate` acknowledges it (its
//! `ack_client_tick` is at least that tick). Bounded: when too many are
//! unacknowledged, the oldest is forgotten and counted as never echoed.

use std::collections::VecDeque;

use crate::bots::latency_us;

/// Moves one bot remembers at most (25 s of input at 10 Hz).
pub const PENDING_CAPACITY: usize = 256;

/// One Move sent and not yet acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sent {
    /// Its `client_tick`.
    client_tick: u32,
    /// When it was written, wall-clock ns.
    sent_ns: u64,
    /// Whether it was written in the window (its latency counts).
    in_window: bool,
}

/// A bot's Moves awaiting their echo, oldest (lowest tick) first.
#[derive(Debug)]
pub struct PendingMoves {
    /// The moves, ascending by tick.
    sent: VecDeque<Sent>,
    /// Most moves kept.
    capacity: usize,
    /// Window moves forgotten unacknowledged because too many were pending.
    forgotten_window: u64,
}

impl PendingMoves {
    /// Remembers at most `capacity` moves (at least one).
    pub fn new(capacity: usize) -> PendingMoves {
        PendingMoves {
            sent: VecDeque::new(),
            capacity: capacity.max(1),
            forgotten_window: 0,
        }
    }

    /// A Move with `client_tick` (above every earlier one) was sent at
    /// `sent_ns`; `in_window` when its echo latency counts.
    pub fn sent(&mut self, client_tick: u32, sent_ns: u64, in_window: bool) {
        if self.sent.len() >= self.capacity
            && let Some(oldest) = self.sent.pop_front()
        {
            self.forgotten_window += u64::from(oldest.in_window);
        }
        self.sent.push_back(Sent {
            client_tick,
            sent_ns,
            in_window,
        });
    }

    /// An update acknowledging `ack_client_tick` arrived at `now_ns`: every
    /// move up to that tick is echoed. Hands the latency (µs) of each window
    /// move among them to `record`, and returns how many those were.
    pub fn acked(&mut self, ack_client_tick: u32, now_ns: u64, mut record: impl FnMut(u64)) -> u64 {
        let mut echoed = 0;
        while let Some(oldest) = self.sent.front().copied() {
            if oldest.client_tick > ack_client_tick {
                break;
            }
            self.sent.pop_front();
            if oldest.in_window {
                record(latency_us(oldest.sent_ns, now_ns));
                echoed += 1;
            }
        }
        echoed
    }

    /// Window moves that were never echoed: still pending, or forgotten.
    pub fn unechoed_window(&self) -> u64 {
        let pending = self.sent.iter().filter(|sent| sent.in_window).count();
        crate::units::u64_from(pending) + self.forgotten_window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn the_first_update_acknowledging_a_tick_ends_its_wait() {
        let mut pending = PendingMoves::new(16);
        pending.sent(1, 10 * MS, false); // warm-up: echoed, not counted
        pending.sent(2, 20 * MS, true);
        pending.sent(3, 30 * MS, true);
        pending.sent(4, 40 * MS, true);
        let mut samples = Vec::new();
        // An update acknowledging nothing new.
        assert_eq!(pending.acked(0, 35 * MS, |us| samples.push(us)), 0);
        // Acknowledges ticks 1 to 3 at once, 45 ms: 25 ms and 15 ms for the window ones.
        assert_eq!(pending.acked(3, 45 * MS, |us| samples.push(us)), 2);
        assert_eq!(samples, vec![25_000, 15_000]);
        // A later update with the same ack records nothing again.
        assert_eq!(pending.acked(3, 50 * MS, |us| samples.push(us)), 0);
        assert_eq!(pending.sent.len(), 1);
        assert_eq!(pending.unechoed_window(), 1);
        assert_eq!(pending.acked(9, 52 * MS, |us| samples.push(us)), 1);
        assert_eq!(samples, vec![25_000, 15_000, 12_000]);
        assert_eq!(pending.unechoed_window(), 0);
    }

    #[test]
    fn it_stays_bounded_and_counts_what_it_forgets() {
        let mut pending = PendingMoves::new(3);
        for tick in 1..=5 {
            pending.sent(tick, u64::from(tick) * MS, tick != 2);
        }
        // Ticks 1 and 2 forgotten (1 a window move), 3..=5 pending.
        assert_eq!(pending.sent.len(), 3);
        assert_eq!(pending.unechoed_window(), 4);
        let mut samples = Vec::new();
        assert_eq!(pending.acked(5, 10 * MS, |us| samples.push(us)), 3);
        assert_eq!(samples, vec![7_000, 6_000, 5_000]);
        assert_eq!(pending.unechoed_window(), 1);
        assert_eq!(PendingMoves::new(0).capacity, 1);
    }

    #[test]
    fn a_clock_going_backwards_is_no_latency() {
        let mut pending = PendingMoves::new(4);
        pending.sent(1, 10 * MS, true);
        let mut samples = Vec::new();
        pending.acked(1, 5 * MS, |us| samples.push(us));
        assert_eq!(samples, vec![0]);
    }
}
