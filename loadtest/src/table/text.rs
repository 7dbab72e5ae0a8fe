//! How the table writes: a line, a named row, and the short forms of a
//! latency summary, counts by key, milliseconds and mebibytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::latency::LatencySummary;
use crate::units::f64_from;

/// A latency summary as its percentiles in milliseconds, or `no samples`.
pub fn latency(summary: &LatencySummary) -> String {
    if summary.count == 0 {
        return "no samples".to_owned();
    }
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} samples)",
        ms(summary.p50),
        ms(summary.p90),
        ms(summary.p99),
        ms(summary.p999),
        ms(summary.max),
        summary.count
    )
}

/// Counts by key as `key × count`, or `none`.
pub fn counts(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|(key, count)| format!("{key} × {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Microseconds as milliseconds, to the microsecond.
pub fn ms(micros: u64) -> String {
    format!("{:.3} ms", f64_from(micros) / 1e3)
}

/// KiB as MiB, to a tenth.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", f64_from(kib) / 1024.0)
}

/// A row: its name in a column of its own, then its text.
pub fn row(out: &mut String, name: &str, text: String) {
    line(out, format!("  {name:<10} {text}"));
}

/// A line of the table.
pub fn line(out: &mut String, text: String) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{text}");
}
