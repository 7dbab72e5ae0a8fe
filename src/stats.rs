//! Server-wide counters, updated with relaxed atomics from any thread.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Adds one.
    pub fn increment(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one.
    pub fn decrement(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the server has done since it started.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted and given a session.
    pub connections_accepted: Counter,
    /// Connections refused with SERVER_FULL.
    pub connections_refused: Counter,
    /// Sessions alive now.
    pub sessions_active: Gauge,
    /// Sessions closed because a client sent something that ends the connection.
    pub protocol_errors: Counter,
    /// Sessions closed with SLOW_CONSUMER.
    pub slow_consumer_disconnects: Counter,
    /// Chat messages ordered by rooms.
    pub chat_messages: Counter,
    /// Chat message copies queued for members (the sender's echo included).
    pub deliveries: Counter,
    /// Rooms created.
    pub rooms_created: Counter,
}
