//! Tavern, an actor-model game session server.
//!
//! ```text
//! TCP accept (server) ──► Session actor per socket (session threads)
//!     FramedRead<u32 length + protobuf> ──► World actor (room directory)
//!                                       └─► Room actors (membership, presence, order)
//! Room: encode each event once ──► Broadcaster (inline, or rayon for big rooms)
//!     ──try_send──► bounded per-session Outbox ──► writer coalesces into few writes
//! ```
//!
//! - [`protocol`]: wire types, codec, validated requests.
//! - [`config`]: every setting, with defaults.
//! - [`server`]: accept loop, thread placement, graceful shutdown.
//! - [`session`], [`world`], [`room`]: the actors.
//! - [`broadcast`], [`outbox`]: fan-out and the bounded outbound queues.
//! - [`client`]: a typed async client, used by the tests and `loadtest`.
//! - [`stats`]: server-wide metrics (Prometheus); [`overload`]: the monitor
//!   behind `/stats` and load shedding; [`admin`]: the admin HTTP endpoint.
//! - [`lifecycle`]: lifecycle events, logged and passed to an [`lifecycle::Observer`].

pub mod admin;
pub mod auth;
pub mod broadcast;
pub mod client;
pub mod config;
pub mod fuzzing;
pub mod lifecycle;
pub mod mmo;
pub mod outbox;
pub mod overload;
pub mod protocol;
pub mod room;
pub mod server;
pub mod session;
pub mod stats;
pub mod tls;
pub mod world;

pub use config::Config;
pub use lifecycle::{LifecycleEvent, Observer};
pub use server::{Server, ServerError, ServerThread};
