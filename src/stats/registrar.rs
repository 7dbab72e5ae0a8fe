//! Creating and registering the metrics, under the `tavern` prefix.

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// The prefix of every metric but the process's own (`process_*`).
pub(super) const NAMESPACE: &str = "tavern";

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NAMESPACE)
}

/// Creates metrics and registers them, panicking only on a programming error
/// (a duplicate or malformed name), which the tests catch.
pub(super) struct Registrar<'a>(pub(super) &'a Registry);

#[allow(clippy::expect_used)]
impl Registrar<'_> {
    fn register<M: prometheus::core::Collector + Clone + 'static>(&self, metric: M) -> M {
        self.0.register(Box::new(metric.clone())).expect("unique metric name");
        metric
    }

    pub(super) fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.register(IntCounter::with_opts(opts(name, help)).expect("valid metric"))
    }

    pub(super) fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.register(IntGauge::with_opts(opts(name, help)).expect("valid metric"))
    }

    pub(super) fn float_gauge(&self, name: &str, help: &str) -> Gauge {
        self.register(Gauge::with_opts(opts(name, help)).expect("valid metric"))
    }

    pub(super) fn counter_vec(&self, name: &str, help: &str, label: &str) -> IntCounterVec {
        self.counter_vec_by(name, help, &[label])
    }

    pub(super) fn counter_vec_by(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.register(IntCounterVec::new(opts(name, help), labels).expect("valid metric"))
    }

    pub(super) fn histogram_vec(&self, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
        let opts = HistogramOpts::new(name, help)
            .namespace(NAMESPACE)
            .buckets(buckets.to_vec());
        self.register(HistogramVec::new(opts, labels).expect("valid metric"))
    }

    pub(super) fn gauge_vec(&self, name: &str, help: &str, label: &str) -> IntGaugeVec {
        self.register(IntGaugeVec::new(opts(name, help), &[label]).expect("valid metric"))
    }

    pub(super) fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        let opts = HistogramOpts::new(name, help)
            .namespace(NAMESPACE)
            .buckets(buckets.to_vec());
        self.register(Histogram::with_opts(opts).expect("valid metric"))
    }
}
