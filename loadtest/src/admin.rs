//! The server's admin endpoint: `GET /metrics` over a plain TCP connection
//! (HTTP/1.0, so the server closes the connection after the body), the world
//! tick histogram and tick overrun counter in the Prometheus text, and what
//! they counted between two scrapes (a window).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::units::round_to_u64;

/// The world tick duration histogram (seconds).
pub const TICK_HISTOGRAM: &str = "tavern_world_tick_seconds";
/// The counter of ticks that took longer than a tick period.
pub const TICK_OVERRUNS: &str = "tavern_world_tick_overruns_total";
/// Longest one scrape may take, connect to end of body.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest response read (the server's whole metric text is a few tens of KiB).
const MAX_RESPONSE: u64 = 8 << 20;

/// The world tick figures of one scrape, counted since the server started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TickScrape {
    /// The histogram's finite buckets: (upper bound in seconds, cumulative
    /// count), ascending, summed over every label set.
    pub buckets: Vec<(f64, u64)>,
    /// Ticks observed (`_count`).
    pub count: u64,
    /// Their total duration, seconds (`_sum`).
    pub sum_s: f64,
    /// Ticks over their budget, when the server reports the counter.
    pub overruns: Option<u64>,
}

/// World ticks between two scrapes: the difference of their counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TickWindow {
    /// Finite buckets: (upper bound in seconds, cumulative count in the window), ascending.
    pub buckets: Vec<(f64, u64)>,
    /// Ticks in the window.
    pub ticks: u64,
    /// Their total duration, seconds.
    pub sum_s: f64,
    /// Ticks over their budget in the window, when the server reports the counter.
    pub overruns: Option<u64>,
}

impl TickWindow {
    /// What `end` counted beyond `start` (everything of `end` when there is no start).
    pub fn between(start: Option<&TickScrape>, end: &TickScrape) -> TickWindow {
        let before = |bound: f64| {
            start
                .and_then(|start| start.buckets.iter().find(|(b, _)| *b == bound))
                .map_or(0, |(_, count)| *count)
        };
        TickWindow {
            buckets: end
                .buckets
                .iter()
                .map(|&(bound, count)| (bound, count.saturating_sub(before(bound))))
                .collect(),
            ticks: end.count.saturating_sub(start.map_or(0, |start| start.count)),
            sum_s: (end.sum_s - start.map_or(0.0, |start| start.sum_s)).max(0.0),
            overruns: end
                .overruns
                .map(|overruns| overruns.saturating_sub(start.and_then(|start| start.overruns).unwrap_or(0))),
        }
    }

    /// Adds another window's counts (buckets matched by bound).
    pub fn merge(&mut self, other: &TickWindow) {
        let mut buckets: BTreeMap<u64, (f64, u64)> = BTreeMap::new();
        for &(bound, count) in self.buckets.iter().chain(&other.buckets) {
            buckets.entry(bound.to_bits()).or_insert((bound, 0)).1 += count;
        }
        let mut merged: Vec<(f64, u64)> = buckets.into_values().collect();
        merged.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.buckets = merged;
        self.ticks += other.ticks;
        self.sum_s += other.sum_s;
        self.overruns = match (self.overruns, other.overruns) {
            (None, None) => None,
            (ours, theirs) => Some(ours.unwrap_or(0) + theirs.unwrap_or(0)),
        };
    }

    /// The tick duration at `quantile` (0.0..=1.0), seconds, as Prometheus's
    /// `histogram_quantile` computes it: linear within the bucket holding the
    /// rank, from 0 for the first bucket; the highest finite bound when the
    /// rank is beyond it. `None` without ticks.
    pub fn quantile(&self, quantile: f64) -> Option<f64> {
        if self.ticks == 0 {
            return None;
        }
        let rank = quantile.clamp(0.0, 1.0) * crate::units::f64_from(self.ticks);
        let mut lower = (0.0, 0);
        for &(bound, count) in &self.buckets {
            if crate::units::f64_from(count) >= rank {
                let in_bucket = count.saturating_sub(lower.1);
                if in_bucket == 0 {
                    return Some(bound);
                }
                let fraction = (rank - crate::units::f64_from(lower.1)) / crate::units::f64_from(in_bucket);
                return Some(lower.0 + (bound - lower.0) * fraction);
            }
            lower = (bound, count);
        }
        self.buckets.last().map(|&(bound, _)| bound)
    }

    /// The mean tick duration, seconds; `None` without ticks.
    pub fn mean(&self) -> Option<f64> {
        (self.ticks > 0).then(|| self.sum_s / crate::units::f64_from(self.ticks))
    }
}

