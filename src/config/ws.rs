//! The WebSocket listener's settings: where it listens, which browser
//! origins may connect, and how many control frames a client may send.

/// The WebSocket listener. Flattened into [`Config`](super::Config): the
/// flags are `--ws-addr`, `--ws-allowed-origins` and `--ws-max-control-per-s`.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct WsConfig {
    /// Address of the WebSocket listener (subprotocol `tavern.v1`, one protobuf message per
    /// binary message; `wss://` with the game port's TLS settings), or `off`.
    #[arg(id = "ws_addr", long = "ws-addr", env = "TAVERN_WS_ADDR", default_value = "127.0.0.1:4002", value_parser = super::parse_listen_addr)]
    pub addr: WsAddr,

    /// Browser origins allowed to open a WebSocket connection (`scheme://host:port`, comma
    /// separated), or `*` for any. Unset: the admin endpoint's own origins, whose pages use
    /// the listener. Clients that send no `Origin` (not browsers) are always allowed.
    #[arg(
        id = "ws_allowed_origins",
        long = "ws-allowed-origins",
        env = "TAVERN_WS_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Pings and pongs a WebSocket client may send per second; more close the connection
    /// with RATE_LIMITED.
    #[arg(
        id = "ws_max_control_per_s",
        long = "ws-max-control-per-s",
        env = "TAVERN_WS_MAX_CONTROL_PER_S",
        default_value_t = 100
    )]
    pub max_control_per_s: u32,
}

/// Where the WebSocket listener listens, if anywhere.
pub type WsAddr = super::ListenAddr;
