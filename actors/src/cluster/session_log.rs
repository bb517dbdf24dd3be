//! How a node's room supervisor writes its sessions' records to the cluster's log
//! ([`SessionLog`]), and how the log reader hands it every node's ([`LoggedSession`]).
//!
//! The supervisor must not wait on the broker inside a handler, so [`SessionLog::append`]
//! only queues the record with the appender, whose queue keeps the order, so a session's
//! records reach the log in the order they happened (a `Live` before its `Ended`); the
//! session records queued together share a record.
//! A record that cannot be appended (no broker connection) is dropped with a warning and
//! counted in `pushgate_cluster_log_append_failures_total`; what then holds is documented in
//! `docs/cluster.md` (a session whose node cannot reach the broker cannot be recovered
//! elsewhere either).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;

use super::appender::{AppendError, LogAppender};
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
    appender: LogAppender,
    metrics: Arc<Metrics>,
}

impl SessionLog {
    /// Session records of the node process `origin`, appended through `appender`.
    pub fn new(appender: LogAppender, origin: String, metrics: Arc<Metrics>) -> Self {
        SessionLog {
            origin,
            appender,
            metrics,
        }
    }

    /// This node process, as its records name it.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Queue `event` for the log (after every record queued before it); a task of the current
    /// arbiter waits for its confirm and says when it did not go in.
    pub fn append(&self, event: SessionEvent) {
        let record = LogRecord::Session {
            origin: self.origin.clone(),
            event,
        };
        let metrics = self.metrics.clone();
        match self.appender.submit_record(&record) {
            Ok(pending) => {
                actix::spawn(async move {
                    if let Err(e) = pending.confirmed().await {
                        lost(&metrics, &e);
                    }
                });
            }
            Err(e) => lost(&metrics, &e),
        }
    }
}

fn lost(metrics: &Metrics, e: &AppendError) {
    metrics.cluster_log_append_failures.inc();
    log::warn!("a session record did not reach the cluster's log: {e}");
}

/// Now, in milliseconds since the Unix epoch (the clock session records carry).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
