//! The live one-line progress display on stderr (only when stderr is a
//! terminal): elapsed time and phase, bots connected, sent/s, delivered/s,
//! and the p99 so far.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use crate::share::LiveSnapshot;
use tokio::sync::watch;

use crate::timeline::{Timeline, wall_ns};
use crate::units::{f64_from, per_second};

/// How often the line is redrawn.
pub const EVERY: Duration = Duration::from_millis(500);

/// Whether a progress line should be shown at all.
pub fn wanted(disabled: bool) -> bool {
    !disabled && std::io::stderr().is_terminal()
}

/// Redraws the line every [`EVERY`] with what `snapshot` returns, from the
/// setup on (the timeline arrives once the step starts); never returns (the
/// caller drops it when the step ends, then calls [`clear`]).
pub async fn show(label: &str, timeline: watch::Receiver<Option<Timeline>>, snapshot: impl Fn() -> LiveSnapshot) {
    let mut ticker = tokio::time::interval(EVERY);
    let shown_since = wall_ns();
    let mut last = snapshot();
    let mut last_at = wall_ns();
    loop {
        ticker.tick().await;
        let now = wall_ns();
        let current = snapshot();
        let interval = Duration::from_nanos(now.saturating_sub(last_at));
        let phase = match *timeline.borrow() {
            Some(timeline) => Phase::of(&timeline, now),
            None => Phase::Setup(now.saturating_sub(shown_since)),
        };
        let line = render(label, phase, &current, &last, interval);
        let mut stderr = std::io::stderr().lock();
        // A failed write to the terminal only loses a progress line.
        let _ = write!(stderr, "\r\x1b[2K{line}");
        let _ = stderr.flush();
        last = current;
        last_at = now;
    }
}

/// Where a step is, with the nanoseconds it has been there (setup) or since its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Setup(u64),
    Starting,
    Warmup(u64),
    Window(u64),
    Drain(u64),
}

impl Phase {
    fn of(timeline: &Timeline, now: u64) -> Phase {
        let elapsed = now.saturating_sub(timeline.start_ns);
        if now < timeline.start_ns {
            Phase::Starting
        } else if now < timeline.window_start_ns() {
            Phase::Warmup(elapsed)
        } else if now < timeline.window_end_ns() {
            Phase::Window(elapsed)
        } else {
            Phase::Drain(elapsed)
        }
    }
}

/// Erases the progress line.
pub fn clear() {
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "\r\x1b[2K");
    let _ = stderr.flush();
}

/// The progress line's text.
fn render(label: &str, phase: Phase, current: &LiveSnapshot, last: &LiveSnapshot, interval: Duration) -> String {
    let (name, elapsed_ns) = match phase {
        Phase::Setup(ns) => ("setup", ns),
        Phase::Starting => ("starting", 0),
        Phase::Warmup(ns) => ("warm-up", ns),
        Phase::Window(ns) => ("window", ns),
        Phase::Drain(ns) => ("drain", ns),
    };
    let elapsed = f64_from(elapsed_ns) / 1e9;
    let sent = per_second(current.sent.saturating_sub(last.sent), interval);
    let delivered = per_second(current.delivered.saturating_sub(last.delivered), interval);
    let p99_ms = f64_from(current.p99_us) / 1e3;
    format!(
        "{label} | {elapsed:6.1} s {name:<8} | bots {} | sent {sent:9.0}/s | delivered {delivered:10.0}/s | p99 {p99_ms:.2} ms",
        current.connected
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rates_and_phase() {
        let timeline = Timeline::new(
            1_000_000_000,
            Duration::from_secs(1),
            Duration::from_secs(5),
            Duration::ZERO,
        );
        let last = LiveSnapshot::default();
        let current = LiveSnapshot {
            connected: 100,
            sent: 500,
            delivered: 50_000,
            p99_us: 1_250,
        };
        let phase = Phase::of(&timeline, 3_500_000_000);
        assert_eq!(phase, Phase::Window(2_500_000_000));
        assert_eq!(Phase::of(&timeline, 0), Phase::Starting);
        assert_eq!(Phase::of(&timeline, 1_500_000_000), Phase::Warmup(500_000_000));
        assert_eq!(Phase::of(&timeline, 7_000_000_000), Phase::Drain(6_000_000_000));
        let line = render("rate 1000/s", phase, &current, &last, Duration::from_millis(500));
        assert!(line.contains("2.5 s window"), "{line}");
        let setup = render(
            "rate 1000/s",
            Phase::Setup(0),
            &current,
            &last,
            Duration::from_millis(500),
        );
        assert!(setup.contains("setup"), "{setup}");
        assert!(line.contains("bots 100"), "{line}");
        assert!(line.contains("1000/s"), "{line}");
        assert!(line.contains("100000/s"), "{line}");
        assert!(line.contains("p99 1.25 ms"), "{line}");
    }
}
