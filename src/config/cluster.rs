//! The cluster's settings: the NATS server the nodes meet at, this node's
//! name in the cluster, NATS credentials and TLS, and the timings of node
//! liveness.

use std::path::PathBuf;

/// Clustering over NATS. Flattened into [`Config`](super::Config): without
/// `--cluster` the server is a single process and none of the rest applies.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// Join a cluster whose nodes meet at this NATS server (`nats://HOST:PORT`, or
    /// `tls://HOST:PORT`; comma separated for several), with JetStream enabled (`-js`).
    /// Unset: a single process.
    #[arg(id = "cluster", long = "cluster", env = "TAVERN_CLUSTER")]
    pub url: Option<String>,

    /// This node's name in the cluster: letters, digits, `-` and `_`, at most 64. Unset:
    /// a random one, so every start is a new node.
    #[arg(id = "cluster_node_id", long = "node-id", env = "TAVERN_NODE_ID", value_parser = parse_node_id)]
    pub node_id: Option<String>,

    /// The address clients use to reach this node's game port, advertised to the cluster
    /// (in `/stats` and the node record). Unset: the game address.
    #[arg(
        id = "cluster_advertise",
        long = "cluster-advertise",
        env = "TAVERN_CLUSTER_ADVERTISE"
    )]
    pub advertise: Option<String>,

    /// NATS credentials file (`.creds`: a user JWT and its NKey seed).
    #[arg(id = "cluster_creds", long = "cluster-creds", env = "TAVERN_CLUSTER_CREDS")]
    pub creds: Option<PathBuf>,

    /// NATS token, for a server started with `--auth`.
    #[arg(
        id = "cluster_token",
        long = "cluster-token",
        env = "TAVERN_CLUSTER_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// CA certificates (PEM) to verify the NATS server with; implies TLS.
    #[arg(id = "cluster_tls_ca", long = "cluster-tls-ca", env = "TAVERN_CLUSTER_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// Client certificate (PEM) for NATS servers that require one; with `--cluster-tls-key`.
    #[arg(
        id = "cluster_tls_cert",
        long = "cluster-tls-cert",
        env = "TAVERN_CLUSTER_TLS_CERT",
        requires = "cluster_tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The client certificate's private key (PEM).
    #[arg(id = "cluster_tls_key", long = "cluster-tls-key", env = "TAVERN_CLUSTER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// How often a node renews its liveness record, ms.
    #[arg(id = "cluster_heartbeat_ms", long = "cluster-heartbeat-ms", env = "TAVERN_CLUSTER_HEARTBEAT_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(50..))]
    pub heartbeat_ms: u64,

    /// A node not heard from for this long is dead: its rooms' leases lapse and the next
    /// join makes them again elsewhere, ms. At least three heartbeats.
    #[arg(id = "cluster_node_ttl_ms", long = "cluster-node-ttl-ms", env = "TAVERN_CLUSTER_NODE_TTL_MS", default_value_t = 3_000, value_parser = clap::value_parser!(u64).range(150..))]
    pub node_ttl_ms: u64,

    /// Frames a room owned here may have waiting for NATS, for its members on other nodes.
    /// A room whose queue is full drops its members elsewhere (they are told, and may
    /// rejoin and recover) rather than grow.
    #[arg(id = "cluster_relay_queue", long = "cluster-relay-queue", env = "TAVERN_CLUSTER_RELAY_QUEUE", default_value_t = 8_192, value_parser = clap::value_parser!(u64).range(16..))]
    pub relay_queue: u64,

    /// How long a cross-node request (a join, a name, the room list) may take, ms.
    #[arg(id = "cluster_request_timeout_ms", long = "cluster-request-timeout-ms", env = "TAVERN_CLUSTER_REQUEST_TIMEOUT_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub request_timeout_ms: u64,
}

/// A node id: 1 to 64 letters, digits, `-` or `_` (it names NATS subjects and keys).
fn parse_node_id(id: &str) -> Result<String, String> {
    let ok =
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(id.to_owned())
    } else {
        Err("a node id is 1 to 64 letters, digits, '-' or '_'".to_owned())
    }
}
