//! How a node's room supervisor writes its sessions' records to the cluster's log
//! ([`SessionLog`]), and how the log reader hands it every node's ([`LoggedSession`]).
//!
//! The supervisor must not wait on the broker inside a handler, so [`SessionLog::append`]
//! only queues the record; one task appends the queue in order, each with its confirm, so a
//! session's records reach the log in the order they happened (a `Live` before its `Ended`).
//! A record that cannot be appended (no broker connection) is dropped with a warning and
//! counted in `pushgate_cluster_log_append_failures_total`; what then holds is documented in
//! `docs/cluster.md` (a session whose node cannot reach the broker cannot be recovered
//! elsewhere either).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use futures::channel::mpsc;
use futures::StreamExt;

use super::appender::LogAppender;
use super::record::LogRecord;
use super::session_record::SessionEvent;
use crate::metrics::Metrics;

/// A session record read from the cluster's log, any node's (this one's included), in log
/// order with the pushes: the supervisor applies it to its
/// [`SessionRecords`](crate::recovery::SessionRecords).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LoggedSession {
    /// The node process that appended it.
    pub origin: String,
    /// What happened to the session.
    pub event: SessionEvent,
}

/// Appends this node's session records, in order; see the module doc.
#[derive(Clone)]
pub struct SessionLog {
    origin: String,
    queue: mpsc::UnboundedSender<LogRecord>,
}

impl SessionLog {
    /// Start the appending task (on the current actix system) for the node process `origin`.
    pub fn start(appender: LogAppender, origin: String, metrics: Arc<Metrics>) -> Self {
        let (queue, mut records) = mpsc::unbounded::<LogRecord>();
        actix::spawn(async move {
            while let Some(record) = records.next().await {
                if let Err(e) = appender.append(&record).await {
                    metrics.cluster_log_append_failures.inc();
                    log::warn!("a session record did not reach the cluster's log: {e}");
                }
            }
        });
        SessionLog { origin, queue }
    }

    /// This node process, as its records name it.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Queue `event` for the log.
    pub fn append(&self, event: SessionEvent) {
        let record = LogRecord::Session {
            origin: self.origin.clone(),
            event,
        };
        if self.queue.unbounded_send(record).is_err() {
            log::warn!("the session log's task is gone; a session record is lost");
        }
    }
}

/// Now, in milliseconds since the Unix epoch (the clock session records carry).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
