//! Unit conversions between counts, durations and the floating-point figures
//! of the report, in one place so that the few lossy conversions are explained once.

use std::time::Duration;

/// A count as `f64`, for rates and ratios.
///
/// Counts in this tool stay far below 2^53, where `u64` to `f64` starts to
/// round, so nothing is lost in practice; std has no lossless `From` for it.
#[allow(clippy::as_conversions)] // u64 -> f64 has no `From`; exact below 2^53 (see above).
pub fn f64_from(count: u64) -> f64 {
    count as f64
}

/// `value` rounded to the nearest integer and clamped to `0..=u64::MAX`
/// (NaN becomes 0), for turning fractions of a count back into a count.
#[allow(clippy::as_conversions)] // f64 -> u64 has no `TryFrom`; `as` saturates and maps NaN to 0.
pub fn round_to_u64(value: f64) -> u64 {
    value.round() as u64
}

/// `count` per second of `window`; 0 for an empty window.
pub fn per_second(count: u64, window: Duration) -> f64 {
    let secs = window.as_secs_f64();
    if secs > 0.0 { f64_from(count) / secs } else { 0.0 }
}

/// `value` as the nearest `f32`, for the protocol's single-precision
/// coordinates (world coordinates are far below where `f32` loses whole units).
#[allow(clippy::as_conversions)] // f64 -> f32 has no `From`; `as` rounds to the nearest value.
pub fn f32_from(value: f64) -> f32 {
    value as f32
}

/// A duration in whole nanoseconds, saturating at `u64::MAX` (584 years).
pub fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A duration in whole microseconds.
pub fn micros(duration: Duration) -> u64 {
    nanos(duration) / 1_000
}

/// Nanoseconds as milliseconds, for display.
pub fn ns_to_ms(ns: u64) -> f64 {
    f64_from(ns) / 1e6
}

/// A `usize` as `u64` (lossless on every supported target).
pub fn u64_from(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_and_saturate() {
        assert_eq!(round_to_u64(2.5), 3);
        assert_eq!(round_to_u64(-1.0), 0);
        assert_eq!(round_to_u64(f64::NAN), 0);
        assert_eq!(per_second(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(per_second(5, Duration::ZERO), 0.0);
        assert_eq!(nanos(Duration::from_millis(3)), 3_000_000);
        assert_eq!(ns_to_ms(1_500_000), 1.5);
        assert_eq!(f32_from(0.5), 0.5_f32);
    }
}
