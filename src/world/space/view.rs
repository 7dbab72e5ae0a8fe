//! A player's view: which entities it was sent, and the diff that becomes
//! its next `WorldUpdate`.

// Entity ids are session ids, chosen by the server: a fast hash is safe here.
use rustc_hash::FxHashMap as HashMap;

use super::{Entity, Space, distance2, fixed_point, heading_steps};
use crate::ids::SessionId;
use crate::protocol::pb;

/// What a player was last sent about an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quantised {
    x: i32,
    y: i32,
    heading: u32,
}

/// An entity in a player's view: what the player holds for it, and the
/// last tick it was found within the leaving distance.
#[derive(Debug, Clone, Copy)]
struct Seen {
    sent: Quantised,
    tick: u64,
}

/// What one player has been sent: the entities in its view.
#[derive(Debug, Default)]
pub struct View {
    seen: HashMap<SessionId, Seen>,
    /// Entities the last diff left out of `entered` for the cap; they enter later.
    deferred: u32,
}

impl View {
    /// Entities the last [`View::diff`] found in range but left for a later
    /// update, [`SpaceSettings::max_entered_per_update`] being reached.
    ///
    /// [`SpaceSettings::max_entered_per_update`]: super::SpaceSettings::max_entered_per_update
    pub fn deferred(&self) -> u32 {
        self.deferred
    }

    /// Entities in the view.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// What changed around `me` since the last update made, as the next
    /// update; `None` when nothing did. The view then holds what the update
    /// tells, so the caller must send it (or drop the player).
    pub fn diff(&mut self, me: usize, space: &Space, tick: u64, far_every: u64) -> Option<pb::WorldUpdate> {
        self.deferred = 0;
        let settings = &space.settings;
        let center = space.entities[me].position;
        let enter = settings.aoi_radius;
        let leave = settings.aoi_radius + settings.aoi_hysteresis;
        let near = settings.aoi_radius / 2.0;
        let (enter2, leave2, near2) = (enter * enter, leave * leave, near * near);
        let mut update = pb::WorldUpdate {
            tick,
            ack_client_tick: space.entities[me].ack,
            ..pb::WorldUpdate::default()
        };
        for j in space.grid.around(center, leave) {
            let entity = &space.entities[j];
            let d2 = distance2(center, entity.position);
            match self.seen.get_mut(&entity.id) {
                Some(seen) if d2 <= leave2 => {
                    seen.tick = tick;
                    let far = j != me && d2 > near2;
                    if far && !tick.wrapping_add(entity.id.get()).is_multiple_of(far_every) {
                        continue;
                    }
                    let now = quantised(entity);
                    if now != seen.sent {
                        update.moved.push(pb::EntityMoved {
                            id: entity.id.get(),
                            dx: now.x.saturating_sub(seen.sent.x),
                            dy: now.y.saturating_sub(seen.sent.y),
                            heading: now.heading,
                        });
                        seen.sent = now;
                    }
                }
                Some(_) => {}
                None if d2 <= enter2 && update.entered.len() >= settings.max_entered_per_update => {
                    self.deferred = self.deferred.saturating_add(1);
                }
                None if d2 <= enter2 => {
                    let sent = quantised(entity);
                    update.entered.push(pb::EntityEntered {
                        id: entity.id.get(),
                        x: sent.x,
                        y: sent.y,
                        heading: sent.heading,
                        name: entity.name.to_string(),
                    });
                    self.seen.insert(entity.id, Seen { sent, tick });
                }
                None => {}
            }
        }
        let left = &mut update.left;
        self.seen.retain(|id, seen| {
            let stays = seen.tick == tick;
            if !stays {
                left.push(id.get());
            }
            stays
        });
        let changed = !(update.entered.is_empty() && update.left.is_empty() && update.moved.is_empty());
        changed.then_some(update)
    }
}

/// The position and heading of `entity` as clients are sent them.
fn quantised(entity: &Entity) -> Quantised {
    Quantised {
        x: fixed_point(entity.position.x),
        y: fixed_point(entity.position.y),
        heading: heading_steps(entity.heading),
    }
}
