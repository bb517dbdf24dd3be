//! The Socket.IO Admin UI's `server_stats` for the other nodes of the cluster, made from their
//! presence figures, so that a node's Admin UI lists every live node (the UI keys servers by
//! `serverId`, this node sends one for each: its own, and one per other live `NODE_ID`).
//!
//! A node is listed while its figures are fresh on the [`PresenceBoard`]; once they expire it
//! is no longer sent, and the UI marks it unhealthy 10 s after its last `server_stats` (the
//! operator removes it there). When a `NODE_ID` has two processes on the board (a node that
//! restarted before its former life's figures expired), the freshest figures stand for it; a
//! former life of this very node is not listed (this node's own `server_stats` stands for it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::presence::{NodeFigures, PresenceBoard};

/// The `server_stats` of every other live node, by node id.
pub fn other_nodes(board: &PresenceBoard, own_node_id: &str, now: Instant) -> Vec<Value> {
    let mut freshest: HashMap<String, (NodeFigures, Duration)> = HashMap::new();
    for (figures, age) in board.nodes(now) {
        if figures.node_id == own_node_id {
            continue;
        }
        match freshest.get(&figures.node_id) {
            Some((_, kept)) if *kept <= age => {}
            _ => {
                freshest.insert(figures.node_id.clone(), (figures, age));
            }
        }
    }
    let mut nodes: Vec<_> = freshest.into_values().collect();
    nodes.sort_by(|a, b| a.0.node_id.cmp(&b.0.node_id));
    nodes
        .iter()
        .map(|(figures, age)| server_stats(figures, *age))
        .collect()
}

/// One node's `server_stats` from its figures, heard `age` ago: its uptime is the one it sent
/// plus that age. A node not running the Admin UI sent no host name, pid, uptime nor polling
/// count: those are left out (the UI shows them blank).
fn server_stats(figures: &NodeFigures, age: Duration) -> Value {
    let mut stats = Map::new();
    stats.insert("serverId".into(), json!(figures.node_id));
    if let Some(server) = &figures.server {
        let uptime = Duration::from_millis(server.uptime_ms) + age;
        stats.insert("hostname".into(), json!(server.hostname));
        stats.insert("pid".into(), json!(server.pid));
        stats.insert("uptime".into(), json!(uptime.as_secs_f64()));
        stats.insert(
            "pollingClientsCount".into(),
            json!(server.polling_connections),
        );
    }
    stats.insert("clientsCount".into(), json!(figures.connections));
    stats.insert(
        "namespaces".into(),
        json!([{"name": "/", "socketsCount": figures.connections}]),
    );
    Value::Object(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::presence::ServerFigures;

    fn figures(origin: &str, connections: usize, server: Option<ServerFigures>) -> NodeFigures {
        NodeFigures {
            version: 2,
            node_id: origin.split('/').next().unwrap().into(),
            origin: origin.into(),
            connections,
            rooms: HashMap::new(),
            server,
        }
    }

    fn server(pid: u32, polling: usize) -> Option<ServerFigures> {
        Some(ServerFigures {
            hostname: format!("host-{pid}"),
            pid,
            uptime_ms: 10_000,
            polling_connections: polling,
        })
    }

    #[test]
    fn each_other_live_node_is_one_server_with_its_figures() {
        let t0 = Instant::now();
        let board = PresenceBoard::new("me/2", Duration::from_secs(45));
        board.record(figures("b/1", 4, server(7, 1)), t0);
        board.record(figures("a/1", 2, None), t0);
        // A former life of this node, and an old life of `b` that restarted as b/2.
        board.record(figures("me/1", 9, server(1, 0)), t0);
        board.record(figures("b/2", 5, server(8, 2)), t0 + Duration::from_secs(5));
        let now = t0 + Duration::from_millis(5_500);
        let listed = other_nodes(&board, "me", now);
        assert_eq!(
            listed,
            [
                json!({"serverId": "a", "clientsCount": 2,
                       "namespaces": [{"name": "/", "socketsCount": 2}]}),
                json!({"serverId": "b", "hostname": "host-8", "pid": 8, "uptime": 10.5,
                       "clientsCount": 5, "pollingClientsCount": 2,
                       "namespaces": [{"name": "/", "socketsCount": 5}]}),
            ]
        );
        // Once their figures expire, nodes are no longer listed.
        let later = t0 + Duration::from_secs(46);
        let listed = other_nodes(&board, "me", later);
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["serverId"], "b");
        assert!(other_nodes(&board, "me", t0 + Duration::from_secs(51)).is_empty());
    }
}
