//! Cluster mode on RabbitMQ (`CLUSTER=rabbitmq`, docs/cluster.md): several nodes share the broker,
//! and every push reaches every target client exactly once, in one order, whichever node it
//! is connected to.
//!
//! # How
//!
//! - **One log.** Every push, from the HTTP API of any node or from a publisher's event, is
//!   appended as a [`record::LogRecord`] to one RabbitMQ stream, `pushgate.<CLUSTER_NAME>.log`
//!   ([`stream`]), with publisher confirms ([`appender::LogAppender`]): a push is accepted
//!   (`202`, or the event acked) once the broker confirmed it, never before.
//! - **Every node reads it all** ([`reader::LogReader`]) and delivers to its own sessions
//!   only what it reads: the node that accepted a push does not deliver it directly. The
//!   stream's order is the one order every node delivers in, and each push is delivered once
//!   per node, so once per client.
//! - **Offsets are the stream's** ([`position`]): a push's recovery offset is made from its
//!   record's stream offset, so it is the same on every node; the recovery history is a
//!   [`PositionedPushLog`](crate::recovery::PositionedPushLog) fed by the reader.
//! - **A starting node rebuilds the history**: it appends its own start mark, then reads from
//!   "now minus the recovery window" (a timestamp offset). What it reads before its mark goes
//!   into the history only; what comes after is delivered live. A reader that reconnects
//!   resumes after the last record it read (no gap, no duplicate).
//! - **Publishers' events are routed once**: the shared queues `pushgate.<CLUSTER_NAME>.quota`
//!   / `.device` (same bindings and dead-lettering as the per-node ones, plus
//!   `x-single-active-consumer`) are consumed by every node; the broker delivers to one at a
//!   time. That node routes the event as a lone node would, appends its pushes (with the device
//!   status change behind `oldStatus`), and acks it once their record is confirmed; it
//!   appends the next events meanwhile (the settler keeps the acks in order).
//!   Every node applies the status changes it reads from the log to its device status cache,
//!   so whichever node becomes the active consumer knows the latest statuses: before it
//!   routes its first device event, it appends a fence and waits until its reader has read
//!   it back ([`fence`]).
//!
//! - **Counts are cluster-wide** ([`presence`]): every node sends its figures every second
//!   ([`beacon::PresenceBeacon`], in the versioned form of [`figures_codec`]) and keeps the
//!   others'; a silent node's figures expire. The Admin UI lists every live node from them
//!   ([`node_server_stats`]).
//!
//! The broker connection is the [`BrokerLink`](crate::consumers::BrokerLink)'s: in cluster
//! mode it declares the cluster's topology instead of the node's, opens the appender's
//! channel, and attaches the log reader beside the two event consumers, with the same
//! reconnect and re-attach logic.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Recipient;

use crate::device_status_cache::DeviceStatusCache;
use crate::metrics::Metrics;
use crate::routing::EventFamily;

pub mod appender;
pub mod batch;
pub mod beacon;
pub mod fence;
pub mod figures_codec;
pub mod logged_push;
pub mod node_server_stats;
pub mod position;
pub mod presence;
pub mod reader;
pub mod record;
pub mod session_log;
pub mod session_record;
pub mod stream;

pub use appender::{AppendError, LogAppender, PendingAppend};
pub use beacon::PresenceBeacon;
pub use fence::Fences;
pub use logged_push::LoggedPush;
pub use presence::{GetServerFigures, NodeFigures, PresenceBoard, ServerFigures};
pub use reader::LogReader;
pub use record::{DeviceChange, LogRecord, RecordedPush};
pub use session_log::{LoggedSession, SessionLog};
pub use session_record::{pid_hash, PidHash, SessionEvent};

/// The device status cache shared by the device consumer (which routes with it) and the log
/// reader (which applies the status changes other nodes routed).
pub type SharedDeviceStatus = Arc<Mutex<DeviceStatusCache>>;

