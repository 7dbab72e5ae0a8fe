//! Several Tavern processes as one server, over NATS (`--cluster`).
//!
//! Each room has one owner, the node that runs its actor, so its order and
//! `seq` come from one place. Other nodes are *edges* for it: they hold
//! their clients' sockets, forward their members' commands to the owner
//! (the `port`: subject `tavern.room.<room>.in`) and fan the owner's frames,
//! encoded once, out to their own members (the `edge`: subject
//! `tavern.room.<room>.ev`, subscribed only while they have a member there).
//!
//! Who owns what lives in JetStream key-value buckets (`leases`): a room's
//! record names its owner, whose lease lasts as long as the owner's liveness
//! record (`live`), renewed every heartbeat and expiring after the node
//! TTL. A new room goes to the node that rendezvous hashing over the live
//! nodes picks; a room whose owner died is taken over (a revision-checked
//! update, so two nodes never both win) and made again with a new epoch.
//! Player names are claimed in a bucket of their own.
//!
//! Without `--cluster` none of this exists: rooms have no relay and joins
//! never leave the directory.

mod edge;
mod leases;
mod listing;
mod live;
mod port;
pub mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use dashmap::DashMap;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use edge::EdgeRooms;
pub use leases::{OnLost, Place};
pub use live::Live;

use crate::config::ClusterConfig;
use crate::protocol::RoomName;

/// What RoomLeft says when a room's node died.
pub const NODE_LOST: &str = "the room's node was lost; join again";
/// What RoomLeft says when frames from a room's node were lost on the way.
pub const STREAM_BROKEN: &str = "frames from the room's node were lost; join again to recover";
/// What RoomLeft says when a room's node is shutting down.
pub const NODE_SHUTDOWN: &str = "the room's node is shutting down; join again";
/// What RoomLeft says when another node took the room over.
pub const ROOM_MOVED: &str = "the room moved to another node; join again";

/// Why the cluster could not do something.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// No NATS connection, or a request went unanswered.
    #[error("the cluster is unavailable: {0}")]
    Unavailable(String),
}

impl ClusterError {
    fn from(e: impl std::fmt::Display) -> ClusterError {
        ClusterError::Unavailable(e.to_string())
    }
}

/// How the cluster's clocks are set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) heartbeat: Duration,
    pub(crate) node_ttl: Duration,
    pub(crate) request: Duration,
    pub(crate) relay_queue: usize,
}

/// This node's place in the cluster; cheap to clone.
#[derive(Clone)]
pub struct Cluster(Arc<Inner>);

