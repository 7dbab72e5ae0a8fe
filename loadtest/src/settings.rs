//! Settings that several scenarios, the engine and the command line share:
//! how long bots get to end, how bots batch their latency samples, where mmo
//! bots spawn (`--density`), the token signing key (`--auth-key`), and the
//! server addresses the bots spread over (`--addr`).

use std::net::SocketAddr;
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

/// The server addresses the bots connect to (`--addr`): one server, or the
/// nodes of a cluster. Never empty. Member `k` of a room connects to address
/// `k % n`, so that a room's members spread over the nodes; with one address
/// every bot connects to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<SocketAddr>", into = "Vec<SocketAddr>")]
pub struct Targets {
    first: SocketAddr,
    rest: Vec<SocketAddr>,
}

impl Targets {
    /// One server.
    pub fn one(addr: SocketAddr) -> Targets {
        Targets {
            first: addr,
            rest: Vec::new(),
        }
    }

    /// The address member `member` of a room connects to: the `member % n`-th.
    pub fn for_member(&self, member: u64) -> SocketAddr {
        let count = u64::try_from(self.rest.len()).map_or(u64::MAX, |rest| rest.saturating_add(1));
        let index = usize::try_from(member % count).unwrap_or(0);
        index
            .checked_sub(1)
            .and_then(|index| self.rest.get(index))
            .copied()
            .unwrap_or(self.first)
    }

    /// Every address, in order.
    pub fn iter(&self) -> impl Iterator<Item = &SocketAddr> {
        std::iter::once(&self.first).chain(&self.rest)
    }
}

impl TryFrom<Vec<SocketAddr>> for Targets {
    type Error = &'static str;

    fn try_from(mut addrs: Vec<SocketAddr>) -> Result<Self, Self::Error> {
        if addrs.is_empty() {
            return Err("no server address");
        }
        let first = addrs.remove(0);
        Ok(Targets { first, rest: addrs })
    }
}

impl From<Targets> for Vec<SocketAddr> {
    fn from(targets: Targets) -> Self {
        let mut all = vec![targets.first];
        all.extend(targets.rest);
        all
    }
}

/// The addresses as on the command line: comma separated.
impl std::fmt::Display for Targets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, addr) in self.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{addr}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_of_a_room_take_the_targets_in_turn() {
        let addrs: Vec<SocketAddr> = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
            .iter()
            .map(|addr| addr.parse().unwrap())
            .collect();
        let targets = Targets::try_from(addrs.clone()).unwrap();
        let taken: Vec<SocketAddr> = (0..7).map(|member| targets.for_member(member)).collect();
        let expected = [0, 1, 2, 0, 1, 2, 0].map(|index| addrs[index]);
        assert_eq!(taken, expected);
        assert_eq!(targets.to_string(), "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3");
        let one = Targets::one(addrs[1]);
        assert!((0..5).all(|member| one.for_member(member) == addrs[1]));
        assert!(Targets::try_from(Vec::new()).is_err());
    }

    #[test]
    fn targets_travel_to_workers_as_a_list() {
        let targets = Targets::try_from(vec!["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()]).unwrap();
        let json = serde_json::to_string(&targets).unwrap();
        assert_eq!(json, r#"["127.0.0.1:1","[::1]:2"]"#);
        assert_eq!(serde_json::from_str::<Targets>(&json).unwrap(), targets);
        assert!(serde_json::from_str::<Targets>("[]").is_err());
    }
}
