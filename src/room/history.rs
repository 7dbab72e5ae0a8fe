//! A room's recent history, for recovery: its last sequenced frames (chat,
//! presence, plugin broadcasts), as they were sent, bounded by count
//! ([`Config::room_history_size`]) and age ([`Config::room_history_ttl_ms`]).
//! A frame is the very `Bytes` the fan-out sent, so keeping it costs a
//! reference, not a copy. It is a cache, not a log: a room made again starts
//! with an empty history under a new epoch.
//!
//! [`Config::room_history_size`]: crate::Config::room_history_size
//! [`Config::room_history_ttl_ms`]: crate::Config::room_history_ttl_ms

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use quanta::Instant;

/// See the module documentation.
#[derive(Debug)]
pub(super) struct History {
    frames: VecDeque<(u64, Instant, Bytes)>,
    size: usize,
    ttl: Duration,
}

impl History {
    /// An empty history of at most `size` frames no older than `ttl` (either 0: none kept).
    pub(super) fn new(size: usize, ttl: Duration) -> History {
        let size = if ttl.is_zero() { 0 } else { size };
        History {
            frames: VecDeque::new(),
            size,
            ttl,
        }
    }

    /// Keeps `frame`, the one sent with `seq`.
    pub(super) fn push(&mut self, seq: u64, frame: &Bytes) {
        if self.size == 0 {
            return;
        }
        if self.frames.len() >= self.size {
            self.frames.pop_front();
        }
        self.frames.push_back((seq, Instant::now(), frame.clone()));
    }

    /// The frames after `since` up to `last` (the room's seq now), in
    /// order, if the history still holds every one of them.
    pub(super) fn since(&mut self, since: u64, last: u64) -> Option<Vec<Bytes>> {
        self.since_at(since, last, Instant::now())
    }

    /// [`History::since`] as of `now`.
    fn since_at(&mut self, since: u64, last: u64, now: Instant) -> Option<Vec<Bytes>> {
        if since > last {
            return None;
        }
        self.expire(now);
        if since == last {
            return Some(Vec::new());
        }
        let oldest = self.frames.front().map(|(seq, _, _)| *seq)?;
        if oldest > since + 1 {
            return None;
        }
        let missed = self
            .frames
            .iter()
            .filter(|(seq, _, _)| *seq > since)
            .map(|(_, _, frame)| frame.clone())
            .collect();
        Some(missed)
    }

    /// Drops the frames older than the age limit as of `now`.
    fn expire(&mut self, now: Instant) {
        while self
            .frames
            .front()
            .is_some_and(|(_, at, _)| now.saturating_duration_since(*at) > self.ttl)
        {
            self.frames.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> Bytes {
        Bytes::from(seq.to_be_bytes().to_vec())
    }

    #[test]
    fn gives_what_came_after_while_it_holds_it_all() {
        let mut history = History::new(3, Duration::from_secs(60));
        for seq in 1..=4 {
            history.push(seq, &frame(seq));
        }
        assert_eq!(history.since(1, 4), Some(vec![frame(2), frame(3), frame(4)]));
        assert_eq!(history.since(3, 4), Some(vec![frame(4)]));
        assert_eq!(history.since(4, 4), Some(Vec::new()));
        assert_eq!(history.since(0, 4), None, "seq 1 was pushed out");
        assert_eq!(history.since(5, 4), None, "a seq the room never reached");
    }

    #[test]
    fn zero_keeps_nothing() {
        for mut history in [
            History::new(0, Duration::from_secs(60)),
            History::new(8, Duration::ZERO),
        ] {
            history.push(1, &frame(1));
            assert_eq!(history.since(0, 1), None);
            assert_eq!(history.since(1, 1), Some(Vec::new()));
        }
    }

    #[test]
    fn old_frames_expire() {
        let mut history = History::new(8, Duration::from_secs(60));
        history.push(1, &frame(1));
        history.push(2, &frame(2));
        assert_eq!(history.since(0, 2), Some(vec![frame(1), frame(2)]));
        let later = Instant::now() + Duration::from_secs(61);
        assert_eq!(history.since_at(0, 2, later), None);
    }
}
