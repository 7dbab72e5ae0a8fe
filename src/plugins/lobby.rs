//! Kind `lobby`: a ready check with a countdown, the real-time example. Up
//! to 16 players join and mark themselves ready (client op 1 `Ready`). The
//! room ticks at 20 Hz: ready marks are applied on the tick, and the state
//! (server op 1 `LobbyState`, also the joiner's state) is sent on a tick
//! when it changed, and every second while counting down (and published
//! as the room's `RoomInfo.metadata`). Once at least
//! `min_players` are in and all are ready, a timer of `countdown_ms` starts;
//! anyone turning unready or leaving stops it. When it goes off the room
//! locks and sends `Started` (server op 2). The schema is
//! `proto/tavern/examples/v1/examples.proto`.

use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;

use super::pb;
use crate::ids::SessionId;
use crate::protocol::RoomName;
use crate::room::{Input, LeaveReason, Member, RoomCtx, RoomPlugin, RoomSettings, TimerId};

/// Client op: `Ready`.
pub const OP_READY: u32 = 1;
/// Server op: `LobbyState`.
pub const OP_STATE: u32 = 1;
/// Server op: `Started`.
pub const OP_STARTED: u32 = 2;

const MAX_PLAYERS: usize = 16;
const TICK_HZ: u32 = 20;
const DEFAULT_COUNTDOWN_MS: u32 = 3_000;
const MAX_COUNTDOWN_MS: u32 = 60_000;

/// See the module documentation.
#[derive(Debug)]
pub struct Lobby {
    /// Members in join order, and whether each is ready.
    players: Vec<(SessionId, bool)>,
    min_players: usize,
    countdown: Duration,
    /// The running countdown: its timer and the tick it started on.
    counting: Option<(TimerId, u64)>,
    started: bool,
    /// The state changed since it was last sent.
    dirty: bool,
}

impl RoomPlugin for Lobby {
    fn create(_room: &RoomName, params: &[u8]) -> Result<(Self, RoomSettings), String> {
        let params = pb::LobbyParams::decode(params).map_err(|e| format!("params are not LobbyParams: {e}"))?;
        let min_players = match usize::try_from(params.min_players) {
            Ok(0) => 2,
            Ok(n @ 2..=MAX_PLAYERS) => n,
            _ => return Err(format!("min_players must be 2 to {MAX_PLAYERS}")),
        };
        let countdown_ms = match params.countdown_ms {
            0 => DEFAULT_COUNTDOWN_MS,
            ms => ms.min(MAX_COUNTDOWN_MS),
        };
        let lobby = Lobby {
            players: Vec::new(),
            min_players,
            countdown: Duration::from_millis(u64::from(countdown_ms)),
            counting: None,
            started: false,
            dirty: false,
        };
        let settings = RoomSettings {
            max_members: MAX_PLAYERS,
            tick_hz: TICK_HZ,
            label: format!("game=lobby min={min_players}"),
            ..RoomSettings::default()
        };
        Ok((lobby, settings))
    }

    fn snapshot(&mut self, room: &RoomCtx<'_>, _joiner: &Member) -> Bytes {
        Bytes::from(self.state(room.tick()).encode_to_vec())
    }

    fn join(&mut self, _room: &mut RoomCtx<'_>, member: &Member) {
        self.players.push((member.id, false));
        self.dirty = true;
    }

    fn leave(&mut self, room: &mut RoomCtx<'_>, member: &Member, _reason: LeaveReason) {
        self.players.retain(|(id, _)| *id != member.id);
        self.dirty = true;
        self.check(room);
    }

    fn tick(&mut self, room: &mut RoomCtx<'_>, inputs: Vec<Input>) {
        for input in inputs {
            let ready = match (input.op, pb::Ready::decode(input.data)) {
                (OP_READY, Ok(ready)) => ready.ready,
                _ => continue,
            };
            if let Some(player) = self.players.iter_mut().find(|(id, _)| *id == input.from.id)
                && player.1 != ready
            {
                player.1 = ready;
                self.dirty = true;
            }
        }
        self.check(room);
        let each_second = u64::from(TICK_HZ);
        let counting_second = self
            .counting
            .is_some_and(|(_, since)| room.tick().saturating_sub(since) % each_second == 0);
        if self.dirty || counting_second {
            self.dirty = false;
            let state = Bytes::from(self.state(room.tick()).encode_to_vec());
            // Lobby browsers see it in ListRooms too.
            room.set_metadata(state.clone());
            room.broadcast(OP_STATE, state, None);
        }
    }

    fn timer(&mut self, room: &mut RoomCtx<'_>, _tag: u64) {
        self.counting = None;
        self.started = true;
        room.lock();
        let started = pb::Started {
            players: self.players.iter().map(|(id, _)| id.get()).collect(),
        };
        room.broadcast(OP_STARTED, Bytes::from(started.encode_to_vec()), None);
        self.dirty = true;
    }
}

impl Lobby {
    /// Starts the countdown when everyone is ready, stops it when not.
    fn check(&mut self, room: &mut RoomCtx<'_>) {
        if self.started {
            return;
        }
        let all_ready = self.players.len() >= self.min_players && self.players.iter().all(|(_, ready)| *ready);
        match (all_ready, self.counting) {
            (true, None) => {
                self.counting = room.set_timer(self.countdown, 0).map(|timer| (timer, room.tick()));
                self.dirty = true;
            }
            (false, Some((timer, _))) => {
                room.cancel_timer(timer);
                self.counting = None;
                self.dirty = true;
            }
            _ => {}
        }
    }

    fn state(&self, tick: u64) -> pb::LobbyState {
        let left = self.counting.map_or(Duration::ZERO, |(_, since)| {
            let ran = Duration::from_secs(tick.saturating_sub(since)) / TICK_HZ;
            self.countdown.saturating_sub(ran)
        });
        pb::LobbyState {
            members: self
                .players
                .iter()
                .map(|(id, ready)| pb::LobbyMember {
                    session: id.get(),
                    ready: *ready,
                })
                .collect(),
            min_players: u32::try_from(self.min_players).unwrap_or(u32::MAX),
            countdown_ms: u32::try_from(left.as_millis()).unwrap_or(u32::MAX),
            started: self.started,
        }
    }
}
