//! Kind `echo`: every member's `RoomSend` goes back to every member, the
//! sender included, as a `RoomEvent` with the same op and data, the room's
//! next seq and the sender as `from_session`. No state, no tick; the
//! server's member limit. It carries plugin traffic without doing anything
//! with it: `loadtest plugin` loads rooms of this kind to measure what the
//! plugin path (a `RoomSend` in, a hook, a `RoomEvent` out to every member)
//! costs.

use bytes::Bytes;

use crate::protocol::RoomName;
use crate::room::{Member, RoomCtx, RoomPlugin, RoomSettings};

/// The room's label.
const LABEL: &str = "game=echo";

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Echo;

impl RoomPlugin for Echo {
    fn create(_room: &RoomName, _params: &[u8]) -> Result<(Self, RoomSettings), String> {
        let settings = RoomSettings {
            label: LABEL.to_owned(),
            ..RoomSettings::default()
        };
        Ok((Echo, settings))
    }

    fn message(&mut self, room: &mut RoomCtx<'_>, from: &Member, op: u32, data: Bytes) {
        room.broadcast(op, data, Some(from.id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_unticked_room_of_the_servers_size() {
        let room = RoomName::parse("echo.1").unwrap();
        let (_, settings) = Echo::create(&room, b"ignored").unwrap();
        assert_eq!(settings.max_members, 0);
        assert_eq!(settings.tick_hz, 0);
        assert_eq!(settings.label, "game=echo");
        assert!(!settings.private && !settings.lock_when_full);
    }
}
