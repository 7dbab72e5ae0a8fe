//! Where a member's frames go: its session's outbox on this node, or, for a
//! member connected to another node of a cluster, the room's relay.
//!
//! A room owned here with members elsewhere keeps one ordered, bounded queue
//! of [`Relayed`] frames ([`Config::cluster_relay_queue`]); the cluster
//! publishes them, in order, to the nodes those members are on, which fan
//! them out to their own members. So a frame for many members elsewhere is
//! queued once, not once per member, and everything a member elsewhere gets
//! from the room keeps the room's one order. A room whose relay is full
//! counts its members elsewhere as slow consumers: it drops them, and the
//! queue's reader tells their nodes, which tell them.
//!
//! [`Config::cluster_relay_queue`]: crate::config::ClusterConfig::relay_queue

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::ids::SessionId;
use crate::outbox::{Outbox, SendError};

/// Where a member's frames go.
#[derive(Debug, Clone)]
pub enum Route {
    /// Its session's outbox, on this node.
    Local(Outbox),
    /// Its session is on another node: through the room's relay.
    Relayed,
}

impl Route {
    /// The outbox, for a member on this node.
    pub fn outbox(&self) -> Option<&Outbox> {
        match self {
            Route::Local(outbox) => Some(outbox),
            Route::Relayed => None,
        }
    }

    /// Whether the member's connection is closing (never known here for a member elsewhere).
    pub fn is_closed(&self) -> bool {
        self.outbox().is_some_and(Outbox::is_closed)
    }
}

/// One frame for the room's members elsewhere.
#[derive(Debug, Clone)]
pub struct Relayed {
    /// The room's incarnation.
    pub epoch: u64,
    /// The room's seq once this frame is sent.
    pub seq: u64,
    /// Whether the frame took a seq.
    pub sequenced: bool,
    /// For this member only.
    pub to: Option<SessionId>,
    /// For every member but this one.
    pub skip: Option<SessionId>,
    /// `to` is out of the room after this frame.
    pub ends: bool,
    /// The encoded frame.
    pub frame: Bytes,
}

/// The sending end of a room's relay; cheap to clone.
#[derive(Debug, Clone)]
pub struct Relay {
    queue: mpsc::Sender<Relayed>,
    overflowed: Arc<AtomicBool>,
}

/// The reading end of a room's relay.
#[derive(Debug)]
pub struct RelayReader {
    /// The frames, in the room's order.
    pub frames: mpsc::Receiver<Relayed>,
    overflowed: Arc<AtomicBool>,
}

/// A relay holding at most `bound` frames.
pub fn relay(bound: usize) -> (Relay, RelayReader) {
    let (queue, frames) = mpsc::channel(bound.max(1));
    let overflowed = Arc::new(AtomicBool::new(false));
    let reader = RelayReader {
        frames,
        overflowed: overflowed.clone(),
    };
    (Relay { queue, overflowed }, reader)
}

/// A relay that does not keep its room's queue open.
#[derive(Debug, Clone)]
pub struct WeakRelay(mpsc::WeakSender<Relayed>);

impl WeakRelay {
    /// Whether every frame queued so far was taken off the queue (or the room is gone).
    pub fn is_empty(&self) -> bool {
        self.0
            .upgrade()
            .is_none_or(|queue| queue.capacity() == queue.max_capacity())
    }
}

impl Relay {
    /// A handle that sees the queue without keeping it open.
    pub fn downgrade(&self) -> WeakRelay {
        WeakRelay(self.queue.downgrade())
    }

    /// Queues `frame`; a full queue marks the relay overflowed.
    pub fn push(&self, frame: Relayed) -> Result<(), SendError> {
        self.queue.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                self.overflowed.store(true, Ordering::Release);
                SendError::Full
            }
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }
}

impl RelayReader {
    /// Whether frames were dropped for a full queue since this was last asked (and clears it).
    pub fn take_overflow(&self) -> bool {
        self.overflowed.swap(false, Ordering::AcqRel)
    }
}
