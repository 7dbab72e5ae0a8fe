//! CPU time and memory of a process, read from `/proc/PID/stat` and
//! `/proc/PID/status` (Linux).

use std::time::Duration;

use anyhow::Context as _;

/// Which process to read: a PID, or this process itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proc {
    /// This process (`/proc/self`).
    This,
    /// Another process by id.
    Pid(u32),
}

impl Proc {
    fn path(self, file: &str) -> String {
        match self {
            Proc::This => format!("/proc/self/{file}"),
            Proc::Pid(pid) => format!("/proc/{pid}/{file}"),
        }
    }
}

/// CPU time a process has used, as in `/proc/PID/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// User plus system time of the process itself, clock ticks.
    pub own_ticks: u64,
    /// User plus system time of its children that it has waited for, clock ticks.
    pub children_ticks: u64,
}

/// Memory of a process, as in `/proc/PID/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size now (VmRSS), KiB.
    pub rss_kib: u64,
    /// Peak resident set size (VmHWM), KiB, since start or the last reset.
    pub hwm_kib: u64,
}

/// Reads a process's CPU times.
///
/// # Errors
/// The process is gone or its stat line is malformed.
pub fn cpu(proc: Proc) -> anyhow::Result<CpuTimes> {
    let path = proc.path("stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&stat).with_context(|| format!("parsing {path}"))
}

/// Reads a process's memory.
///
/// # Errors
/// The process is gone or its status is malformed.
pub fn memory(proc: Proc) -> anyhow::Result<Memory> {
    let path = proc.path("status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_status(&status).with_context(|| format!("parsing {path}"))
}

/// Resets a process's peak RSS (VmHWM) to its current RSS, so that the peak
/// covers only what follows. Returns whether it worked (it needs the right to
/// write `/proc/PID/clear_refs`, which the owner of the process has).
pub fn reset_peak(proc: Proc) -> bool {
    std::fs::write(proc.path("clear_refs"), "5").is_ok()
}

/// Clock ticks as a duration, with the kernel's `CLK_TCK` (100 when unknown).
pub fn ticks_to_duration(ticks: u64) -> Duration {
    let per_second = clock_ticks_per_second();
    let whole = ticks / per_second;
    let rest = ticks % per_second;
    Duration::from_secs(whole) + Duration::from_nanos(rest * 1_000_000_000 / per_second)
}

fn clock_ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|ticks| u64::try_from(ticks).ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// Parses `/proc/PID/stat`: the fields after the command name (which may
/// itself contain spaces and parentheses, so it ends at the last `)`).
fn parse_stat(stat: &str) -> anyhow::Result<CpuTimes> {
    let (_, after_name) = stat.rsplit_once(')').context("no ')' after the command name")?;
    // Field 3 (state) is the first after the name; utime, stime, cutime and
    // cstime are fields 14 to 17.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |number: usize| -> anyhow::Result<u64> {
        let text = fields.get(number - 3).with_context(|| format!("no field {number}"))?;
        text.parse().with_context(|| format!("field {number} is {text:?}"))
    };
    Ok(CpuTimes {
        own_ticks: field(14)? + field(15)?,
        children_ticks: field(16)? + field(17)?,
    })
}

/// Parses the `VmRSS` and `VmHWM` lines of `/proc/PID/status`.
fn parse_status(status: &str) -> anyhow::Result<Memory> {
    let kib = |key: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .with_context(|| format!("no {key} line"))?;
        let number = line.trim().trim_end_matches("kB").trim();
        number.parse().with_context(|| format!("{key} is {line:?}"))
    };
    Ok(Memory {
        rss_kib: kib("VmRSS:")?,
        hwm_kib: kib("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_an_awkward_name() {
        let stat = "4242 (tav ern) (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 30 7 3 20 0 9 0 \
                    123456 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let times = parse_stat(stat).unwrap();
        assert_eq!(times.own_ticks, 180);
        assert_eq!(times.children_ticks, 10);
        assert!(parse_stat("4242 (short) S 1").is_err());
    }

    #[test]
    fn parses_status_memory_lines() {
        let status = "Name:\ttavern\nVmPeak:\t  900 kB\nVmHWM:\t    5120 kB\nVmRSS:\t    4096 kB\nThreads:\t9\n";
        assert_eq!(
            parse_status(status).unwrap(),
            Memory {
                rss_kib: 4096,
                hwm_kib: 5120
            }
        );
        assert!(parse_status("Name:\tx\n").is_err());
    }

    #[test]
    fn reads_this_process() {
        assert!(memory(Proc::This).unwrap().rss_kib > 0);
        cpu(Proc::This).unwrap();
        assert_eq!(ticks_to_duration(clock_ticks_per_second() * 3), Duration::from_secs(3));
    }
}
