//! Latency histograms (hdrhistogram, microseconds, 3 significant digits):
//! recording, merging across bots and processes, serializing for the trip
//! from a worker process to the parent, and the percentiles of the report.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use serde::{Deserialize, Deserializer as SerdeDeserializer, Serialize, Serializer as SerdeSerializer};

/// Largest latency told apart, µs (one hour); longer ones are recorded as this.
pub const HIGHEST_US: u64 = 3_600_000_000;
/// Significant decimal digits kept (0.1 % precision).
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// A latency histogram in microseconds. Empty until the first value, so an
/// unused one costs nothing and serializes to an empty string.
#[derive(Clone, Debug, Default)]
pub struct Latency {
    histogram: Option<Histogram<u64>>,
}

/// The figures of a histogram, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Smallest value.
    pub min: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value (to the histogram's precision).
    pub max: u64,
}

impl Latency {
    /// Records one latency, clamped to [`HIGHEST_US`].
    pub fn record_us(&mut self, micros: u64) {
        if let Some(histogram) = self.histogram_mut() {
            histogram.saturating_record(micros.min(HIGHEST_US));
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latency) {
        let Some(theirs) = &other.histogram else {
            return;
        };
        if let Some(ours) = self.histogram_mut() {
            // Both have the same bounds, so adding cannot fail; if it ever did,
            // the fallback keeps the values anyway.
            if ours.add(theirs).is_err() {
                for value in theirs.iter_recorded() {
                    ours.saturating_record_n(value.value_iterated_to(), value.count_at_value());
                }
            }
        }
    }

    /// The value at `quantile` (0.0..=1.0), or 0 when empty.
    pub fn quantile(&self, quantile: f64) -> u64 {
        self.histogram.as_ref().map_or(0, |h| h.value_at_quantile(quantile))
    }

    /// Count, mean and percentiles.
    pub fn summary(&self) -> LatencySummary {
        let Some(h) = self.histogram.as_ref().filter(|h| !h.is_empty()) else {
            return LatencySummary::default();
        };
        LatencySummary {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    /// The histogram, created on first use. Its bounds are constants that a
    /// unit test checks, so creation does not fail; if it did, values would be
    /// dropped rather than crash a run.
    fn histogram_mut(&mut self) -> Option<&mut Histogram<u64>> {
        if self.histogram.is_none() {
            self.histogram = Histogram::new_with_bounds(1, HIGHEST_US, SIGNIFICANT_DIGITS).ok();
        }
        self.histogram.as_mut()
    }
}

/// Serialized as the base64 of hdrhistogram's V2 encoding ("" when empty).
impl Serialize for Latency {
    fn serialize<S: SerdeSerializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(histogram) = &self.histogram else {
            return serializer.serialize_str("");
        };
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(histogram, &mut bytes)
            .map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&BASE64.encode(bytes))
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: SerdeDeserializer<'de>>(deserializer: D) -> Result<Latency, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() {
            return Ok(Latency::default());
        }
        let bytes = BASE64.decode(text).map_err(serde::de::Error::custom)?;
        let histogram: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(serde::de::Error::custom)?;
        Ok(Latency {
            histogram: Some(histogram),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_to(n: u64) -> Latency {
        let mut latency = Latency::default();
        for micros in 1..=n {
            latency.record_us(micros);
        }
        latency
    }

    #[test]
    fn the_bounds_are_valid() {
        assert!(Histogram::<u64>::new_with_bounds(1, HIGHEST_US, SIGNIFICANT_DIGITS).is_ok());
    }

    #[test]
    fn percentiles_of_a_known_histogram() {
        let summary = one_to(1000).summary();
        assert_eq!(summary.count, 1000);
        assert_eq!(summary.min, 1);
        assert_eq!(summary.p50, 500);
        assert_eq!(summary.p90, 900);
        assert_eq!(summary.p99, 990);
        assert_eq!(summary.p999, 999);
        assert_eq!(summary.max, 1000);
        assert!((summary.mean - 500.5).abs() < 0.5, "{}", summary.mean);
    }

    #[test]
    fn an_empty_histogram_summarises_to_zeros() {
        assert_eq!(Latency::default().summary(), LatencySummary::default());
        assert_eq!(Latency::default().quantile(0.99), 0);
    }

    #[test]
    fn huge_values_are_clamped() {
        let mut latency = Latency::default();
        latency.record_us(u64::MAX);
        assert_eq!(latency.summary().count, 1);
        assert!(latency.summary().max >= HIGHEST_US);
    }

    #[test]
    fn merging_adds_values() {
        let mut total = one_to(100);
        total.merge(&one_to(100));
        total.merge(&Latency::default());
        assert_eq!(total.summary().count, 200);
        assert_eq!(total.summary().p50, 50);
        let mut empty = Latency::default();
        empty.merge(&one_to(10));
        assert_eq!(empty.summary().count, 10);
    }

    #[test]
    fn round_trips_through_json() {
        let latency = one_to(5000);
        let json = serde_json::to_string(&latency).unwrap();
        let back: Latency = serde_json::from_str(&json).unwrap();
        assert_eq!(back.summary(), latency.summary());
        let empty: Latency = serde_json::from_str(&serde_json::to_string(&Latency::default()).unwrap()).unwrap();
        assert_eq!(empty.summary().count, 0);
    }
}
