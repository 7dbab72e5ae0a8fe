//! `--find-max`: step the offered rate up, doubling while the server keeps
//! up and then bisecting, until the highest sustainable rate is known to
//! within the resolution. The search runs any function from a rate to a
//! step's report (`chat` and `plugin` run their rooms at that rate). A step is sustainable
//! when nothing is lost, the room order is intact, nobody was disconnected,
//! the achieved rate is close to the offered one and the p99 stays within the
//! bound. A failed step is run again up to `--retries` times before it counts
//! as failed.

use serde::{Deserialize, Serialize};

use crate::figures::Verdict;
use crate::step::StepReport;
use crate::units::{f64_from, round_to_u64};

/// How the search runs and judges.
#[derive(Clone, Debug, PartialEq)]
pub struct FindMaxOptions {
    /// Highest sustainable p99, µs.
    pub p99_bound_us: u64,
    /// Most distinct rates tried.
    pub max_steps: u32,
    /// Stop when the lowest failing rate is within this fraction above the best passing one.
    pub resolution: f64,
    /// Extra tries of a failing rate.
    pub retries: u32,
    /// Fraction of the offered rate that must be achieved.
    pub min_achieved: f64,
}

/// What the search found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FindMaxSummary {
    /// The p99 bound, ms.
    pub p99_bound_ms: f64,
    /// Index in `steps` of the best sustainable step.
    pub best_step: Option<usize>,
    /// Its offered rate, messages/s.
    pub best_offered_per_s: Option<u64>,
    /// Its deliveries per second.
    pub best_deliveries_per_s: Option<f64>,
    /// The lowest rate that failed, messages/s.
    pub lowest_failing_per_s: Option<u64>,
}

/// Runs the search from the rate `start`; `step` runs one attempt (1, then
/// a retry's 2, …) at a rate and reports it. Returns every step reported,
/// in the order run, and what the search found.
///
/// # Errors
/// A step that could not run.
pub async fn search(
    options: &FindMaxOptions,
    start: u64,
    mut step: impl AsyncFnMut(u64, u32) -> anyhow::Result<StepReport>,
) -> anyhow::Result<(Vec<StepReport>, FindMaxSummary)> {
    let mut state = Search::new(options.resolution);
    let mut steps: Vec<StepReport> = Vec::new();
    let mut best_step = None;
    let mut rate = start;
    for _ in 0..options.max_steps {
        let mut passed = false;
        for attempt in 1..=options.retries + 1 {
            let mut report = step(rate, attempt).await?;
            let verdict = judge(&report, options);
            eprintln!(
                "find-max: {rate}/s attempt {attempt}: {}",
                if verdict.passed {
                    "sustainable".to_owned()
                } else {
                    verdict.reasons.join("; ")
                }
            );
            passed = verdict.passed;
            report.verdict = Some(verdict);
            steps.push(report);
            if passed {
                best_step = Some(steps.len() - 1);
                break;
            }
        }
        state.record(rate, passed);
        match state.next() {
            Some(next) => rate = next,
            None => break,
        }
    }
    let best = best_step.and_then(|index| steps.get(index));
    let summary = FindMaxSummary {
        p99_bound_ms: f64_from(options.p99_bound_us) / 1e3,
        best_step,
        best_offered_per_s: state.best_pass,
        best_deliveries_per_s: best
            .and_then(StepReport::room_traffic)
            .map(|chat| chat.deliveries_per_s),
        lowest_failing_per_s: state.lowest_fail,
    };
    Ok((steps, summary))
}

