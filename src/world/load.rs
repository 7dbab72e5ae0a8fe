//! The tick budget: recent tick durations and the degradation level they lead to.

use std::collections::VecDeque;
use std::time::Duration;

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
/// the world's time (see [`World`](super::World)).
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
