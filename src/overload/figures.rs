//! The figures overload protection reads: histogram windows, the process's
//! memory, and how late the event loops run.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::Histogram;

use crate::stats::Stats;

/// How often each event loop's lag is probed: often enough that every
/// judgement (every 250 ms) sees two probes, seldom enough that idle threads
/// barely wake.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// How long resident memory must stop growing before it no longer counts as overload.
pub const RSS_GROWTH_WINDOW: Duration = Duration::from_secs(10);

/// Growth below this much over [`RSS_GROWTH_WINDOW`] counts as none (allocator noise), bytes.
const RSS_GROWTH_SLACK: f64 = 1024.0 * 1024.0;

/// Runs forever on the current thread's event loop, recording into `stats`
/// how late its timer fires: a loop busy with work that does not yield, or
/// with more ready work than it can run, fires it late.
pub async fn probe_loop_lag(stats: Arc<Stats>) {
    loop {
        let due = tokio::time::Instant::now() + PROBE_INTERVAL;
        tokio::time::sleep_until(due).await;
        stats.loop_lag(tokio::time::Instant::now().saturating_duration_since(due));
    }
}

/// A histogram's cumulative bucket counts, by upper bound.
#[derive(Debug, Clone, Default)]
pub(super) struct Buckets(Vec<(f64, u64)>);

impl Buckets {
    pub(super) fn of(histogram: &Histogram) -> Buckets {
        use prometheus::core::Collector;
        let families = histogram.collect();
        let buckets = families
            .first()
            .and_then(|family| family.get_metric().first())
            .map(|metric| {
                let h = metric.get_histogram();
                let mut buckets: Vec<(f64, u64)> = h
                    .get_bucket()
                    .iter()
                    .map(|b| (b.upper_bound(), b.cumulative_count()))
                    .collect();
                buckets.push((f64::INFINITY, h.get_sample_count()));
                buckets
            })
            .unwrap_or_default();
        Buckets(buckets)
    }

    /// The `q` quantile of what was observed between `earlier` and `self`,
    /// interpolated within its bucket (as Prometheus's `histogram_quantile`);
    /// 0 when nothing was observed. Beyond the last bound it is that bound.
    pub(super) fn quantile_since(&self, earlier: &Buckets, q: f64) -> f64 {
        let count = |i: usize| {
            let now = self.0.get(i).map_or(0, |b| b.1);
            let then = earlier.0.get(i).map_or(0, |b| b.1);
            now.saturating_sub(then)
        };
        let Some(last) = self.0.len().checked_sub(1) else {
            return 0.0;
        };
        let total = count(last);
        if total == 0 {
            return 0.0;
        }
        let rank = q * float(total);
        let mut lower = 0.0;
        let mut below = 0;
        for (i, &(upper, _)) in self.0.iter().enumerate() {
            let cumulative = count(i);
            if float(cumulative) >= rank {
                if upper.is_infinite() {
                    return lower;
                }
                let within = float(cumulative - below);
                let fraction = if within > 0.0 {
                    (rank - float(below)) / within
                } else {
                    1.0
                };
                return lower + (upper - lower) * fraction.clamp(0.0, 1.0);
            }
            lower = upper;
            below = cumulative;
        }
        lower
    }
}

/// The resident memory figure: the process's RSS while it is still growing
/// (more than 1 MiB above its lowest point of the last [`RSS_GROWTH_WINDOW`]),
/// else 0. Memory that is held but no longer growing does not keep the server
/// shedding, since freed memory is rarely given back to the system.
#[derive(Debug, Default)]
pub(super) struct RssTrend {
    recent: VecDeque<(Instant, f64)>,
}

impl RssTrend {
    /// Records `rss` (bytes) at `now`; returns the figure.
    pub(super) fn figure(&mut self, now: Instant, rss: f64) -> f64 {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RSS_GROWTH_WINDOW)
        {
            self.recent.pop_front();
        }
        let lowest = self.recent.iter().map(|(_, rss)| *rss).fold(rss, f64::min);
        self.recent.push_back((now, rss));
        if rss - lowest > RSS_GROWTH_SLACK { rss } else { 0.0 }
    }
}

/// `n` as a float, for rates and sizes (exact below 2^53).
#[allow(clippy::as_conversions)]
pub(super) fn float(n: u64) -> f64 {
    n as f64
}

/// The process's resident memory, bytes (0 if it cannot be read).
pub(super) fn rss_bytes() -> f64 {
    procfs::process::Process::myself()
        .and_then(|p| p.stat())
        .map_or(0.0, |stat| float(procfs::WithCurrentSystemInfo::get(stat.rss_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(counts: &[(f64, u64)]) -> Buckets {
        Buckets(counts.to_vec())
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_of_the_window() {
        let before = buckets(&[(1.0, 5), (2.0, 5), (4.0, 5), (f64::INFINITY, 5)]);
        // Since then: 10 observations in (1, 2], 10 in (2, 4].
        let now = buckets(&[(1.0, 5), (2.0, 15), (4.0, 25), (f64::INFINITY, 25)]);
        assert!((now.quantile_since(&before, 0.5) - 2.0).abs() < 1e-9);
        assert!((now.quantile_since(&before, 0.25) - 1.5).abs() < 1e-9);
        assert!((now.quantile_since(&before, 0.99) - 3.96).abs() < 1e-9);
        assert_eq!(before.quantile_since(&before, 0.99), 0.0, "nothing observed");
        let beyond = buckets(&[(1.0, 5), (2.0, 5), (4.0, 5), (f64::INFINITY, 9)]);
        assert_eq!(beyond.quantile_since(&before, 0.99), 4.0, "past the last bound");
    }

    #[test]
    fn memory_counts_while_it_grows_and_stops_counting_once_flat() {
        const MIB: f64 = 1024.0 * 1024.0;
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut trend = RssTrend::default();
        assert_eq!(trend.figure(at(0), 100.0 * MIB), 0.0, "no growth seen yet");
        assert_eq!(trend.figure(at(1), 150.0 * MIB), 150.0 * MIB, "growing");
        assert_eq!(trend.figure(at(5), 150.0 * MIB), 150.0 * MIB, "grew within the window");
        assert_eq!(trend.figure(at(12), 150.0 * MIB), 0.0, "flat for the whole window");
        assert_eq!(trend.figure(at(13), 160.0 * MIB), 160.0 * MIB, "growing again");
    }
}
