//! The shutdown drain, on the real binary as a child process: on SIGTERM `/ready` answers 503
//! `draining` at once while the connected clients are still served (pushes, heartbeats) for
//! `SHUTDOWN_DRAIN_MS`; then they are closed as going away (1001) and the process exits with 0.
//! A second signal during the drain cuts it short.

mod common;

use std::time::{Duration, Instant};

use common::{http, send, Frame, RawClient, ServerProcess, API_KEY, SECRET};
use pushgate::auth::{mint, TokenClaims};
use pushgate::config::Config;

/// A WebSocket client connected to `server` as user `sub`, its welcome read.
async fn connected(server: &ServerProcess, sub: &str) -> RawClient {
    let jwt = Config::for_tests(SECRET, None).jwt;
    let token = mint(
        SECRET,
        &TokenClaims::new(&jwt, sub, false, Duration::from_secs(3600)),
    );
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.addr);
    let mut client = RawClient::connect(&url, &[]).await.expect("WebSocket");
    let answer = client
        .handshake(Some(&format!(r#"{{"token":"{token}"}}"#)))
        .await;
    assert!(answer.starts_with("40{\"sid\""), "{answer}");
    let welcome = client.next_text().await.expect("welcome");
    assert!(welcome.starts_with("42[\"welcome\""), "{welcome}");
    client
}

/// `/ready`'s status code and its `status` field.
fn readiness(server: &ServerProcess) -> (u16, String) {
    let (code, body) = server.get("/ready");
    let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    (code, v["status"].as_str().expect("status").to_owned())
}

/// Wait (at most 10 s) until `/ready` says `draining`; it must be a 503.
fn until_draining(server: &ServerProcess) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, status) = readiness(server);
        if status == "draining" {
            assert_eq!(code, 503, "draining is not ready");
            return;
        }
        assert!(Instant::now() < deadline, "/ready still says {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Read frames (answering pings) until the server closes the WebSocket; returns its code.
async fn close_code(client: &mut RawClient, within: Duration) -> Option<u16> {
    let deadline = Instant::now() + within;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match client.next(left).await {
            Some(Frame::Close(code)) => return code,
            Some(Frame::Text(t)) if t == "2" => client.send("3").await,
            Some(other) => panic!("{other:?} before the close"),
            None => break,
        }
    }
    panic!("no close within {within:?}")
}

/// The client is closed as going away (1001), then the process exits with status 0.
async fn closed_then_exits(server: &mut ServerProcess, client: &mut RawClient) {
    assert_eq!(
        close_code(client, Duration::from_secs(20)).await,
        Some(1001)
    );
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("exits after closing its clients");
    assert!(status.success(), "exit status 0, got {status}");
}

#[actix_web::test]
async fn sigterm_reports_draining_and_serves_clients_until_the_drain_ends() {
    let mut server = ServerProcess::start(&[("SHUTDOWN_DRAIN_MS", "4000")]);
    let mut client = connected(&server, "7").await;
    let (_, before) = readiness(&server);
    assert_eq!(before, "not_ready", "no broker in this test");

    server.signal("TERM");
    until_draining(&server);

    // Still served: a push reaches the connected client, which is not closed yet.
    let answer = send(
        http()
            .post(format!(
                "http://{}/api/v1/users/7/notifications",
                server.addr
            ))
            .insert_header(("X-API-Key", API_KEY))
            .insert_header(("Content-Type", "application/json")),
        Some(br#"{"type":"during-drain","data":{}}"#.to_vec()),
    )
    .await;
    assert_eq!(answer.status.as_u16(), 202, "{}", answer.body);
    assert_eq!(answer.body, r#"{"clients":1}"#);
    let push = loop {
        match client.next(Duration::from_secs(5)).await {
            Some(Frame::Text(t)) if t == "2" => client.send("3").await,
            Some(Frame::Text(t)) => break t,
            other => panic!("{other:?} instead of the push"),
        }
    };
    assert!(push.contains("during-drain"), "{push}");

    // Then the clients are closed as going away, and the process exits cleanly.
    closed_then_exits(&mut server, &mut client).await;
    let log = server.kill();
    assert!(
        log.iter().any(|l| l.contains("draining for")),
        "the drain is logged: {log:?}"
    );
}

#[actix_web::test]
async fn a_second_signal_cuts_the_drain_short() {
    // Ten minutes: only the second signal can end this test in time.
    let mut server = ServerProcess::start(&[("SHUTDOWN_DRAIN_MS", "600000")]);
    let mut client = connected(&server, "8").await;
    server.signal("TERM");
    until_draining(&server);
    server.signal("INT");
    closed_then_exits(&mut server, &mut client).await;
}
