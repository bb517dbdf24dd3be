//! What `/ready` reports: the broker connection's state and each consumer's, whether Consul is
//! watched (shown, but never part of being ready), and whether the server is draining before a
//! shutdown (never ready again).
//!
//! Written by the RabbitMQ consumers, the Consul watcher and the shutdown sequence, read by the
//! HTTP probe; lock-free.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// State of the broker connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmqpState {
    /// Not connected and not trying right now (waiting out a backoff).
    Disconnected = 0,
    /// A connection attempt is under way.
    Connecting = 1,
    /// Connected.
    Connected = 2,
}

impl AmqpState {
    /// The name `/ready` shows.
    pub fn name(self) -> &'static str {
        match self {
            AmqpState::Disconnected => "disconnected",
            AmqpState::Connecting => "connecting",
            AmqpState::Connected => "connected",
        }
    }
}

/// The consumers `/ready` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerKind {
    /// `pushgate.<node>.quota`, bound to `quota.*`.
    Quota = 0,
    /// `pushgate.<node>.device`, bound to `device.*`.
    Device = 1,
}

impl ConsumerKind {
    /// Both kinds, in display order.
    pub const ALL: [ConsumerKind; 2] = [ConsumerKind::Quota, ConsumerKind::Device];

    /// The name used in `/ready`, metrics labels and queue names.
    pub fn name(self) -> &'static str {
        match self {
            ConsumerKind::Quota => "quota",
            ConsumerKind::Device => "device",
        }
    }
}

/// State of the Consul watcher (docs/socketio.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsulState {
    /// `CONSUL_URL` is unset: `/ready` does not mention Consul.
    Off = 0,
    /// The last query was answered.
    Watching = 1,
    /// Not answered yet, or the last query failed.
    Unreachable = 2,
}

impl ConsulState {
    /// The name `/ready` shows, `None` when Consul is not configured.
    pub fn name(self) -> Option<&'static str> {
        match self {
            ConsulState::Off => None,
            ConsulState::Watching => Some("watching"),
            ConsulState::Unreachable => Some("unreachable"),
        }
    }
}

/// State of cluster mode's log reader (docs/cluster.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterLogState {
    /// `CLUSTER=off`: `/ready` does not mention the log.
    Off = 0,
    /// Not reading the cluster's log (no broker connection yet, or lost): not ready.
    Stopped = 1,
    /// Reading the history up to this node's start: not ready yet.
    CatchingUp = 2,
    /// Reading and delivering what is appended.
    Reading = 3,
}

impl ClusterLogState {
    /// The name `/ready` shows, `None` when cluster mode is off.
    pub fn name(self) -> Option<&'static str> {
        match self {
            ClusterLogState::Off => None,
            ClusterLogState::Stopped => Some("stopped"),
            ClusterLogState::CatchingUp => Some("catching_up"),
            ClusterLogState::Reading => Some("reading"),
        }
    }
}

/// Shared readiness flags.
#[derive(Debug)]
pub struct Readiness {
    amqp: AtomicU8,
    consumers: [AtomicBool; 2],
    consul: AtomicU8,
    cluster_log: AtomicU8,
    draining: AtomicBool,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    /// Everything down: the state before the first connection.
    pub fn new() -> Self {
        Readiness {
            amqp: AtomicU8::new(AmqpState::Disconnected as u8),
            consumers: [AtomicBool::new(false), AtomicBool::new(false)],
            consul: AtomicU8::new(ConsulState::Off as u8),
            draining: AtomicBool::new(false),
            cluster_log: AtomicU8::new(ClusterLogState::Off as u8),
        }
    }

    /// Record the cluster's log reader's state.
    pub fn set_cluster_log(&self, state: ClusterLogState) {
        self.cluster_log.store(state as u8, Ordering::Release);
    }

    /// The cluster's log reader's state.
    pub fn cluster_log(&self) -> ClusterLogState {
        match self.cluster_log.load(Ordering::Acquire) {
            1 => ClusterLogState::Stopped,
            2 => ClusterLogState::CatchingUp,
            3 => ClusterLogState::Reading,
            _ => ClusterLogState::Off,
        }
    }