/// Scrapes `addr` and returns its world tick figures.
///
/// # Errors
/// The endpoint could not be reached or did not answer 200 in time, or its
/// metrics have no world tick histogram.
pub async fn scrape_ticks(addr: SocketAddr) -> anyhow::Result<TickScrape> {
    let text = fetch_metrics(addr).await?;
    parse_ticks(&text).with_context(|| format!("{addr}/metrics has no {TICK_HISTOGRAM}"))
}

/// `GET /metrics` from `addr`: the body of a 200 answer.
///
/// # Errors
/// No connection, no answer in time, or a status other than 200.
pub async fn fetch_metrics(addr: SocketAddr) -> anyhow::Result<String> {
    fetch(addr, "/metrics").await
}

/// `GET path` from `addr`: the body of a 200 answer.
///
/// # Errors
/// No connection, no answer in time, or a status other than 200.
pub async fn fetch(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.take(MAX_RESPONSE).read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(SCRAPE_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("GET {addr}{path} took longer than {SCRAPE_TIMEOUT:?}"))?
        .with_context(|| format!("GET {addr}{path}"))?;
    body_of(&response).with_context(|| format!("GET {addr}{path}"))
}

/// The body of an HTTP/1.x response with status 200 (chunked or not).
fn body_of(response: &[u8]) -> anyhow::Result<String> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("the answer has no end of headers")?;
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default();
    anyhow::ensure!(
        status.split_whitespace().nth(1) == Some("200"),
        "the answer is {status:?}"
    );
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked")
        })
    });
    if chunked { dechunk(body) } else { Ok(body.to_owned()) }
}

/// Joins the chunks of a chunked body.
fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut joined = String::new();
    loop {
        let (size_line, rest) = body.split_once("\r\n").context("a chunk has no size line")?;
        let size_text = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).with_context(|| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            return Ok(joined);
        }
        let chunk = rest.get(..size).context("a chunk is cut short")?;
        joined.push_str(chunk);
        body = rest.get(size..).unwrap_or_default().trim_start_matches("\r\n");
    }
}

/// The world tick figures in a Prometheus text, summed over label sets;
/// `None` when it has no tick histogram.
pub fn parse_ticks(text: &str) -> Option<TickScrape> {
    let mut buckets: BTreeMap<u64, (f64, u64)> = BTreeMap::new();
    let mut count = None;
    let mut sum_s = 0.0;
    let mut overruns = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, labels, value)) = split_sample(line) else {
            continue;
        };
        let Some(suffix) = name.strip_prefix(TICK_HISTOGRAM) else {
            if name == TICK_OVERRUNS {
                *overruns.get_or_insert(0) += round_to_u64(value);
            }
            continue;
        };
        match suffix {
            "_bucket" => {
                let Some(bound) = label(labels, "le").and_then(|le| le.parse::<f64>().ok()) else {
                    continue;
                };
                if bound.is_finite() {
                    buckets.entry(bound.to_bits()).or_insert((bound, 0)).1 += round_to_u64(value);
                }
            }
            "_count" => *count.get_or_insert(0) += round_to_u64(value),
            "_sum" => sum_s += value,
            _ => {}
        }
    }
    let mut buckets: Vec<(f64, u64)> = buckets.into_values().collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(TickScrape {
        buckets,
        count: count?,
        sum_s,
        overruns,
    })
}

/// A sample line's metric name, label text and value.
fn split_sample(line: &str) -> Option<(&str, &str, f64)> {
    let (name, labels, rest) = match line.split_once('{') {
        Some((name, after)) => {
            let (labels, rest) = after.rsplit_once('}')?;
            (name, labels, rest)
        }
        None => {
            let (name, rest) = line.split_once(char::is_whitespace)?;
            (name, "", rest)
        }
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name.trim(), labels, value))
}

