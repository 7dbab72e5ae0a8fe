//! The monitor: once a second it samples the server's figures, keeps the last
//! ten seconds of samples for `/stats`, and decides the overload level.
//!
//! Overload protection reads three figures over the last second, each against
//! its threshold (0 turns one off): the p99 outbound queue depth
//! ([`Config::overload_queue_depth`]), the p99 fan-out duration
//! ([`Config::overload_fanout_us`]) and the resident memory
//! ([`Config::overload_rss_mb`]). The worst ratio of figure to threshold sets
//! the level:
//!
//! - above 1: **shedding**, new connections and joins are refused with
//!   OVERLOADED; the members already in rooms keep everything;
//! - above 2: **presence paused** as well, rooms hold `MemberLeft` back and
//!   announce it once the level falls, so fan-out serves chat first.
//!
//! A level ends, with hysteresis, once the worst ratio is below
//! [`Config::overload_recover_pct`] of that level's boundary (1 or 2). Each change is logged
//! with the figure behind it and shown in `/stats` and `/metrics`.
//!
//! [`Config::overload_queue_depth`]: crate::Config::overload_queue_depth
//! [`Config::overload_fanout_us`]: crate::Config::overload_fanout_us
//! [`Config::overload_rss_mb`]: crate::Config::overload_rss_mb
//! [`Config::overload_recover_pct`]: crate::Config::overload_recover_pct

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use prometheus::Histogram;
use serde::Serialize;
use tracing::{info, warn};

use crate::config::Config;
use crate::ids::OverloadLevel;
use crate::lifecycle::{Hooks, LifecycleEvent};
use crate::stats::Stats;

/// How often the monitor samples.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// How far back `/stats` rates and percentiles look.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Samples kept: the window plus its starting point.
const SAMPLES: usize = 11;

/// The figures at one instant.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    messages_in: u64,
    messages_out: u64,
    deliveries: u64,
    errors: u64,
    fanout: Buckets,
    depth: Buckets,
}

/// A histogram's cumulative bucket counts, by upper bound.
#[derive(Debug, Clone, Default)]
struct Buckets(Vec<(f64, u64)>);

