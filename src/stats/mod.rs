//! Server-wide figures, updated lock-free from any thread and exported in the
//! Prometheus text format by the admin endpoint ([`crate::admin`]).
//!
//! Counters and gauges cost one relaxed atomic add each and are always kept.
//! The histograms (fan-out duration, members per room event, outbound queue
//! depth) also read the clock or pick a bucket; they are kept only with
//! [`Config::metrics`](crate::Config::metrics) on. Every metric is listed,
//! with its type, labels and meaning, in README.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus::{Gauge, Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

use crate::ids::{DisconnectReason, OverloadLevel, TransportKind};
use crate::inbox::PeakFill;
use crate::protocol::ErrorCode;

pub use self::kind::MessageKind;
pub use self::plugins::PluginStats;
use self::registrar::Registrar;

/// Reports this node's view of its cluster, as JSON.
pub type ClusterReport = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Where the cluster's report is set, once.
#[derive(Default)]
struct ClusterStatus(std::sync::OnceLock<ClusterReport>);

impl std::fmt::Debug for ClusterStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "ClusterStatus(set)"
        } else {
            "ClusterStatus(none)"
        })
    }
}

mod kind;
mod plugins;
mod registrar;

/// World tick duration buckets, seconds: 0.25 ms to 0.5 s (the budget at 20 Hz is 50 ms).
const TICK_BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.2, 0.5,
];

/// Upper bounds of the fan-out duration buckets, in seconds.
const FANOUT_BUCKETS: [f64; 16] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1,
];
/// Upper bounds of the members-per-room-event buckets.
const MEMBER_BUCKETS: [f64; 15] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4,
];
/// Upper bounds of the outbound queue depth buckets, in frames.
const DEPTH_BUCKETS: [f64; 13] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// What the server has done since it started, and how it is doing now.
#[derive(Debug)]
pub struct Stats {
    registry: Registry,
    detailed: bool,
    started: Instant,
    /// What `/cluster` shows, in a cluster.
    cluster: ClusterStatus,
    ready: AtomicBool,
    overload: AtomicU8,
    /// Sockets open now (from accept to the last byte written), by transport.
    connections_open: [IntGauge; 2],
    /// Connections accepted and given a session, by transport.
    connections_accepted: [IntCounter; 2],
    /// Connections refused with SERVER_FULL.
    pub connections_refused: IntCounter,
    /// Connections refused with OVERLOADED.
    pub connections_shed: IntCounter,
    /// Connections refused with TOO_MANY_CONNECTIONS (per-address limits).
    pub connections_per_ip: IntCounter,
    /// Connections whose TLS handshake failed or timed out.
    pub tls_handshake_failures: IntCounter,
    /// WebSocket connections whose handshake failed, timed out or was refused (origin, subprotocol).
    pub ws_handshake_failures: IntCounter,
    /// Sessions waiting for Hello.
    pub sessions_handshake: IntGauge,
    /// Welcomed sessions with a connection.
    pub sessions_active: IntGauge,
    /// Sessions whose connection dropped, held for a resume.
    pub sessions_held: IntGauge,
    /// Rooms alive now.
    pub rooms_open: IntGauge,
    /// Rooms created.
    pub rooms_created: IntCounter,
    room_members: Histogram,
    messages_in: [IntCounter; MessageKind::ALL.len()],
    /// Frames written to sockets.
    pub messages_out: IntCounter,
    /// Bytes written to sockets.
    pub bytes_out: IntCounter,
    /// Write calls that wrote to a socket (frames per write: `messages_out / socket_writes`).
    pub socket_writes: IntCounter,
    /// Chat messages ordered by rooms.
    pub chat_messages: IntCounter,
    /// Chat message copies queued for members (the sender's echo included).
    pub deliveries: IntCounter,
    fanout_duration: Histogram,
    outbound_queue_depth: Histogram,
    /// Sessions closed with SLOW_CONSUMER.
    pub slow_consumer_disconnects: IntCounter,
    /// Sessions closed because a client broke the protocol or timed out.
    pub protocol_errors: IntCounter,
    errors: IntCounterVec,
    /// The sum of `errors` over its codes.
    errors_sent: IntCounter,
    disconnects: IntCounterVec,
    overload_level: IntGauge,
    /// Times the overload level went up.
    pub overload_escalations: IntCounter,
    /// Times the overload monitor judged the server's load.
    pub overload_checks: IntCounter,
    /// The largest lateness of a server thread's event loop since the monitor last looked, µs.
    loop_lag_us: AtomicU64,
    loop_lag: Gauge,
    /// How full the fullest actor inbox was since the monitor last looked.
    pub inbox_fill: Arc<PeakFill>,
    inbox_fill_percent: Gauge,
    /// Lifecycle events dropped because the observer's queue was full.
    pub hook_events_dropped: IntCounter,
    /// Worlds alive now.
    pub worlds_open: IntGauge,
    /// Players in worlds now.
    pub world_players: IntGauge,
    world_tick: Histogram,
    /// World ticks that took longer than their budget (one tick period).
    pub world_tick_overruns: IntCounter,
    /// WorldUpdates queued for players.
    pub world_updates: IntCounter,
    /// WorldUpdates not made because the player's previous one was still unsent.
    pub world_updates_skipped: IntCounter,
    /// Moves ignored because their client_tick was not above the last one.
    pub world_moves_stale: IntCounter,
    /// Entities left out of a WorldUpdate's `entered` for the cap, to enter on a later tick.
    pub world_entries_deferred: IntCounter,
    /// The highest degradation level of any world now (0 normal, 1 and 2 far tier slowed).
    pub world_degrade_level: IntGauge,
    /// World time per wall time of the slowest world, percent (100 unless time is dilated).
    pub world_time_scale: IntGauge,
    /// Room plugins' figures.
    pub plugins: PluginStats,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new(true)
    }
}

