//! The count of a server's open upgraded connections: they run as tasks of their own, which
//! actix-server neither counts nor waits for, so the shutdown waits on this count instead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The upgraded connections of one server that are still open.
#[derive(Clone, Default)]
pub struct Connections(Arc<AtomicUsize>);

impl Connections {
    /// How many are open.
    pub fn open(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Wait until none is open, or `limit` has passed.
    pub async fn drained(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.open() > 0 && Instant::now() < deadline {
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Count one more open connection, until the returned [`Open`] drops.
    pub(super) fn enter(&self) -> Open {
        self.0.fetch_add(1, Ordering::Relaxed);
        Open(self.clone())
    }
}

/// One open upgraded connection, counted in [`Connections`] until dropped.
pub(super) struct Open(Connections);

impl Drop for Open {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::Relaxed);
    }
}
