//! A test-only server for the official Engine.IO and Socket.IO protocol test suites
//! (`test-suite/` of socketio/engine.io-protocol and socketio/socket.io-protocol).
//!
//! It serves what they expect on 127.0.0.1:3000 (or `PORT`): `pingInterval` 300,
//! `pingTimeout` 200, `maxPayload` 1000000, a `connectTimeout` of 1000, Socket.IO echo
//! handlers with the `/custom` namespace at `/socket.io/`, and an Engine.IO echo at
//! `/engine.io/`. No authentication: never expose it. See `scripts/protocol-suites.sh`.

use std::net::TcpListener;
use std::time::Duration;

use pushgate::config::{Config, CorsOrigins};
use pushgate::session::Mode;

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let mut config = Config::for_tests("protocol-suite-secret-not-used-for-anything", None);
    config.engine.ping_interval = Duration::from_millis(300);
    config.engine.ping_timeout = Duration::from_millis(200);
    config.engine.max_payload = 1_000_000;
    config.engine.connect_timeout = Duration::from_millis(1000);
    config.cors = CorsOrigins::Any;
    actix_web::rt::System::new().block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let running = pushgate::start(config, listener, Mode::ProtocolTestSuite)?;
        eprintln!("protocol-suite server on http://{}", running.local_addr);
        running.server.await
    })
}
