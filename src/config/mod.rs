//! Every setting of the server, from command-line flags, `TAVERN_*`
//! environment variables or a `.env` file (flags win), each with its default
//! and unit. [`Config::parse_from`] validates the whole before anything binds.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use clap::builder::TypedValueParser as _;

use crate::sched::SchedPolicy;

pub use auth::{AuthConfig, AuthMode, Secret};
pub use cluster::ClusterConfig;
pub use validate::{ConfigError, InvalidSetting};
pub use ws::{WsAddr, WsConfig};

mod auth;
mod cluster;
mod validate;
mod ws;

/// The default of [`Config::max_text_len`], bytes.
pub const DEFAULT_MAX_TEXT_LEN: usize = 1024;

/// The longest world side, world units: positions in updates (fixed point,
/// 0.01) stay far inside 32 bits.
const MAX_WORLD_SIDE: f32 = 1_000_000.0;
/// The most cells a world's interest grid may have.
const MAX_WORLD_CELLS: f32 = 4_194_304.0;

/// Bytes a chat frame may carry beyond its text: envelope, room, sender name, numbers.
const CHAT_FRAME_OVERHEAD: usize = 256;

/// The most one member takes in a member list (`RoomJoined`, `RoomMembers`):
/// a session id and a name of 32 characters of up to 4 bytes, with their tags.
pub const MAX_MEMBER_BYTES: usize = 145;

/// What a member list frame holds besides its members: the frame header, the
/// envelope, the room name (at most 64 bytes), `seq` and `member_count`.
pub const MEMBER_FRAME_OVERHEAD: usize = 128;

