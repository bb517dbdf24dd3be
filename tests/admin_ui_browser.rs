//! Contract §9 in a real browser: tests/e2e/admin_ui.browser.mjs drives the official Socket.IO
//! Admin UI in headless chromium (Debian's `chromium`, installed by scripts/test.sh) against
//! the real server with the admin UI on; the screenshot it takes is kept at
//! `target/artifacts/admin-ui.png`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use pushgate::config::{AdminUiConfig, CorsOrigins};

/// The node run must finish within this.
const NODE_TIMEOUT: Duration = Duration::from_secs(120);

#[actix_web::test]
async fn the_official_admin_ui_shows_the_sockets_and_their_rooms() {
    let mut c = config();
    c.engine.ping_interval = Duration::from_secs(25);
    c.engine.ping_timeout = Duration::from_secs(20);
    c.admin_ui = Some(AdminUiConfig {
        username: "ops".into(),
        // bcrypt of "s3cret-pass", cost 4.
        password_hash: "$2a$04$YfMLggF0BYhVhqzC4vwaZOkC1l7XP6auoYQwvMh.jRAKOQExEOenm".into(),
        readonly: true,
    });
    // The UI is served from another origin (a port node picks): every origin is allowed.
    c.cors = CorsOrigins::Any;
    let srv = start_with(c);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let mut env = srv.node_env();
    env.push(("PUSHGATE_ADMIN_USERNAME".into(), "ops".into()));
    env.push(("PUSHGATE_ADMIN_PASSWORD".into(), "s3cret-pass".into()));
    env.push((
        "PUSHGATE_ARTIFACTS".into(),
        target.join("artifacts").display().to_string(),
    ));
    let run = spawn_node_tests(vec!["admin_ui.browser.mjs".into()], env, NODE_TIMEOUT);
    assert_node_passed(
        run.await.expect("the node runner thread ended"),
        "admin UI browser test",
    );
}
