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

pub mod broker;

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
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let running = pushgate::start(config.clone(), listener, Mode::Gateway).expect("server starts");
    let handle = running.server.handle();
    actix_web::rt::spawn(running.server);
    TestServer {
        addr,
        config,
        handle,
        state: running.state,
    }
}

/// Start a server with `config` on `listener` (e.g. the address a stopped server had); also
/// returns its [`ShutdownHandle`](pushgate::server::ShutdownHandle) for a graceful stop. Call
/// inside `#[actix_web::test]`.
pub fn start_on(
    config: Config,
    listener: TcpListener,
) -> (TestServer, pushgate::server::ShutdownHandle) {
    let addr = listener.local_addr().unwrap();
    let running = pushgate::start(config.clone(), listener, Mode::Gateway).expect("server starts");
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