impl Stats {
    /// Sets what `/cluster` reports (once; the cluster sets it when it is joined).
    pub fn set_cluster_report(&self, report: ClusterReport) {
        let _ = self.cluster.0.set(report);
    }

    /// This node's view of its cluster, if it is in one.
    pub fn cluster_report(&self) -> Option<serde_json::Value> {
        self.cluster.0.get().map(|report| report())
    }

    /// A connection of `kind` was accepted and given a session.
    pub fn connection_accepted(&self, kind: TransportKind) {
        kind.of(&self.connections_accepted).inc();
    }

    /// A connection of `kind` opened (its session started).
    pub fn connection_opened(&self, kind: TransportKind) {
        kind.of(&self.connections_open).inc();
    }

    /// A connection of `kind` closed (its last byte written).
    pub fn connection_closed(&self, kind: TransportKind) {
        kind.of(&self.connections_open).dec();
    }

    /// Sockets open now, of every transport.
    pub fn connections_open(&self) -> i64 {
        self.connections_open.iter().map(IntGauge::get).sum()
    }

    /// Empty figures; `detailed` keeps the histograms as well.
    ///
    /// # Panics
    /// Never in practice: metric names and labels are constants checked by the tests.
    #[allow(clippy::expect_used)]
    #[allow(clippy::too_many_lines, reason = "a table of metric declarations")]
    pub fn new(detailed: bool) -> Stats {
        let registry = Registry::new();
        let reg = Registrar(&registry);
        let messages_in = reg.counter_vec("messages_in_total", "Client messages received, by type.", "type");
        let rejected = reg.counter_vec(
            "connections_rejected_total",
            "Connections closed at accept, by reason.",
            "reason",
        );
        let sessions = reg.gauge_vec("sessions", "Sessions open now, by phase.", "phase");
        let open = reg.gauge_vec("connections_open", "Sockets open now, by transport.", "transport");
        let accepted = reg.counter_vec(
            "connections_accepted_total",
            "Connections accepted, by transport.",
            "transport",
        );
        let errors = reg.counter_vec("errors_total", "Error frames sent, by code.", "code");
        let disconnects = reg.counter_vec("disconnects_total", "Sessions ended, by reason.", "reason");
        for reason in DisconnectReason::ALL {
            disconnects.with_label_values(&[reason.as_str()]);
        }
        let slow = disconnects.with_label_values(&[DisconnectReason::SlowConsumer.as_str()]);
        let stats = Stats {
            detailed,
            started: Instant::now(),
            cluster: ClusterStatus::default(),
            ready: AtomicBool::new(false),
            overload: AtomicU8::new(0),
            connections_open: TransportKind::ALL.map(|kind| open.with_label_values(&[kind.as_str()])),
            connections_accepted: TransportKind::ALL.map(|kind| accepted.with_label_values(&[kind.as_str()])),
            connections_refused: rejected.with_label_values(&["server_full"]),
            connections_shed: rejected.with_label_values(&["overloaded"]),
            connections_per_ip: rejected.with_label_values(&["per_ip_limit"]),
            tls_handshake_failures: rejected.with_label_values(&["tls_handshake"]),
            ws_handshake_failures: rejected.with_label_values(&["ws_handshake"]),
            sessions_handshake: sessions.with_label_values(&["handshake"]),
            sessions_active: sessions.with_label_values(&["active"]),
            sessions_held: sessions.with_label_values(&["held"]),
            rooms_open: reg.gauge("rooms_open", "Rooms alive now."),
            rooms_created: reg.counter("rooms_created_total", "Rooms created."),
            room_members: reg.histogram(
                "room_members",
                "Members of the room at each room event (the fan-out width).",
                &MEMBER_BUCKETS,
            ),
            messages_in: MessageKind::ALL.map(|kind| messages_in.with_label_values(&[kind.label()])),
            messages_out: reg.counter("messages_out_total", "Frames written to clients."),
            bytes_out: reg.counter("bytes_out_total", "Bytes written to clients."),
            socket_writes: reg.counter(
                "socket_writes_total",
                "Socket writes (one writev may carry many frames): frames per write = messages_out_total / socket_writes_total.",
            ),
            chat_messages: reg.counter("chat_messages_total", "Chat messages ordered by rooms."),
            deliveries: reg.counter(
                "deliveries_total",
                "Chat message copies queued for members, the sender's echo included.",
            ),
            fanout_duration: reg.histogram(
                "fanout_duration_seconds",
                "Time to queue one room event for every member.",
                &FANOUT_BUCKETS,
            ),
            outbound_queue_depth: reg.histogram(
                "outbound_queue_depth",
                "Frames waiting in a session's outbound queue when its writer takes them.",
                &DEPTH_BUCKETS,
            ),
            slow_consumer_disconnects: slow,
            protocol_errors: disconnects.with_label_values(&[DisconnectReason::ProtocolError.as_str()]),
            errors,
            errors_sent: IntCounter::new("errors_sent", "not exported").expect("valid metric"),
            disconnects,
            overload_level: reg.gauge(
                "overload_level",
                "Load shedding now: 0 normal, 1 refusing connections and joins, 2 also holding presence back.",
            ),
            overload_escalations: reg.counter("overload_escalations_total", "Times the overload level went up."),
            overload_checks: reg.counter(
                "overload_checks_total",
                "Times the overload monitor judged the server's load.",
            ),
            loop_lag_us: AtomicU64::new(0),
            loop_lag: reg.float_gauge(
                "loop_lag_seconds",
                "Largest lateness of a server thread's event loop at the last overload check.",
            ),
            inbox_fill: Arc::default(),
            inbox_fill_percent: reg.float_gauge(
                "inbox_fill_percent",
                "Fullest actor inbox (directory, room, world) at the last overload check, percent of its bound.",
            ),
            hook_events_dropped: reg.counter(
                "hook_events_dropped_total",
                "Lifecycle events dropped because the observer queue was full.",
            ),
            worlds_open: reg.gauge("worlds_open", "Worlds alive now."),
            world_players: reg.gauge("world_players", "Players in worlds now."),
            world_tick: reg.histogram(
                "world_tick_seconds",
                "Time one world tick took: inputs, movement, interest and encoding.",
                &TICK_BUCKETS,
            ),
            world_tick_overruns: reg.counter(
                "world_tick_overruns_total",
                "World ticks that took longer than one tick period.",
            ),
            world_updates: reg.counter("world_updates_total", "WorldUpdates queued for players."),
            world_updates_skipped: reg.counter(
                "world_updates_skipped_total",
                "WorldUpdates not made because the player's previous one was still unsent.",
            ),
            world_moves_stale: reg.counter(
                "world_moves_stale_total",
                "Moves ignored because their client_tick was not above the last one taken.",
            ),
            world_entries_deferred: reg.counter(
                "world_entries_deferred_total",
                "Entities left for a later WorldUpdate because one update announces at most world_max_entered_per_update.",
            ),
            world_degrade_level: reg.gauge(
                "world_degrade_level",
                "Highest degradation level of any world: 0 normal, 1 and 2 far tier updated less often.",
            ),
            world_time_scale: reg.gauge(
                "world_time_scale_percent",
                "World time per wall time of the slowest world, percent (below 100: time dilation).",
            ),
            plugins: PluginStats::new(&reg),
            registry,
        };
        // The process's RSS, CPU seconds, open files and threads.
        let _ = stats
            .registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()));
        stats
    }

    /// Whether the histograms are kept.
    pub fn detailed(&self) -> bool {
        self.detailed
    }

    /// Every metric in the Prometheus text format.
    pub fn encode(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }

    /// Time since the figures were created (the server started).
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counts one client message.
    pub fn message_in(&self, kind: MessageKind) {
        let i = MessageKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.messages_in[i].inc();
    }

    /// Client messages received so far, all kinds.
    pub fn messages_in_total(&self) -> u64 {
        self.messages_in.iter().map(IntCounter::get).sum()
    }

    /// Counts one error frame sent.
    pub fn error_sent(&self, code: ErrorCode) {
        self.errors.with_label_values(&[code.as_str_name()]).inc();
        self.errors_sent.inc();
    }

    /// Error frames sent so far, all codes.
    pub fn errors_total(&self) -> u64 {
        self.errors_sent.get()
    }

    /// Counts one ended session.
    pub fn disconnected(&self, reason: DisconnectReason) {
        self.disconnects.with_label_values(&[reason.as_str()]).inc();
    }

    /// Sessions ended so far for `reason`.
    pub fn disconnects(&self, reason: DisconnectReason) -> u64 {
        self.disconnects.with_label_values(&[reason.as_str()]).get()
    }

    /// Records one room event's fan-out: how long it took and to how many members.
    pub fn fanout(&self, members: usize, took: Duration) {
        self.fanout_duration.observe(took.as_secs_f64());
        self.room_members
            .observe(f64::from(u32::try_from(members).unwrap_or(u32::MAX)));
    }

    /// Records how many frames a writer found queued.
    pub fn queue_depth(&self, frames: usize) {
        if self.detailed {
            self.outbound_queue_depth
                .observe(f64::from(u32::try_from(frames).unwrap_or(u32::MAX)));
        }
    }

    /// The fan-out duration histogram, for windowed percentiles.
    pub fn fanout_histogram(&self) -> &Histogram {
        &self.fanout_duration
    }

    /// The outbound queue depth histogram, for windowed percentiles.
    pub fn queue_depth_histogram(&self) -> &Histogram {
        &self.outbound_queue_depth
    }

    /// Records one world tick's duration.
    pub fn world_tick(&self, took: Duration) {
        self.world_tick.observe(took.as_secs_f64());
    }

    /// The world tick histogram, for windowed percentiles.
    pub fn world_tick_histogram(&self) -> &Histogram {
        &self.world_tick
    }

    /// Whether the server takes connections (`/readyz`).
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The load shedding level now.
    pub fn overload(&self) -> OverloadLevel {
        OverloadLevel::from_u8(self.overload.load(Ordering::Relaxed))
    }

    /// Records that an event loop ran `late` behind its timer.
    pub fn loop_lag(&self, late: Duration) {
        let micros = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        self.loop_lag_us.fetch_max(micros, Ordering::Relaxed);
    }

    /// The saturation figures since the last call, restarted: the largest
    /// event loop lag, and the fullest inbox in percent of its bound. The
    /// gauges show them.
    pub(crate) fn take_saturation(&self) -> (Duration, f64) {
        let lag = Duration::from_micros(self.loop_lag_us.swap(0, Ordering::Relaxed));
        let fill = self.inbox_fill.take();
        self.loop_lag.set(lag.as_secs_f64());
        self.inbox_fill_percent.set(fill);
        (lag, fill)
    }

    pub(crate) fn set_overload(&self, level: OverloadLevel) {
        let level = level.to_u8();
        if self.overload.swap(level, Ordering::Relaxed) < level {
            self.overload_escalations.inc();
        }
        self.overload_level.set(i64::from(level));
    }
}
