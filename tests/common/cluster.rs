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
        ClusterNode::start_with(url, name, &[])
    }

    /// [`ClusterNode::start`] with more variables (e.g. its `NODE_ID`, to restart a node as
    /// itself).
    pub fn start_with(url: &str, name: &str, vars: &[(&str, &str)]) -> ClusterNode {
        let node = ClusterNode::launch(url, name, vars);
        node.wait_for_line(LIVE_LINE, Duration::from_secs(30));
        node
    }

    /// [`ClusterNode::start_with`] without waiting until it delivers: it answers, and its
    /// reader may still be catching up.
    pub fn launch(url: &str, name: &str, vars: &[(&str, &str)]) -> ClusterNode {
        let mut all = vec![
            ("CLUSTER", "rabbitmq"),
            ("CLUSTER_NAME", name),
            ("RABBITMQ_URL", url),
            ("RECOVERY_WINDOW_MS", "120000"),
            ("QUOTA_COALESCE_MS", "0"),
            ("RUST_LOG", "info,tracing::span=warn,lapin=warn"),
        ];
        all.extend_from_slice(vars);
        ClusterNode {
            process: ServerProcess::start(&all),
        }
    }

    /// Start `n` nodes side by side (their start-up overlaps).
    pub fn start_many(n: usize, url: &str, name: &str) -> Vec<ClusterNode> {
        ClusterNode::start_each(&vec![None; n], url, name)
    }

    /// Start a node for each of `ids` side by side, each as its `NODE_ID` (a random one for
    /// `None`).
    pub fn start_each(ids: &[Option<&str>], url: &str, name: &str) -> Vec<ClusterNode> {
        std::thread::scope(|scope| {
            let starting: Vec<_> = ids
                .iter()
                .map(|id| {
                    scope.spawn(move || match id {
                        Some(id) => ClusterNode::start_with(url, name, &[("NODE_ID", id)]),
                        None => ClusterNode::start(url, name),
                    })
                })
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

    /// Read its log until it logged a line containing each of `texts`, in any order; panics
    /// after `timeout`.
    pub fn wait_for_lines(&self, texts: &[&str], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut missing: Vec<&str> = texts.to_vec();
        while !missing.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.process.log.recv_timeout(left) {
                Ok(line) => missing.retain(|text| !line.contains(text)),
                Err(e) => panic!("node {} never logged {missing:?}: {e}", self.addr()),
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

/// A client that connected asking for its session back (or a new one).
pub struct Reconnected {
    /// The client, past its `welcome`.
    pub client: RawClient,
    /// The socket id of the CONNECT reply.
    pub sid: String,
    /// The `pid` of the CONNECT reply.
    pub pid: String,
    /// The pushes written between the CONNECT reply and `welcome`.
    pub missed: Vec<String>,
    /// `welcome`'s `recovered`.
    pub recovered: bool,
}

/// A WebSocket client of the node at `addr`, connected as `sub` with the `pid` and `offset`
/// of an earlier session (each when given), as socket.io-client reconnects.
pub async fn reconnect(
    addr: SocketAddr,
    sub: &str,
    admin: bool,
    pid: Option<&str>,
    offset: Option<&str>,
) -> Reconnected {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let mut client = RawClient::connect(&url, &[]).await.expect("WebSocket");
    let mut auth = serde_json::json!({ "token": cluster_token(sub, admin) });
    if let Some(pid) = pid {
        auth["pid"] = pid.into();
    }
    if let Some(offset) = offset {
        auth["offset"] = offset.into();
    }
    let answer = client.handshake(Some(&auth.to_string())).await;
    let reply: Value = answer
        .strip_prefix("40")
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| panic!("CONNECT: {answer}"));
    let mut missed = Vec::new();
    let welcome = loop {
        let packet = client.expect_text().await;
        if packet.starts_with("42[\"welcome\"") {
            break packet;
        }
        assert!(packet.starts_with("42["), "before welcome: {packet}");
        missed.push(packet);
    };
    let welcome: Value = serde_json::from_str(&welcome[2..]).expect("welcome JSON");
    Reconnected {
        client,
        sid: reply["sid"].as_str().expect("sid").to_owned(),
        pid: reply["pid"].as_str().expect("pid").to_owned(),
        missed,
        recovered: welcome[1]["recovered"].as_bool().expect("recovered"),
    }
}

/// Have `client` join `room` (it must be allowed to).
pub async fn join(client: &mut RawClient, room: &str) {
    client
        .send(&format!(r#"42["join_room",{{"room":"{room}"}}]"#))
        .await;
    let reply = client.expect_text().await;
    assert!(reply.starts_with("42[\"room_joined\""), "{reply}");
}

/// `GET <path>` of the node at `addr`, with the API key.
pub async fn api_get(addr: SocketAddr, path: &str) -> Answer {
    send(
        http()
            .get(format!("http://{addr}{path}"))
            .insert_header(("X-API-Key", API_KEY)),
        None,
    )
    .await
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

/// `POST <path>` with `body` to the node at `addr`: its status, or `None` when the request
/// failed (e.g. the node stopped meanwhile).
pub async fn try_api_post(addr: SocketAddr, path: &str, body: &Value) -> Option<u16> {
    let resp = http()
        .post(format!("http://{addr}{path}"))
        .insert_header(("X-API-Key", API_KEY))
        .insert_header(("Content-Type", "application/json"))
        .send_body(body.to_string())
        .await
        .ok()?;
    Some(resp.status().as_u16())
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