struct Inner {
    client: async_nats::Client,
    nodes: kv::Store,
    rooms: kv::Store,
    names: kv::Store,
    me: String,
    advertise: String,
    timing: Timing,
    live: Live,
    /// Whether the NATS connection is up.
    up: Arc<AtomicBool>,
    /// Rooms owned here: the revision of their record, and what stops their port.
    owned: DashMap<RoomName, leases::Lease>,
    /// Rooms owned elsewhere with members here.
    edges: EdgeRooms,
    /// The relays of the rooms owned here, until their rooms are gone.
    relays: DashMap<crate::ids::RoomId, crate::room::WeakRelay>,
    /// Game worlds run here, with their record's revision (held until the node leaves).
    worlds: DashMap<String, u64>,
    /// Names held by sessions here: the session, and the record's revision.
    names_held: DashMap<String, (u64, u64)>,
    /// Told when a room owned here was taken over.
    on_lost: std::sync::OnceLock<leases::OnLost>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.0.me)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to the NATS server `config` names, as node `config.node_id`
    /// (or a random one) reached by clients at `advertise`, and starts
    /// renewing its liveness.
    ///
    /// # Errors
    /// [`ClusterError::Unavailable`] when NATS cannot be reached or has no JetStream.
    pub async fn connect(config: &ClusterConfig, advertise: String) -> Result<Cluster, ClusterError> {
        let url = config.url.clone().unwrap_or_default();
        let me = config
            .node_id
            .clone()
            .unwrap_or_else(|| format!("node-{:016x}", fastrand::u64(..)));
        let up = Arc::new(AtomicBool::new(false));
        let client = connect_options(config, &me, up.clone())
            .await?
            .connect(url.as_str())
            .await
            .map_err(ClusterError::from)?;
        up.store(true, Ordering::Release);
        let timing = Timing {
            heartbeat: Duration::from_millis(config.heartbeat_ms),
            node_ttl: Duration::from_millis(config.node_ttl_ms),
            request: Duration::from_millis(config.request_timeout_ms),
            relay_queue: usize::try_from(config.relay_queue).unwrap_or(usize::MAX),
        };
        let js = jetstream::new(client.clone());
        let nodes = bucket(&js, wire::NODES, timing.node_ttl).await?;
        let rooms = bucket(&js, wire::ROOMS, Duration::ZERO).await?;
        let names = bucket(&js, wire::NAMES, Duration::ZERO).await?;
        let number = leases::node_number(&rooms).await?;
        crate::ids::SessionId::number_from(number);
        let cluster = Cluster(Arc::new(Inner {
            client,
            nodes,
            rooms,
            names,
            me,
            advertise,
            timing,
            live: Live::new(timing.node_ttl),
            up,
            owned: DashMap::new(),
            edges: EdgeRooms::default(),
            names_held: DashMap::new(),
            worlds: DashMap::new(),
            relays: DashMap::new(),
            on_lost: std::sync::OnceLock::new(),
            stop: CancellationToken::new(),
        }));
        cluster.renew().await?;
        live::start(&cluster).await?;
        leases::watch_leases(&cluster).await?;
        info!(node = %cluster.0.me, url = %url, number, "joined the cluster");
        Ok(cluster)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.0.me
    }

    /// The address clients reach this node at.
    pub fn advertise(&self) -> &str {
        &self.0.advertise
    }

    /// Whether the NATS connection is up.
    pub fn is_up(&self) -> bool {
        self.0.up.load(Ordering::Acquire)
    }

    /// The nodes heard from within the node TTL, this one included.
    pub fn live_nodes(&self) -> Vec<String> {
        self.0.live.nodes(&self.0.me)
    }

    /// The rooms owned here.
    pub fn owned_rooms(&self) -> Vec<String> {
        self.0.owned.iter().map(|entry| entry.key().to_string()).collect()
    }

    /// The rooms owned elsewhere that have members here.
    pub fn edge_rooms(&self) -> Vec<String> {
        self.0.edges.names()
    }

    /// Cancelled when the node leaves the cluster.
    pub fn stopping(&self) -> CancellationToken {
        self.0.stop.clone()
    }

    /// Answers the requests on `subject` with what `answer` makes of each
    /// one's payload (each in a task of its own), until the node leaves the
    /// cluster; `what` names them in logs.
    pub(crate) fn answer<F, Fut>(&self, subject: String, what: &'static str, answer: F)
    where
        F: Fn(Cluster, Bytes) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Bytes> + Send + 'static,
    {
        let cluster = self.clone();
        tokio::spawn(async move {
            let mut requests = match cluster.client().subscribe(subject).await {
                Ok(requests) => requests,
                Err(e) => return warn!(error = %e, what, "cannot answer requests"),
            };
            let stop = cluster.stopping();
            loop {
                let request = tokio::select! {
                    () = stop.cancelled() => return,
                    request = requests.next() => match request {
                        Some(request) => request,
                        None => return,
                    },
                };
                let Some(reply) = request.reply else { continue };
                let answered = answer(cluster.clone(), request.payload);
                let client = cluster.client().clone();
                tokio::spawn(async move {
                    if let Err(e) = client.publish(reply, answered.await).await {
                        tracing::debug!(error = %e, what, "answer not sent");
                    }
                });
            }
        });
    }

    /// This node's view of the cluster, as `/cluster` shows it.
    pub fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "node": self.node_id(),
            "advertise": self.advertise(),
            "connected": self.is_up(),
            "live_nodes": self.live_nodes(),
            "rooms_owned": self.owned_rooms(),
            "rooms_relayed": self.edge_rooms(),
        })
    }

    /// The NATS client.
    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.0.client
    }

    pub(crate) fn timing(&self) -> Timing {
        self.0.timing
    }

    /// Fails fast while the NATS connection is down.
    fn check_up(&self) -> Result<(), ClusterError> {
        if self.is_up() {
            Ok(())
        } else {
            Err(ClusterError::Unavailable("no connection to NATS".to_owned()))
        }
    }

    /// Leaves the cluster: stops renewing, gives up the names and rooms
    /// still recorded here, and flushes what is queued for NATS.
    pub async fn leave(&self) {
        // What the rooms sent their members elsewhere (their last RoomLeft) goes out first.
        while self.0.relays.iter().any(|relay| !relay.is_empty()) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.0.stop.cancel();
        leases::release_all(self).await;
        if let Err(e) = self.0.nodes.delete(&self.0.me).await {
            warn!(error = %e, "could not remove this node's liveness record");
        }
        if let Err(e) = self.0.client.flush().await {
            warn!(error = %e, "could not flush the NATS connection");
        }
    }
}

/// The NATS connection's options: name, credentials, TLS, and an event
/// callback that keeps `up` current.
async fn connect_options(
    config: &ClusterConfig,
    me: &str,
    up: Arc<AtomicBool>,
) -> Result<async_nats::ConnectOptions, ClusterError> {
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("tavern-{me}"))
        .connection_timeout(Duration::from_millis(config.request_timeout_ms))
        .max_reconnects(None)
        .event_callback(move |event| {
            let up = up.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        info!("NATS connection up");
                        up.store(true, Ordering::Release);
                    }
                    async_nats::Event::Disconnected => {
                        warn!("NATS connection lost; rooms owned elsewhere are refused until it returns");
                        up.store(false, Ordering::Release);
                    }
                    other => warn!(event = %other, "NATS"),
                }
            }
        });
    if let Some(creds) = &config.creds {
        options = options.credentials_file(creds).await.map_err(ClusterError::from)?;
    }
    if let Some(token) = &config.token {
        options = options.token(token.clone());
    }
    if let Some(ca) = &config.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    Ok(options)
}

/// The key-value bucket `name` (made if missing), whose entries expire after `max_age` (zero: never).
///
/// The bucket's stream is made as a key-value bucket's is (one message a
/// key, direct gets, roll-ups, no deletes), by hand: the client's own
/// `create_key_value` first asks for account details a 2.9 server words
/// differently.
async fn bucket(js: &jetstream::Context, name: &str, max_age: Duration) -> Result<kv::Store, ClusterError> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    let duplicate_window = match max_age {
        Duration::ZERO => Duration::from_secs(120),
        max_age => max_age.min(Duration::from_secs(120)),
    };
    let stream = jetstream::stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        duplicate_window,
        storage: jetstream::stream::StorageType::File,
        num_replicas: 1,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        max_messages: -1,
        max_bytes: -1,
        max_message_size: -1,
        ..Default::default()
    };
    js.get_or_create_stream(stream).await.map_err(ClusterError::from)?;
    js.get_key_value(name).await.map_err(ClusterError::from)
}