/// Whether a step of rooms (chat or a plugin's) was sustainable, and if not, why.
pub fn judge(step: &StepReport, options: &FindMaxOptions) -> Verdict {
    let mut reasons = Vec::new();
    if let Some(chat) = step.room_traffic() {
        if chat.lost > 0 {
            reasons.push(format!("lost {} of {}", chat.lost, chat.expected));
        }
        if chat.gaps + chat.reorders + chat.duplicates > 0 {
            reasons.push(format!(
                "order: {} gaps, {} reorders, {} duplicates",
                chat.gaps, chat.reorders, chat.duplicates
            ));
        }
        if chat.latency_us.p99 > options.p99_bound_us {
            reasons.push(format!(
                "p99 {:.1} ms > {:.1} ms",
                f64_from(chat.latency_us.p99) / 1e3,
                f64_from(options.p99_bound_us) / 1e3
            ));
        }
        if chat.achieved_per_s < chat.offered_per_s * options.min_achieved {
            reasons.push(format!(
                "achieved {:.0}/s < {:.0} % of offered",
                chat.achieved_per_s,
                options.min_achieved * 100.0
            ));
        }
    } else {
        reasons.push("not a step of rooms".to_owned());
    }
    let errors: u64 = step.bots.connect_errors.values().sum();
    if errors > 0 {
        reasons.push(format!("{errors} connect errors"));
    }
    let disconnects: u64 = step.bots.disconnects.values().sum();
    if disconnects > 0 {
        reasons.push(format!("{disconnects} disconnects"));
    }
    Verdict {
        passed: reasons.is_empty(),
        reasons,
    }
}

/// The search's state: the best passing and the lowest failing rate so far.
#[derive(Clone, Debug, PartialEq)]
struct Search {
    resolution: f64,
    best_pass: Option<u64>,
    lowest_fail: Option<u64>,
}

impl Search {
    fn new(resolution: f64) -> Search {
        Search {
            resolution,
            best_pass: None,
            lowest_fail: None,
        }
    }

    fn record(&mut self, rate: u64, passed: bool) {
        if passed {
            self.best_pass = self.best_pass.max(Some(rate));
        } else {
            self.lowest_fail = Some(self.lowest_fail.map_or(rate, |fail| fail.min(rate)));
        }
    }

    /// The next rate to try, or `None` when the search is done.
    fn next(&self) -> Option<u64> {
        match (self.best_pass, self.lowest_fail) {
            (Some(pass), None) => Some(pass.saturating_mul(2)),
            (None, Some(fail)) => (fail > 1).then_some(fail / 2),
            (Some(pass), Some(fail)) => {
                let close_enough = round_to_u64(f64_from(pass) * self.resolution).max(1);
                (fail.saturating_sub(pass) > close_enough).then(|| pass + (fail - pass) / 2)
            }
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against a server that sustains up to `capacity`.
    fn run(start: u64, capacity: u64, max_steps: usize) -> (Vec<u64>, Search) {
        let mut search = Search::new(0.1);
        let mut rate = start;
        let mut tried = Vec::new();
        for _ in 0..max_steps {
            tried.push(rate);
            search.record(rate, rate <= capacity);
            match search.next() {
                Some(next) => rate = next,
                None => break,
            }
        }
        (tried, search)
    }

    #[test]
    fn doubles_then_bisects() {
        let (tried, search) = run(1000, 7000, 20);
        assert_eq!(tried, vec![1000, 2000, 4000, 8000, 6000, 7000, 7500]);
        assert_eq!(search.best_pass, Some(7000));
        assert_eq!(search.lowest_fail, Some(7500));
    }

    #[test]
    fn halves_when_the_start_fails() {
        let (tried, search) = run(1000, 300, 20);
        assert_eq!(tried[..3], [1000, 500, 250]);
        assert_eq!(search.best_pass.map(|best| (250..=300).contains(&best)), Some(true));
    }

    #[test]
    fn stops_at_the_step_limit() {
        let (tried, search) = run(1, u64::MAX, 5);
        assert_eq!(tried, vec![1, 2, 4, 8, 16]);
        assert_eq!(search.lowest_fail, None);
    }

    #[test]
    fn gives_up_when_even_one_per_second_fails() {
        let (tried, search) = run(4, 0, 20);
        assert_eq!(tried, vec![4, 2, 1]);
        assert_eq!(search.best_pass, None);
    }
}
