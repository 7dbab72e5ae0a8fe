//! The per-room sequence check one receiving bot runs: every room event
//! (`ChatMessage`, `MemberJoined`, `MemberLeft`) carries the room's `seq`,
//! which must rise by exactly one. The detector counts gaps, reorders and
//! duplicates.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Most skipped sequence numbers remembered at once; beyond it the oldest are
/// forgotten and stay counted as gaps (a late arrival of one of them then
/// counts as a duplicate).
pub const MAX_TRACKED_MISSING: usize = 65_536;

/// What the sequence check found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqCounts {
    /// Sequence numbers skipped and never received.
    pub gaps: u64,
    /// Sequence numbers received after a higher one (late, but not lost).
    pub reorders: u64,
    /// Sequence numbers received more than once.
    pub duplicates: u64,
}

impl SeqCounts {
    /// Adds another receiver's counts.
    pub fn merge(&mut self, other: SeqCounts) {
        self.gaps += other.gaps;
        self.reorders += other.reorders;
        self.duplicates += other.duplicates;
    }
}

/// The sequence check of one receiver in one room.
#[derive(Debug)]
pub struct SeqDetector {
    /// The highest sequence number seen (at first, the one from `RoomJoined`).
    highest: u64,
    /// Skipped numbers below `highest` not received yet.
    missing: BTreeSet<u64>,
    /// Skipped numbers forgotten because `missing` was full.
    forgotten: u64,
    reorders: u64,
    duplicates: u64,
}

impl SeqDetector {
    /// A detector for a member who joined at `joined_seq` (`RoomJoined.seq`):
    /// the next event it receives from the room carries `joined_seq + 1`.
    pub fn new(joined_seq: u64) -> SeqDetector {
        SeqDetector {
            highest: joined_seq,
            missing: BTreeSet::new(),
            forgotten: 0,
            reorders: 0,
            duplicates: 0,
        }
    }

    /// Records one room event's sequence number.
    pub fn observe(&mut self, seq: u64) {
        if seq == self.highest.wrapping_add(1) {
            self.highest = seq;
        } else if seq > self.highest {
            // Only the last MAX_TRACKED_MISSING skipped numbers can be remembered;
            // the rest of a huge jump is counted without walking it.
            let first_skipped = self.highest + 1;
            let tracked_from = seq
                .saturating_sub(crate::units::u64_from(MAX_TRACKED_MISSING))
                .max(first_skipped);
            self.forgotten += tracked_from - first_skipped;
            for skipped in tracked_from..seq {
                self.remember_missing(skipped);
            }
            self.highest = seq;
        } else if self.missing.remove(&seq) {
            self.reorders += 1;
        } else {
            self.duplicates += 1;
        }
    }

    /// The counts so far; numbers still missing count as gaps.
    pub fn counts(&self) -> SeqCounts {
        SeqCounts {
            gaps: crate::units::u64_from(self.missing.len()) + self.forgotten,
            reorders: self.reorders,
            duplicates: self.duplicates,
        }
    }

    fn remember_missing(&mut self, seq: u64) {
        if self.missing.len() >= MAX_TRACKED_MISSING {
            self.missing.pop_first();
            self.forgotten += 1;
        }
        self.missing.insert(seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(joined: u64, seqs: &[u64]) -> SeqCounts {
        let mut detector = SeqDetector::new(joined);
        for &seq in seqs {
            detector.observe(seq);
        }
        detector.counts()
    }

    #[test]
    fn an_ordered_stream_is_clean() {
        assert_eq!(run(10, &[11, 12, 13, 14]), SeqCounts::default());
        assert_eq!(run(0, &[]), SeqCounts::default());
    }

    #[test]
    fn a_skipped_number_is_a_gap() {
        let counts = run(10, &[11, 13, 14, 17]);
        assert_eq!(
            counts,
            SeqCounts {
                gaps: 3,
                reorders: 0,
                duplicates: 0
            }
        );
    }

    #[test]
    fn a_late_number_is_a_reorder_not_a_gap() {
        let counts = run(0, &[1, 3, 2, 4]);
        assert_eq!(
            counts,
            SeqCounts {
                gaps: 0,
                reorders: 1,
                duplicates: 0
            }
        );
    }

    #[test]
    fn a_repeated_number_is_a_duplicate() {
        let counts = run(0, &[1, 2, 2, 3, 1]);
        assert_eq!(
            counts,
            SeqCounts {
                gaps: 0,
                reorders: 0,
                duplicates: 2
            }
        );
        // An event from before the join is also a duplicate of what the join covered.
        assert_eq!(run(5, &[5, 6]).duplicates, 1);
    }

    #[test]
    fn a_reorder_received_twice_is_then_a_duplicate() {
        let counts = run(0, &[2, 1, 1]);
        assert_eq!(
            counts,
            SeqCounts {
                gaps: 0,
                reorders: 1,
                duplicates: 1
            }
        );
    }

    #[test]
    fn huge_gaps_stay_bounded_and_counted() {
        let mut detector = SeqDetector::new(0);
        let jump = crate::units::u64_from(MAX_TRACKED_MISSING) + 100;
        detector.observe(jump + 1);
        assert_eq!(detector.missing.len(), MAX_TRACKED_MISSING);
        assert_eq!(detector.counts().gaps, jump);
        detector.observe(jump); // still remembered: a reorder
        assert_eq!(detector.counts().reorders, 1);
        assert_eq!(detector.counts().gaps, jump - 1);
        // A corrupt jump to the end of the number space is counted, not walked.
        detector.observe(u64::MAX);
        assert_eq!(detector.missing.len(), MAX_TRACKED_MISSING);
        assert_eq!(detector.counts().gaps, u64::MAX - 2 - 1);
    }

    #[test]
    fn merging_adds_counts() {
        let mut total = SeqCounts::default();
        total.merge(SeqCounts {
            gaps: 1,
            reorders: 2,
            duplicates: 3,
        });
        total.merge(SeqCounts {
            gaps: 10,
            reorders: 20,
            duplicates: 30,
        });
        assert_eq!(
            total,
            SeqCounts {
                gaps: 11,
                reorders: 22,
                duplicates: 33
            }
        );
    }
}
