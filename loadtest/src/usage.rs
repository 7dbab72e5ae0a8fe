//! What the server and the load generator used during a step's window: CPU
//! time (utime + stime) and the server's resident memory, sampled from /proc.

use std::time::Duration;

use crate::procstat::{self, Memory, Proc};
use crate::timeline::{Timeline, sleep_until_wall, wall_ns};

/// How often the server's RSS is sampled during the window.
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Longest wait for the server to go quiet between steps.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The interval over which quiet is judged.
const SETTLE_SAMPLE: Duration = Duration::from_millis(200);
/// The pause between steps when the server's process is unknown.
const SETTLE_BLIND: Duration = Duration::from_millis(500);

/// The server's use of the machine over the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerUsage {
    /// Its process id.
    pub pid: u32,
    /// CPU time used in the window.
    pub cpu: Duration,
    /// RSS before the step's bots connected, KiB.
    pub rss_before_setup_kib: Option<u64>,
    /// RSS at the start of the window, KiB.
    pub rss_start_kib: u64,
    /// RSS at the end of the window, KiB.
    pub rss_end_kib: u64,
    /// Highest RSS in the window, KiB: the kernel's VmHWM (reset at the
    /// window's start when allowed) or the highest sample, whichever is higher.
    pub peak_rss_kib: u64,
}

/// The load generator's use of the machine over the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GeneratorUsage {
    /// Processes: this one plus its workers.
    pub processes: u32,
    /// CPU time of all of them in the window.
    pub cpu: Duration,
}

/// Samples the server (when known) and the generator (this process and
/// `workers`) at the start and end of the window, and the server's RSS
/// in between. Returns after the window ends.
pub async fn sample_window(
    server: Option<u32>,
    rss_before_setup_kib: Option<u64>,
    workers: Vec<u32>,
    timeline: Timeline,
) -> (Option<ServerUsage>, GeneratorUsage) {
    let generator: Vec<Proc> = std::iter::once(Proc::This)
        .chain(workers.iter().map(|&pid| Proc::Pid(pid)))
        .collect();
    sleep_until_wall(timeline.window_start_ns()).await;
    let generator_start = own_cpu_ticks(&generator);
    let server_start = server.and_then(|pid| start_server(pid, rss_before_setup_kib));
    let mut highest_rss = server_start.map_or(0, |start| start.usage.rss_start_kib);
    while wall_ns() < timeline.window_end_ns() {
        let next = wall_ns().saturating_add(crate::units::nanos(RSS_SAMPLE_EVERY));
        sleep_until_wall(next.min(timeline.window_end_ns())).await;
        if let Some(memory) = server.and_then(|pid| procstat::memory(Proc::Pid(pid)).ok()) {
            highest_rss = highest_rss.max(memory.rss_kib);
        }
    }
    let generator_usage = GeneratorUsage {
        processes: u32::try_from(generator.len()).unwrap_or(u32::MAX),
        cpu: procstat::ticks_to_duration(own_cpu_ticks(&generator).saturating_sub(generator_start)),
    };
    let server_usage = server_start.and_then(|start| end_server(start, highest_rss));
    (server_usage, generator_usage)
}

/// The server as read at the window's start.
#[derive(Clone, Copy, Debug)]
struct ServerStart {
    usage: ServerUsage,
    cpu_ticks: u64,
    /// Whether VmHWM was reset, so that it covers the window only.
    peak_was_reset: bool,
}

/// Reads the server at the window's start and resets its peak RSS.
fn start_server(pid: u32, rss_before_setup_kib: Option<u64>) -> Option<ServerStart> {
    let proc = Proc::Pid(pid);
    let cpu = procstat::cpu(proc).ok()?;
    let Memory { rss_kib, .. } = procstat::memory(proc).ok()?;
    Some(ServerStart {
        usage: ServerUsage {
            pid,
            rss_before_setup_kib,
            rss_start_kib: rss_kib,
            ..ServerUsage::default()
        },
        cpu_ticks: cpu.own_ticks,
        peak_was_reset: procstat::reset_peak(proc),
    })
}

/// Reads the server at the window's end.
fn end_server(start: ServerStart, highest_rss: u64) -> Option<ServerUsage> {
    let proc = Proc::Pid(start.usage.pid);
    let cpu = procstat::cpu(proc).ok()?;
    let memory = procstat::memory(proc).ok()?;
    // Without a reset the kernel's peak covers the server's whole life; leave it out.
    let peak_from_kernel = if start.peak_was_reset { memory.hwm_kib } else { 0 };
    Some(ServerUsage {
        cpu: procstat::ticks_to_duration(cpu.own_ticks.saturating_sub(start.cpu_ticks)),
        rss_end_kib: memory.rss_kib,
        peak_rss_kib: highest_rss.max(memory.rss_kib).max(peak_from_kernel),
        ..start.usage
    })
}

/// Waits, between steps, until the server has gone quiet (under a tenth of
/// a core over [`SETTLE_SAMPLE`]), at most [`SETTLE_TIMEOUT`]; without a
/// server process to watch, pauses briefly instead.
pub async fn settle(server: Option<u32>) {
    let Some(pid) = server else {
        tokio::time::sleep(SETTLE_BLIND).await;
        return;
    };
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    let Ok(mut last) = procstat::cpu(Proc::Pid(pid)) else {
        return;
    };
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(SETTLE_SAMPLE).await;
        let Ok(now) = procstat::cpu(Proc::Pid(pid)) else {
            return;
        };
        let used = procstat::ticks_to_duration(now.own_ticks.saturating_sub(last.own_ticks));
        if used < SETTLE_SAMPLE / 10 {
            return;
        }
        last = now;
    }
}

/// CPU ticks of every process in `procs` that can still be read.
fn own_cpu_ticks(procs: &[Proc]) -> u64 {
    procs
        .iter()
        .filter_map(|&proc| procstat::cpu(proc).ok())
        .map(|times| times.own_ticks)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn samples_this_process_as_a_server() {
        let pid = std::process::id();
        let timeline = Timeline::new(wall_ns(), Duration::ZERO, Duration::from_millis(250), Duration::ZERO);
        let busy = std::thread::spawn(|| {
            let until = std::time::Instant::now() + Duration::from_millis(200);
            let mut spins = 0_u64;
            while std::time::Instant::now() < until {
                spins = spins.wrapping_add(1);
            }
            spins
        });
        let (server, generator) = sample_window(Some(pid), Some(1), vec![], timeline).await;
        busy.join().unwrap();
        let server = server.unwrap();
        assert_eq!(server.pid, pid);
        assert!(server.rss_end_kib > 0);
        assert!(server.peak_rss_kib >= server.rss_end_kib);
        assert_eq!(generator.processes, 1);
        assert!(generator.cpu > Duration::ZERO);
    }
}
