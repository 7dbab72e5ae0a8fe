//! The room list across the cluster: each node answers `ListQuery` on
//! `tavern.list` with the public rooms it owns, and a node asked for a list
//! gathers the answers of the live nodes (its own included), for `ListRooms`
//! and the candidates of `QuickJoin`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use prost::Message;

use super::wire::{self, pb};
use super::{Cluster, ClusterError};
use crate::protocol::{Filter, ListSpec, pb as client_pb};
use crate::room::{Listing, room_info};

/// The longest a list waits for slow nodes (answers in by then are used).
const GATHER_AT_MOST: Duration = Duration::from_millis(500);

impl Cluster {
    /// Answers the cluster's list queries from `listing` (the rooms owned
    /// here), until the node leaves the cluster.
    pub fn answer_lists(&self, listing: Arc<Listing>) {
        self.answer(wire::LIST.to_owned(), "room lists", move |_, payload| {
            let listing = listing.clone();
            async move {
                let nothing = || wire::encode(&pb::Listed::default());
                let Ok(asked) = pb::ListQuery::decode(payload) else {
                    return nothing();
                };
                let Ok(filter) = Filter::parse(&asked.filter) else {
                    return nothing();
                };
                let kind = (!asked.any_kind).then_some(asked.kind.as_str());
                let limit = usize::try_from(asked.limit).unwrap_or(usize::MAX);
                let found = listing.find(kind, &filter, asked.only_open, limit);
                let rooms = found.iter().map(|(room, listed)| room_info(room, listed)).collect();
                wire::encode(&pb::Listed { rooms })
            }
        });
    }

    /// Up to `spec.limit` public rooms across the cluster that match `spec`,
    /// fullest first (then by name).
    ///
    /// # Errors
    /// [`ClusterError::Unavailable`] without NATS.
    pub async fn list(&self, spec: &ListSpec, limit: usize) -> Result<Vec<client_pb::RoomInfo>, ClusterError> {
        self.check_up()?;
        let query = pb::ListQuery {
            kind: spec.kind.clone().unwrap_or_default(),
            any_kind: spec.kind.is_none(),
            filter: spec.filter.to_string(),
            only_open: spec.only_open,
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
        };
        let inbox = self.client().new_inbox();
        let mut answers = self
            .client()
            .subscribe(inbox.clone())
            .await
            .map_err(ClusterError::from)?;
        let asked = self
            .client()
            .publish_with_reply(wire::LIST, inbox, wire::encode(&query));
        asked.await.map_err(ClusterError::from)?;
        let expected = self.live_nodes().len();
        let mut rooms = Vec::new();
        let gathered = async {
            for _ in 0..expected {
                let Some(answer) = answers.next().await else { break };
                if let Ok(listed) = pb::Listed::decode(answer.payload) {
                    rooms.extend(listed.rooms);
                }
            }
        };
        let _ = tokio::time::timeout(self.timing().request.min(GATHER_AT_MOST), gathered).await;
        rooms.sort_by(|a, b| b.members.cmp(&a.members).then_with(|| a.room.cmp(&b.room)));
        rooms.truncate(limit);
        Ok(rooms)
    }
}
