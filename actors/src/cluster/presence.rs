//! Presence: every node's figures (its connections and the members of each of its rooms),
//! sent every [`HEARTBEAT_INTERVAL`] over the fanout exchange `pushgate.<CLUSTER_NAME>.presence`
//! and kept by every node in its [`PresenceBoard`], so that counts can be cluster-wide.
//!
//! A node's figures are at most one interval old when it is alive; a node that stops sending
//! (killed, cut from the broker) leaves the counts once its last figures are older than the
//! board's expiry (`PING_INTERVAL_MS + PING_TIMEOUT_MS`: by then its clients have noticed it
//! is gone too). Figures are JSON, one message per heartbeat, never stored by the broker (each
//! node reads through an exclusive, auto-deleted queue of its own, without acks).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix::prelude::*;

/// How often a node sends its figures.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// One node's figures, as it sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeFigures {
    /// The node's `NODE_ID`.
    pub node_id: String,
    /// The node process (`<NODE_ID>/<run>`): a restarted node is another process.
    pub origin: String,
    /// Its registered sessions.
    pub connections: usize,
    /// Its non-empty rooms and how many of its sessions each holds.
    pub rooms: HashMap<String, usize>,
}

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
            node_id: origin.split('/').next().unwrap().into(),
            origin: origin.into(),
            connections,
            rooms: rooms.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
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
        let json = serde_json::to_string(&figures("a/1", 1, &[("r", 1)])).unwrap();
        let back: NodeFigures = serde_json::from_str(&json).unwrap();
        assert_eq!(back, figures("a/1", 1, &[("r", 1)]));
    }
}
