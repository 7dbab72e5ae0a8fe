//! What nodes say to each other: the generated `tavern.cluster.v1` types,
//! and the NATS subjects and key-value keys rooms and names map to.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use prost::Message;

/// The generated types of `proto/tavern/cluster/v1/cluster.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/tavern.cluster.v1.rs"));
}

/// Liveness records, one a node.
pub(super) const NODES: &str = "tavern_nodes";
/// Room ownership records.
pub(super) const ROOMS: &str = "tavern_rooms";
/// Player name records.
pub(super) const NAMES: &str = "tavern_names";
/// Where every node answers `ListQuery`.
pub(crate) const LIST: &str = "tavern.list";

/// A room or player name as a key and subject token: base64url, so that
/// every name the protocol allows is one token with no wildcard in it.
pub(super) fn key(name: &str) -> String {
    URL_SAFE_NO_PAD.encode(name)
}

/// The name a [`key`] was made from, if it is one.
pub(super) fn name_of(key: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(key).ok()?).ok()
}

/// Where members elsewhere send a room's owner their commands.
pub(super) fn room_in(room: &str) -> String {
    format!("tavern.room.{}.in", key(room))
}

/// Where a room's owner sends the frames for its members elsewhere.
pub(super) fn room_events(room: &str) -> String {
    format!("tavern.room.{}.ev", key(room))
}

/// Where `node` is asked to make a room.
pub(crate) fn node_open(node: &str) -> String {
    format!("tavern.node.{node}.open")
}

/// `message`, encoded.
pub(crate) fn encode(message: &impl Message) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

/// A room's answer to a join, for the joiner's node.
pub(super) fn admission_to_pb(admission: &crate::room::Admission) -> pb::Admission {
    use crate::room::Admission;
    use pb::admission::Outcome;
    let (outcome, reason) = match admission {
        Admission::Joined => (Outcome::Joined, ""),
        Admission::Closing | Admission::Unavailable(_) => (Outcome::Closing, ""),
        Admission::Refused => (Outcome::Refused, ""),
        Admission::AlreadyMember => (Outcome::AlreadyMember, ""),
        Admission::Full => (Outcome::Full, ""),
        Admission::Locked => (Outcome::Locked, ""),
        Admission::Rejected(reason) => (Outcome::Rejected, reason.as_str()),
    };
    pb::Admission {
        outcome: outcome.into(),
        reason: reason.to_owned(),
    }
}

/// The admission a room owned elsewhere sent.
pub(super) fn admission_of(admission: pb::Admission) -> crate::room::Admission {
    use crate::room::Admission;
    use pb::admission::Outcome;
    match Outcome::try_from(admission.outcome).unwrap_or(Outcome::Closing) {
        Outcome::Joined => Admission::Joined,
        Outcome::Closing => Admission::Closing,
        Outcome::Refused => Admission::Refused,
        Outcome::AlreadyMember => Admission::AlreadyMember,
        Outcome::Full => Admission::Full,
        Outcome::Locked => Admission::Locked,
        Outcome::Rejected => Admission::Rejected(admission.reason),
    }
}
