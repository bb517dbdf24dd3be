//! The node-wide cap on Engine.IO sessions that have not had a CONNECT accepted yet
//! (`MAX_PENDING_SESSIONS`).
//!
//! A handshake costs the client one request and the server a session (an actor, its timers,
//! its registry entry) for up to `CONNECT_TIMEOUT_MS`; without a cap, a loop of handshakes that
//! never CONNECT grows the server's memory without bound. Every handshake, over either
//! transport, takes a [`PendingSlot`] first ([`PendingSessions::try_acquire`]); when none is
//! left it is answered `503`. The session holds its slot until its CONNECT is accepted or it
//! ends (the slot is released on drop), so authenticated clients never count against the cap.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pushgate_actors::metrics::Metrics;

/// The `reason` label of handshakes refused because the cap is reached.
pub const REFUSED_REASON: &str = "pending_sessions";

/// The cap and the count of slots held, shared by every worker.
pub struct PendingSessions {
    limit: usize,
    held: AtomicUsize,
    metrics: Arc<Metrics>,
}

/// One pending session's place under the cap; released when dropped.
pub struct PendingSlot {
    owner: Arc<PendingSessions>,
}

impl PendingSessions {
    /// A cap of `limit` pending sessions, shown in `metrics` (`pushgate_pending_sessions`,
    /// `pushgate_handshakes_refused_total`).
    pub fn new(limit: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(PendingSessions {
            limit,
            held: AtomicUsize::new(0),
            metrics,
        })
    }

    /// A slot for a new session, or `None` (counted as refused) when `limit` are held.
    pub fn try_acquire(self: &Arc<Self>) -> Option<PendingSlot> {
        let taken = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.limit).then_some(held + 1)
            });
        if taken.is_err() {
            self.metrics
                .handshakes_refused
                .with_label_values(&[REFUSED_REASON])
                .inc();
            return None;
        }
        self.metrics.pending_sessions.inc();
        Some(PendingSlot {
            owner: self.clone(),
        })
    }

    /// How many slots are held.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.owner.held.fetch_sub(1, Ordering::AcqRel);
        self.owner.metrics.pending_sessions.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_released_on_drop() {
        let metrics = Arc::new(Metrics::new());
        let pending = PendingSessions::new(2, metrics.clone());
        let a = pending.try_acquire().expect("first slot");
        let b = pending.try_acquire().expect("second slot");
        assert!(pending.try_acquire().is_none(), "over the cap");
        assert_eq!(pending.held(), 2);
        assert_eq!(metrics.pending_sessions.get(), 2);
        drop(a);
        assert_eq!(pending.held(), 1);
        let c = pending
            .try_acquire()
            .expect("a released slot is free again");
        drop((b, c));
        assert_eq!(pending.held(), 0);
        assert_eq!(metrics.pending_sessions.get(), 0);
        let refused = metrics
            .handshakes_refused
            .with_label_values(&[REFUSED_REASON]);
        assert_eq!(refused.get(), 1);
    }
}
