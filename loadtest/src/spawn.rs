//! `--spawn-server` and `--pin`: starting the `tavern` binary on a free
//! loopback port (and its admin endpoint on another), waiting until it accepts connections, stopping it (SIGTERM
//! by PID, then a bounded wait); and putting processes on chosen CPUs.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::settings::AuthKey;

/// Ports tried for the server: below the ephemeral range (32768 and up), so
/// that no client connection takes the port first.
const PORTS: std::ops::Range<u16> = 20_000..32_000;
/// Longest the server may take to accept its first connection.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest the server may take to exit after SIGTERM (its shutdown grace is 5 s by default).
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the server is polled while starting and stopping.
const POLL: Duration = Duration::from_millis(50);

/// How to start the server.
#[derive(Clone, Debug)]
pub struct SpawnOptions {
    /// The executable; default: `tavern` next to this executable.
    pub bin: Option<PathBuf>,
    /// Extra flags for it.
    pub args: Vec<String>,
    /// Where its stdout and stderr go; default: a file in the temp directory.
    pub log: Option<PathBuf>,
    /// Run it on CPU 0.
    pub pin: bool,
    /// Run it with `--auth token` and this key (passed in its environment, not its arguments).
    pub auth_key: Option<AuthKey>,
}

/// A server this run started; stopped by [`SpawnedServer::stop`], or on drop.
#[derive(Debug)]
pub struct SpawnedServer {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its admin endpoint listens, when known (not `off`, not port 0).
    pub admin_addr: Option<SocketAddr>,
    /// Where its WebSocket listener listens, when known (not `off`, not port 0).
    pub ws_addr: Option<SocketAddr>,
    /// Its process id.
    pub pid: u32,
    /// The executable.
    pub bin: PathBuf,
    /// Where its output goes.
    pub log: PathBuf,
}

