//! The rooms' workload: R rooms × N members, P of each room's members
//! publishing S-byte stamps on one open-loop schedule at a fixed total rate
//! (as chat texts, or as a plugin's ops), optionally with members that stop
//! reading or a flooding client beside them; which room each bot is in and
//! what it does there.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tavern::protocol::pb;
use tavern::protocol::pb::client_message::Body as Request;

use super::flooder::FloodSpec;
use crate::payload;
use crate::schedule::Schedule;
use crate::units::{f64_from, nanos, round_to_u64};

/// The op of every `RoomSend` a publisher writes in a plugin's room.
pub const PLUGIN_OP: u32 = 1;

/// What the rooms carry: what a publisher writes, and what reaches every
/// member in the room's order. Either way a publisher's stamp
/// ([`payload`]) travels in it, and the room's seq orders it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Traffic {
    /// Chat rooms (the default kind): `SendChat` texts, delivered as `ChatMessage`s.
    Chat,
    /// Rooms of this plugin kind: `RoomSend`s of op [`PLUGIN_OP`] whose data
    /// is the stamp, delivered as the `RoomEvent`s a kind such as `echo`
    /// broadcasts for each.
    Plugin(String),
}

impl Traffic {
    /// The kind the bots name when they join (empty: chat, the default).
    pub fn kind(&self) -> &str {
        match self {
            Traffic::Chat => "",
            Traffic::Plugin(kind) => kind,
        }
    }

    /// The request that publishes `text` in `room`.
    pub fn request(&self, room: &str, text: &str) -> Request {
        match self {
            Traffic::Chat => Request::SendChat(pb::SendChat {
                room: room.to_owned(),
                text: text.to_owned(),
            }),
            Traffic::Plugin(_) => Request::RoomSend(pb::RoomSend {
                room: room.to_owned(),
                op: PLUGIN_OP,
                data: Bytes::copy_from_slice(text.as_bytes()),
            }),
        }
    }

    /// Checks that the kind carries plugin traffic.
    ///
    /// # Errors
    /// A message naming the flag to change.
    fn validate(&self) -> anyhow::Result<()> {
        if let Traffic::Plugin(kind) = self {
            anyhow::ensure!(
                !kind.is_empty() && kind != "chat",
                "--kind must name a room plugin kind that answers RoomSend with RoomEvents (e.g. echo), \
                 not {kind:?}: chat rooms ignore RoomSend"
            );
        }
        Ok(())
    }
}

/// What every process runs in one step of the rooms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoomsWorkload {
    /// Rooms (R).
    pub rooms: u64,
    /// Members per room (N), publishers included.
    pub members: u64,
    /// Publishing members per room (P).
    pub publishers: u64,
    /// Bytes per chat text or op's data (S).
    pub size: usize,
    /// Messages per second offered in total, over all publishers of all rooms.
    pub rate: u64,
    /// Fraction of each room's members that stop reading (`slow`); 0 for none.
    pub slow_fraction: f64,
    /// The one client flooding a room of its own (`flood`); none when absent.
    pub flood: Option<FloodSpec>,
    /// What the rooms carry.
    pub traffic: Traffic,
}

impl RoomsWorkload {
    /// Checks the numbers against each other and the text size against what
    /// a run of `run_length` (warm-up plus window) writes into it.
    ///
    /// # Errors
    /// A message naming the flag to change.
    pub fn validate(&self, run_length: Duration) -> anyhow::Result<()> {
        anyhow::ensure!(self.rooms >= 1, "--rooms must be at least 1");
        anyhow::ensure!(self.members >= 1, "--members must be at least 1");
        anyhow::ensure!(
            (1..=self.members).contains(&self.publishers),
            "--publishers must be between 1 and --members ({})",
            self.members
        );
        anyhow::ensure!(self.rate >= 1, "--rate must be at least 1 message per second");
        anyhow::ensure!(
            (0.0..1.0).contains(&self.slow_fraction),
            "--slow-fraction must be at least 0 and below 1"
        );
        if let Some(flood) = self.flood {
            flood.validate()?;
        }
        self.traffic.validate()?;
        let schedule = Schedule::new(0, self.rate, self.total_publishers())?;
        let max_counter = schedule.count_before(0, nanos(run_length));
        payload::validate_size(self.size, self.total_publishers() - 1, max_counter)
    }

    /// Members of all rooms.
    pub fn total_members(&self) -> u64 {
        self.rooms.saturating_mul(self.members)
    }

    /// Publishers of all rooms, which share the schedule.
    pub fn total_publishers(&self) -> u64 {
        self.rooms.saturating_mul(self.publishers)
    }

