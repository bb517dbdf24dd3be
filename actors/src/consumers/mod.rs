//! The RabbitMQ side of pushgate (docs/rabbitmq.md): one broker connection, two consumer actors.
//!
//! - [`broker_link::BrokerLink`] owns the connection: it connects (retrying with a backoff
//!   capped at [`MAX_BACKOFF`]), declares the [`topology`], attaches the consumers, notices a
//!   lost connection or a cancelled consumer and starts over, and shuts everything down cleanly
//!   on [`Shutdown`].
//! - [`event_consumer::EventConsumer`] is the consumer actor, generic over its
//!   [`event_consumer::Family`]: [`quota_events::QuotaEventsConsumer`] reads
//!   `pushgate.<node>.quota`, [`device_events::DeviceEventsConsumer`] reads
//!   `pushgate.<node>.device`. Each handles one delivery at a time, in order: route it
//!   ([`crate::routing::route`]), hand the pushes to the [`RoomSupervisor`], then ack. The
//!   quota consumer holds back storms of `quota.updated` ([`storm_coalescer`]).
//!
//! The server calls [`start_consumers`] once at start and sends [`Shutdown`] on SIGTERM.
//!
//! lapin runs on the tokio runtime actix already drives: with its `tokio` feature,
//! `Connection::connect` uses `async_rs::Runtime::tokio_current()`, i.e. the runtime of the
//! arbiter the [`BrokerLink`] lives on (lapin adds one I/O thread per connection).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::room_supervisor::RoomSupervisor;

pub mod broker_link;
pub mod delivery_stream;
pub mod device_events;
pub mod event_consumer;
pub mod messages;
pub mod quota_events;
pub mod settler;
pub mod storm_coalescer;
pub mod topology;

pub use broker_link::BrokerLink;
pub use device_events::DeviceEventsConsumer;
pub use messages::Shutdown;
pub use quota_events::QuotaEventsConsumer;

/// Default broker URL (`RABBITMQ_URL`).
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Default topic exchange publishers send to (`RABBITMQ_EXCHANGE`).
pub const DEFAULT_EXCHANGE: &str = "cloudphone.events";
/// Default dead-letter exchange (`RABBITMQ_DLX`).
pub const DEFAULT_DLX: &str = "cloudphone.dlx";
/// Default unacked deliveries per consumer (`RABBITMQ_PREFETCH`).
pub const DEFAULT_PREFETCH: u16 = 256;
/// Default `x-expires` of this node's queues (`RABBITMQ_QUEUE_EXPIRES_MS`).
pub const DEFAULT_QUEUE_EXPIRES_MS: u32 = 600_000;
/// Default largest event body routed (`MAX_PAYLOAD_BYTES`); a larger one is dead-lettered.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1_000_000;
/// Default storm coalescing window of `quota.updated` (`QUOTA_COALESCE_MS`), in ms.
pub const DEFAULT_QUOTA_COALESCE_MS: u64 = 250;
/// Longest wait between two connection (or declaration, or consume) attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Everything the consumers need to know about the broker (docs/configuration.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpSettings {
    /// `RABBITMQ_URL`, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: String,
    /// `RABBITMQ_EXCHANGE`: the durable topic exchange publishers send to.
    pub exchange: String,
    /// `RABBITMQ_DLX`: where poison messages go.
    pub dlx: String,
    /// `NODE_ID`: names this node's queues, `pushgate.<node_id>.quota` / `.device`.
    pub node_id: String,
    /// `RABBITMQ_PREFETCH`: unacked deliveries per consumer.
    pub prefetch: u16,
    /// `RABBITMQ_QUEUE_EXPIRES_MS`: `x-expires` of this node's queues (must be > 0; the broker
    /// refuses 0, which shows as a declaration error in the log).
    pub queue_expires_ms: u32,
    /// `MAX_PAYLOAD_BYTES`: an event body larger than this is dead-lettered unread (poison),
    /// never pushed (no client would take the message).
    pub max_event_bytes: usize,
    /// `QUOTA_COALESCE_MS`: `quota.updated` events of one quota (`userId` + `quotaId`) within
    /// this window after one was pushed are held, and only the latest is pushed at its end;
    /// zero: every event is pushed at once ([`storm_coalescer`]).
    pub quota_coalesce: Duration,
}