/// Server settings. `tavern --help` lists them with their defaults.
#[derive(Parser, Debug, Clone, PartialEq)]
#[command(
    name = "tavern",
    version,
    about = "Tavern game session server",
    max_term_width = 100,
    after_help = "`tavern token --player-id ID --name NAME [--ttl-s S]` mints an HS256 session token (a JWT) with TAVERN_AUTH_KEY."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "TAVERN_ADDR", default_value = "127.0.0.1:4000")]
    pub addr: SocketAddr,

    /// Session threads (actix arbiters); sessions are spread over them. Default: CPU cores.
    #[arg(long, env = "TAVERN_SESSION_THREADS", default_value_t = cores(), value_parser = clap::value_parser!(u16).range(1..=1024).map(usize::from))]
    pub session_threads: usize,

    /// Threads running the room directory and the room actors; 0 puts them on the session
    /// threads, so one thread does everything, as an event loop. Default: 1, or 0 when the
    /// process may use only one CPU (a second busy thread would then only take turns with the
    /// first, switching context at every hand-off).
    #[arg(long, env = "TAVERN_ROOM_THREADS", default_value_t = default_room_threads(), value_parser = clap::value_parser!(u16).range(0..=1024).map(usize::from))]
    pub room_threads: usize,

    /// Threads of the pool that fans large broadcasts out in parallel. Default: CPU cores.
    #[arg(long, env = "TAVERN_BROADCAST_THREADS", default_value_t = cores(), value_parser = clap::value_parser!(u16).range(1..=1024).map(usize::from))]
    pub broadcast_threads: usize,

    /// Scheduling policy of the server's own threads (session, room, world and broadcast
    /// threads): `other` leaves the system default, `batch` sets `SCHED_BATCH` (Linux; no
    /// privileges needed), so that a thread handing work to another on the same core is not
    /// preempted by it. Niceness is never changed.
    #[arg(long, env = "TAVERN_SCHED_POLICY", value_enum, default_value_t = SchedPolicy::Other)]
    pub sched_policy: SchedPolicy,

    /// Room size (members) from which a broadcast is spread over the broadcast pool instead of
    /// running inline on the room's thread.
    #[arg(long, env = "TAVERN_BROADCAST_PARALLEL_THRESHOLD", default_value_t = 4096)]
    pub broadcast_parallel_threshold: usize,

    /// Most connections open at once; more are answered SERVER_FULL and closed.
    #[arg(long, env = "TAVERN_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Largest frame (bytes, length field value) accepted before Welcome.
    #[arg(long, env = "TAVERN_MAX_HELLO_FRAME_LEN", default_value_t = 4096)]
    pub max_hello_frame_len: usize,

    /// Largest frame (bytes, length field value) accepted after Welcome.
    #[arg(long, env = "TAVERN_MAX_FRAME_LEN", default_value_t = 16_384)]
    pub max_frame_len: usize,

    /// Longest chat text, in bytes of UTF-8.
    #[arg(long, env = "TAVERN_MAX_TEXT_LEN", default_value_t = DEFAULT_MAX_TEXT_LEN)]
    pub max_text_len: usize,

    /// Most rooms one session may be in at once.
    #[arg(long, env = "TAVERN_MAX_ROOMS_PER_SESSION", default_value_t = 64)]
    pub max_rooms_per_session: usize,

    /// Per-session outbound queue bound, in frames. A reliable message that finds the queue
    /// full disconnects the session with SLOW_CONSUMER.
    #[arg(long, env = "TAVERN_OUTBOUND_QUEUE_FRAMES", default_value_t = 4096)]
    pub outbound_queue_frames: usize,

    /// Per-session outbound queue bound, in bytes (same rule as the frame bound).
    #[arg(long, env = "TAVERN_OUTBOUND_QUEUE_BYTES", default_value_t = 1 << 20)]
    pub outbound_queue_bytes: usize,

    /// Most bytes a session writer puts into one socket write.
    #[arg(long, env = "TAVERN_WRITE_BATCH_BYTES", default_value_t = 64 * 1024)]
    pub write_batch_bytes: usize,

    /// Write coalescing, microseconds: a session's writer woken by a frame lets its thread
    /// finish the work already ready (so frames it queues share the write) unless the frame
    /// has waited this long already; 0 writes each wake-up at once.
    #[arg(long, env = "TAVERN_WRITE_COALESCE_US", default_value_t = 250)]
    pub write_coalesce_us: u64,

    /// Kernel send buffer per connection (SO_SNDBUF), bytes; 0 leaves it to the OS's autotuning.
    /// With the outbound queue bounds it caps what one slow client can hold.
    #[arg(long, env = "TAVERN_SOCKET_SEND_BUFFER", default_value_t = 0)]
    pub socket_send_buffer: usize,

    /// Bound of each room's inbox, and of each game world's (commands). A session whose
    /// room inbox is full stops reading its socket until there is room.
    #[arg(long, env = "TAVERN_ROOM_INBOX", default_value_t = 4096)]
    pub room_inbox: usize,

    /// Sequenced events each room keeps for recovery (`JoinRoom.since_seq`); 0 keeps none.
    #[arg(long, env = "TAVERN_ROOM_HISTORY_SIZE", default_value_t = 128)]
    pub room_history_size: usize,

    /// Age past which a room's kept events are dropped, ms; 0 keeps none.
    #[arg(long, env = "TAVERN_ROOM_HISTORY_TTL_MS", default_value_t = 60_000)]
    pub room_history_ttl_ms: u64,

    /// Bound of the room directory's inbox (commands); senders wait for room. (The name
    /// predates game worlds, which use `room_inbox`.)
    #[arg(long, env = "TAVERN_WORLD_INBOX", default_value_t = 4096)]
    pub world_inbox: usize,

    /// World ticks per second: how often worlds move entities and send updates.
    #[arg(long, env = "TAVERN_WORLD_TICK_HZ", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub world_tick_hz: u32,

    /// World width (x from 0 to this), world units.
    #[arg(long, env = "TAVERN_WORLD_WIDTH", default_value_t = 2000.0)]
    pub world_width: f32,

    /// World height (y from 0 to this), world units.
    #[arg(long, env = "TAVERN_WORLD_HEIGHT", default_value_t = 2000.0)]
    pub world_height: f32,

    /// Area of interest: a player sees the entities within this distance, world units.
    #[arg(long, env = "TAVERN_WORLD_AOI_RADIUS", default_value_t = 50.0)]
    pub world_aoi_radius: f32,

    /// An entity seen leaves the area only beyond the radius plus this margin, world units.
    #[arg(long, env = "TAVERN_WORLD_AOI_HYSTERESIS", default_value_t = 5.0)]
    pub world_aoi_hysteresis: f32,

    /// Side of the interest grid's cells, world units (at most 4,194,304 cells in a world).
    #[arg(long, env = "TAVERN_WORLD_CELL_SIZE", default_value_t = 55.0)]
    pub world_cell_size: f32,

    /// Fastest an entity moves, world units per second of world time.
    #[arg(long, env = "TAVERN_WORLD_MAX_SPEED", default_value_t = 10.0)]
    pub world_max_speed: f32,

    /// Players one world holds; more are answered WORLD_FULL.
    #[arg(long, env = "TAVERN_WORLD_MAX_PLAYERS", default_value_t = 20_000)]
    pub world_max_players: usize,

    /// Worlds the server holds at once; entering another is answered WORLD_FULL.
    #[arg(long, env = "TAVERN_MAX_WORLDS", default_value_t = 16)]
    pub max_worlds: usize,

    /// Entities one WorldUpdate may announce as entered; the rest enter on later ticks, so
    /// that entering a crowd costs a bounded update.
    #[arg(long, env = "TAVERN_WORLD_MAX_ENTERED_PER_UPDATE", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..).map(|n| usize::try_from(n).unwrap_or(usize::MAX)))]
    pub world_max_entered_per_update: usize,

    /// Threads the worlds run on, made at start; worlds are spread over them (each tick's
    /// per-player work runs on the broadcast pool).
    #[arg(long, env = "TAVERN_WORLD_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024).map(usize::from))]
    pub world_threads: usize,

    /// Ticks a player's update may stay unsent (the client not reading) before the player is
    /// closed with SLOW_CONSUMER.
    #[arg(long, env = "TAVERN_WORLD_STALE_TICKS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub world_stale_ticks: u32,

    /// Heartbeat interval announced in Welcome, ms. A session silent for one interval gets a
    /// Heartbeat to answer; silent for three, it is closed with IDLE_TIMEOUT.
    #[arg(long, env = "TAVERN_HEARTBEAT_INTERVAL_MS", default_value_t = 15_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub heartbeat_interval_ms: u32,

    /// Handshake deadline: time a new connection has to send Hello, ms.
    #[arg(long, env = "TAVERN_HELLO_TIMEOUT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub hello_timeout_ms: u64,

    /// Resume grace period, ms: a session whose connection drops (reset, closed without
    /// Goodbye, silent past the idle timeout) is held this long for `Hello.resume_token`:
    /// its name, its rooms' seats (the others see no MemberLeft) and its world entity.
    /// 0 holds nothing, and Welcome carries no resume token.
    #[arg(long, env = "TAVERN_RESUME_GRACE_MS", default_value_t = 30_000)]
    pub resume_grace_ms: u32,

    /// Most sessions held for a resume at once; a connection that drops past it ends its
    /// session at once, as with no grace period.
    #[arg(long, env = "TAVERN_MAX_HELD_SESSIONS", default_value_t = 10_000)]
    pub max_held_sessions: usize,

    /// Write deadline: a connection whose socket takes no bytes for this long while frames wait
    /// is closed, even if its queue is not full, ms.
    #[arg(long, env = "TAVERN_WRITE_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub write_timeout_ms: u64,

    /// Connections one source address may hold at once; more are answered TOO_MANY_CONNECTIONS
    /// and closed (0: no limit).
    #[arg(long, env = "TAVERN_MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    pub max_connections_per_ip: usize,

    /// New connections one source address may open per second (bursts of as many); faster ones
    /// are answered TOO_MANY_CONNECTIONS and closed (0: no limit).
    #[arg(long, env = "TAVERN_ACCEPT_RATE_PER_IP", default_value_t = 0)]
    pub accept_rate_per_ip: u32,

    /// Members one room holds; a join beyond is answered ROOM_FULL. Every room this size must
    /// be joinable by a session with an empty queue: its member list must fit
    /// `outbound_queue_bytes` (checked at start).
    #[arg(long, env = "TAVERN_MAX_ROOM_MEMBERS", default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..).map(|n| usize::try_from(n).unwrap_or(usize::MAX)))]
    pub max_room_members: usize,

    /// Longest a room plugin's hook may run before it is logged and counted
    /// (`tavern_plugin_slow_hooks_total`), µs. Hooks are never interrupted.
    #[arg(long, env = "TAVERN_PLUGIN_HOOK_BUDGET_US", default_value_t = 5_000)]
    pub plugin_hook_budget_us: u64,

    /// Timers one plugin room may have running at once; more are refused (`set_timer` gives `None`).
    #[arg(long, env = "TAVERN_PLUGIN_MAX_TIMERS", default_value_t = 64)]
    pub plugin_max_timers: usize,

    /// Members' messages a ticked plugin room keeps for its next tick; more are dropped and
    /// answered OVERLOADED.
    #[arg(long, env = "TAVERN_PLUGIN_MAX_INPUTS", default_value_t = 1_024)]
    pub plugin_max_inputs: usize,

    /// Highest tick rate a plugin room may ask for, Hz; higher asks get this.
    #[arg(long, env = "TAVERN_PLUGIN_MAX_TICK_HZ", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub plugin_max_tick_hz: u32,

    /// Most rooms one RoomList holds.
    #[arg(long, env = "TAVERN_LIST_ROOMS_MAX", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000).map(|n| usize::try_from(n).unwrap_or(usize::MAX)))]
    pub list_rooms_max: usize,

    /// Hellos a connection may send before one is welcomed; the next closes it with
    /// TOO_MANY_HELLOS (so a connection cannot probe names at line rate).
    #[arg(long, env = "TAVERN_MAX_HELLO_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_hello_attempts: u32,

    /// Messages a session may send per second, after Hello; more are dropped and answered
    /// RATE_LIMITED (0: no limit).
    #[arg(long, env = "TAVERN_RATE_LIMIT_PER_S", default_value_t = 10_000)]
    pub rate_limit_per_s: u32,

    /// Messages a session may send at once above its rate.
    #[arg(long, env = "TAVERN_RATE_LIMIT_BURST", default_value_t = 1_000)]
    pub rate_limit_burst: u32,

    /// Messages dropped by the rate limit within one second that close the session
    /// (RATE_LIMITED).
    #[arg(long, env = "TAVERN_RATE_LIMIT_DISCONNECT_AFTER", default_value_t = 1_000)]
    pub rate_limit_disconnect_after: u32,

    /// Time a closing connection gets to take what is queued for it and its final frame, ms.
    #[arg(long, env = "TAVERN_CLOSE_TIMEOUT_MS", default_value_t = 2_000)]
    pub close_timeout_ms: u64,

    /// On SIGINT/SIGTERM: how long queued messages and ServerShutdown may take to reach the
    /// clients before the process exits anyway, ms.
    #[arg(long, env = "TAVERN_SHUTDOWN_GRACE_MS", default_value_t = 5_000)]
    pub shutdown_grace_ms: u64,

    /// `ServerShutdown.reconnect_after_ms`: the hint given to clients at shutdown, ms.
    #[arg(long, env = "TAVERN_RECONNECT_AFTER_MS", default_value_t = 1_000)]
    pub reconnect_after_ms: u32,

    /// On SIGINT/SIGTERM: how long `/readyz` answers 503 while the server still accepts, before
    /// it stops accepting, so load balancers take it out of rotation first, ms.
    #[arg(long, env = "TAVERN_UNREADY_DELAY_MS", default_value_t = 0)]
    pub unready_delay_ms: u64,

    /// Address of the admin HTTP endpoint (/metrics, /stats, /healthz, /readyz), or `off`.
    /// Never the game port.
    #[arg(long, env = "TAVERN_ADMIN_ADDR", default_value = "127.0.0.1:4001", value_parser = parse_listen_addr)]
    pub admin_addr: AdminAddr,

    /// Keep the histograms (fan-out duration, members per room event, outbound queue depth),
    /// which overload protection reads too. Counters and gauges are always kept.
    #[arg(long, env = "TAVERN_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,

    /// Lifecycle events that may wait for a slow observer; more are dropped and counted.
    #[arg(long, env = "TAVERN_HOOK_QUEUE", default_value_t = 4096)]
    pub hook_queue: usize,

    /// No longer read: one client's queue depth is no sign of a saturated server (a slow
    /// client is closed as SLOW_CONSUMER at its own bound). Accepted, with a warning, so
    /// that older configurations still start.
    #[arg(long, env = "TAVERN_OVERLOAD_QUEUE_DEPTH", hide = true)]
    pub overload_queue_depth: Option<u32>,

    /// Overload: shed load when a session or room thread's event loop ran this many
    /// milliseconds late (0: never).
    #[arg(long, env = "TAVERN_OVERLOAD_LOOP_LAG_MS", default_value_t = 100)]
    pub overload_loop_lag_ms: u32,

    /// Overload: shed load when an actor inbox (the directory's, a room's, a world's) was this
    /// full, percent of its bound (0: never).
    #[arg(long, env = "TAVERN_OVERLOAD_INBOX_PCT", default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub overload_inbox_pct: u32,

    /// Overload: shed load when this share of world ticks, percent, overran their budget
    /// (0: never).
    #[arg(long, env = "TAVERN_OVERLOAD_TICK_OVERRUN_PCT", default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub overload_tick_overrun_pct: u32,

    /// Overload: shed load when the p99 of fan-out duration exceeds this many microseconds
    /// (0: never).
    #[arg(long, env = "TAVERN_OVERLOAD_FANOUT_US", default_value_t = 10_000)]
    pub overload_fanout_us: u32,

    /// Overload: shed load while the process's resident memory exceeds this many MiB and is
    /// still growing; memory held but flat for ten seconds stops counting (0: never).
    #[arg(long, env = "TAVERN_OVERLOAD_RSS_MB", default_value_t = 0)]
    pub overload_rss_mb: u32,

    /// TLS: the server's certificate chain, PEM. With `tls_key`, the game port speaks TLS
    /// (1.3 and 1.2 only) instead of plain TCP.
    #[arg(long, env = "TAVERN_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// TLS: the server's private key, PEM.
    #[arg(long, env = "TAVERN_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,

    /// TLS: require a client certificate signed by one of these CAs, PEM (mutual TLS).
    #[arg(long, env = "TAVERN_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<std::path::PathBuf>,

    /// TLS: time a new connection has to finish the TLS handshake, ms.
    #[arg(long, env = "TAVERN_TLS_HANDSHAKE_TIMEOUT_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub tls_handshake_timeout_ms: u64,

    /// Authentication: `--auth`, the token keys, algorithms and claims, the deny-list.
    #[command(flatten)]
    pub auth: AuthConfig,

    /// The WebSocket listener: `--ws-addr`, `--ws-allowed-origins`, `--ws-max-control-per-s`.
    #[command(flatten)]
    pub ws: WsConfig,

    /// Clustering over NATS: `--cluster`, `--node-id`, the NATS credentials and TLS, timings.
    #[command(flatten)]
    pub cluster: ClusterConfig,

    /// Overload: a level ends once every figure is below this percentage of what started it.
    #[arg(long, env = "TAVERN_OVERLOAD_RECOVER_PCT", default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=99))]
    pub overload_recover_pct: u8,
}

