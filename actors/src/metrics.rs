//! The Prometheus metrics every part of pushgate records into, and their text rendering.
//!
//! One [`Metrics`] is created at start and shared (`Arc`) by the supervisor, rooms, sessions,
//! consumers and the HTTP routes. Names start with `pushgate_`.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::push_stats::PushStats;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// How many distinct routing keys get their own label value; later ones share `other`, so a
/// publisher inventing keys cannot grow the metrics without bound.
pub const MAX_ROUTING_KEY_LABELS: usize = 64;

/// The outcome of one AMQP delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmqpOutcome {
    /// Turned into pushes.
    Routed,
    /// No row in the routing table: acked and dropped.
    Ignored,
    /// Malformed: rejected to the dead-letter exchange.
    DeadLettered,
}

impl AmqpOutcome {
    /// The `outcome` label value.
    pub fn name(self) -> &'static str {
        match self {
            AmqpOutcome::Routed => "routed",
            AmqpOutcome::Ignored => "ignored",
            AmqpOutcome::DeadLettered => "dead_lettered",
        }
    }
}

/// All of pushgate's metrics.
pub struct Metrics {
    registry: Registry,
    /// `pushgate_connected_clients`: authenticated Socket.IO sessions and Server-Sent Events
    /// streams.
    pub connected_clients: IntGauge,
    /// `pushgate_rooms`: non-empty rooms.
    pub rooms: IntGauge,
    /// `pushgate_pushes_total{event}`: pushes accepted by the supervisor.
    pub pushes: IntCounterVec,
    /// `pushgate_deliveries_total{event}`: packets handed to sessions.
    pub deliveries: IntCounterVec,
    /// `pushgate_auth_rejected_total`: refused Socket.IO connects and event streams.
    pub auth_rejected: IntCounter,
    /// `pushgate_amqp_messages_total{routing_key,outcome}`.
    amqp_messages: IntCounterVec,
    /// `pushgate_amqp_reconnects_total`: broker connections after the first.
    pub amqp_reconnects: IntCounter,
    /// `pushgate_consumer_up{consumer}`: 1 while a consumer is consuming.
    pub consumer_up: IntGaugeVec,
    /// `pushgate_push_fanout_seconds`: from a push being accepted to the last member
    /// of a room shard (the room's actor on one worker thread) having it in its mailbox; one
    /// observation per shard reached.
    pub push_fanout_seconds: Histogram,
    /// `pushgate_disconnects_total{reason}`: ended Socket.IO sessions and event streams by
    /// reason.
    pub disconnects: IntCounterVec,
    /// `pushgate_pending_sessions`: Engine.IO sessions that have not had a CONNECT accepted
    /// yet (`MAX_PENDING_SESSIONS` caps them).
    pub pending_sessions: IntGauge,
    /// `pushgate_handshakes_refused_total{reason}`: Engine.IO handshakes answered 503
    /// (`pending_sessions`: the cap was reached).
    pub handshakes_refused: IntCounterVec,
    /// `pushgate_http_body_timeouts_total`: requests whose body was not complete within
    /// `HTTP_BODY_TIMEOUT_MS` (their connection is closed).
    pub http_body_timeouts: IntCounter,
    /// `pushgate_room_joins_refused_total`: joins refused because the socket already holds
    /// `MAX_ROOMS_PER_SOCKET` rooms.
    pub room_joins_refused: IntCounter,
    /// `pushgate_recoveries_total{outcome}`: recoveries asked for, by outcome (`recovered`,
    /// `expired`, `unknown`, `offset_too_old`, `user_mismatch`).
    pub recoveries: IntCounterVec,
    /// `pushgate_recovered_pushes_total`: missed pushes handed to recovered sessions.
    pub recovered_pushes: IntCounter,
    /// `pushgate_recovery_history_bytes`: bytes the push history holds.
    pub recovery_history_bytes: IntGauge,
    /// `pushgate_recovery_history_evicted_total`: pushes dropped from the history to stay
    /// within `RECOVERY_HISTORY_BYTES`.
    pub recovery_history_evicted: IntCounter,
    /// `pushgate_consul_up`: 1 while the Consul watcher's last query was answered (0 when
    /// Consul is not configured).
    pub consul_up: IntGauge,
    /// `pushgate_coalesced_total{routing_key}`: events never pushed because a later one about
    /// the same thing replaced them (`QUOTA_COALESCE_MS`: `quota.updated` of one quota).
    pub coalesced: IntCounterVec,
    /// `pushgate_cluster_log_records_skipped_total`: records of the cluster's log this node
    /// could not read (malformed, truncated, oversized, a newer version), skipped.
    pub cluster_log_records_skipped: IntCounter,
    /// `pushgate_cluster_log_append_failures_total`: records this node could not append to
    /// the cluster's log (no broker, no confirm): each a `503` or a requeued event.
    pub cluster_log_append_failures: IntCounter,
    /// `pushgate_cluster_log_records_appended_total`: records this node appended to the
    /// cluster's log (confirmed by the broker).
    pub cluster_log_records_appended: IntCounter,
    /// `pushgate_cluster_log_appends_total`: the appends those records carried (HTTP pushes,
    /// routed events, marks, fences, session records); per record, how much appends shared.
    pub cluster_log_appends: IntCounter,
    /// Pushes, deliveries and write latency by event and source:
    /// `pushgate_pushes_by_source_total{event,source}`,
    /// `pushgate_push_deliveries_total{event,source}` and the histogram
    /// `pushgate_push_latency_seconds{event,source}` (rendered by [`PushStats::render`]).
    pub push_stats: PushStats,
    routing_key_labels: Mutex<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let connected_clients = IntGauge::new(
            "pushgate_connected_clients",
            "Authenticated Socket.IO sessions and event streams on this node",
        )
        .expect("valid metric");
        let rooms = IntGauge::new("pushgate_rooms", "Non-empty rooms on this node").expect("valid");
        let pushes = IntCounterVec::new(
            Opts::new(
                "pushgate_pushes_total",
                "Pushes accepted, by Socket.IO event",
            ),
            &["event"],
        )
        .expect("valid metric");
        let deliveries = IntCounterVec::new(
            Opts::new(
                "pushgate_deliveries_total",
                "Packets handed to sessions, by Socket.IO event",
            ),
            &["event"],
        )
        .expect("valid metric");
        let auth_rejected = IntCounter::new(
            "pushgate_auth_rejected_total",
            "Socket.IO connects and event streams refused for a missing, invalid or expired token",
        )
        .expect("valid metric");
        let amqp_messages = IntCounterVec::new(
            Opts::new(
                "pushgate_amqp_messages_total",
                "RabbitMQ deliveries, by routing key and outcome",
            ),
            &["routing_key", "outcome"],
        )
        .expect("valid metric");
        let amqp_reconnects = IntCounter::new(
            "pushgate_amqp_reconnects_total",
            "Broker connections made after the first one",
        )
        .expect("valid metric");
        let consumer_up = IntGaugeVec::new(
            Opts::new("pushgate_consumer_up", "1 while the consumer is consuming"),
            &["consumer"],
        )
        .expect("valid metric");
        let push_fanout_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "pushgate_push_fanout_seconds",
                "Time from a push being accepted to every session of the room having it queued",
            )
            .buckets(vec![
                0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
            ]),
        )
        .expect("valid metric");
        let disconnects = IntCounterVec::new(
            Opts::new(
                "pushgate_disconnects_total",
                "Ended Socket.IO sessions and event streams, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let pending_sessions = IntGauge::new(
            "pushgate_pending_sessions",
            "Engine.IO sessions waiting for their first accepted CONNECT",
        )
        .expect("valid metric");
        let handshakes_refused = IntCounterVec::new(
            Opts::new(
                "pushgate_handshakes_refused_total",
                "Engine.IO handshakes refused with 503, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let room_joins_refused = IntCounter::new(
            "pushgate_room_joins_refused_total",
            "Joins refused because the socket already holds MAX_ROOMS_PER_SOCKET rooms",
        )
        .expect("valid metric");
        let http_body_timeouts = IntCounter::new(
            "pushgate_http_body_timeouts_total",
            "Requests whose body did not arrive within HTTP_BODY_TIMEOUT_MS",
        )
        .expect("valid metric");
        let consul_up = IntGauge::new(
            "pushgate_consul_up",
            "1 while the Consul watcher's last blocking query was answered",
        )
        .expect("valid metric");
        let coalesced = IntCounterVec::new(
            Opts::new(
                "pushgate_coalesced_total",
                "Events replaced by a later one within the coalescing window, by routing key",
            ),
            &["routing_key"],
        )
        .expect("valid metric");
        for c in [
            Box::new(connected_clients.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rooms.clone()),
            Box::new(pushes.clone()),
            Box::new(deliveries.clone()),
            Box::new(auth_rejected.clone()),
            Box::new(amqp_messages.clone()),
            Box::new(amqp_reconnects.clone()),
            Box::new(consumer_up.clone()),
            Box::new(push_fanout_seconds.clone()),
            Box::new(disconnects.clone()),
            Box::new(pending_sessions.clone()),
            Box::new(handshakes_refused.clone()),
            Box::new(http_body_timeouts.clone()),
            Box::new(room_joins_refused.clone()),
            Box::new(consul_up.clone()),
            Box::new(coalesced.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        for consumer in ["quota", "device"] {
            consumer_up.with_label_values(&[consumer]).set(0);
        }
        handshakes_refused.with_label_values(&["pending_sessions"]);
        coalesced.with_label_values(&["quota.updated"]);
        for event in ["notification", "message"] {
            pushes.with_label_values(&[event]);
            deliveries.with_label_values(&[event]);
        }
        Metrics {
            registry,
            connected_clients,
            rooms,
            pushes,
            deliveries,
            auth_rejected,
            amqp_messages,
            amqp_reconnects,
            consumer_up,
            push_fanout_seconds,
            disconnects,
            pending_sessions,
            handshakes_refused,
            http_body_timeouts,
            room_joins_refused,
            consul_up,
            coalesced,
            push_stats: PushStats::new(),
            routing_key_labels: Mutex::new(HashSet::new()),
            recoveries: IntCounterVec::new(
                Opts::new(
                    "pushgate_recoveries_total",
                    "Connection-state recoveries asked for, by outcome",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            recovered_pushes: IntCounter::new(
                "pushgate_recovered_pushes_total",
                "Missed pushes handed to recovered sessions",
            )
            .expect("valid metric"),
            recovery_history_bytes: IntGauge::new(
                "pushgate_recovery_history_bytes",
                "Bytes held by the push history kept for recovery",
            )
            .expect("valid metric"),
            recovery_history_evicted: IntCounter::new(
                "pushgate_recovery_history_evicted_total",
                "Pushes dropped from the recovery history, oldest first, to stay within its bound",
            )
            .expect("valid metric"),
            cluster_log_records_skipped: IntCounter::new(
                "pushgate_cluster_log_records_skipped_total",
                "Records of the cluster's log this node could not read, skipped",
            )
            .expect("valid metric"),
            cluster_log_append_failures: IntCounter::new(
                "pushgate_cluster_log_append_failures_total",
                "Records this node could not append to the cluster's log",
            )
            .expect("valid metric"),
            cluster_log_records_appended: IntCounter::new(
                "pushgate_cluster_log_records_appended_total",
                "Records this node appended to the cluster's log (confirmed)",
            )
            .expect("valid metric"),
            cluster_log_appends: IntCounter::new(
                "pushgate_cluster_log_appends_total",
                "Appends carried by the records this node appended to the cluster's log",
            )
            .expect("valid metric"),
        }
        .with_recovery_metrics()
        .with_cluster_metrics()
    }

    /// Register cluster mode's metrics (zero on a node on its own).
    fn with_cluster_metrics(self) -> Self {
        for c in [
            self.cluster_log_records_skipped.clone(),
            self.cluster_log_append_failures.clone(),
            self.cluster_log_records_appended.clone(),
            self.cluster_log_appends.clone(),
        ] {
            self.registry
                .register(Box::new(c))
                .expect("metric registered once");
        }
        self
    }

    /// Register the connection-state recovery metrics.
    fn with_recovery_metrics(self) -> Self {
        for c in [
            Box::new(self.recoveries.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(self.recovered_pushes.clone()),
            Box::new(self.recovery_history_bytes.clone()),
            Box::new(self.recovery_history_evicted.clone()),
        ] {
            self.registry.register(c).expect("metric registered once");
        }
        for outcome in [
            "recovered",
            "expired",
            "unknown",
            "offset_too_old",
            "user_mismatch",
        ] {
            self.recoveries.with_label_values(&[outcome]);
        }
        self
    }

    /// Count one AMQP delivery. Routing keys past [`MAX_ROUTING_KEY_LABELS`] distinct values
    /// are counted under `other`.
    pub fn amqp_message(&self, routing_key: &str, outcome: AmqpOutcome) {
        let label = {
            let mut seen = self
                .routing_key_labels
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if seen.contains(routing_key) {
                routing_key
            } else if seen.len() < MAX_ROUTING_KEY_LABELS {
                seen.insert(routing_key.to_owned());
                routing_key
            } else {
                "other"
            }
        };
        self.amqp_messages
            .with_label_values(&[label, outcome.name()])
            .inc();
    }

    /// The count for one routing key and outcome (for tests and stats).
    pub fn amqp_message_count(&self, routing_key: &str, outcome: AmqpOutcome) -> u64 {
        self.amqp_messages
            .with_label_values(&[routing_key, outcome.name()])
            .get()
    }

    /// Render everything in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(4096);
        let mut families = self.registry.gather();
        families.extend(crate::process_metrics::families());
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("text encoding to a Vec cannot fail");
        let mut text = String::from_utf8(out).expect("the text encoder writes UTF-8");
        self.push_stats.render(&mut text);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_required_metric() {
        let m = Metrics::new();
        m.amqp_message("quota.updated", AmqpOutcome::Routed);
        m.push_fanout_seconds.observe(0.001);
        let text = m.render();
        for name in [
            "pushgate_connected_clients",
            "pushgate_rooms",
            "pushgate_pushes_total{event=\"notification\"}",
            "pushgate_auth_rejected_total",
            "pushgate_amqp_messages_total{outcome=\"routed\",routing_key=\"quota.updated\"} 1",
            "pushgate_amqp_reconnects_total",
            "pushgate_consumer_up{consumer=\"quota\"} 0",
            "pushgate_push_fanout_seconds_bucket",
            "pushgate_pending_sessions 0",
            "pushgate_handshakes_refused_total{reason=\"pending_sessions\"} 0",
            "pushgate_http_body_timeouts_total 0",
            "pushgate_room_joins_refused_total 0",
            "pushgate_recoveries_total{outcome=\"offset_too_old\"} 0",
            "pushgate_recovered_pushes_total 0",
            "pushgate_recovery_history_bytes 0",
            "pushgate_recovery_history_evicted_total 0",
            "pushgate_consul_up 0",
            "pushgate_coalesced_total{routing_key=\"quota.updated\"} 0",
            "pushgate_push_deliveries_total{event=\"message\",source=\"amqp\"} 0",
            "pushgate_push_latency_seconds_count{event=\"notification\",source=\"http\"} 0",
            "pushgate_build_info{arch=",
            "process_open_fds ",
            "process_max_fds ",
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(name), "missing {name} in:\n{text}");
        }
    }

    #[test]
    fn routing_key_labels_are_bounded() {
        let m = Metrics::new();
        for i in 0..(MAX_ROUTING_KEY_LABELS + 10) {
            m.amqp_message(&format!("x.{i}"), AmqpOutcome::Ignored);
        }
        assert_eq!(m.amqp_message_count("other", AmqpOutcome::Ignored), 10);
        assert_eq!(m.amqp_message_count("x.0", AmqpOutcome::Ignored), 1);
    }
}