    /// Record the Consul watcher's state.
    pub fn set_consul(&self, state: ConsulState) {
        self.consul.store(state as u8, Ordering::Release);
    }

    /// The Consul watcher's state.
    pub fn consul(&self) -> ConsulState {
        match self.consul.load(Ordering::Acquire) {
            1 => ConsulState::Watching,
            2 => ConsulState::Unreachable,
            _ => ConsulState::Off,
        }
    }

    /// Record the broker connection's state.
    pub fn set_amqp(&self, state: AmqpState) {
        self.amqp.store(state as u8, Ordering::Release);
    }

    /// The broker connection's state.
    pub fn amqp(&self) -> AmqpState {
        match self.amqp.load(Ordering::Acquire) {
            2 => AmqpState::Connected,
            1 => AmqpState::Connecting,
            _ => AmqpState::Disconnected,
        }
    }

    /// Record whether a consumer is consuming.
    pub fn set_consuming(&self, kind: ConsumerKind, consuming: bool) {
        self.consumers[kind as usize].store(consuming, Ordering::Release);
    }

    /// Whether a consumer is consuming.
    pub fn consuming(&self, kind: ConsumerKind) -> bool {
        self.consumers[kind as usize].load(Ordering::Acquire)
    }

    /// The server is shutting down: from now on it is never ready, so that a load balancer
    /// sends no new clients while the connected ones are still served. There is no way back.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether the server is draining before a shutdown.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Ready when every consumer is consuming, in cluster mode the log is read live, and the
    /// server is not draining.
    pub fn is_ready(&self) -> bool {
        !self.is_draining()
            && ConsumerKind::ALL.iter().all(|k| self.consuming(*k))
            && matches!(
                self.cluster_log(),
                ClusterLogState::Off | ClusterLogState::Reading
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_consumer_consumes() {
        let r = Readiness::new();
        assert!(!r.is_ready());
        assert_eq!(r.amqp(), AmqpState::Disconnected);
        r.set_amqp(AmqpState::Connected);
        r.set_consuming(ConsumerKind::Quota, true);
        assert!(!r.is_ready());
        r.set_consuming(ConsumerKind::Device, true);
        assert!(r.is_ready());
        r.set_consuming(ConsumerKind::Quota, false);
        assert!(!r.is_ready());
        assert_eq!(r.amqp().name(), "connected");
    }

    #[test]
    fn in_cluster_mode_ready_also_waits_for_the_log_read_live() {
        let r = Readiness::new();
        r.set_consuming(ConsumerKind::Quota, true);
        r.set_consuming(ConsumerKind::Device, true);
        assert_eq!(r.cluster_log().name(), None);
        for (state, ready) in [
            (ClusterLogState::Stopped, false),
            (ClusterLogState::CatchingUp, false),
            (ClusterLogState::Reading, true),
        ] {
            r.set_cluster_log(state);
            assert_eq!(r.cluster_log(), state);
            assert_eq!(r.is_ready(), ready, "{state:?}");
        }
        assert_eq!(r.cluster_log().name(), Some("reading"));
    }

    #[test]
    fn consul_is_shown_but_never_decides_readiness() {
        let r = Readiness::new();
        assert_eq!(r.consul(), ConsulState::Off);
        assert_eq!(r.consul().name(), None);
        r.set_consuming(ConsumerKind::Quota, true);
        r.set_consuming(ConsumerKind::Device, true);
        r.set_consul(ConsulState::Unreachable);
        assert!(r.is_ready());
        assert_eq!(r.consul().name(), Some("unreachable"));
        r.set_consul(ConsulState::Watching);
        assert_eq!(r.consul().name(), Some("watching"));
    }

    #[test]
    fn draining_is_never_ready_again() {
        let r = Readiness::new();
        r.set_consuming(ConsumerKind::Quota, true);
        r.set_consuming(ConsumerKind::Device, true);
        assert!(r.is_ready() && !r.is_draining());
        r.set_draining();
        assert!(r.is_draining());
        assert!(!r.is_ready());
        r.set_consuming(ConsumerKind::Quota, true);
        assert!(
            !r.is_ready(),
            "a consumer coming back does not undo draining"
        );
    }
}
