//! The server under test: started on 127.0.0.1:0 inside the test's actix system with the
//! test configuration, and what a test asks of it (its URLs, tokens, pushes).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use pushgate::auth::{mint, TokenClaims};
use pushgate::config::Config;
use pushgate::session::Mode;

use super::{http, send, API_KEY, SECRET};

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
        self.push(&format!("/api/v1/users/{user}/notifications"), body)
            .await
    }

    /// Push `body` through the HTTP API's push route `path` (e.g. `/api/v1/broadcast`);
    /// returns the `clients` count.
    pub async fn push(&self, path: &str, body: &str) -> u64 {
        let answer = send(
            http()
                .post(self.url(path))
                .insert_header(("X-API-Key", API_KEY))
                .insert_header(("Content-Type", "application/json")),
            Some(body.as_bytes().to_vec()),
        )
        .await;
        assert_eq!(answer.status.as_u16(), 202, "push: {}", answer.body);
        let v: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        v["clients"].as_u64().expect("clients")
    }

    /// Push 100 kB blobs to `user:<user>`, whose only client does not read, until the push
    /// reaches nobody: the client was dropped as a slow reader. Asserts that it was, and not
    /// before it was `max_unwritten` bytes behind (the kernel buffers a few MiB on each side
    /// first).
    pub async fn push_until_the_slow_reader_is_dropped(&self, user: &str, max_unwritten: usize) {
        let big = format!(r#"{{"blob":"{}"}}"#, "s".repeat(100_000));
        let pushes = (max_unwritten + 16 * 1024 * 1024) / big.len();
        let mut dropped_after = None;
        for i in 0..pushes {
            if self.push_to_user(user, &big).await == 0 {
                dropped_after = Some(i);
                break;
            }
        }
        let dropped_after = dropped_after.expect("the slow reader was dropped");
        assert!(
            dropped_after * big.len() > max_unwritten,
            "not before it was {max_unwritten} bytes behind: after {dropped_after} pushes"
        );
    }

    /// The API's `/api/v1/stats` answer (connections, rooms, pushes, deliveries).
    pub async fn stats(&self) -> serde_json::Value {
        let answer = send(
            http()
                .get(self.url("/api/v1/stats"))
                .insert_header(("X-API-Key", API_KEY)),
            None,
        )
        .await;
        serde_json::from_str(&answer.body).unwrap()
    }

    /// The open sessions the supervisor counts (`connections` in the stats).
    pub async fn connections(&self) -> u64 {
        self.stats().await["connections"].as_u64().unwrap()
    }

    /// Wait (at most 5 s) until the server counts `n` connections.
    pub async fn wait_for_connections(&self, n: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let now = self.connections().await;
            if now == n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{now} connections, expected {n}"
            );
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `/metrics` page.
    pub async fn metrics(&self) -> String {
        send(http().get(self.url("/metrics")), None).await.body
    }

    /// The server counted exactly `count` disconnects for `reason` (`ping_timeout`,
    /// `slow_reader`...).
    pub async fn assert_disconnects(&self, reason: &str, count: u64) {
        let m = self.metrics().await;
        assert!(
            m.contains(&format!(
                r#"pushgate_disconnects_total{{reason="{reason}"}} {count}"#
            )),
            "{m}"
        );
    }

    /// Wait until `/ready` answers 200 (both consumers consuming), at most 15 s.
    pub async fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let answer = send(http().get(self.url("/ready")), None).await;
            if answer.status == 200 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not ready: {}",
                answer.body
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

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

impl Drop for TestServer {
    fn drop(&mut self) {
        // Stop without waiting; the actix system of the test ends right after anyway.
        drop(self.handle.stop(false));
    }
}

/// The test configuration: loopback, port 0, the test secret and API key, short timers, and
/// connection-state recovery off, so that pushes are exactly the §2 packets the tests expect
/// (with recovery on, each push has its offset as one more argument: see
/// [`recovery_config`]).
pub fn config() -> Config {
    let mut c = recovery_config();
    c.recovery.window = Duration::ZERO;
    c
}

/// [`config`] with connection-state recovery on, at its defaults: every push carries its
/// offset.
pub fn recovery_config() -> Config {
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

/// Start a server with `config` in `mode` (e.g. [`Mode::ProtocolTestSuite`], which also serves
/// the Engine.IO echo sessions at `/engine.io/`). Call inside `#[actix_web::test]`.
pub fn start_with_mode(config: Config, mode: Mode) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    launch(config, listener, mode).0
}
