//! Node liveness: each node renews its record in the nodes bucket every
//! heartbeat (the bucket expires records after the node TTL) and watches
//! the bucket, so each knows which nodes it heard from lately. The live set
//! picks owners for new rooms (rendezvous hashing) and tells edges when a
//! room's owner died. A node that lost NATS judges nobody until it is back
//! and has heard from them again.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::kv::Operation;
use futures_util::StreamExt;
use tracing::{debug, warn};

use super::wire::{self, pb};
use super::{Cluster, ClusterError, leases};

/// When each node was last heard from.
#[derive(Debug)]
pub struct Live {
    ttl: Duration,
    seen: Mutex<HashMap<String, Instant>>,
}

impl Live {
    pub(super) fn new(ttl: Duration) -> Live {
        Live {
            ttl,
            seen: Mutex::default(),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn saw(&self, node: &str) {
        self.seen().insert(node.to_owned(), Instant::now());
    }

    fn forget(&self, node: &str) {
        self.seen().remove(node);
    }

    /// Counts every known node as heard from now (after NATS came back:
    /// nobody could renew meanwhile).
    fn refresh_all(&self) {
        let now = Instant::now();
        self.seen().values_mut().for_each(|seen| *seen = now);
    }

    /// Whether `node` was heard from within the TTL.
    pub(super) fn is_alive(&self, node: &str) -> bool {
        self.seen().get(node).is_some_and(|seen| seen.elapsed() < self.ttl)
    }

    /// The live nodes, `me` always among them, sorted.
    pub(super) fn nodes(&self, me: &str) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .seen()
            .iter()
            .filter(|(node, seen)| seen.elapsed() < self.ttl && node.as_str() != me)
            .map(|(node, _)| node.clone())
            .collect();
        nodes.push(me.to_owned());
        nodes.sort();
        nodes
    }
}

/// The live node rendezvous hashing picks for `room`: the one whose hash
/// with the room's name is highest, the same on every node (SipHash with
/// fixed keys; nodes built by another Rust release may pick otherwise, which
/// costs a forwarded request, never a second owner: claims decide).
pub(super) fn pick(room: &str, nodes: &[String]) -> Option<String> {
    nodes
        .iter()
        .max_by_key(|node| {
            let mut hasher = DefaultHasher::new();
            (node.as_str(), room).hash(&mut hasher);
            hasher.finish()
        })
        .cloned()
}

impl Cluster {
    /// Renews this node's liveness record.
    pub(super) async fn renew(&self) -> Result<(), ClusterError> {
        let started = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let record = pb::NodeRecord {
            node: self.0.me.clone(),
            advertise: self.0.advertise.clone(),
            started_unix_ms: u64::try_from(started.as_millis()).unwrap_or(u64::MAX),
        };
        self.0
            .nodes
            .put(&self.0.me, wire::encode(&record))
            .await
            .map_err(ClusterError::from)?;
        Ok(())
    }

    /// Whether `node` is alive as far as this node can tell (heard from
    /// within the node TTL; this node always is).
    pub fn is_alive(&self, node: &str) -> bool {
        node == self.0.me || self.0.live.is_alive(node)
    }
}

/// Starts the heartbeat and the watch on the nodes bucket.
pub(super) async fn start(cluster: &Cluster) -> Result<(), ClusterError> {
    let watch = cluster.0.nodes.watch_all().await.map_err(ClusterError::from)?;
    let watcher = cluster.clone();
    tokio::spawn(async move {
        let mut watch = watch;
        loop {
            tokio::select! {
                () = watcher.0.stop.cancelled() => return,
                entry = watch.next() => match entry {
                    Some(Ok(entry)) => match entry.operation {
                        Operation::Put => watcher.0.live.saw(&entry.key),
                        Operation::Delete | Operation::Purge => watcher.0.live.forget(&entry.key),
                    },
                    Some(Err(e)) => debug!(error = %e, "node watch"),
                    None => match rewatch(&watcher).await {
                        Some(again) => watch = again,
                        None => return,
                    },
                },
            }
        }
    });
    tokio::spawn(heartbeat(cluster.clone()));
    Ok(())
}

/// A new watch on the nodes bucket, tried every heartbeat until it starts or the node leaves.
async fn rewatch(cluster: &Cluster) -> Option<async_nats::jetstream::kv::Watch> {
    loop {
        tokio::select! {
            () = cluster.0.stop.cancelled() => return None,
            () = tokio::time::sleep(cluster.0.timing.heartbeat) => {}
        }
        match cluster.0.nodes.watch_all().await {
            Ok(watch) => return Some(watch),
            Err(e) => debug!(error = %e, "node watch not restarted yet"),
        }
    }
}

/// Renews the liveness record every heartbeat; when NATS comes back after
/// a loss, counts every node as alive again and checks the leases of the
/// rooms owned here.
async fn heartbeat(cluster: Cluster) {
    let mut ticks = tokio::time::interval(cluster.0.timing.heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up = true;
    loop {
        tokio::select! {
            () = cluster.0.stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let up = cluster.is_up();
        if !up {
            was_up = false;
            continue;
        }
        if let Err(e) = cluster.renew().await {
            warn!(error = %e, "could not renew this node's liveness record");
            continue;
        }
        if !was_up {
            was_up = true;
            cluster.0.live.refresh_all();
            leases::reassert(&cluster).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_picks_the_same_owner_and_rooms_spread() {
        let nodes: Vec<String> = ["a", "b", "c"].iter().map(|n| (*n).to_owned()).collect();
        let mut reversed = nodes.clone();
        reversed.reverse();
        let mut owners = HashMap::new();
        for i in 0..300 {
            let room = format!("room-{i}");
            let owner = pick(&room, &nodes);
            assert_eq!(owner, pick(&room, &reversed));
            *owners.entry(owner).or_insert(0) += 1;
        }
        assert_eq!(owners.len(), 3, "{owners:?}");
        assert!(owners.values().all(|&n| n > 50), "{owners:?}");
    }
}
