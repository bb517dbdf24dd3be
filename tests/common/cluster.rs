//! Cluster mode's harness: nodes of one cluster as real `pushgate` children on 127.0.0.1
//! (each with its own `NODE_ID` and port) sharing a test's own vhost on the real broker, and
//! the clients and pushes the cluster tests use.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pushgate::config::Config;
use serde_json::Value;

use super::{http, send, Answer, Frame, RawClient, ServerProcess, API_KEY, SECRET};

/// The line a node logs once its log reader reached its own start mark: from then on it
/// delivers what is appended.
const LIVE_LINE: &str = "delivering from here";

/// One node of a test cluster.
pub struct ClusterNode {
    /// The child process.
    pub process: ServerProcess,
}

impl ClusterNode {
    /// Start a node of the cluster `name` on the broker at `url`, and wait until it delivers.
    pub fn start(url: &str, name: &str) -> ClusterNode {
        let process = ServerProcess::start(&[
            ("CLUSTER", "rabbitmq"),
            ("CLUSTER_NAME", name),
            ("RABBITMQ_URL", url),
            ("RECOVERY_WINDOW_MS", "120000"),
            ("QUOTA_COALESCE_MS", "0"),
            ("RUST_LOG", "info,tracing::span=warn,lapin=warn"),
        ]);
        let node = ClusterNode { process };
        node.wait_for_line(LIVE_LINE, Duration::from_secs(30));
        node
    }

    /// Start `n` nodes side by side (their start-up overlaps).
    pub fn start_many(n: usize, url: &str, name: &str) -> Vec<ClusterNode> {
        std::thread::scope(|scope| {
            let starting: Vec<_> = (0..n)
                .map(|_| scope.spawn(|| ClusterNode::start(url, name)))
                .collect();
            starting
                .into_iter()
                .map(|s| s.join().expect("node started"))
                .collect()
        })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.process.addr
    }

    /// Read its log until a line containing `text`; panics after `timeout`.
    pub fn wait_for_line(&self, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.process.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(e) => panic!("node {} never logged {text:?}: {e}", self.addr()),
            }
        }
    }

    /// The sum of every series of metric `name` whose labels contain `labels`.
    pub fn metric_sum(&self, name: &str, labels: &str) -> u64 {
        self.process
            .metrics()
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

/// A token for `sub` signed with the nodes' secret.
pub fn cluster_token(sub: &str, admin: bool) -> String {
    let config = Config::for_tests(SECRET, Some(API_KEY));
    pushgate::auth::mint(
        &config.jwt.secret,
        &pushgate::auth::TokenClaims::new(&config.jwt, sub, admin, Duration::from_secs(3600)),
    )
}

/// A WebSocket client of the node at `addr`, connected as `sub` (and welcomed).
pub async fn cluster_client(addr: SocketAddr, sub: &str, admin: bool) -> RawClient {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let mut client = RawClient::connect(&url, &[]).await.expect("WebSocket");
    let auth = format!(r#"{{"token":"{}"}}"#, cluster_token(sub, admin));
    let answer = client.handshake(Some(&auth)).await;
    assert!(answer.starts_with("40{\"sid\""), "CONNECT: {answer}");
    let welcome = client.expect_text().await;
    assert!(welcome.starts_with("42[\"welcome\""), "{welcome}");
    client
}

/// Have `client` join `room` (it must be allowed to).
pub async fn join(client: &mut RawClient, room: &str) {
    client
        .send(&format!(r#"42["join_room",{{"room":"{room}"}}]"#))
        .await;
    let reply = client.expect_text().await;
    assert!(reply.starts_with("42[\"room_joined\""), "{reply}");
}

/// `POST <path>` with `body` to the node at `addr`, with the API key.
pub async fn api_post(addr: SocketAddr, path: &str, body: &Value) -> Answer {
    send(
        http()
            .post(format!("http://{addr}{path}"))
            .insert_header(("X-API-Key", API_KEY))
            .insert_header(("Content-Type", "application/json")),
        Some(body.to_string().into_bytes()),
    )
    .await
}

/// The push packets (`42[...]`) `client` reads within `quiet` of each other; pings answered.
pub async fn pushes_until_quiet(client: &mut RawClient, quiet: Duration) -> Vec<String> {
    let mut pushes = Vec::new();
    loop {
        match client.next(quiet).await {
            Some(Frame::Text(t)) if t == "2" => client.send("3").await,
            Some(Frame::Text(t)) if t.starts_with("42") => pushes.push(t),
            Some(other) => panic!("unexpected frame {other:?}"),
            None => return pushes,
        }
    }
}

/// A push packet's arguments: event, payload, offset.
pub fn push_parts(packet: &str) -> (String, Value, String) {
    let args: Vec<Value> = serde_json::from_str(&packet[2..]).expect("a JSON array");
    assert_eq!(args.len(), 3, "event, payload, offset: {packet}");
    (
        args[0].as_str().expect("event").to_owned(),
        args[1].clone(),
        args[2].as_str().expect("offset").to_owned(),
    )
}