    /// Members per room that stop reading: the slow fraction of the room,
    /// rounded, taken from the members that do not publish.
    pub fn slow_per_room(&self) -> u64 {
        let wanted = round_to_u64(self.slow_fraction * f64_from(self.members));
        wanted.min(self.members - self.publishers)
    }

    /// The room of bot `bot`.
    pub fn room_of(&self, bot: u64) -> u64 {
        bot / self.members
    }

    /// Bot `bot`'s place among its room's members, `0..N`.
    pub fn member_of(&self, bot: u64) -> u64 {
        bot % self.members
    }

    /// What bot `bot` does: its room's first P members publish, its last
    /// slow members stop reading, the others only receive.
    pub fn role(&self, bot: u64) -> Role {
        let index = self.member_of(bot);
        if index < self.publishers {
            Role::Publisher(self.room_of(bot) * self.publishers + index)
        } else if index >= self.members - self.slow_per_room() {
            Role::Slow
        } else {
            Role::Receiver
        }
    }

    /// The schedule's publishers that belong to `room`.
    pub fn room_publishers(&self, room: u64) -> std::ops::Range<u64> {
        room * self.publishers..(room + 1) * self.publishers
    }

    /// The name of room `room` in step `step`: chat rooms and a plugin's
    /// rooms are named apart, so that neither finds a room of the other kind.
    pub fn room_name(&self, step: u32, room: u64) -> String {
        match self.traffic {
            Traffic::Chat => format!("s{step}.room.{room}"),
            Traffic::Plugin(_) => format!("s{step}.plugin.{room}"),
        }
    }
}

/// What a member does in its room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Publishes on the schedule as publisher number `.0`, and receives.
    Publisher(u64),
    /// Receives.
    Receiver,
    /// Stops reading from the start of the warm-up to the end of the window.
    Slow,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(members: u64, publishers: u64, slow_fraction: f64) -> RoomsWorkload {
        RoomsWorkload {
            rooms: 3,
            members,
            publishers,
            size: 64,
            rate: 1000,
            slow_fraction,
            flood: None,
            traffic: Traffic::Chat,
        }
    }

    #[test]
    fn roles_per_room() {
        let w = workload(10, 2, 0.3);
        assert_eq!(w.slow_per_room(), 3);
        let roles: Vec<Role> = (10..20).map(|bot| w.role(bot)).collect();
        assert_eq!(roles[0], Role::Publisher(2));
        assert_eq!(roles[1], Role::Publisher(3));
        assert_eq!(roles[2..7], [Role::Receiver; 5]);
        assert_eq!(roles[7..], [Role::Slow; 3]);
        assert_eq!(w.room_of(19), 1);
        assert_eq!(w.room_publishers(1), 2..4);
    }

    #[test]
    fn slow_members_never_include_publishers() {
        assert_eq!(workload(4, 3, 0.9).slow_per_room(), 1);
        assert_eq!(workload(4, 4, 0.5).slow_per_room(), 0);
    }

    #[test]
    fn validation_names_the_flag() {
        let run = Duration::from_secs(10);
        assert!(workload(10, 2, 0.0).validate(run).is_ok());
        let error = workload(10, 11, 0.0).validate(run).unwrap_err().to_string();
        assert!(error.contains("--publishers"), "{error}");
        let mut tiny = workload(10, 2, 0.0);
        tiny.size = 10;
        assert!(tiny.validate(run).unwrap_err().to_string().contains("--size"));
        assert!(workload(10, 2, 1.0).validate(run).is_err());
        for kind in ["", "chat"] {
            let mut chat_kind = workload(10, 2, 0.0);
            chat_kind.traffic = Traffic::Plugin(kind.to_owned());
            assert!(chat_kind.validate(run).unwrap_err().to_string().contains("--kind"));
        }
    }

    #[test]
    fn plugin_rooms_send_the_stamp_as_an_op() {
        let mut w = workload(10, 2, 0.0);
        assert_eq!(w.room_name(3, 7), "s3.room.7");
        assert_eq!(w.traffic.kind(), "");
        let chat = w.traffic.request("r", "1:2:3:x");
        assert!(matches!(chat, Request::SendChat(pb::SendChat { ref text, .. }) if text == "1:2:3:x"));
        w.traffic = Traffic::Plugin("echo".to_owned());
        assert!(w.validate(Duration::from_secs(10)).is_ok());
        assert_eq!(w.room_name(3, 7), "s3.plugin.7");
        assert_eq!(w.traffic.kind(), "echo");
        match w.traffic.request("r", "1:2:3:x") {
            Request::RoomSend(send) => {
                assert_eq!((send.room.as_str(), send.op), ("r", PLUGIN_OP));
                assert_eq!(&send.data[..], b"1:2:3:x");
            }
            other => panic!("{other:?}"),
        }
    }
}