/// The value of label `name` in a label text like `a="x",le="0.5"`.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the server's /metrics says about world ticks, one scrape.
    fn sample(bucket_counts: [u64; 5], sum: f64, overruns: u64) -> String {
        let [a, b, c, d, inf] = bucket_counts;
        format!(
            "# HELP tavern_world_tick_seconds Time one world tick took.\n\
             # TYPE tavern_world_tick_seconds histogram\n\
             tavern_world_tick_seconds_bucket{{le=\"0.001\"}} {a}\n\
             tavern_world_tick_seconds_bucket{{le=\"0.002\"}} {b}\n\
             tavern_world_tick_seconds_bucket{{le=\"0.005\"}} {c}\n\
             tavern_world_tick_seconds_bucket{{le=\"0.01\"}} {d}\n\
             tavern_world_tick_seconds_bucket{{le=\"+Inf\"}} {inf}\n\
             tavern_world_tick_seconds_sum {sum}\n\
             tavern_world_tick_seconds_count {inf}\n\
             # HELP tavern_world_tick_overruns_total World ticks that took longer than one tick period.\n\
             # TYPE tavern_world_tick_overruns_total counter\n\
             tavern_world_tick_overruns_total {overruns}\n\
             tavern_world_tick_other 5\n\
             tavern_sessions_open 12\n"
        )
    }

    #[test]
    fn parses_the_tick_histogram_and_the_overruns() {
        let scrape = parse_ticks(&sample([10, 60, 90, 100, 100], 0.25, 3)).unwrap();
        assert_eq!(scrape.buckets, vec![(0.001, 10), (0.002, 60), (0.005, 90), (0.01, 100)]);
        assert_eq!(scrape.count, 100);
        assert_eq!(scrape.sum_s, 0.25);
        assert_eq!(scrape.overruns, Some(3));
        assert_eq!(parse_ticks("tavern_sessions_open 12\n"), None);
    }

    #[test]
    fn label_sets_are_summed() {
        let text = "tavern_world_tick_seconds_bucket{world=\"a\",le=\"0.5\"} 2\n\
                    tavern_world_tick_seconds_bucket{world=\"b\",le=\"0.5\"} 3\n\
                    tavern_world_tick_seconds_count{world=\"a\"} 2\n\
                    tavern_world_tick_seconds_count{world=\"b\"} 4\n";
        let scrape = parse_ticks(text).unwrap();
        assert_eq!(scrape.buckets, vec![(0.5, 5)]);
        assert_eq!(scrape.count, 6);
        assert_eq!(scrape.overruns, None);
    }

    #[test]
    fn quantiles_interpolate_within_the_window_buckets() {
        // Before the window: 5 ticks, all under 1 ms; at its end 105 more.
        let start = parse_ticks(&sample([5, 5, 5, 5, 5], 0.004, 1)).unwrap();
        let end = parse_ticks(&sample([15, 65, 95, 105, 105], 0.254, 4)).unwrap();
        let window = TickWindow::between(Some(&start), &end);
        assert_eq!(window.ticks, 100);
        assert_eq!(window.overruns, Some(3));
        assert_eq!(window.buckets[1], (0.002, 60));
        // p50: rank 50 lies in (1 ms, 2 ms], 40 of its 50 ticks in: 1.8 ms.
        assert!((window.quantile(0.5).unwrap() - 0.0018).abs() < 1e-12);
        // p99: rank 99 in (5 ms, 10 ms], 9 of its 10: 9.5 ms.
        assert!((window.quantile(0.99).unwrap() - 0.0095).abs() < 1e-12);
        // p5: rank 5 in the first bucket, from 0: 0.5 ms.
        assert!((window.quantile(0.05).unwrap() - 0.0005).abs() < 1e-12);
        assert!((window.mean().unwrap() - 0.0025).abs() < 1e-12);
    }

    #[test]
    fn ranks_beyond_the_last_bound_give_that_bound() {
        let end = parse_ticks(&sample([0, 0, 0, 1, 10], 1.0, 0)).unwrap();
        let window = TickWindow::between(None, &end);
        assert_eq!(window.quantile(0.99), Some(0.01));
        assert_eq!(TickWindow::default().quantile(0.5), None);
        assert_eq!(TickWindow::default().mean(), None);
    }

    #[test]
    fn windows_merge_by_bound() {
        let one = TickWindow {
            buckets: vec![(0.001, 1), (0.002, 2)],
            ticks: 2,
            sum_s: 0.003,
            overruns: None,
        };
        let mut merged = TickWindow::default();
        merged.merge(&one);
        merged.merge(&TickWindow {
            overruns: Some(2),
            ..one.clone()
        });
        assert_eq!(merged.buckets, vec![(0.001, 2), (0.002, 4)]);
        assert_eq!(merged.ticks, 4);
        assert_eq!(merged.overruns, Some(2));
    }

    #[test]
    fn bodies_plain_and_chunked() {
        let plain = b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\na 1\nb 2\n";
        assert_eq!(body_of(plain).unwrap(), "a 1\nb 2\n");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\na 1\n\r\n4\r\nb 2\n\r\n0\r\n\r\n";
        assert_eq!(body_of(chunked).unwrap(), "a 1\nb 2\n");
        let missing = b"HTTP/1.0 404 Not Found\r\n\r\n";
        assert!(body_of(missing).unwrap_err().to_string().contains("404"));
    }

    #[tokio::test]
    async fn scrapes_over_tcp_and_fails_softly() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = sample([1, 2, 3, 4, 4], 0.01, 0);
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 1024];
            let n = socket.read(&mut request).await.unwrap();
            assert!(request[..n].starts_with(b"GET /metrics HTTP/1.0\r\n"));
            let response = format!("HTTP/1.0 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
            socket.write_all(response.as_bytes()).await.unwrap();
        });
        let scrape = scrape_ticks(addr).await.unwrap();
        assert_eq!(scrape.count, 4);
        server.await.unwrap();
        // Nobody listens there any more.
        assert!(scrape_ticks(addr).await.is_err());
    }
}
