//! The command line: one subcommand per scenario, the flags every scenario
//! shares, and their checks (loopback targets only).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::settings::{AuthKey, Density, Targets, Transport};

/// Tavern's bot swarm: real protocol v1 clients that load a server on this machine and report.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version, about)]
pub struct Cli {
    /// The scenario to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// R rooms × N members, P publishing on an open-loop schedule; latency, loss and order.
    Chat(ChatArgs),
    /// The chat scenario in rooms of a room plugin's kind: ops in, the plugin's events out.
    Plugin(PluginArgs),
    /// Hold C connected, joined sessions for --duration; server memory per session.
    Idle(IdleArgs),
    /// Connect / hello / join / chat / leave / disconnect cycles at a fixed rate.
    Churn(ChurnArgs),
    /// The chat scenario where a fraction of each room's members stop reading.
    Slow(SlowArgs),
    /// A chat step, then the same beside one client sending as fast as it can.
    Flood(FloodArgs),
    /// A connections trickling a Hello that never completes, beside C normal clients connecting.
    Slowloris(SlowlorisArgs),
    /// Chat rooms whose bots' connections are cut (reset) in rounds; recovery, loss and order across the cuts.
    Reconnect(ReconnectArgs),
    /// B bots random-walking in one world; input-to-echo latency, update traffic, server tick time.
    Mmo(MmoArgs),
    /// A cluster's node killed under bots in rooms spread over the nodes; how soon they are back.
    Failover(FailoverArgs),
    /// Internal: a worker process of --procs (reads its job on stdin).
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// `failover`.
#[derive(Debug, Args, Serialize)]
pub struct FailoverArgs {
    /// The cluster's nodes' game addresses, comma separated, loopback only; the first is the
    /// node killed.
    #[arg(long)]
    pub addr: String,
    /// The process id of the first node: it is killed with SIGKILL.
    #[arg(long)]
    pub kill_pid: i32,
    /// The first node's admin address (its `/cluster` says which rooms it owns).
    #[arg(long)]
    pub kill_admin: SocketAddr,
    /// Rooms, each with members on every node.
    #[arg(long, default_value_t = 30)]
    pub rooms: usize,
    /// Members of each room on each node.
    #[arg(long, default_value_t = 2)]
    pub per_node: usize,
    /// Longest a bot may take to be back after the kill, seconds.
    #[arg(long, default_value_t = 30.0, value_parser = seconds)]
    pub timeout_s: f64,
}

impl FailoverArgs {
    /// The nodes from `--addr`, each a loopback address.
    ///
    /// # Errors
    /// One is not an address, or not loopback.
    pub fn nodes(&self) -> anyhow::Result<Vec<SocketAddr>> {
        self.addr
            .split(',')
            .map(|addr| {
                let addr: SocketAddr = addr.trim().parse().with_context(|| format!("--addr {addr:?}"))?;
                anyhow::ensure!(addr.ip().is_loopback(), "--addr {addr} is not a loopback address");
                Ok(addr)
            })
            .collect()
    }
}

/// `chat`.
#[derive(Debug, Args, Serialize)]
pub struct ChatArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub rooms: RoomArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub find_max: FindMaxArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
}

/// `reconnect`.
#[derive(Debug, Args, Serialize)]
pub struct ReconnectArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub rooms: RoomArgs,
    /// Share of all bots whose connection is cut (reset) in each round.
    #[arg(long, default_value_t = 0.05)]
    pub cut_share: f64,
    /// Seconds between rounds of cuts (the first comes this long after the start).
    #[arg(long, default_value_t = 5.0, value_parser = seconds)]
    pub cut_every_s: f64,
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
}

/// `plugin`.
#[derive(Debug, Args, Serialize)]
pub struct PluginArgs {
    /// The rooms' kind: a room plugin that broadcasts a RoomEvent to every member for each
    /// RoomSend, carrying its data (the server's `echo` does).
    #[arg(long, default_value = "echo")]
    pub kind: String,
    /// The rest is `chat`'s.
    #[command(flatten)]
    #[serde(flatten)]
    pub chat: ChatArgs,
}

