//! What room plugins cost and how they fail, by kind: hook time, hooks over
//! their budget, panics, tick overruns, and inputs dropped for a full queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};

use super::registrar::Registrar;

/// Hook time buckets, seconds: 1 µs to 1 s.
const HOOK_BUCKETS: [f64; 13] = [
    1e-6, 4e-6, 16e-6, 64e-6, 250e-6, 1e-3, 2e-3, 4e-3, 8e-3, 16e-3, 64e-3, 250e-3, 1.0,
];

/// See the module documentation.
#[derive(Debug)]
pub struct PluginStats {
    hook_seconds: HistogramVec,
    slow_hooks: IntCounterVec,
    panics: IntCounterVec,
    tick_overruns: IntCounterVec,
    inputs_dropped: IntCounterVec,
    /// Each kind's hook histograms, looked up once per kind and shared by its rooms.
    by_kind: Mutex<HashMap<Arc<str>, Arc<[Histogram]>>>,
    /// `RoomEvent` copies queued for members.
    pub events: IntCounter,
}

impl PluginStats {
    pub(super) fn new(reg: &Registrar<'_>) -> PluginStats {
        PluginStats {
            hook_seconds: reg.histogram_vec(
                "plugin_hook_seconds",
                "Time in room plugin hooks, by kind and hook.",
                &["kind", "hook"],
                &HOOK_BUCKETS,
            ),
            slow_hooks: reg.counter_vec_by(
                "plugin_slow_hooks_total",
                "Room plugin hooks that ran longer than plugin_hook_budget_us, by kind and hook.",
                &["kind", "hook"],
            ),
            panics: reg.counter_vec(
                "plugin_panics_total",
                "Room plugins that panicked (each closed its room), by kind.",
                "kind",
            ),
            tick_overruns: reg.counter_vec(
                "plugin_tick_overruns_total",
                "Ticks of plugin rooms that took longer than one tick period, by kind.",
                "kind",
            ),
            inputs_dropped: reg.counter_vec(
                "plugin_inputs_dropped_total",
                "Members' messages to a ticked room dropped because plugin_max_inputs were already waiting, by kind.",
                "kind",
            ),
            by_kind: Mutex::default(),
            events: reg.counter("plugin_events_total", "RoomEvent copies queued for members."),
        }
    }

    /// The histograms of kind `kind`'s `hooks`, in that order: made on the
    /// kind's first room and shared by all its rooms (the hooks are always the same).
    pub fn hook_histograms(&self, kind: &Arc<str>, hooks: &[&str]) -> Arc<[Histogram]> {
        let mut by_kind = self.by_kind.lock().unwrap_or_else(PoisonError::into_inner);
        by_kind
            .entry(kind.clone())
            .or_insert_with(|| {
                hooks
                    .iter()
                    .map(|hook| self.hook_seconds.with_label_values(&[&**kind, hook]))
                    .collect()
            })
            .clone()
    }

    /// A hook of `kind` ran over its budget.
    pub fn slow_hook(&self, kind: &str, hook: &str) {
        self.slow_hooks.with_label_values(&[kind, hook]).inc();
    }

    /// Hooks of `kind` that ran over their budget.
    pub fn slow_hooks(&self, kind: &str, hook: &str) -> u64 {
        self.slow_hooks.with_label_values(&[kind, hook]).get()
    }

    /// A plugin of `kind` panicked.
    pub fn panicked(&self, kind: &str) {
        self.panics.with_label_values(&[kind]).inc();
    }

    /// Panics of plugins of `kind`.
    pub fn panics(&self, kind: &str) -> u64 {
        self.panics.with_label_values(&[kind]).get()
    }

    /// A tick of a room of `kind` took longer than `period`.
    pub fn tick_took(&self, kind: &str, took: Duration, period: Duration) {
        if took > period {
            self.tick_overruns.with_label_values(&[kind]).inc();
        }
    }

    /// An input to a room of `kind` was dropped.
    pub fn input_dropped(&self, kind: &str) {
        self.inputs_dropped.with_label_values(&[kind]).inc();
    }
}
