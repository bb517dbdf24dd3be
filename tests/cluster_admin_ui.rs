//! Issue 19 in cluster mode (docs/admin-ui.md, docs/cluster.md), black-box: three nodes of one
//! cluster as real `pushgate` children with the Admin UI on, an Admin UI client (raw
//! Engine.IO over a real WebSocket, as in `tests/admin_ui.rs`) logged in to one of them.
//!
//! - Every `server_stats` round lists every live node once by its `NODE_ID`, with its own
//!   client count, host name and pid (the other nodes' from their presence figures).
//! - A killed node (SIGKILL) leaves the rounds once its figures expired; the others stay.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use pushgate_test_support::broker::Vhost;
use serde_json::{json, Value};

const USERNAME: &str = "ops";
const PASSWORD: &str = "s3cret-pass";
/// bcrypt of [`PASSWORD`], cost 4 (quick to check in a debug build).
const PASSWORD_HASH: &str = "$2a$04$YfMLggF0BYhVhqzC4vwaZOkC1l7XP6auoYQwvMh.jRAKOQExEOenm";

/// How long the test waits for the rounds it expects before it gives up (a failure, not a
/// measure: figures go round every second and expire after the heartbeat's 4 s).
const PATIENCE: Duration = Duration::from_secs(60);

/// Start the nodes `ids` of the cluster `name` with the Admin UI on and a 2 s + 2 s heartbeat
/// (a silent node's figures expire after 4 s).
fn start_nodes(ids: &[&str], url: &str, name: &str) -> Vec<ClusterNode> {
    std::thread::scope(|scope| {
        let starting: Vec<_> = ids
            .iter()
            .map(|id| {
                scope.spawn(move || {
                    ClusterNode::start_with(
                        url,
                        name,
                        &[
                            ("NODE_ID", id),
                            ("ADMIN_UI_USERNAME", USERNAME),
                            ("ADMIN_UI_PASSWORD_HASH", PASSWORD_HASH),
                            ("PING_INTERVAL_MS", "2000"),
                            ("PING_TIMEOUT_MS", "2000"),
                        ],
                    )
                })
            })
            .collect();
        starting
            .into_iter()
            .map(|s| s.join().expect("node started"))
            .collect()
    })
}

/// Connect `sub` to the node at `addr` and keep its socket alive (pings answered) in the
/// background until the connection ends.
async fn kept_client(addr: SocketAddr, sub: &str) {
    let mut client = cluster_client(addr, sub, false).await;
    actix_web::rt::spawn(async move {
        loop {
            match client.next(Duration::from_secs(3600)).await {
                Some(Frame::Text(t)) if t == "2" => client.send("3").await,
                Some(Frame::Close(_)) | None => break,
                Some(_) => {}
            }
        }
    });
}

/// An Admin UI client logged in to one node.
struct AdminClient {
    ws: RawClient,
    /// The `server_stats` that began the next round, read while finishing the last one.
    next_round: Option<Value>,
}

impl AdminClient {
    /// Open a connection to `addr` and log in to `/admin` with the password.
    async fn logged_in(addr: SocketAddr) -> Self {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let mut ws = RawClient::connect(&url, &[]).await.expect("WebSocket");
        let open = ws.expect_text().await;
        assert!(open.starts_with("0{"), "open packet, got {open}");
        let auth = json!({"username": USERNAME, "password": PASSWORD});
        ws.send(&format!("40/admin,{auth}")).await;
        let answer = ws.expect_text().await;
        assert!(answer.starts_with("40/admin,{\"sid\":"), "{answer}");
        AdminClient {
            ws,
            next_round: None,
        }
    }

    /// The next `/admin` event, as its JSON array (Engine.IO pings answered).
    async fn next_event(&mut self) -> Value {
        self.ws.next_admin_event().await
    }

    /// The next `server_stats` (other events skipped).
    async fn next_stats(&mut self) -> Value {
        loop {
            let event = self.next_event().await;
            if event[0] == "server_stats" {
                return event[1].clone();
            }
        }
    }

    /// One round of `server_stats` by server id: the node's own (which comes first), then
    /// every other one it sends before its own comes again.
    async fn round(&mut self, own: &str) -> BTreeMap<String, Value> {
        let mut first = match self.next_round.take() {
            Some(stats) => stats,
            None => self.next_stats().await,
        };
        while first["serverId"] != own {
            first = self.next_stats().await;
        }
        let mut round = BTreeMap::from([(own.to_owned(), first)]);
        loop {
            let stats = self.next_stats().await;
            let id = stats["serverId"].as_str().expect("serverId").to_owned();
            if id == own {
                self.next_round = Some(stats);
                return round;
            }
            assert!(
                round.insert(id.clone(), stats).is_none(),
                "{id} twice in a round"
            );
        }
    }

    /// Read rounds until one lists exactly the servers of `clients` with those client
    /// counts; returns it.
    async fn round_of(&mut self, own: &str, clients: &[(&str, u64)]) -> BTreeMap<String, Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let round = self.round(own).await;
            let counts: Vec<_> = round
                .iter()
                .map(|(id, stats)| (id.as_str(), stats["clientsCount"].as_u64().unwrap_or(0)))
                .collect();
            if counts == clients {
                return round;
            }
            assert!(
                Instant::now() < deadline,
                "still {counts:?}, waiting for {clients:?}"
            );
        }
    }
}

#[actix_web::test]
async fn every_live_node_is_a_server_in_the_admin_ui_and_a_dead_one_leaves() {
    let vhost = Vhost::create();
    let mut nodes = start_nodes(&["ui-a", "ui-b", "ui-c"], &vhost.user_url(), "adminui");
    // One client on ui-a, two on ui-b, three on ui-c.
    for (i, node) in nodes.iter().enumerate() {
        for n in 0..=i {
            kept_client(node.addr(), &format!("u{i}-{n}")).await;
        }
    }

    let mut admin = AdminClient::logged_in(nodes[0].addr()).await;
    let round = admin
        .round_of("ui-a", &[("ui-a", 1), ("ui-b", 2), ("ui-c", 3)])
        .await;
    let mut pids = Vec::new();
    for (id, stats) in &round {
        let count = stats["clientsCount"].clone();
        assert!(
            stats["hostname"].as_str().is_some_and(|h| !h.is_empty()),
            "{stats}"
        );
        assert!(stats["uptime"].as_f64().is_some_and(|u| u > 0.0), "{stats}");
        assert_eq!(stats["pollingClientsCount"], 0, "{stats}");
        assert_eq!(
            stats["namespaces"],
            json!([{"name": "/", "socketsCount": count}]),
            "{id}"
        );
        pids.push(stats["pid"].as_u64().expect("pid"));
    }
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 3, "three processes: {round:?}");

    // ui-c is killed: once its figures expired it is no longer sent; the others stay.
    nodes.remove(2).process.kill();
    let round = admin.round_of("ui-a", &[("ui-a", 1), ("ui-b", 2)]).await;
    assert_eq!(round["ui-b"]["namespaces"][0]["socketsCount"], 2);
    // And it stays gone.
    for _ in 0..2 {
        let round = admin.round("ui-a").await;
        assert_eq!(
            round.keys().collect::<Vec<_>>(),
            ["ui-a", "ui-b"],
            "{round:?}"
        );
    }
}
