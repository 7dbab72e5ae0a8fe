//! A member's seat in a room, shared by the room and the member's session:
//! the room vacates it when the member leaves for any reason (kicked, the
//! room closed, the connection too slow), so the session knows it is out
//! without the room having to reach the session actor.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// See the module documentation. Cheap to clone; clones share the seat.
#[derive(Debug, Clone)]
pub struct Seat(Arc<AtomicBool>);

impl Seat {
    /// A seat that is taken (the join is under way or done).
    pub fn taken() -> Seat {
        Seat(Arc::new(AtomicBool::new(true)))
    }

    /// Whether the member is still in the room (or on its way in).
    pub fn is_taken(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// The member is out.
    pub fn vacate(&self) {
        self.0.store(false, Ordering::Release);
    }
}
