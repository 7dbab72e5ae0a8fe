//! The phases of one run step on the wall clock: warm-up from `start`, the
//! measured window, then the drain. Every process of a run shares one
//! timeline (wall-clock nanoseconds; they all run on one machine).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::units::nanos;

/// Nanoseconds since the Unix epoch, now.
pub fn wall_ns() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    nanos(since_epoch)
}

/// The tokio instant at which the wall clock will read `wall`.
pub fn instant_at(wall: u64) -> tokio::time::Instant {
    let now_instant = tokio::time::Instant::now();
    let now_wall = wall_ns();
    match wall.checked_sub(now_wall) {
        Some(ahead) => now_instant + Duration::from_nanos(ahead),
        None => now_instant,
    }
}

/// Sleeps until the wall clock reads `wall` (at once if it already has).
pub async fn sleep_until_wall(wall: u64) {
    tokio::time::sleep_until(instant_at(wall)).await;
}

/// When one step warms up, measures and drains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// Wall-clock start (ns): load begins, warm-up starts.
    pub start_ns: u64,
    /// Warm-up length (ns): load runs, nothing is counted.
    pub warmup_ns: u64,
    /// Measured window length (ns).
    pub duration_ns: u64,
    /// Longest wait after the window for in-flight messages (ns).
    pub drain_ns: u64,
}

impl Timeline {
    /// A timeline starting at `start_ns`.
    pub fn new(start_ns: u64, warmup: Duration, duration: Duration, drain: Duration) -> Timeline {
        Timeline {
            start_ns,
            warmup_ns: nanos(warmup),
            duration_ns: nanos(duration),
            drain_ns: nanos(drain),
        }
    }

    /// The first nanosecond of the measured window.
    pub fn window_start_ns(&self) -> u64 {
        self.start_ns.saturating_add(self.warmup_ns)
    }

    /// The first nanosecond after the measured window.
    pub fn window_end_ns(&self) -> u64 {
        self.window_start_ns().saturating_add(self.duration_ns)
    }

    /// When the drain gives up.
    pub fn drain_deadline_ns(&self) -> u64 {
        self.window_end_ns().saturating_add(self.drain_ns)
    }

    /// Whether the wall-clock time `t` falls in the measured window.
    pub fn in_window(&self, t: u64) -> bool {
        self.window_start_ns() <= t && t < self.window_end_ns()
    }

    /// The measured window's length.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.duration_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_each_other() {
        let t = Timeline::new(
            1_000,
            Duration::from_nanos(10),
            Duration::from_nanos(100),
            Duration::from_nanos(5),
        );
        assert_eq!(t.window_start_ns(), 1_010);
        assert_eq!(t.window_end_ns(), 1_110);
        assert_eq!(t.drain_deadline_ns(), 1_115);
        assert!(!t.in_window(1_009));
        assert!(t.in_window(1_010));
        assert!(t.in_window(1_109));
        assert!(!t.in_window(1_110));
        assert_eq!(t.window(), Duration::from_nanos(100));
    }

    #[test]
    fn a_past_wall_time_is_now() {
        let now = tokio::time::Instant::now();
        assert!(instant_at(0) >= now);
        assert!(instant_at(wall_ns() + 1_000_000_000) > now + Duration::from_millis(900));
    }
}
