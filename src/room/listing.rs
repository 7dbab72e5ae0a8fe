//! The public rooms, for `ListRooms` and `QuickJoin`: a concurrent map that
//! each room keeps up to date itself (on every join, leave, label or lock
//! change), so that listing queues behind no actor.

use dashmap::DashMap;

use super::Kind;
use crate::ids::RoomId;
use crate::protocol::{Filter, RoomName, pb};

/// A listed room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Which room of its name.
    pub id: RoomId,
    /// Its kind.
    pub kind: Kind,
    /// Members now.
    pub members: usize,
    /// Most members.
    pub max_members: usize,
    /// Its plugin's label.
    pub label: String,
    /// What its plugin published about it.
    pub metadata: bytes::Bytes,
    /// Locked by its plugin.
    pub locked: bool,
}

impl Listed {
    /// Whether it takes joiners now.
    pub fn is_open(&self) -> bool {
        !self.locked && self.members < self.max_members
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Listing {
    rooms: DashMap<RoomName, Listed>,
}

impl Listing {
    /// Lists `room` as `listed`, replacing what was listed under its name.
    pub fn set(&self, room: &RoomName, listed: Listed) {
        self.rooms.insert(room.clone(), listed);
    }

    /// Takes room `id` named `room` off the list, if that is the room listed.
    pub fn remove(&self, room: &RoomName, id: RoomId) {
        self.rooms.remove_if(room, |_, listed| listed.id == id);
    }

    /// Up to `limit` rooms of `kind` (any kind if `None`) whose label matches
    /// `filter`, open ones only if `only_open`, fullest first (then by name).
    pub fn find(&self, kind: Option<&str>, filter: &Filter, only_open: bool, limit: usize) -> Vec<(RoomName, Listed)> {
        let mut found: Vec<(RoomName, Listed)> = self
            .rooms
            .iter()
            .filter(|entry| {
                let listed = entry.value();
                kind.is_none_or(|kind| *listed.kind == *kind)
                    && (!only_open || listed.is_open())
                    && filter.matches(&listed.label)
            })
            .map(|entry| (entry.key().clone(), entry.value().clone()))
            .collect();
        found.sort_by(|(a_name, a), (b_name, b)| {
            b.members
                .cmp(&a.members)
                .then_with(|| a_name.as_str().cmp(b_name.as_str()))
        });
        found.truncate(limit);
        found
    }

    /// How many rooms are listed.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether no room is listed.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

/// `RoomInfo` for a listed room.
pub fn room_info(room: &RoomName, listed: &Listed) -> pb::RoomInfo {
    pb::RoomInfo {
        room: room.to_string(),
        kind: listed.kind.to_string(),
        members: u32::try_from(listed.members).unwrap_or(u32::MAX),
        max_members: u32::try_from(listed.max_members).unwrap_or(u32::MAX),
        label: listed.label.clone(),
        locked: listed.locked,
        metadata: listed.metadata.clone(),
    }
}