impl Buckets {
    fn of(histogram: &Histogram) -> Buckets {
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
    fn quantile_since(&self, earlier: &Buckets, q: f64) -> f64 {
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

/// `/stats`: the server at a glance, rates over the last ten seconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// The server's version.
    pub version: &'static str,
    /// Seconds since the server started.
    pub uptime_s: f64,
    /// Whether it takes connections (as `/readyz`).
    pub ready: bool,
    /// `normal`, `shedding` or `presence_paused`.
    pub overload: &'static str,
    /// Sockets open.
    pub connections: i64,
    /// Rooms alive.
    pub rooms: i64,
    /// Client messages received per second.
    pub msg_in_per_s: f64,
    /// Frames written per second.
    pub msg_out_per_s: f64,
    /// Chat message copies queued per second.
    pub deliveries_per_s: f64,
    /// Median time to queue a room event for every member, ms.
    pub fanout_p50_ms: f64,
    /// 99th percentile of the same, ms.
    pub fanout_p99_ms: f64,
    /// Error frames sent per client message received.
    pub error_rate: f64,
    /// Resident memory, MiB.
    pub memory_mb: f64,
    /// Seconds the rates cover (up to ten; less just after start).
    pub window_s: f64,
}

/// Samples the figures and sets the overload level; see the module documentation.
#[derive(Debug)]
pub struct Monitor {
    stats: Arc<Stats>,
    hooks: Hooks,
    thresholds: Thresholds,
    samples: Mutex<VecDeque<Sample>>,
}

#[derive(Debug, Clone, Copy)]
struct Thresholds {
    queue_depth: f64,
    fanout_s: f64,
    rss_bytes: f64,
    recover: f64,
}

impl Monitor {
    /// A monitor of `stats` with `config`'s thresholds, telling `hooks` of level changes.
    pub fn new(stats: Arc<Stats>, config: &Config, hooks: Hooks) -> Monitor {
        let monitor = Monitor {
            hooks,
            thresholds: Thresholds {
                queue_depth: f64::from(config.overload_queue_depth),
                fanout_s: f64::from(config.overload_fanout_us) / 1e6,
                rss_bytes: f64::from(config.overload_rss_mb) * 1024.0 * 1024.0,
                recover: f64::from(config.overload_recover_pct) / 100.0,
            },
            samples: Mutex::new(VecDeque::with_capacity(SAMPLES)),
            stats,
        };
        let first = monitor.sample();
        monitor.lock_samples().push_back(first);
        monitor
    }

    /// The figures it reads.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Samples every [`SAMPLE_INTERVAL`] until dropped.
    pub async fn run(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            self.tick();
        }
    }

    /// Takes one sample and re-decides the overload level.
    pub fn tick(&self) {
        let now = self.sample();
        let previous = {
            let mut samples = self.lock_samples();
            let previous = samples.back().cloned();
            if samples.len() == SAMPLES {
                samples.pop_front();
            }
            samples.push_back(now.clone());
            previous
        };
        if let Some(previous) = previous {
            self.decide(&previous, &now);
        }
    }

    fn sample(&self) -> Sample {
        let stats = &self.stats;
        Sample {
            at: Instant::now(),
            messages_in: stats.messages_in_total(),
            messages_out: stats.messages_out.get(),
            deliveries: stats.deliveries.get(),
            errors: stats.errors_total(),
            fanout: Buckets::of(stats.fanout_histogram()),
            depth: Buckets::of(stats.queue_depth_histogram()),
        }
    }

    fn decide(&self, previous: &Sample, now: &Sample) {
        let t = self.thresholds;
        let figures = [
            (
                "outbound_queue_depth_p99",
                now.depth.quantile_since(&previous.depth, 0.99),
                t.queue_depth,
            ),
            (
                "fanout_p99_s",
                now.fanout.quantile_since(&previous.fanout, 0.99),
                t.fanout_s,
            ),
            ("rss_bytes", rss_bytes(), t.rss_bytes),
        ];
        let (figure, value, threshold, ratio) = figures
            .iter()
            .filter(|(_, _, threshold)| *threshold > 0.0)
            .map(|&(name, value, threshold)| (name, value, threshold, value / threshold))
            .fold(
                ("none", 0.0, 0.0, 0.0),
                |worst, next| if next.3 > worst.3 { next } else { worst },
            );
        let current = self.stats.overload();
        let next = next_level(current, ratio, t.recover);
        if next == current {
            return;
        }
        self.stats.set_overload(next);
        let event = LifecycleEvent::OverloadChanged { level: next };
        let (name, level) = (event.name(), next.as_str());
        if next > current {
            warn!(
                event = name,
                level, figure, value, threshold, "overloaded: shedding load"
            );
        } else {
            info!(event = name, level, figure, value, threshold, "load fell: recovering");
        }
        self.hooks.emit(event);
    }

    /// The `/stats` summary.
    pub fn summary(&self) -> Summary {
        let stats = &self.stats;
        let samples = self.lock_samples();
        let now = self.sample();
        let first = samples.front().cloned().unwrap_or_else(|| now.clone());
        drop(samples);
        let seconds = now.at.duration_since(first.at).as_secs_f64();
        let rate = |now: u64, then: u64| {
            if seconds > 0.0 {
                float(now.saturating_sub(then)) / seconds
            } else {
                0.0
            }
        };
        let messages_in = now.messages_in.saturating_sub(first.messages_in);
        let errors = now.errors.saturating_sub(first.errors);
        Summary {
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: stats.uptime().as_secs_f64(),
            ready: stats.ready(),
            overload: stats.overload().as_str(),
            connections: stats.connections_open.get(),
            rooms: stats.rooms_open.get(),
            msg_in_per_s: rate(now.messages_in, first.messages_in),
            msg_out_per_s: rate(now.messages_out, first.messages_out),
            deliveries_per_s: rate(now.deliveries, first.deliveries),
            fanout_p50_ms: now.fanout.quantile_since(&first.fanout, 0.5) * 1e3,
            fanout_p99_ms: now.fanout.quantile_since(&first.fanout, 0.99) * 1e3,
            error_rate: if messages_in > 0 {
                float(errors) / float(messages_in)
            } else {
                0.0
            },
            memory_mb: rss_bytes() / (1024.0 * 1024.0),
            window_s: seconds,
        }
    }

    fn lock_samples(&self) -> MutexGuard<'_, VecDeque<Sample>> {
        self.samples.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The level for the worst figure-to-threshold `ratio`, given the `current`
/// one: up as soon as a boundary (1, then 2) is passed; down only once the
/// ratio is under `recover` times the boundary of the level it leaves.
fn next_level(current: OverloadLevel, ratio: f64, recover: f64) -> OverloadLevel {
    let wanted = if ratio > 2.0 {
        OverloadLevel::PresencePaused
    } else if ratio > 1.0 {
        OverloadLevel::Shedding
    } else {
        OverloadLevel::Normal
    };
    match current {
        _ if wanted >= current => wanted,
        OverloadLevel::PresencePaused if ratio >= 2.0 * recover => current,
        OverloadLevel::PresencePaused if ratio >= recover => OverloadLevel::Shedding,
        OverloadLevel::Shedding if ratio >= recover => current,
        _ => OverloadLevel::Normal,
    }
}

/// `n` as a float, for rates and sizes (exact below 2^53).
#[allow(clippy::as_conversions)]
fn float(n: u64) -> f64 {
    n as f64
}

/// The process's resident memory, bytes (0 if it cannot be read).
fn rss_bytes() -> f64 {
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
    fn levels_rise_at_once_and_fall_with_hysteresis() {
        use OverloadLevel::{Normal, PresencePaused, Shedding};
        let recover = 0.8;
        assert_eq!(next_level(Normal, 0.9, recover), Normal);
        assert_eq!(next_level(Normal, 1.1, recover), Shedding);
        assert_eq!(next_level(Normal, 3.0, recover), PresencePaused);
        assert_eq!(next_level(Shedding, 0.9, recover), Shedding, "above 80% of 1");
        assert_eq!(next_level(Shedding, 0.7, recover), Normal);
        assert_eq!(
            next_level(PresencePaused, 1.7, recover),
            PresencePaused,
            "above 80% of 2"
        );
        assert_eq!(next_level(PresencePaused, 1.5, recover), Shedding);
        assert_eq!(next_level(PresencePaused, 0.0, recover), Normal);
    }
}