/// What the broker link needs in cluster mode: the settings, and the appender and presence
/// board it shares with the HTTP API.
#[derive(Clone)]
pub struct ClusterParts {
    /// The cluster's names and bounds, and this process's origin.
    pub settings: ClusterSettings,
    /// Appends to the cluster's log (the link gives it its channel).
    pub appender: LogAppender,
    /// The other nodes' figures, for cluster-wide counts.
    pub presence: Arc<PresenceBoard>,
    /// Where this node's [`ServerFigures`] come from when it runs the Admin UI (its view):
    /// they are sent with its figures.
    pub server_figures: Option<Recipient<GetServerFigures>>,
    /// This process's fences: the device consumer waits on them, the log reader passes them.
    pub fences: Arc<Fences>,
}

impl ClusterParts {
    /// The parts for `settings`, with an appender not attached yet (counting into `metrics`)
    /// and a presence board that forgets a node silent for `presence_expiry`
    /// (`PING_INTERVAL_MS + PING_TIMEOUT_MS`).
    pub fn new(
        settings: ClusterSettings,
        presence_expiry: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let appender = LogAppender::new(
            &settings.log_name(),
            &settings.origin,
            settings.append_interval,
            metrics,
        );
        let presence = Arc::new(PresenceBoard::new(&settings.origin, presence_expiry));
        ClusterParts {
            settings,
            appender,
            presence,
            server_figures: None,
            fences: Arc::default(),
        }
    }
}

/// `CLUSTER_APPEND_INTERVAL_MS` when unset: 1 ms.
pub const DEFAULT_APPEND_INTERVAL: Duration = Duration::from_millis(1);

/// What cluster mode needs besides the broker settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// `CLUSTER_NAME`: names the log and the shared queues.
    pub name: String,
    /// `CLUSTER_LOG_MAX_BYTES`: the stream's `x-max-length-bytes`.
    pub log_max_bytes: u64,
    /// `RECOVERY_WINDOW_MS`: how far back a starting node reads; the stream keeps at least
    /// this long (`x-max-age`, see [`stream::max_age`]).
    pub recovery_window: Duration,
    /// This process among the nodes: `<NODE_ID>/<random>`, new at every start, so that a node
    /// restarted under the same `NODE_ID` tells its records from its former life's.
    pub origin: String,
    /// `CLUSTER_APPEND_INTERVAL_MS`: the least time between two records this node appends
    /// (see [`appender`]).
    pub append_interval: Duration,
}

impl ClusterSettings {
    /// Settings for the cluster `name`, with a fresh origin for node `node_id`.
    pub fn new(
        name: impl Into<String>,
        node_id: &str,
        log_max_bytes: u64,
        recovery_window: Duration,
    ) -> Self {
        ClusterSettings {
            name: name.into(),
            log_max_bytes,
            recovery_window,
            origin: format!("{node_id}/{:08x}", rand_u32()),
            append_interval: DEFAULT_APPEND_INTERVAL,
        }
    }

    /// The same settings, appending at most one record per `interval`.
    pub fn with_append_interval(self, interval: Duration) -> Self {
        ClusterSettings {
            append_interval: interval,
            ..self
        }
    }

    /// `pushgate.<name>.log`.
    pub fn log_name(&self) -> String {
        format!("pushgate.{}.log", self.name)
    }

    /// `pushgate.<name>.presence`: the fanout exchange of the nodes' figures.
    pub fn presence_name(&self) -> String {
        format!("pushgate.{}.presence", self.name)
    }

    /// `pushgate.<name>.<family>`: the family's queue shared by every node.
    pub fn queue_name(&self, family: EventFamily) -> String {
        format!("pushgate.{}.{}", self.name, family.name())
    }
}

/// A random number from the standard library's per-process random hasher keys (no new
/// dependency for eight hex digits).
fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_documented_ones_and_origins_differ_per_start() {
        let a = ClusterSettings::new("blue", "n1", 1 << 30, Duration::from_secs(120));
        let b = ClusterSettings::new("blue", "n1", 1 << 30, Duration::from_secs(120));
        assert_eq!(a.log_name(), "pushgate.blue.log");
        assert_eq!(a.queue_name(EventFamily::Quota), "pushgate.blue.quota");
        assert_eq!(a.queue_name(EventFamily::Device), "pushgate.blue.device");
        assert!(a.origin.starts_with("n1/"));
        assert_ne!(a.origin, b.origin);
    }
}
