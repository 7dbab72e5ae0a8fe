//! The client's side of room plugins and recovery: joining a room of a
//! kind, rejoining from where it left off, quick join, listing rooms, and
//! messages to a room's plugin.

use bytes::Bytes;

use super::reader::unexpected;
use super::{Client, ClientError, Reply, Request};
use crate::protocol::pb;

impl Client {
    /// Joins `room` of `kind`, giving `params` (used if the join creates the
    /// room) and `metadata` (for the plugin's join attempt).
    ///
    /// # Errors
    /// [`ClientError::Server`] with ROOM_FULL, ROOM_LOCKED, JOIN_REJECTED,
    /// UNKNOWN_ROOM_KIND, ROOM_KIND_MISMATCH, …
    pub async fn join_kind(
        &mut self,
        room: &str,
        kind: &str,
        params: Bytes,
        metadata: Bytes,
    ) -> Result<pb::RoomJoined, ClientError> {
        let join = pb::JoinRoom {
            room: room.into(),
            kind: kind.into(),
            params,
            metadata,
            ..pb::JoinRoom::default()
        };
        self.join_with(Request::JoinRoom(join)).await
    }

    /// Joins chat room `room` again, recovering what it missed since
    /// `since_seq` in `epoch` if the room still holds it (`RoomJoined.recovered`:
    /// the missed events follow, as the client reads them with [`Client::next_message`]).
    ///
    /// # Errors
    /// [`ClientError::Server`] with the server's refusal.
    pub async fn rejoin(&mut self, room: &str, since_seq: u64, epoch: u64) -> Result<pb::RoomJoined, ClientError> {
        let join = pb::JoinRoom {
            room: room.into(),
            since_seq: Some(since_seq),
            epoch,
            ..pb::JoinRoom::default()
        };
        self.join_with(Request::JoinRoom(join)).await
    }

    /// Joins the fullest open room of `kind` whose label matches `filter`,
    /// or a new one made with `params`.
    ///
    /// # Errors
    /// [`ClientError::Server`] with UNKNOWN_ROOM_KIND, INVALID_FILTER, JOIN_REJECTED, …
    pub async fn quick_join(&mut self, kind: &str, filter: &str, params: Bytes) -> Result<pb::RoomJoined, ClientError> {
        let quick = pb::QuickJoin {
            kind: kind.into(),
            filter: filter.into(),
            params,
            metadata: Bytes::new(),
        };
        self.join_with(Request::QuickJoin(quick)).await
    }

    /// The public rooms `list` asks for.
    ///
    /// # Errors
    /// [`ClientError::Server`] with INVALID_FILTER, …
    pub async fn list_rooms(&mut self, list: pb::ListRooms) -> Result<Vec<pb::RoomInfo>, ClientError> {
        match self.request(Request::ListRooms(list)).await? {
            Reply::RoomList(list) => Ok(list.rooms),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `op` and `data` to `room`'s plugin; returns the request id (an
    /// error about it echoes it).
    ///
    /// # Errors
    /// The connection failed.
    pub async fn room_send(&mut self, room: &str, op: u32, data: Bytes) -> Result<u64, ClientError> {
        let send = pb::RoomSend {
            room: room.into(),
            op,
            data,
        };
        self.send(Request::RoomSend(send)).await
    }
}