/// `slow`.
#[derive(Debug, Args, Serialize)]
pub struct SlowArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub rooms: RoomArgs,
    /// Fraction of each room's members that stop reading (taken from the non-publishers).
    #[arg(long, default_value_t = 0.1)]
    pub slow_fraction: f64,
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
}

/// `flood`.
#[derive(Debug, Args, Serialize)]
pub struct FloodArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub rooms: RoomArgs,
    /// Bytes per text of the flooding client.
    #[arg(long, default_value_t = 1024)]
    pub flood_size: usize,
    /// Most of the flooder's messages written and not yet echoed back (it must read its echoes
    /// or be disconnected as a slow consumer).
    #[arg(long, default_value_t = 512)]
    pub flood_in_flight: u64,
    /// Run the step beside the flooder first, then the one without (to tell the flooder's
    /// effect from the order of the steps).
    #[arg(long)]
    pub flood_first: bool,
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
}

/// `idle`.
#[derive(Debug, Args, Serialize)]
pub struct IdleArgs {
    /// Sessions to hold (C).
    #[arg(long, default_value_t = 1000)]
    pub sessions: u64,
    /// Sessions per room.
    #[arg(long, default_value_t = 10)]
    pub room_size: u64,
    /// The rooms' kind (empty: chat).
    #[arg(long, default_value = "")]
    pub kind: String,
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
}

/// `slowloris`.
#[derive(Debug, Args, Serialize)]
pub struct SlowlorisArgs {
    /// Attacking connections held open at once (A); each is replaced as soon as the server closes it.
    #[arg(long, default_value_t = 1000)]
    pub attackers: u64,
    /// Normal clients connecting, saying Hello and joining, evenly through the window (C).
    #[arg(long, default_value_t = 100)]
    pub clients: u64,
    /// Time between two bytes of an attacker, ms.
    #[arg(long, default_value_t = 1000)]
    pub trickle_ms: u64,
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
}

/// `mmo`.
#[derive(Debug, Args, Serialize)]
pub struct MmoArgs {
    /// Bots in the world (B).
    #[arg(long, default_value_t = 1000)]
    pub bots: u64,
    /// The world's name (the rule of room names).
    #[arg(long, default_value = "w")]
    pub world: String,
    /// Moves per second per bot (open loop, bots evenly phased).
    #[arg(long, default_value_t = 10)]
    pub input_hz: u64,
    /// dispersed: spawn and walk over the whole world; clustered: in a square of --cluster-size
    /// centred in it.
    #[arg(long, value_enum, default_value_t = Density::Dispersed)]
    pub density: Density,
    /// Side of the clustered square, world units [default: twice the server's AOI radius].
    #[arg(long)]
    pub cluster_size: Option<f64>,
    /// Distance of each walk target from the last one, world units; at most max_speed / input-hz
    /// is walked (the server's max_speed, from WorldEntered).
    #[arg(long, default_value_t = 1.0)]
    pub step: f64,
    /// The server's admin endpoint (loopback only), scraped for world tick durations
    /// [default with --spawn-server: the spawned server's].
    #[arg(long, value_parser = loopback_addr, conflicts_with = "spawn_server")]
    pub admin_addr: Option<SocketAddr>,
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
}

/// `churn`.
#[derive(Debug, Args, Serialize)]
pub struct ChurnArgs {
    /// Cycles started per second.
    #[arg(long, default_value_t = 100)]
    pub rate: u64,
    /// Rooms the cycles spread over.
    #[arg(long, default_value_t = 10)]
    pub rooms: u64,
    /// Bytes of each cycle's chat text.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Most cycles in flight per process; more are skipped and counted.
    #[arg(long, default_value_t = 1000)]
    pub max_in_flight: u64,
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
}

