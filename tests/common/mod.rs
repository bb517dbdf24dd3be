//! Shared harness for the integration tests: start the real server on 127.0.0.1:0 inside the
//! test's actix system, mint tokens, and talk raw Engine.IO over a real WebSocket.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::web::Bytes;
use awc::ws;
use futures::{SinkExt, StreamExt};
use pushgate::auth::{mint, TokenClaims};
use pushgate::config::Config;
use pushgate::session::Mode;

/// The JWT secret every test server uses.
pub const SECRET: &str = "integration-test-secret-0123456789abcdef";
/// The push API key every test server uses.
pub const API_KEY: &str = "integration-test-api-key";

/// A running server.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its configuration.
    pub config: Config,
    /// Stops the server (on drop).
    pub handle: actix_web::dev::ServerHandle,
    /// The server's shared state.
    pub state: actix_web::web::Data<pushgate::http::AppState>,
}

impl TestServer {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `ws://127.0.0.1:<port>/socket.io/?EIO=4&transport=websocket` plus `extra` query.
    pub fn ws_url(&self, extra: &str) -> String {
        format!(
            "ws://{}/socket.io/?EIO=4&transport=websocket{extra}",
            self.addr
        )
    }

    /// A user token for `sub`, signed with the server's secret.
    pub fn token(&self, sub: &str, admin: bool) -> String {
        mint(
            &self.config.jwt.secret,
            &TokenClaims::new(&self.config.jwt, sub, admin, Duration::from_secs(3600)),
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Stop without waiting; the actix system of the test ends right after anyway.
        drop(self.handle.stop(false));
    }
}

/// Socket.IO packets a client may not send once connected (each is a protocol error on
/// either transport).
pub const MALFORMED_PACKETS: [&str; 13] = [
    "",
    "x",
    "9",
    "4",
    "4x",
    "42",
    "42{\"not\":\"array\"}",
    "42[]",
    "42[\"disconnect\"]",
    "42[\"subscribe\"",
    "45-[\"x\"]",
    "0",
    "44{\"message\":\"client may not\"}",
];

/// The test configuration: loopback, port 0, the test secret and API key, short timers.
pub fn config() -> Config {
    let mut c = Config::for_tests(SECRET, Some(API_KEY));
    c.engine.ping_interval = Duration::from_millis(300);
    c.engine.ping_timeout = Duration::from_millis(200);
    c.engine.connect_timeout = Duration::from_millis(1000);
    c
}

/// Start a server with `config` on 127.0.0.1:0. Call inside `#[actix_web::test]`.
pub fn start_with(config: Config) -> TestServer {
    start_with_mode(config, Mode::Gateway)
}

/// Start a server with `config` on `listener` (e.g. the address a stopped server had); also
/// returns its [`ShutdownHandle`](pushgate::server::ShutdownHandle) for a graceful stop. Call
/// inside `#[actix_web::test]`.
pub fn start_on(
    config: Config,
    listener: TcpListener,
) -> (TestServer, pushgate::server::ShutdownHandle) {
    launch(config, listener, Mode::Gateway)
}

/// Start a server with `config` in `mode` on `listener`, spawned on the test's actix system.
fn launch(
    config: Config,
    listener: TcpListener,
    mode: Mode,
) -> (TestServer, pushgate::server::ShutdownHandle) {
    let addr = listener.local_addr().unwrap();
    let running = pushgate::start(config.clone(), listener, mode).expect("server starts");
    let handle = running.server.handle();
    let shutdown = running.shutdown_handle();
    actix_web::rt::spawn(running.server);
    let server = TestServer {
        addr,
        config,
        handle,
        state: running.state,
    };
    (server, shutdown)
}

/// Start a server with the test configuration.
pub fn start() -> TestServer {
    start_with(config())
}

/// An HTTP client.
pub fn http() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish()
}

/// A raw Engine.IO client over WebSocket.
pub struct RawClient {
    framed: actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
}

/// What a raw client read.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// A close frame with its code.
    Close(Option<u16>),
}