/// Where a listener other than the game port listens, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenAddr {
    /// Not at all.
    Off,
    /// Listen here.
    On(SocketAddr),
}

/// Where the admin endpoint listens, if anywhere.
pub type AdminAddr = ListenAddr;

/// `host:port`, or `off`.
fn parse_listen_addr(value: &str) -> Result<ListenAddr, String> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(ListenAddr::Off);
    }
    value
        .parse()
        .map(ListenAddr::On)
        .map_err(|e| format!("{e}: expected host:port or off"))
}

impl Config {
    /// See [`Config::unready_delay_ms`].
    pub fn unready_delay(&self) -> Duration {
        Duration::from_millis(self.unready_delay_ms)
    }

    /// See [`Config::heartbeat_interval_ms`].
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.heartbeat_interval_ms))
    }

    /// A connection silent this long is closed: three heartbeat intervals.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.heartbeat_interval_ms) * 3)
    }

    /// See [`Config::hello_timeout_ms`].
    pub fn hello_timeout(&self) -> Duration {
        Duration::from_millis(self.hello_timeout_ms)
    }

    /// See [`Config::resume_grace_ms`].
    pub fn resume_grace(&self) -> Duration {
        Duration::from_millis(u64::from(self.resume_grace_ms))
    }

    /// See [`Config::tls_handshake_timeout_ms`].
    pub fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.tls_handshake_timeout_ms)
    }

    /// See [`Config::write_timeout_ms`].
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    /// See [`Config::write_coalesce_us`].
    pub fn write_coalesce(&self) -> Duration {
        Duration::from_micros(self.write_coalesce_us)
    }

    /// Members in one member list frame, so that it fits `max_frame_len`.
    pub fn members_per_frame(&self) -> usize {
        (self.max_frame_len.saturating_sub(MEMBER_FRAME_OVERHEAD) / MAX_MEMBER_BYTES).max(1)
    }

    /// See [`Config::close_timeout_ms`].
    pub fn close_timeout(&self) -> Duration {
        Duration::from_millis(self.close_timeout_ms)
    }

    /// See [`Config::shutdown_grace_ms`].
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn default_room_threads() -> usize {
    usize::from(cores() > 1)
}
