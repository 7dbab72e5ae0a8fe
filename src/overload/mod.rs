//! The monitor: four times a second it judges whether the server is
//! saturated and sets the overload level; once a second it samples the
//! counters for `/stats` ([`summary`]).
//!
//! Overload protection reads only what the server owns, never one client's
//! state (a slow client has its own bound and SLOW_CONSUMER). Each figure is
//! taken over the time since the last judgement and compared with its
//! threshold (0 turns one off):
//!
//! - how late the event loops run: the largest timer lateness of any session
//!   or room thread ([`Config::overload_loop_lag_ms`]);
//! - how full the actors' inboxes are: the fullest inbox of the directory,
//!   any room or any world, in percent of its bound ([`Config::overload_inbox_pct`]);
//! - the p99 fan-out duration ([`Config::overload_fanout_us`]);
//! - the share of world ticks that overran their budget ([`Config::overload_tick_overrun_pct`]);
//! - resident memory while it grows ([`Config::overload_rss_mb`]; memory held
//!   but no longer growing for ten seconds stops counting, so shedding ends).
//!
//! The worst ratio of figure to threshold sets the level:
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
//! [`Config::overload_loop_lag_ms`]: crate::Config::overload_loop_lag_ms
//! [`Config::overload_inbox_pct`]: crate::Config::overload_inbox_pct
//! [`Config::overload_fanout_us`]: crate::Config::overload_fanout_us
//! [`Config::overload_tick_overrun_pct`]: crate::Config::overload_tick_overrun_pct
//! [`Config::overload_rss_mb`]: crate::Config::overload_rss_mb
//! [`Config::overload_recover_pct`]: crate::Config::overload_recover_pct

mod figures;
pub mod summary;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::{info, warn};

pub use figures::{RSS_GROWTH_WINDOW, probe_loop_lag};
pub use summary::{Summary, WINDOW};

use self::figures::{Buckets, RssTrend, float, rss_bytes};
use self::summary::Samples;
use crate::config::Config;
use crate::ids::OverloadLevel;
use crate::lifecycle::{Hooks, LifecycleEvent};
use crate::stats::Stats;

/// How often the monitor judges the load.
pub const JUDGE_INTERVAL: Duration = Duration::from_millis(250);
/// Judgements between two `/stats` samples (one a second).
const JUDGEMENTS_PER_SAMPLE: u32 = 4;

/// Judges the load and keeps `/stats`; see the module documentation.
#[derive(Debug)]
pub struct Monitor {
    stats: Arc<Stats>,
    hooks: Hooks,
    thresholds: Thresholds,
    samples: Samples,
    since: Mutex<Since>,
}

/// The thresholds, in the figures' units; 0 is off.
#[derive(Debug, Clone, Copy)]
struct Thresholds {
    loop_lag_s: f64,
    inbox_pct: f64,
    fanout_s: f64,
    tick_overrun_pct: f64,
    rss_bytes: f64,
    recover: f64,
}

/// What the last judgement saw, for the figures taken since.
#[derive(Debug)]
struct Since {
    fanout: Buckets,
    ticks: u64,
    overruns: u64,
    rss: RssTrend,
}

impl Monitor {
    /// A monitor of `stats` with `config`'s thresholds, telling `hooks` of level changes.
    pub fn new(stats: Arc<Stats>, config: &Config, hooks: Hooks) -> Monitor {
        let since = Since {
            fanout: Buckets::of(stats.fanout_histogram()),
            ticks: stats.world_tick_histogram().get_sample_count(),
            overruns: stats.world_tick_overruns.get(),
            rss: RssTrend::default(),
        };
        Monitor {
            hooks,
            thresholds: Thresholds {
                loop_lag_s: f64::from(config.overload_loop_lag_ms) / 1e3,
                inbox_pct: f64::from(config.overload_inbox_pct),
                fanout_s: f64::from(config.overload_fanout_us) / 1e6,
                tick_overrun_pct: f64::from(config.overload_tick_overrun_pct),
                rss_bytes: f64::from(config.overload_rss_mb) * 1024.0 * 1024.0,
                recover: f64::from(config.overload_recover_pct) / 100.0,
            },
            samples: Samples::new(&stats),
            since: Mutex::new(since),
            stats,
        }
    }

    /// The figures it reads.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The `/stats` summary.
    pub fn summary(&self) -> Summary {
        self.samples.summary(&self.stats)
    }

    /// Judges every [`JUDGE_INTERVAL`] and samples every second, until dropped.
    pub async fn run(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(JUDGE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        for n in 1u32.. {
            ticks.tick().await;
            self.judge();
            if n % JUDGEMENTS_PER_SAMPLE == 0 {
                self.samples.record(&self.stats);
            }
        }
    }

    /// Reads the figures since the last judgement and re-decides the level.
    pub fn judge(&self) {
        let figures = self.figures();
        self.stats.overload_checks.inc();
        let (figure, value, threshold, ratio) = figures
            .iter()
            .filter(|(_, _, threshold)| *threshold > 0.0)
            .map(|&(name, value, threshold)| (name, value, threshold, value / threshold))
            .fold(
                ("none", 0.0, 0.0, 0.0),
                |worst, next| if next.3 > worst.3 { next } else { worst },
            );
        let current = self.stats.overload();
        let next = next_level(current, ratio, self.thresholds.recover);
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

    /// Each figure since the last judgement, with its name and threshold.
    fn figures(&self) -> [(&'static str, f64, f64); 5] {
        let stats = &self.stats;
        let t = self.thresholds;
        let (lag, fill) = stats.take_saturation();
        let mut since = self.since.lock().unwrap_or_else(PoisonError::into_inner);
        let fanout = Buckets::of(stats.fanout_histogram());
        let fanout_p99 = fanout.quantile_since(&since.fanout, 0.99);
        let ticks = stats.world_tick_histogram().get_sample_count();
        let overruns = stats.world_tick_overruns.get();
        let (new_ticks, new_overruns) = (ticks - since.ticks.min(ticks), overruns.saturating_sub(since.overruns));
        let overrun_pct = if new_ticks > 0 {
            100.0 * float(new_overruns) / float(new_ticks)
        } else {
            0.0
        };
        let rss = if t.rss_bytes > 0.0 {
            since.rss.figure(Instant::now(), rss_bytes())
        } else {
            0.0
        };
        since.fanout = fanout;
        since.ticks = ticks;
        since.overruns = overruns;
        [
            ("loop_lag_s", lag.as_secs_f64(), t.loop_lag_s),
            ("inbox_fill_pct", fill, t.inbox_pct),
            ("fanout_p99_s", fanout_p99, t.fanout_s),
            ("tick_overrun_pct", overrun_pct, t.tick_overrun_pct),
            ("rss_growing_bytes", rss, t.rss_bytes),
        ]
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

#[cfg(test)]
mod tests {
    use super::*;

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