impl RawClient {
    /// Open a WebSocket to `url` with extra headers.
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<Self, String> {
        let mut req = awc::Client::new().ws(url).max_frame_size(4 * 1024 * 1024);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        match req.connect().await {
            Ok((_resp, framed)) => Ok(RawClient { framed }),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Send a text frame.
    pub async fn send(&mut self, text: &str) {
        self.framed
            .send(ws::Message::Text(text.to_owned().into()))
            .await
            .expect("send text");
    }

    /// Send a binary frame.
    pub async fn send_binary(&mut self, data: Vec<u8>) {
        self.framed
            .send(ws::Message::Binary(Bytes::from(data)))
            .await
            .expect("send binary");
    }

    /// The next frame (answering WebSocket pings), or None on end/timeout.
    pub async fn next(&mut self, timeout: Duration) -> Option<Frame> {
        loop {
            let item = actix_rt::time::timeout(timeout, self.framed.next())
                .await
                .ok()??;
            match item.ok()? {
                ws::Frame::Text(b) => {
                    return Some(Frame::Text(String::from_utf8(b.to_vec()).expect("utf8")))
                }
                ws::Frame::Binary(b) => return Some(Frame::Binary(b.to_vec())),
                ws::Frame::Close(reason) => {
                    return Some(Frame::Close(reason.map(|r| u16::from(r.code))))
                }
                ws::Frame::Ping(p) => {
                    let _ = self.framed.send(ws::Message::Pong(p)).await;
                }
                _ => {}
            }
        }
    }

    /// The next text frame that is not an Engine.IO ping (pings are answered).
    pub async fn next_text(&mut self) -> Option<String> {
        loop {
            match self.next(Duration::from_secs(5)).await? {
                Frame::Text(t) if t == "2" => self.send("3").await,
                Frame::Text(t) => return Some(t),
                _ => return None,
            }
        }
    }

    /// Open a session and connect to `/` with `auth` (the CONNECT payload); returns the
    /// CONNECT answer (`40{...}` or `44{...}`).
    pub async fn handshake(&mut self, auth: Option<&str>) -> String {
        let open = self.next_text().await.expect("open packet");
        assert!(open.starts_with("0{"), "open packet, got {open}");
        self.send(&format!("40{}", auth.unwrap_or(""))).await;
        self.next_text().await.expect("connect answer")
    }

    /// Connect as `token`, expecting success; consumes the welcome event.
    pub async fn connected(server: &TestServer, token: &str) -> Self {
        let mut c = RawClient::connect(&server.ws_url(""), &[]).await.unwrap();
        let answer = c
            .handshake(Some(&format!(r#"{{"token":"{token}"}}"#)))
            .await;
        assert!(answer.starts_with("40{\"sid\""), "{answer}");
        let welcome = c.next_text().await.unwrap();
        assert!(welcome.starts_with("42[\"welcome\""), "{welcome}");
        c
    }

    /// Answer pings for `duration`; returns any other frames read meanwhile.
    pub async fn idle(&mut self, duration: std::time::Duration) -> Vec<Frame> {
        let deadline = std::time::Instant::now() + duration;
        let mut other = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.next(left).await {
                Some(Frame::Text(t)) if t == "2" => self.send("3").await,
                Some(f) => other.push(f),
                None => break,
            }
        }
        other
    }

    /// Read frames until the server's close, which must carry `code`; pings before it are
    /// read and left unanswered, anything else fails the test.
    pub async fn expect_close(&mut self, code: u16) {
        loop {
            match self.next(Duration::from_secs(2)).await {
                Some(Frame::Text(t)) if t == "2" => {}
                Some(Frame::Close(got)) => {
                    assert_eq!(got, Some(code));
                    return;
                }
                other => panic!("expected a close with {code}, got {other:?}"),
            }
        }
    }

    /// Send a raw close frame.
    pub async fn close(&mut self) {
        let _ = self.framed.send(ws::Message::Close(None)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Node end-to-end tests (tests/e2e): the real socket.io-client against the real server.

/// `tests/e2e`, the node project.
pub fn e2e_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

impl TestServer {
    /// The environment the node tests read: server URL, JWT secret / issuer / audience, API key.
    pub fn node_env(&self) -> Vec<(String, String)> {
        let jwt = &self.config.jwt;
        [
            ("PUSHGATE_URL", self.url("")),
            ("PUSHGATE_JWT_SECRET", jwt.secret.clone()),
            (
                "PUSHGATE_API_KEY",
                self.config.push_api_key.clone().unwrap_or_default(),
            ),
            (
                "PUSHGATE_JWT_ISSUER",
                jwt.issuer.clone().unwrap_or_default(),
            ),
            (
                "PUSHGATE_JWT_AUDIENCE",
                jwt.audience.clone().unwrap_or_default(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// Check that `node` (>= 20.10, for `--test-concurrency`) is installed; panics with a clear
/// message otherwise. Blocking.
pub fn require_node() {
    let out = std::process::Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `node --version` ({e}): the e2e tests need Node.js >= 20.10 on PATH")
        });
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut parts = version
        .trim_start_matches('v')
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    assert!(
        (major, minor) >= (20, 10),
        "node {version} is too old: the e2e tests need Node.js >= 20.10"
    );
}

/// Run `npm ci` in tests/e2e unless its `node_modules` is complete (npm writes
/// `node_modules/.package-lock.json` last). Once per process; blocking.
pub fn ensure_node_modules() {
    static DONE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = e2e_dir();
    if *done || dir.join("node_modules/.package-lock.json").exists() {
        *done = true;
        return;
    }
    println!("running `npm ci` in {}", dir.display());
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `npm ci` in {} ({e}): the e2e tests need npm (Node.js >= 20.10) on PATH",
                dir.display()
            )
        });
    assert!(
        status.success(),
        "`npm ci` in {} failed: {status}",
        dir.display()
    );
    *done = true;
}

/// The node test files: `tests/e2e/*.test.mjs`, sorted.
pub fn node_test_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(e2e_dir())
        .expect("read tests/e2e")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".test.mjs")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.test.mjs in tests/e2e");
    files
}

/// Run `cmd` in its own process group, printing its stdout and stderr line by line as they come
/// (captured by the test harness like any test output). After `timeout` the whole group is
/// killed and `Err` is returned. Blocking: call it off the actix runtime.
pub fn run_streaming(
    mut cmd: std::process::Command,
    timeout: Duration,
) -> Result<std::process::ExitStatus, String> {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;

    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            println!("{line}");
        }
    });
    let err = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("{line}");
        }
    });
    let deadline = std::time::Instant::now() + timeout;
    let result = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if std::time::Instant::now() >= deadline => {
                // The process group: node and the test files it runs as child processes.
                let _ = std::process::Command::new("kill")
                    .args(["-s", "KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("timed out after {timeout:?}; killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => break Err(format!("waiting for the child: {e}")),
        }
    };
    let _ = out.join();
    let _ = err.join();
    result
}