impl AmqpSettings {
    /// The documented defaults, with this node's id.
    pub fn with_node_id(node_id: impl Into<String>) -> Self {
        AmqpSettings {
            url: DEFAULT_URL.to_owned(),
            exchange: DEFAULT_EXCHANGE.to_owned(),
            dlx: DEFAULT_DLX.to_owned(),
            node_id: node_id.into(),
            prefetch: DEFAULT_PREFETCH,
            queue_expires_ms: DEFAULT_QUEUE_EXPIRES_MS,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            quota_coalesce: Duration::from_millis(DEFAULT_QUOTA_COALESCE_MS),
        }
    }
}

/// Starts the broker link and its two consumers on the current arbiter and returns the link.
///
/// Never fails and never blocks: with the broker down, the link keeps retrying (at most
/// [`MAX_BACKOFF`] between tries) while `readiness` says not ready; once both consumers consume,
/// [`Readiness::is_ready`] turns true. Routed events go to `supervisor` as
/// [`Push`](crate::messages::Push)es; `metrics` gets the `pushgate_amqp_*` and
/// `pushgate_consumer_up` series.
///
/// On SIGTERM, `link.send(Shutdown).await`: it cancels both consumers, lets the delivery being
/// handled finish (acked), pushes the updates held by storm coalescing, closes the channels and the connection, then answers; the link stops
/// afterwards.
///
/// Must be called from within a running actix system.
pub fn start_consumers(
    settings: AmqpSettings,
    supervisor: Addr<RoomSupervisor>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
) -> Addr<BrokerLink> {
    BrokerLink::new(settings, supervisor, metrics, readiness).start()
}

/// [`start_consumers`] in cluster mode: the link consumes the cluster's shared queues and
/// reads and appends to its log (see [`crate::cluster`]) through `cluster`'s appender, which
/// the HTTP API shares.
pub fn start_cluster_consumers(
    settings: AmqpSettings,
    cluster: crate::cluster::ClusterParts,
    supervisor: Addr<RoomSupervisor>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
) -> Addr<BrokerLink> {
    BrokerLink::new(settings, supervisor, metrics, readiness)
        .in_cluster(cluster)
        .start()
}

/// Delay before retry number `attempt` (0-based): 100 ms doubling, capped at [`MAX_BACKOFF`].
pub fn backoff_delay(attempt: u32) -> Duration {
    Duration::from_millis(100)
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_BACKOFF)
}

/// The AMQP soft error (channel-level reply code) behind a lapin error, if any.
pub(crate) fn soft_error(error: &lapin::Error) -> Option<lapin::protocol::AMQPSoftError> {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(e) => match e.kind() {
            lapin::protocol::AMQPErrorKind::Soft(soft) => Some(soft.clone()),
            lapin::protocol::AMQPErrorKind::Hard(_) => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped_at_five_seconds() {
        assert_eq!(backoff_delay(0), Duration::from_millis(100));
        assert_eq!(backoff_delay(1), Duration::from_millis(200));
        assert_eq!(backoff_delay(5), Duration::from_millis(3200));
        assert_eq!(backoff_delay(6), MAX_BACKOFF);
        assert_eq!(backoff_delay(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = AmqpSettings::with_node_id("n1");
        assert_eq!(s.exchange, "cloudphone.events");
        assert_eq!(s.dlx, "cloudphone.dlx");
        assert_eq!((s.prefetch, s.queue_expires_ms), (256, 600_000));
        assert_eq!(s.max_event_bytes, 1_000_000);
        assert_eq!(s.quota_coalesce, Duration::from_millis(250));
        assert_eq!(s.url, "amqp://guest:guest@127.0.0.1:5672/%2f");
    }
}
