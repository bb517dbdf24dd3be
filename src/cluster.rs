//! Cluster mode at the edge (`CLUSTER=rabbitmq`, contract §6): how an HTTP push enters the
//! cluster's log, and what the `202` says.
//!
//! A push accepted by the HTTP API is not handed to this node's room supervisor: it is
//! appended to the cluster's log ([`pushgate_actors::cluster`]) and answered `202` once the
//! broker confirmed it; every node, this one included, then reads it back and delivers it to
//! its own sessions. No broker connection, a refusal or no confirm in time: `503
//! {"error":"unavailable",...}`, and nothing is pushed.

use actix::Addr;
use pushgate_actors::cluster::{LogAppender, LogRecord};
use pushgate_actors::metrics::Metrics;
use pushgate_actors::room_supervisor::CountReach;
use pushgate_actors::{Push, PushTarget, RoomSupervisor};

use crate::http::error::ApiError;

/// This node's way into the cluster's log.
pub struct ClusterEdge {
    /// Appends with publisher confirms (the broker link gives it its channel).
    pub appender: LogAppender,
    /// This process among the nodes (`<NODE_ID>/<run>`), written into each record.
    pub origin: String,
}

impl ClusterEdge {
    /// Append `push` to the cluster's log; once confirmed, the `clients` figure of the `202`
    /// ([`cluster_clients`]).
    pub async fn push(
        &self,
        push: Push,
        supervisor: &Addr<RoomSupervisor>,
        metrics: &Metrics,
    ) -> Result<usize, ApiError> {
        let target = push.target.clone();
        let record = LogRecord::Pushes {
            origin: self.origin.clone(),
            device: None,
            pushes: vec![push.into()],
        };
        if let Err(e) = self.appender.append(&record).await {
            metrics.cluster_log_append_failures.inc();
            log::warn!("HTTP push refused with 503: {e}");
            return Err(ApiError::Unavailable(e.to_string()));
        }
        cluster_clients(supervisor, target).await
    }
}

/// The `clients` of a cluster-mode `202`: the sessions the push reaches.
///
/// **Today this node's sessions only**, counted when the append was confirmed (the push
/// itself reaches them a moment later, when this node reads it back from the log). This is
/// the seam for cluster-wide counts: with every node's figures at hand (a presence heartbeat
/// per node), this function adds the other nodes' counts for `target`; its callers do not
/// change.
pub async fn cluster_clients(
    supervisor: &Addr<RoomSupervisor>,
    target: PushTarget,
) -> Result<usize, ApiError> {
    supervisor
        .send(CountReach { target })
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))
}
