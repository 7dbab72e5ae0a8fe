//! A member's seat in a room, shared by the room and the member's session:
//! the room vacates it when the member leaves for any reason (kicked, the
//! room closed, the connection too slow), so the session knows it is out
//! without the room having to reach the session actor. A session whose
//! connection dropped *holds* its seats for a resume: a room that finds a
//! held seat's connection closed keeps the member (without sending to it)
//! instead of announcing that it left.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

const TAKEN: u8 = 0;
const HELD: u8 = 1;
const VACATED: u8 = 2;

/// See the module documentation. Cheap to clone; clones share the seat.
#[derive(Debug, Clone)]
pub struct Seat(Arc<AtomicU8>);

impl Seat {
    /// A seat that is taken (the join is under way or done).
    pub fn taken() -> Seat {
        Seat(Arc::new(AtomicU8::new(TAKEN)))
    }

    /// Whether the member is in the room with its connection (or on its way in).
    pub fn is_taken(&self) -> bool {
        self.0.load(Ordering::Acquire) == TAKEN
    }

    /// Whether the seat is held for a resume.
    pub fn is_held(&self) -> bool {
        self.0.load(Ordering::Acquire) == HELD
    }

    /// Whether the member is out of the room.
    pub fn is_vacated(&self) -> bool {
        self.0.load(Ordering::Acquire) == VACATED
    }

    /// Holds a taken seat for a resume; false if the member is out.
    pub fn hold(&self) -> bool {
        self.0
            .compare_exchange(TAKEN, HELD, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Takes a held seat back (the resumed member rejoined); false if it was not held.
    pub fn retake(&self) -> bool {
        self.0
            .compare_exchange(HELD, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The member is out.
    pub fn vacate(&self) {
        self.0.store(VACATED, Ordering::Release);
    }
}
