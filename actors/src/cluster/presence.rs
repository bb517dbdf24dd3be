//! Presence: every node's figures (its connections and the members of each of its rooms),
//! sent every [`HEARTBEAT_INTERVAL`] over the fanout exchange `pushgate.<CLUSTER_NAME>.presence`
//! and kept by every node in its [`PresenceBoard`], so that counts can be cluster-wide.
//!
//! A node's figures are at most one interval old when it is alive; a node that stops sending
//! (killed, cut from the broker) leaves the counts once its last figures are older than the
//! board's expiry (`PING_INTERVAL_MS + PING_TIMEOUT_MS`: by then its clients have noticed it
//! is gone too). Figures are JSON ([`super::figures_codec`]: versioned, read tolerantly, checked),
//! one message per heartbeat, never stored by the broker (each node reads through an
//! exclusive, auto-deleted queue of its own, without acks).
//!
//! A node running the Socket.IO Admin UI adds what the UI's `server_stats` shows of it
//! ([`ServerFigures`]), so that every node's Admin UI lists every live node.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix::prelude::*;

/// How often a node sends its figures.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// One node's figures, as it sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeFigures {
    /// The version of the figures' codec the sender wrote (`v`; figures without one are
    /// version 1, see [`super::figures_codec`]).
    #[serde(rename = "v", default = "first_version")]
    pub version: u32,
    /// The node's `NODE_ID`.
    pub node_id: String,
    /// The node process (`<NODE_ID>/<run>`): a restarted node is another process.
    pub origin: String,
    /// Its registered sessions.
    pub connections: usize,
    /// Its non-empty rooms and how many of its sessions each holds.
    pub rooms: HashMap<String, usize>,
    /// What the Admin UI shows of the node besides its connections, when the node runs the
    /// Admin UI (since version 2; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerFigures>,
}

/// The version of figures that had no `v` yet.
fn first_version() -> u32 {
    1
}

/// What a node's Admin UI `server_stats` carries besides its connections (and its node id).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerFigures {
    /// The node's host name.
    pub hostname: String,
    /// The node's process id.
    pub pid: u32,
    /// How long the node has been running when it sent the figures, in milliseconds.
    pub uptime_ms: u64,
    /// Its root-namespace sockets on long-polling.
    pub polling_connections: usize,
}

/// Ask the Admin UI's view for this node's [`ServerFigures`].
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "ServerFigures")]
pub struct GetServerFigures;

/// Ask the room supervisor for this node's figures (without its node id and origin).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "NodeFigures")]
pub struct GetNodeFigures;

/// The other nodes' latest figures, as this node heard them.
#[derive(Debug)]
pub struct PresenceBoard {
    own_origin: String,
    expiry: Duration,
    nodes: Mutex<HashMap<String, (NodeFigures, Instant)>>,
}

impl PresenceBoard {
    /// A board for the node process `own_origin` (whose own figures it ignores), forgetting a
    /// node whose figures are older than `expiry`.
    pub fn new(own_origin: &str, expiry: Duration) -> Self {
        PresenceBoard {
            own_origin: own_origin.to_owned(),
            expiry,
            nodes: Mutex::default(),
        }
    }

    /// Keep `figures`, heard at `now`.
    pub fn record(&self, figures: NodeFigures, now: Instant) {
        if figures.origin == self.own_origin {
            return;
        }
        let mut nodes = self.nodes.lock().expect("presence lock");
        nodes.insert(figures.origin.clone(), (figures, now));
    }

    /// Sum `of` over the other nodes whose figures are still fresh at `now` (the stale ones
    /// are forgotten).
    pub fn sum(&self, now: Instant, of: impl Fn(&NodeFigures) -> usize) -> usize {
        let mut nodes = self.nodes.lock().expect("presence lock");
        nodes.retain(|_, (_, heard)| now.saturating_duration_since(*heard) <= self.expiry);
        nodes.values().map(|(figures, _)| of(figures)).sum()
    }

    /// Whether the node process `origin` was heard within the expiry before `now`.
    pub fn is_present(&self, origin: &str, now: Instant) -> bool {
        let nodes = self.nodes.lock().expect("presence lock");
        nodes
            .get(origin)
            .is_some_and(|(_, heard)| now.saturating_duration_since(*heard) <= self.expiry)
    }

    /// The other nodes' figures still fresh at `now`, each with its age, by node id.
    pub fn nodes(&self, now: Instant) -> Vec<(NodeFigures, Duration)> {
        let mut nodes = self.nodes.lock().expect("presence lock");
        nodes.retain(|_, (_, heard)| now.saturating_duration_since(*heard) <= self.expiry);
        let mut fresh: Vec<_> = nodes
            .values()
            .map(|(figures, heard)| (figures.clone(), now.saturating_duration_since(*heard)))
            .collect();
        fresh.sort_by(|a, b| (&a.0.node_id, &a.0.origin).cmp(&(&b.0.node_id, &b.0.origin)));
        fresh
    }

    /// The other nodes' sessions in `room`.
    pub fn room_members(&self, room: &str, now: Instant) -> usize {
        self.sum(now, |f| f.rooms.get(room).copied().unwrap_or(0))
    }

    /// The other nodes' sessions.
    pub fn connections(&self, now: Instant) -> usize {
        self.sum(now, |f| f.connections)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(origin: &str, connections: usize, rooms: &[(&str, usize)]) -> NodeFigures {
        NodeFigures {
            version: 1,
            node_id: origin.split('/').next().unwrap().into(),
            origin: origin.into(),
            connections,
            rooms: rooms.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
            server: None,
        }
    }

    #[test]
    fn others_are_summed_until_their_figures_expire() {
        let t0 = Instant::now();
        let board = PresenceBoard::new("me/1", Duration::from_secs(45));
        board.record(figures("me/1", 100, &[("r", 100)]), t0);
        board.record(figures("a/1", 3, &[("r", 2), ("s", 1)]), t0);
        board.record(figures("b/1", 4, &[("r", 4)]), t0 + Duration::from_secs(30));
        assert_eq!(board.connections(t0), 7, "its own figures are not counted");
        assert_eq!(board.room_members("r", t0), 6);
        assert_eq!(board.room_members("s", t0), 1);
        assert_eq!(board.room_members("none", t0), 0);
        // a/1 restarts as a/2: the old process's figures go with the expiry.
        board.record(figures("a/2", 1, &[]), t0 + Duration::from_secs(40));
        let later = t0 + Duration::from_secs(50);
        assert_eq!(board.connections(later), 5, "a/1 expired");
        assert_eq!(board.room_members("r", later), 4);
        let listed: Vec<_> = board
            .nodes(later)
            .into_iter()
            .map(|(f, age)| (f.origin, age))
            .collect();
        assert_eq!(
            listed,
            [
                ("a/2".to_owned(), Duration::from_secs(10)),
                ("b/1".to_owned(), Duration::from_secs(20))
            ]
        );
        let json = serde_json::to_string(&figures("a/1", 1, &[("r", 1)])).unwrap();
        let back: NodeFigures = serde_json::from_str(&json).unwrap();
        assert_eq!(back, figures("a/1", 1, &[("r", 1)]));
    }
}
