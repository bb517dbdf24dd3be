//! Cluster mode at the edge (`CLUSTER=rabbitmq`, docs/cluster.md): how an HTTP push enters the
//! cluster's log, and what the `202` says.
//!
//! A push accepted by the HTTP API is not handed to this node's room supervisor: it is
//! appended to the cluster's log ([`pushgate_actors::cluster`]) and answered `202` once the
//! broker confirmed it; every node, this one included, then reads it back and delivers it to
//! its own sessions. No broker connection, a refusal or no confirm in time: `503
//! {"error":"unavailable",...}`, and nothing is pushed.
//!
//! Counts (`clients` in the `202`, `GET /api/v1/rooms/{room}`, `GET /api/v1/stats`) add the
//! other nodes' latest figures ([`PresenceBoard`]) to this node's; `/api/v1/stats` also lists
//! each node ([`ClusterEdge::stats`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use pushgate_actors::cluster::presence::GetNodeFigures;
use pushgate_actors::cluster::{LogAppender, PresenceBoard};
use pushgate_actors::metrics::Metrics;
use pushgate_actors::room_supervisor::CountReach;
use pushgate_actors::{GetStats, Push, PushTarget, RoomSize, RoomSupervisor};
use serde_json::{json, Value};

use crate::http::error::ApiError;

/// This node's way into the cluster's log.
pub struct ClusterEdge {
    /// Appends with publisher confirms (the broker link gives it its channel).
    pub appender: LogAppender,
    /// This process among the nodes (`<NODE_ID>/<run>`): its node id names it in the stats.
    pub origin: String,
    /// The other nodes' figures (their presence heartbeats).
    pub presence: Arc<PresenceBoard>,
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
        let appended = match self.appender.submit(&[push.into()], None) {
            Ok(pending) => pending.confirmed().await,
            Err(e) => Err(e),
        };
        if let Err(e) = appended {
            metrics.cluster_log_append_failures.inc();
            log::warn!("HTTP push refused with 503: {e}");
            return Err(ApiError::Unavailable(e.to_string()));
        }
        cluster_clients(supervisor, &self.presence, target).await
    }

    /// `GET /api/v1/rooms/{room}` in cluster mode: this node's members of `room` now, and the
    /// other nodes' as their latest figures say.
    pub async fn room_size(
        &self,
        room: String,
        supervisor: &Addr<RoomSupervisor>,
    ) -> Result<usize, ApiError> {
        let others = self.presence.room_members(&room, Instant::now());
        let here = supervisor
            .send(RoomSize { room })
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        Ok(here + others)
    }

    /// `GET /api/v1/stats` in cluster mode: this node's statistics, with `connections` and
    /// `rooms` counting the whole cluster (a room with members on several nodes once), and
    /// `nodes`: each node's `connections`, `rooms` and the age of its figures (`age_ms`, `0`
    /// for this node), by node id.
    pub async fn stats(&self, supervisor: &Addr<RoomSupervisor>) -> Result<Value, ApiError> {
        let unavailable = |e: actix::MailboxError| ApiError::Unavailable(e.to_string());
        let stats = supervisor.send(GetStats).await.map_err(unavailable)?;
        let here = supervisor.send(GetNodeFigures).await.map_err(unavailable)?;
        let others = self.presence.nodes(Instant::now());
        let node_id = self
            .origin
            .rsplit_once('/')
            .map_or(self.origin.as_str(), |(id, _)| id);
        let mut rooms: HashSet<&str> = here.rooms.keys().map(String::as_str).collect();
        let mut nodes = vec![json!({
            "node": node_id,
            "connections": here.connections,
            "rooms": here.rooms.len(),
            "age_ms": 0,
        })];
        for (figures, age) in &others {
            rooms.extend(figures.rooms.keys().map(String::as_str));
            nodes.push(json!({
                "node": figures.node_id,
                "connections": figures.connections,
                "rooms": figures.rooms.len(),
                "age_ms": age.as_millis() as u64,
            }));
        }
        let mut body = serde_json::to_value(&stats).expect("stats serialize");
        body["connections"] =
            json!(here.connections + others.iter().map(|(f, _)| f.connections).sum::<usize>());
        body["rooms"] = json!(rooms.len());
        body["nodes"] = Value::Array(nodes);
        Ok(body)
    }
}

/// The `clients` of a cluster-mode `202`: the sessions the push reaches, on every node.
///
/// This node's are counted when the append was confirmed (the push itself reaches them a
/// moment later, when this node reads it back from the log); the other nodes' come from
/// their latest figures (at most a heartbeat old; a silent node's expire). The HTTP API pushes
/// to a room or to everyone; for a room except the members of another (only routed events
/// have those, and they answer no one) the other nodes' members of both rooms would be
/// counted too.
pub async fn cluster_clients(
    supervisor: &Addr<RoomSupervisor>,
    presence: &PresenceBoard,
    target: PushTarget,
) -> Result<usize, ApiError> {
    let now = Instant::now();
    let others = match &target {
        PushTarget::Room(room) | PushTarget::RoomExceptMembersOf { room, .. } => {
            presence.room_members(room, now)
        }
        PushTarget::Everyone => presence.connections(now),
    };
    let here = supervisor
        .send(CountReach { target })
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(here + others)
}