// ---------------------------------------------------------------------------------------------
// Raw Engine.IO over HTTP long-polling, and a few HTTP helpers around it.

/// The Engine.IO long-polling record separator.
pub const RS: char = '\x1e';

/// Start a server with `config` in `mode` (e.g. [`Mode::ProtocolTestSuite`], which also serves
/// the Engine.IO echo sessions at `/engine.io/`). Call inside `#[actix_web::test]`.
pub fn start_with_mode(config: Config, mode: Mode) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    launch(config, listener, mode).0
}

/// What an HTTP request got back.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: awc::http::StatusCode,
    /// The headers.
    pub headers: awc::http::header::HeaderMap,
    /// The body (lossy UTF-8).
    pub body: String,
}

impl Answer {
    /// Read a whole response (up to 16 MiB).
    pub async fn read<S>(mut resp: awc::ClientResponse<S>) -> Self
    where
        S: futures::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
    {
        let body = resp.body().limit(16 << 20).await.expect("read the body");
        Answer {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// The Engine.IO error code of a JSON error body (`{"code": N, "message": "..."}`).
    pub fn eio_code(&self) -> Option<i64> {
        let v: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        assert!(v["message"].is_string(), "error body {}", self.body);
        v["code"].as_i64()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The names of every `Access-Control-*` header.
    pub fn cors_headers(&self) -> Vec<String> {
        self.headers
            .keys()
            .map(|k| k.as_str().to_owned())
            .filter(|k| k.starts_with("access-control-"))
            .collect()
    }
}

/// Send `req` (with `body`, if any) and read the whole answer.
pub async fn send(req: awc::ClientRequest, body: Option<Vec<u8>>) -> Answer {
    let resp = match body {
        Some(b) => req.send_body(b).await,
        None => req.send().await,
    };
    Answer::read(resp.expect("HTTP request")).await
}

/// Split a long-polling payload into its packets.
pub fn split_payload(body: &str) -> Vec<String> {
    body.split(RS).map(str::to_owned).collect()
}

impl TestServer {
    /// `http://127.0.0.1:<port><path>?EIO=4&transport=polling<extra>`.
    pub fn polling_url(&self, path: &str, extra: &str) -> String {
        format!("http://{}{path}?EIO=4&transport=polling{extra}", self.addr)
    }

    /// `ws://127.0.0.1:<port><path>?EIO=4&transport=websocket<extra>`.
    pub fn ws_url_at(&self, path: &str, extra: &str) -> String {
        format!("ws://{}{path}?EIO=4&transport=websocket{extra}", self.addr)
    }

    /// Push `body` to `user:<user>` through the HTTP API; returns the `clients` count.
    pub async fn push_to_user(&self, user: &str, body: &str) -> u64 {
        let answer = send(
            http()
                .post(self.url(&format!("/api/v1/users/{user}/notifications")))
                .insert_header(("X-API-Key", API_KEY))
                .insert_header(("Content-Type", "application/json")),
            Some(body.as_bytes().to_vec()),
        )
        .await;
        assert_eq!(answer.status.as_u16(), 202, "push: {}", answer.body);
        let v: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        v["clients"].as_u64().expect("clients")
    }
}

/// Send a WebSocket handshake for `path_and_query` as a browser would, with extra headers, on
/// a fresh TCP connection, and read the answer (awc rewrites the `Connection` header of plain
/// requests, so it cannot send one): for checking how an upgrade is refused. A `101` answer
/// is returned with an empty body.
pub async fn ws_handshake(
    server: &TestServer,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Answer {
    use std::io::{Read, Write};
    let mut request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        server.addr
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let addr = server.addr;
    let raw = actix_rt::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        tcp.write_all(request.as_bytes())
            .expect("send the handshake");
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n");
            if let Some(end) = head_end {
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                if head.starts_with("http/1.1 101") || raw.len() >= end + 4 + length {
                    return raw;
                }
            }
            match tcp.read(&mut buf) {
                Ok(0) | Err(_) => return raw,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let mut map = awc::http::header::HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':').expect("a header line");
        map.append(
            awc::http::header::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
            awc::http::header::HeaderValue::from_str(v.trim()).unwrap(),
        );
    }
    Answer {
        status: awc::http::StatusCode::from_u16(status).unwrap(),
        headers: map,
        body: if status == 101 {
            String::new()
        } else {
            body.to_owned()
        },
    }
}

/// A raw Engine.IO client over HTTP long-polling: one session, its GETs and POSTs.
pub struct PollingClient {
    /// `http://127.0.0.1:<port><path>?EIO=4&transport=polling&sid=<sid>`.
    pub url: String,
    /// The Engine.IO session id.
    pub sid: String,
    /// The open packet's JSON.
    pub handshake: serde_json::Value,
    /// Packets read by [`PollingClient::next_packet`] but not yet returned.
    pending: std::collections::VecDeque<String>,
}

impl PollingClient {
    /// Open a session at `path` (`/socket.io/`, `/ws/`...) with `extra` query; panics unless
    /// the answer is `200` with an open packet.
    pub async fn open_at(server: &TestServer, path: &str, extra: &str) -> Self {
        let answer = send(http().get(server.polling_url(path, extra)), None).await;
        assert_eq!(answer.status.as_u16(), 200, "handshake: {}", answer.body);
        assert!(
            answer.body.starts_with("0{"),
            "open packet: {}",
            answer.body
        );
        let handshake: serde_json::Value = serde_json::from_str(&answer.body[1..]).unwrap();
        let sid = handshake["sid"].as_str().expect("sid").to_owned();
        PollingClient {
            url: server.polling_url(path, &format!("&sid={sid}")),
            sid,
            handshake,
            pending: Default::default(),
        }
    }

    /// Open a session at `/socket.io/`.
    pub async fn open(server: &TestServer) -> Self {
        Self::open_at(server, "/socket.io/", "").await
    }

    /// One GET (a poll).
    pub async fn get(&self) -> Answer {
        send(http().get(&self.url), None).await
    }

    /// One POST of `body`.
    pub async fn post(&self, body: impl Into<Vec<u8>>) -> Answer {
        send(
            http()
                .post(&self.url)
                .insert_header(("Content-Type", "text/plain;charset=UTF-8")),
            Some(body.into()),
        )
        .await
    }

    /// POST `body`, expecting `200 ok`.
    pub async fn send(&self, body: &str) {
        let answer = self.post(body).await;
        assert_eq!(
            (answer.status.as_u16(), answer.body.as_str()),
            (200, "ok"),
            "POST {body:?}"
        );
    }

    /// One GET, expecting 200; its packets.
    pub async fn poll(&self) -> Vec<String> {
        let answer = self.get().await;
        assert_eq!(answer.status.as_u16(), 200, "GET: {}", answer.body);
        split_payload(&answer.body)
    }

    /// The next packet that is not a ping (pings are answered with a POST `3` as they come),
    /// polling as needed; `None` once a GET is refused.
    pub async fn next_packet(&mut self) -> Option<String> {
        loop {
            if let Some(p) = self.pending.pop_front() {
                return Some(p);
            }
            let answer = self.get().await;
            if answer.status.as_u16() != 200 {
                return None;
            }
            let packets = split_payload(&answer.body);
            if packets.iter().any(|p| p == "2") {
                self.send("3").await;
            }
            self.pending
                .extend(packets.into_iter().filter(|p| p != "2"));
        }
    }

    /// Emit `subscribe` for `user` with ack id 1; asserts the `subscribed` reply and the ack.
    pub async fn subscribe(&mut self, user: &str) {
        self.send(&format!(r#"421["subscribe",{{"userId":"{user}"}}]"#))
            .await;
        let reply = self.next_packet().await.expect("subscribe reply");
        assert!(reply.starts_with("42[\"subscribed\""), "{reply}");
        let ack = self.next_packet().await.expect("subscribe ack");
        assert!(ack.starts_with("431["), "{ack}");
    }

    /// Send a CONNECT to `/` with `auth`; returns the answer (`40{...}` or `44{...}`).
    pub async fn connect(&mut self, auth: Option<&str>) -> String {
        self.send(&format!("40{}", auth.unwrap_or(""))).await;
        self.next_packet().await.expect("connect answer")
    }

    /// Open a session at `path` and connect as `token`, expecting success; returns the client
    /// and the welcome packet.
    pub async fn connected_at(server: &TestServer, path: &str, token: &str) -> (Self, String) {
        let mut c = Self::open_at(server, path, "").await;
        let answer = c.connect(Some(&format!(r#"{{"token":"{token}"}}"#))).await;
        assert!(answer.starts_with("40{\"sid\""), "{answer}");
        let welcome = c.next_packet().await.expect("welcome");
        assert!(welcome.starts_with("42[\"welcome\""), "{welcome}");
        (c, welcome)
    }

    /// Open a session at `/socket.io/` and connect as `token`.
    pub async fn connected(server: &TestServer, token: &str) -> Self {
        Self::connected_at(server, "/socket.io/", token).await.0
    }

    /// Poll for at least `duration` (GETs are never abandoned, so up to one ping interval
    /// more), answering pings; returns every other packet read meanwhile. A refused GET ends
    /// the wait early (and is reported as `"<status> <body>"`).
    pub async fn idle(&mut self, duration: Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + duration;
        let mut other: Vec<String> = self.pending.drain(..).collect();
        while std::time::Instant::now() < deadline {
            let answer = self.get().await;
            if answer.status.as_u16() != 200 {
                other.push(format!("{} {}", answer.status.as_u16(), answer.body));
                break;
            }
            for p in split_payload(&answer.body) {
                if p == "2" {
                    self.send("3").await;
                } else {
                    other.push(p);
                }
            }
        }
        other
    }
}
