//! The cluster's push log on the broker: one RabbitMQ stream, `pushgate.<CLUSTER_NAME>.log`,
//! and the cluster's shared event queues, declared by every node after each (re)connection.
//!
//! The stream is durable with `x-queue-type: stream`, `x-max-length-bytes` =
//! `CLUSTER_LOG_MAX_BYTES` and `x-max-age` = the recovery window rounded up to whole seconds,
//! at least [`MIN_MAX_AGE`]. Every node must declare it alike: nodes with another
//! `RECOVERY_WINDOW_MS` or `CLUSTER_LOG_MAX_BYTES` are refused by the broker (logged, not
//! ready, retried), as a per-node queue with other arguments is.
//!
//! The shared queues `pushgate.<CLUSTER_NAME>.quota` / `.device` have the per-node queues'
//! binding and dead-letter exchange, plus `x-single-active-consumer: true`; they have no
//! `x-expires`: they belong to the cluster, not to a node, and keep the publishers' events
//! while every node is down.

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use super::ClusterSettings;
use crate::consumers::AmqpSettings;

/// The shortest `x-max-age`, so that a node started with recovery off still reads what was
/// appended while it started.
pub const MIN_MAX_AGE: Duration = Duration::from_secs(60);

/// The stream's `x-max-age`: the recovery window in whole seconds (rounded up), at least
/// [`MIN_MAX_AGE`], as RabbitMQ writes it (`"120s"`).
pub fn max_age(recovery_window: Duration) -> String {
    let window = recovery_window.max(MIN_MAX_AGE);
    let seconds = window.as_secs() + u64::from(window.subsec_nanos() > 0);
    format!("{seconds}s")
}

/// The stream's arguments.
pub fn log_arguments(cluster: &ClusterSettings) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString(LongString::from("stream")),
    );
    args.insert(
        ShortString::from("x-max-age"),
        AMQPValue::LongString(LongString::from(max_age(cluster.recovery_window))),
    );
    args.insert(
        ShortString::from("x-max-length-bytes"),
        AMQPValue::LongLongInt(i64::try_from(cluster.log_max_bytes).unwrap_or(i64::MAX)),
    );
    args
}

/// The arguments of a shared event queue: the dead-letter exchange and a single active
/// consumer.
pub fn shared_queue_arguments(settings: &AmqpSettings) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-dead-letter-exchange"),
        AMQPValue::LongString(LongString::from(settings.dlx.as_str())),
    );
    args.insert(
        ShortString::from("x-single-active-consumer"),
        AMQPValue::Boolean(true),
    );
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_keeps_at_least_the_recovery_window() {
        assert_eq!(max_age(Duration::from_millis(120_000)), "120s");
        assert_eq!(max_age(Duration::from_millis(120_001)), "121s");
        assert_eq!(max_age(Duration::ZERO), "60s");
        let cluster = ClusterSettings::new("c", "n", 1 << 20, Duration::from_secs(300));
        let args = log_arguments(&cluster);
        let inner = args.inner();
        assert_eq!(
            inner.get("x-queue-type"),
            Some(&AMQPValue::LongString("stream".into()))
        );
        assert_eq!(
            inner.get("x-max-age"),
            Some(&AMQPValue::LongString("300s".into()))
        );
        assert_eq!(
            inner.get("x-max-length-bytes"),
            Some(&AMQPValue::LongLongInt(1 << 20))
        );
        let shared = shared_queue_arguments(&AmqpSettings::with_node_id("n"));
        assert_eq!(
            shared.inner().get("x-single-active-consumer"),
            Some(&AMQPValue::Boolean(true))
        );
        assert_eq!(
            shared.inner().get("x-dead-letter-exchange"),
            Some(&AMQPValue::LongString("cloudphone.dlx".into()))
        );
    }
}
