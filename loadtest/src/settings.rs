//! Settings that several scenarios, the engine and the command line share:
//! how long bots get to end, how bots batch their latency samples, where mmo
//! bots spawn (`--density`), and the token signing key (`--auth-key`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long bots get to end after the drain before they are aborted.
pub const FINISH_GRACE: Duration = Duration::from_secs(5);
/// Latency samples a bot keeps before adding them to the shared histograms.
pub const SAMPLE_BATCH: usize = 256;
/// Longest a bot keeps samples before adding them (keeps the live p99 fresh).
pub const SAMPLE_FLUSH_NS: u64 = 100_000_000;

/// Where the bots spawn and walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Density {
    /// All in a small square in the world's centre (`--cluster-size`): every
    /// bot sees most of the others.
    Clustered,
    /// Uniformly over the whole world.
    Dispersed,
}

impl Density {
    /// Its name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Density::Clustered => "clustered",
            Density::Dispersed => "dispersed",
        }
    }
}

/// A token signing key, kept as the hex it was given in (so that it can be
/// handed to worker processes and a spawned server) and never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthKey(pub String);

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthKey(<secret>)")
    }
}

impl AuthKey {
    /// How long the tokens it mints are valid.
    const TOKEN_TTL: Duration = Duration::from_secs(86_400);

    /// An HS256 JWT for the player `name` (its player id and token id are the name
    /// too). The key was checked when parsed; were it unusable, the token is empty
    /// and the server answers UNAUTHENTICATED.
    pub fn token_for(&self, name: &str) -> String {
        let authority = tavern::auth::parse_hex_key(&self.0)
            .and_then(|key| tavern::auth::Authority::new(key, std::collections::HashSet::new()));
        let Ok(authority) = authority else {
            return String::new();
        };
        let expiry = std::time::SystemTime::now() + Self::TOKEN_TTL;
        let exp = expiry
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        authority
            .mint(&tavern::auth::Claims {
                sub: name.to_owned(),
                name: name.to_owned(),
                exp,
                nbf: None,
                jti: Some(name.to_owned()),
                iss: None,
                aud: None,
            })
            .unwrap_or_default()
    }
}

/// How the bots reach the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Transport {
    /// Length-prefixed frames over TCP (the game port).
    #[default]
    Tcp,
    /// One message per binary WebSocket message (the WebSocket listener).
    Ws,
}
