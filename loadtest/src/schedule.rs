//! The open-loop send schedule: when each publisher sends each message.
//!
//! The total offered rate `R` (messages per second) is split over `P`
//! publishers. Think of one global stream of send slots, slot `g` at
//! `origin + floor(g * 1e9 / R)` nanoseconds; publisher `i` owns the slots
//! `g = k * P + i`, so its message `k` goes at slot `k * P + i`. Each publisher
//! thus sends at `R / P` per second, and the publishers are phase-shifted by
//! `1 / R` from one another instead of all firing together.
//!
//! Everything here is pure integer arithmetic on wall-clock nanoseconds, so
//! every process of a run computes the same schedule from the same origin.

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The shared schedule of one run step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    origin_ns: u64,
    rate_per_s: u64,
    publishers: u64,
}

impl Schedule {
    /// A schedule starting at `origin_ns` (wall clock) with `rate_per_s`
    /// messages per second in total over `publishers` publishers.
    ///
    /// # Errors
    /// The rate or the number of publishers is zero.
    pub fn new(origin_ns: u64, rate_per_s: u64, publishers: u64) -> anyhow::Result<Schedule> {
        anyhow::ensure!(rate_per_s > 0, "the offered rate must be at least 1 message per second");
        anyhow::ensure!(publishers > 0, "a schedule needs at least one publisher");
        Ok(Schedule {
            origin_ns,
            rate_per_s,
            publishers,
        })
    }

    /// How many publishers share the schedule.
    pub fn publishers(&self) -> u64 {
        self.publishers
    }

    /// The wall-clock time (ns) at which `publisher` sends its message `k`.
    pub fn send_time_ns(&self, publisher: u64, k: u64) -> u64 {
        let slot = u128::from(k) * u128::from(self.publishers) + u128::from(publisher);
        let offset = slot * NANOS_PER_SEC / u128::from(self.rate_per_s);
        u64::try_from(u128::from(self.origin_ns) + offset).unwrap_or(u64::MAX)
    }

    /// How many messages of `publisher` are scheduled strictly before `t_ns`.
    pub fn count_before(&self, publisher: u64, t_ns: u64) -> u64 {
        let Some(elapsed) = t_ns.checked_sub(self.origin_ns) else {
            return 0;
        };
        // Slot g is before t exactly when g * 1e9 / R < elapsed, that is when
        // g < elapsed * R / 1e9: the slots 0..slots are before t.
        let slots = (u128::from(elapsed) * u128::from(self.rate_per_s)).div_ceil(NANOS_PER_SEC);
        let publisher = u128::from(publisher);
        if slots <= publisher {
            return 0;
        }
        let count = (slots - 1 - publisher) / u128::from(self.publishers) + 1;
        u64::try_from(count).unwrap_or(u64::MAX)
    }

    /// How many messages of `publisher` are due at `t_ns` (scheduled at or before it).
    pub fn due_count(&self, publisher: u64, t_ns: u64) -> u64 {
        self.count_before(publisher, t_ns.saturating_add(1))
    }

    /// How many messages of `publisher` are scheduled in `[from_ns, to_ns)`.
    pub fn count_between(&self, publisher: u64, from_ns: u64, to_ns: u64) -> u64 {
        self.count_before(publisher, to_ns)
            .saturating_sub(self.count_before(publisher, from_ns))
    }

    /// Whether message `k` of `publisher` is scheduled in `[from_ns, to_ns)`.
    pub fn is_between(&self, publisher: u64, k: u64, from_ns: u64, to_ns: u64) -> bool {
        let t = self.send_time_ns(publisher, k);
        from_ns <= t && t < to_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn one_publisher_sends_at_the_rate() {
        let s = Schedule::new(1_000, 1000, 1).unwrap();
        assert_eq!(s.send_time_ns(0, 0), 1_000);
        assert_eq!(s.send_time_ns(0, 1), 1_000 + MS);
        assert_eq!(s.send_time_ns(0, 5), 1_000 + 5 * MS);
        assert_eq!(s.count_before(0, 999), 0);
        assert_eq!(s.count_before(0, 1_000), 0);
        assert_eq!(s.due_count(0, 1_000), 1);
        assert_eq!(s.count_before(0, 1_000 + MS), 1);
        assert_eq!(s.due_count(0, 1_000 + MS), 2);
        assert_eq!(s.count_between(0, 1_000, 1_000 + 1000 * MS), 1000);
    }

    #[test]
    fn publishers_are_phase_shifted_evenly() {
        // 4 publishers sharing 1000/s: each sends every 4 ms, 1 ms apart.
        let s = Schedule::new(0, 1000, 4).unwrap();
        let firsts: Vec<u64> = (0..4).map(|i| s.send_time_ns(i, 0)).collect();
        assert_eq!(firsts, vec![0, MS, 2 * MS, 3 * MS]);
        assert_eq!(s.send_time_ns(2, 1), 6 * MS);
        let mut all: Vec<u64> = (0..4)
            .flat_map(|i| (0..10).map(move |k| s.send_time_ns(i, k)))
            .collect();
        all.sort_unstable();
        let steps: Vec<u64> = all.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(steps.iter().all(|&d| d == MS), "{steps:?}");
    }

    #[test]
    fn counts_agree_with_send_times() {
        // An awkward rate, so that send times are rounded down.
        let s = Schedule::new(123_456_789, 7_777, 13).unwrap();
        for publisher in 0..13 {
            for k in [0, 1, 2, 17, 1_000, 99_999] {
                let t = s.send_time_ns(publisher, k);
                assert_eq!(s.count_before(publisher, t), k, "publisher {publisher} message {k}");
                assert_eq!(s.due_count(publisher, t), k + 1, "publisher {publisher} message {k}");
                assert!(s.is_between(publisher, k, t, t + 1));
                assert!(!s.is_between(publisher, k, t + 1, u64::MAX));
            }
        }
    }

    #[test]
    fn the_total_over_a_window_is_the_rate_times_the_window() {
        let s = Schedule::new(5 * MS, 12_345, 7).unwrap();
        let from = 5 * MS + 2_000 * MS;
        let to = from + 3_000 * MS;
        let total: u64 = (0..7).map(|i| s.count_between(i, from, to)).sum();
        // 3 s at 12 345/s, give or take one slot at each end.
        assert!((37_034..=37_036).contains(&total), "{total}");
    }

    #[test]
    fn rejects_a_zero_rate_or_no_publishers() {
        assert!(Schedule::new(0, 0, 1).is_err());
        assert!(Schedule::new(0, 1, 0).is_err());
    }

    #[test]
    fn far_future_times_saturate_instead_of_overflowing() {
        let s = Schedule::new(u64::MAX - 10, 1, 1).unwrap();
        assert_eq!(s.send_time_ns(0, 5), u64::MAX);
        assert_eq!(s.count_before(0, u64::MAX), 1);
    }
}
