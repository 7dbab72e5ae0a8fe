//! `/stats`: the server at a glance, from samples of its counters taken once
//! a second over the last ten seconds.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::figures::{Buckets, float, rss_bytes};
use crate::stats::Stats;

/// How far back `/stats` rates and percentiles look.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Samples kept: the window plus its starting point.
const SAMPLES: usize = 11;

/// The counters at one instant.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    messages_in: u64,
    messages_out: u64,
    deliveries: u64,
    errors: u64,
    fanout: Buckets,
}

impl Sample {
    fn of(stats: &Stats) -> Sample {
        Sample {
            at: Instant::now(),
            messages_in: stats.messages_in_total(),
            messages_out: stats.messages_out.get(),
            deliveries: stats.deliveries.get(),
            errors: stats.errors_total(),
            fanout: Buckets::of(stats.fanout_histogram()),
        }
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

/// The last [`WINDOW`] of samples, one a second.
#[derive(Debug)]
pub(super) struct Samples(Mutex<VecDeque<Sample>>);

impl Samples {
    /// A window holding one sample of `stats`, taken now.
    pub(super) fn new(stats: &Stats) -> Samples {
        let mut samples = VecDeque::with_capacity(SAMPLES);
        samples.push_back(Sample::of(stats));
        Samples(Mutex::new(samples))
    }

    /// Takes a sample of `stats`, forgetting the oldest beyond the window.
    pub(super) fn record(&self, stats: &Stats) {
        let sample = Sample::of(stats);
        let mut samples = self.lock();
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The summary of `stats` over the window.
    pub(super) fn summary(&self, stats: &Stats) -> Summary {
        let now = Sample::of(stats);
        let first = self.lock().front().cloned().unwrap_or_else(|| now.clone());
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
            connections: stats.connections_open(),
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

    fn lock(&self) -> MutexGuard<'_, VecDeque<Sample>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