/// The worker's flags (set by the parent).
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Runtime threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// The rooms and load of `chat`, `plugin`, `slow` and `flood`.
#[derive(Debug, Args, Serialize)]
pub struct RoomArgs {
    /// Rooms (R).
    #[arg(long, default_value_t = 1)]
    pub rooms: u64,
    /// Members per room (N), publishers included.
    #[arg(long, default_value_t = 100)]
    pub members: u64,
    /// Publishing members per room (P).
    #[arg(long, default_value_t = 10)]
    pub publishers: u64,
    /// Bytes per chat text or op's data (S), at most 1024.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Messages per second offered in total (open loop; the start rate of --find-max).
    #[arg(long, default_value_t = 5000)]
    pub rate: u64,
}

/// `chat --find-max`, `plugin --find-max`.
#[derive(Debug, Args, Serialize)]
pub struct FindMaxArgs {
    /// Search the highest sustainable rate, from --rate: double, then bisect.
    #[arg(long)]
    pub find_max: bool,
    /// Highest sustainable p99, ms.
    #[arg(long, default_value_t = 50.0)]
    pub p99_bound_ms: f64,
    /// Most distinct rates tried.
    #[arg(long, default_value_t = 10)]
    pub max_steps: u32,
    /// Stop when the lowest failing rate is within this fraction of the best passing one.
    #[arg(long, default_value_t = 0.1)]
    pub resolution: f64,
    /// Extra tries of a failing rate before it counts as failing.
    #[arg(long, default_value_t = 1)]
    pub retries: u32,
    /// Fraction of the offered rate a sustainable step must achieve.
    #[arg(long, default_value_t = 0.97)]
    pub min_achieved: f64,
}

/// Flags every scenario shares.
#[derive(Debug, Args, Serialize)]
pub struct CommonArgs {
    /// The server's address; loopback only (127.0.0.0/8 or ::1). With `--transport ws`, its
    /// WebSocket listener's. Comma separated for several (a cluster's nodes): member k of each
    /// room connects to the (k mod n)-th.
    #[arg(long, default_value = "127.0.0.1:4000")]
    pub addr: String,
    /// How the bots connect: `tcp` (the game port) or `ws` (the WebSocket listener).
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    pub transport: Transport,
    /// Start the tavern server on a free loopback port, and stop it at the end.
    #[arg(long, conflicts_with_all = ["server_pid"])]
    pub spawn_server: bool,
    /// The server executable for --spawn-server [default: tavern next to loadtest].
    #[arg(long, requires = "spawn_server")]
    pub server_bin: Option<PathBuf>,
    /// An extra flag for the spawned server, e.g. --server-arg=--max-connections=20000 (repeatable).
    #[arg(long, requires = "spawn_server", allow_hyphen_values = true)]
    pub server_arg: Vec<String>,
    /// Where the spawned server's output goes [default: $TMPDIR/loadtest-tavern-PID.log].
    #[arg(long, requires = "spawn_server")]
    pub server_log: Option<PathBuf>,
    /// Sign each bot's Hello with an HS256 JWT minted from this key (hex), for a server run with
    /// `--auth token`; a spawned server gets `--auth token` and the key.
    #[arg(long, env = "TAVERN_AUTH_KEY", hide_env_values = true, value_parser = auth_key)]
    #[serde(skip)]
    pub auth_key: Option<AuthKey>,
    /// The server's process id, to sample its CPU and memory from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Bots connect from 127.0.0.1 ..= 127.0.0.K, round robin (more connections than one address's ports).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub source_ips: u8,
    /// Processes the bots are spread over (this one re-executed as workers).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub procs: u32,
    /// Runtime threads per process (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,
    /// Put the spawned server on CPU 0 and the load generator on CPU 1.
    #[arg(long)]
    pub pin: bool,
    /// Warm-up before each measured window, seconds (load runs, nothing counts).
    #[arg(long, default_value_t = 2.0, value_parser = seconds)]
    pub warmup: f64,
    /// The measured window, seconds.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub duration: f64,
    /// Longest wait after the window for messages in flight, seconds.
    #[arg(long, default_value_t = 5.0, value_parser = seconds)]
    pub drain_timeout: f64,
    /// Longest the bots of one process may take to connect and join, seconds.
    #[arg(long, default_value_t = 60.0, value_parser = seconds)]
    pub setup_timeout: f64,
    /// Connection setups in flight at once, per process.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Never draw the live progress line (drawn only when stderr is a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

impl Command {
    /// The shared flags of a scenario command (`None` for the worker).
    pub fn common(&self) -> Option<&CommonArgs> {
        match self {
            Command::Chat(args) => Some(&args.common),
            Command::Plugin(args) => Some(&args.chat.common),
            Command::Idle(args) => Some(&args.common),
            Command::Churn(args) => Some(&args.common),
            Command::Slow(args) => Some(&args.common),
            Command::Flood(args) => Some(&args.common),
            Command::Slowloris(args) => Some(&args.common),
            Command::Mmo(args) => Some(&args.common),
            Command::Reconnect(args) => Some(&args.common),
            Command::Failover(_) | Command::Worker(_) => None,
        }
    }