impl SpawnedServer {
    /// Starts the server with `RUST_LOG=warn` on a free loopback port, its
    /// admin endpoint on another (unless its flags or the environment name
    /// one), and waits until it accepts connections.
    ///
    /// # Errors
    /// No executable, no free port, or a server that exited or did not accept in time.
    pub async fn start(options: &SpawnOptions) -> anyhow::Result<SpawnedServer> {
        let bin = match &options.bin {
            Some(bin) => bin.clone(),
            None => default_server_bin()?,
        };
        let log = options
            .log
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("loadtest-tavern-{}.log", std::process::id())));
        let port = free_port(&[])?;
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        let output = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(&bin);
        command
            .arg("--addr")
            .arg(addr.to_string())
            .args(&options.args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output);
        if let Some(key) = &options.auth_key {
            command.env("TAVERN_AUTH", "token").env("TAVERN_AUTH_KEY", &key.0);
        }
        // A free admin port unless one was asked for, so spawned servers never collide on it,
        // and this run knows where to scrape.
        let admin_addr = match (flag(&options.args, "--admin-addr"), std::env::var("TAVERN_ADMIN_ADDR")) {
            (Some(given), _) | (None, Ok(given)) => known_addr(&given),
            (None, Err(_)) => {
                let admin = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_port(&[port])?));
                command.env("TAVERN_ADMIN_ADDR", admin.to_string());
                Some(admin)
            }
        };
        // The same for the WebSocket listener.
        let ws_addr = match (flag(&options.args, "--ws-addr"), std::env::var("TAVERN_WS_ADDR")) {
            (Some(given), _) | (None, Ok(given)) => known_addr(&given),
            (None, Err(_)) => {
                let taken = [Some(port), admin_addr.map(|admin| admin.port())];
                let taken: Vec<u16> = taken.into_iter().flatten().collect();
                let ws = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_port(&taken)?));
                command.env("TAVERN_WS_ADDR", ws.to_string());
                Some(ws)
            }
        };
        let child = if options.pin {
            spawn_on_cpu(&mut command, 0)
        } else {
            command.spawn().map_err(anyhow::Error::from)
        }
        .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = SpawnedServer {
            pid: child.id(),
            child: Some(child),
            addr,
            admin_addr,
            ws_addr,
            bin,
            log,
        };
        server.wait_until_accepting().await?;
        Ok(server)
    }

    /// Stops the server: SIGTERM, then waits (bounded) for it to exit; kills
    /// it if it does not. Returns its exit status.
    ///
    /// # Errors
    /// The signal or the wait failed.
    pub async fn stop(mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("server already stopped")?;
        terminate(&child)?;
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            tokio::time::sleep(POLL).await;
        }
        child.kill()?;
        Ok(child.wait()?)
    }

    async fn wait_until_accepting(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!(
                    "the server exited at start ({status}); its output is in {}:\n{}",
                    self.log.display(),
                    tail(&self.log)
                );
            }
            if tokio::time::timeout(POLL, tokio::net::TcpStream::connect(self.addr))
                .await
                .is_ok_and(|connected| connected.is_ok())
            {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the server did not accept connections on {} within {READY_TIMEOUT:?}; see {}",
                self.addr,
                self.log.display()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for SpawnedServer {
    /// Stops a server left running by an error path, the same way as `stop`, blocking.
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if terminate(&child).is_ok() {
            let deadline = std::time::Instant::now() + STOP_TIMEOUT;
            while std::time::Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(POLL);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The `tavern` executable in the same directory as this one (both are built
/// into the same target directory).
///
/// # Errors
/// There is none.
pub fn default_server_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let bin = exe.with_file_name("tavern");
    anyhow::ensure!(
        bin.is_file(),
        "no server at {}: build it (cargo build --release --bin tavern) or pass --server-bin",
        bin.display()
    );
    Ok(bin)
}

/// Puts this thread on `cpu`; threads it starts afterwards inherit it.
///
/// # Errors
/// The CPU does not exist here or the call failed.
pub fn pin_this_thread(cpu: usize) -> anyhow::Result<()> {
    sched_setaffinity(Pid::from_raw(0), &cpu_set(cpu)?).with_context(|| format!("pinning to CPU {cpu}"))
}

/// Starts `command` on `cpu`: the child inherits this thread's CPU set at
/// start, so the thread moves there for the spawn and back right after.
fn spawn_on_cpu(command: &mut Command, cpu: usize) -> anyhow::Result<Child> {
    let this_thread = Pid::from_raw(0);
    let before = sched_getaffinity(this_thread)?;
    sched_setaffinity(this_thread, &cpu_set(cpu)?)?;
    let spawned = command.spawn();
    sched_setaffinity(this_thread, &before)?;
    Ok(spawned?)
}

fn cpu_set(cpu: usize) -> anyhow::Result<CpuSet> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    anyhow::ensure!(cpu < cpus, "--pin needs CPU {cpu}, and this machine has {cpus} CPU(s)");
    let mut set = CpuSet::new();
    set.set(cpu)?;
    Ok(set)
}

fn terminate(child: &Child) -> anyhow::Result<()> {
    let pid = i32::try_from(child.id()).context("process id out of range")?;
    kill(Pid::from_raw(pid), Signal::SIGTERM).context("sending SIGTERM to the server")
}

/// A free loopback port below the ephemeral range, other than those in `taken`.
fn free_port(taken: &[u16]) -> anyhow::Result<u16> {
    let span = PORTS.end - PORTS.start;
    let offset = u16::try_from(std::process::id() % u32::from(span)).unwrap_or(0);
    (0..span)
        .map(|i| PORTS.start + (offset + i) % span)
        .filter(|port| !taken.contains(port))
        .find(|&port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok())
        .context("no free loopback port in 20000..32000")
}

/// The value of flag `name` (`--admin-addr`, say) among the server's flags, if given.
fn flag(args: &[String], name: &str) -> Option<String> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if let Some(value) = arg.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')) {
            return Some(value.to_owned());
        }
        if arg == name {
            return args.next().cloned();
        }
    }
    None
}

/// The address `text` names, when this run can reach it: a loopback
/// address with a port (`off`, a wildcard or port 0 give none).
fn known_addr(text: &str) -> Option<SocketAddr> {
    let addr: SocketAddr = text.trim().parse().ok()?;
    (addr.ip().is_loopback() && addr.port() != 0).then_some(addr)
}

/// The last lines of a file, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_free_port_below_the_ephemeral_range() {
        let port = free_port(&[]).unwrap();
        assert!(PORTS.contains(&port));
        let other = free_port(&[port]).unwrap();
        assert!(PORTS.contains(&other));
        assert_ne!(port, other);
    }

    #[test]
    fn the_admin_address_from_flags_or_environment() {
        let args = |list: &[&str]| list.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            flag(&args(&["--x", "--admin-addr", "127.0.0.1:7"]), "--admin-addr").as_deref(),
            Some("127.0.0.1:7")
        );
        assert_eq!(
            flag(&args(&["--admin-addr=off"]), "--admin-addr").as_deref(),
            Some("off")
        );
        assert_eq!(flag(&args(&["--max-connections=5"]), "--admin-addr"), None);
        assert_eq!(known_addr("127.0.0.1:4001"), Some("127.0.0.1:4001".parse().unwrap()));
        assert_eq!(known_addr("off"), None);
        assert_eq!(known_addr("127.0.0.1:0"), None);
        assert_eq!(known_addr("0.0.0.0:4001"), None);
    }

    #[test]
    fn refuses_a_cpu_that_does_not_exist() {
        assert!(cpu_set(100_000).is_err());
        assert!(cpu_set(0).is_ok());
    }
}
