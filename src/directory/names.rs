//! The registry of connected players' names, which keeps them unique.
//! Sessions claim and release names directly (a concurrent map), so a
//! handshake never waits for another actor.

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::ids::SessionId;
use crate::protocol::PlayerName;

/// Names in use, each with the session holding it.
#[derive(Debug, Default)]
pub struct Names(DashMap<PlayerName, SessionId>);

impl Names {
    /// Gives `name` to `session` unless another session holds it.
    pub fn claim(&self, name: &PlayerName, session: SessionId) -> bool {
        match self.0.entry(name.clone()) {
            Entry::Occupied(held) => *held.get() == session,
            Entry::Vacant(free) => {
                free.insert(session);
                true
            }
        }
    }

    /// Frees `name` if `session` holds it.
    pub fn release(&self, name: &PlayerName, session: SessionId) {
        self.0.remove_if(name, |_, holder| *holder == session);
    }

    /// How many names are held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_until_released_by_their_holder() {
        let names = Names::default();
        let ann = PlayerName::parse("ann").unwrap();
        assert!(names.claim(&ann, SessionId::new(1)));
        assert!(!names.claim(&ann, SessionId::new(2)));
        names.release(&ann, SessionId::new(2));
        assert!(!names.claim(&ann, SessionId::new(2)), "only the holder releases");
        names.release(&ann, SessionId::new(1));
        assert!(names.claim(&ann, SessionId::new(2)));
        assert_eq!(names.len(), 1);
    }
}