    /// The admin endpoint named on the command line, if any.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        match self {
            Command::Mmo(args) => args.admin_addr,
            _ => None,
        }
    }
}

impl CommonArgs {
    /// Warm-up as a duration.
    pub fn warmup(&self) -> Duration {
        to_duration(self.warmup)
    }

    /// Window as a duration.
    pub fn duration(&self) -> Duration {
        to_duration(self.duration)
    }

    /// Drain timeout as a duration.
    pub fn drain_timeout(&self) -> Duration {
        to_duration(self.drain_timeout)
    }

    /// Setup timeout as a duration.
    pub fn setup_timeout(&self) -> Duration {
        to_duration(self.setup_timeout)
    }

    /// The targets from `--addr`: each a loopback address.
    ///
    /// # Errors
    /// One does not resolve, or not to loopback only, or --source-ips is used with IPv6.
    pub fn targets(&self) -> anyhow::Result<Targets> {
        let targets: Vec<SocketAddr> = self
            .addr
            .split(',')
            .map(|addr| self.target(addr.trim()))
            .collect::<anyhow::Result<_>>()?;
        Targets::try_from(targets).map_err(|e| anyhow::anyhow!("--addr {:?}: {e}", self.addr))
    }

    /// One address of `--addr`, which must be a loopback address.
    ///
    /// # Errors
    /// It does not resolve, or not to loopback only, or --source-ips is used with IPv6.
    fn target(&self, addr: &str) -> anyhow::Result<SocketAddr> {
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .with_context(|| format!("--addr {addr:?} is not an address with a port"))?
            .collect();
        anyhow::ensure!(
            !addrs.is_empty() && addrs.iter().all(|addr| addr.ip().is_loopback()),
            "--addr {addr} is not a loopback address: loadtest only loads servers on this machine \
             (127.0.0.0/8 or ::1)"
        );
        let target = addrs.iter().find(|addr| addr.is_ipv4()).unwrap_or(&addrs[0]);
        anyhow::ensure!(
            self.source_ips == 1 || target.is_ipv4(),
            "--source-ips needs an IPv4 loopback --addr"
        );
        Ok(*target)
    }
}

/// Parses `--auth-key`: hex, long enough for the server to accept it.
fn auth_key(text: &str) -> Result<AuthKey, tavern::auth::KeyError> {
    let key = tavern::auth::parse_hex_key(text)?;
    tavern::auth::Authority::new(key, std::collections::HashSet::new())?;
    Ok(AuthKey(text.trim().to_owned()))
}

/// Parses a loopback socket address (`--admin-addr`).
fn loopback_addr(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| format!("{text:?} is not an address with a port, e.g. 127.0.0.1:4001"))?;
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!("{addr} is not a loopback address (127.0.0.0/8 or ::1)"))
    }
}

/// Parses a non-negative number of seconds, at most a day.
fn seconds(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if value.is_finite() && (0.0..=86_400.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{text} is not between 0 and 86400 seconds"))
    }
}

fn to_duration(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests;
