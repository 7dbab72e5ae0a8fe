//! Tavern, an actor-model game session server.
//!
//! ```text
//! TCP accept (server) ──► Session actor per socket (session threads)
//!     FramedRead<u32 length + protobuf> ──► Directory actor (which room a name is)
//!                                       ├─► Room actors (membership, presence, order)
//!                                       └─► World actors (game worlds: movement, interest, tick)
//! Room: encode each event once ──► Broadcaster (inline, or rayon for big rooms)
//!     ──try_send──► bounded per-session Outbox ──► writer coalesces into few writes
//! ```
//!
//! # Layers
//!
//! Each module may use the modules of its own layer and of the layers below
//! it, never those above (`tests/architecture.rs` reads every `use crate::`
//! and keeps this true). Bottom first:
//!
//! 1. [`protocol`] (wire types, codec, validated requests) and [`auth`]
//!    (session tokens: JWTs and their keys): formats, knowing nothing of the server.
//! 2. Shared types and settings: [`ids`] (`SessionId`, `RoomId`, `WorldId`,
//!    `DisconnectReason`, `OverloadLevel`), [`inbox`] (the one bounded actor
//!    inbox), [`config`] (every setting, with defaults), [`tls`], [`sched`]
//!    (the threads' scheduling policy), and the typed [`client`] that tests
//!    and `loadtest` use.
//! 3. Observation: [`stats`] (Prometheus metrics), [`lifecycle`] (events and
//!    the observer hook), [`overload`] (the monitor behind `/stats` and load
//!    shedding) and [`admin`] (the admin HTTP endpoint).
//! 4. [`outbox`]: each session's bounded outbound queue and its writer.
//! 5. [`broadcast`]: one encoded frame into many outboxes; [`ws`]: the
//!    WebSocket transport (handshake, messages in, frames out).
//! 6. The actors sessions talk to: [`room`] (a room's members and order, and
//!    the room plugin interface), [`plugins`] (the plugins that ship:
//!    tic-tac-toe, a ready-check lobby and an echo), [`cluster`] (several
//!    processes as one server over NATS: room ownership, edges, names),
//!    [`directory`] (the room directory,
//!    quick join and player names) and [`world`] (game worlds and their
//!    registry). A room reports that it emptied through a callback its owner
//!    gives it, not by naming the directory.
//! 7. [`session`]: the actor per connection, a router of requests.
//! 8. [`server`]: accept loop, limits, thread placement, wiring, shutdown;
//!    the fuzzing entry points (feature `fuzzing`) share its wiring.

pub mod admin;
pub mod auth;
pub mod broadcast;
pub mod client;
pub mod cluster;
pub mod config;
pub mod directory;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod ids;
pub mod inbox;
pub mod lifecycle;
pub mod outbox;
pub mod overload;
pub mod plugins;
pub mod protocol;
pub mod room;
pub mod sched;
pub mod server;
pub mod session;
pub mod stats;
pub mod tls;
pub mod world;
pub mod ws;

pub use config::Config;
pub use lifecycle::{LifecycleEvent, Observer};
pub use server::{Server, ServerError, ServerThread};
