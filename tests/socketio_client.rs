//! Contracts §2 and §5 end to end with the real socket.io-client (node, tests/e2e/*.test.mjs): the real
//! server on 127.0.0.1:0, node's test runner against it, with a hard timeout.
//!
//! Needs Node.js >= 20.10 and npm; `npm ci` runs in tests/e2e when `node_modules` is missing.
//! To run the node tests by hand against a running server, see tests/e2e/lib.mjs.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// The whole node suite must finish within this.
const NODE_TIMEOUT: Duration = Duration::from_secs(120);

#[actix_web::test]
async fn socketio_client_end_to_end() {
    // Recovery on, as in production: every push carries its offset as a last argument, which
    // the client's one-parameter listeners do not see.
    let srv = start_with(recovery_config());
    // The recovery cases of a window that passes and an offset the history dropped
    // (tests/e2e/recovery.test.mjs).
    let mut tight = recovery_config();
    tight.recovery.window = Duration::from_millis(1500);
    tight.recovery.history_bytes = 2048;
    let tight = start_with(tight);
    let mut env = srv.node_env();
    env.push(("PUSHGATE_TIGHT_RECOVERY_URL".into(), tight.url("")));
    let mut args = vec![
        // The broadcast test counts every session on the server: one file at a time.
        "--test-concurrency=1".into(),
    ];
    args.extend(node_test_files().into_iter().map(Into::into));
    let run = spawn_node_tests(args, env, NODE_TIMEOUT);
    assert_node_passed(
        run.await.expect("the node runner thread ended"),
        "node --test",
    );
}

/// The runner's hard timeout kills the child and everything it started.
#[test]
fn run_streaming_kills_the_process_group_on_timeout() {
    let started = std::time::Instant::now();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo started; sleep 30 & sleep 30"]);
    let result = run_streaming(cmd, Duration::from_millis(500));
    assert!(result.is_err(), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exit 3"]);
    let status = run_streaming(cmd, Duration::from_secs(10)).unwrap();
    assert_eq!(status.code(), Some(3));
}
