//! Service health to admins (docs/socketio.md), end to end: a fake Consul agent in the test
//! (`service_health/fake_consul.rs`, following Consul's documented blocking queries), the real
//! server watching it, and real Socket.IO clients over WebSocket.

mod common;
#[path = "service_health/fake_consul.rs"]
mod fake_consul;

use std::time::{Duration, Instant};

use common::*;
use fake_consul::FakeConsul;
use pushgate::config::ConsulConfig;
use serde_json::Value;

const CONSUL_TOKEN: &str = "consul-acl-token";
const DEBOUNCE: Duration = Duration::from_millis(300);

/// A fake Consul with two passing instances, and a server watching it.
fn start_watched(index: u64) -> (FakeConsul, TestServer) {
    let consul = FakeConsul::start(CONSUL_TOKEN, index);
    consul.set_check("user-service", "user-service-1", "node-a", "passing");
    consul.set_check("device-service", "device-service-1", "node-b", "passing");
    let mut config = config();
    config.consul = Some(ConsulConfig {
        url: consul.url(),
        token: Some(CONSUL_TOKEN.into()),
        debounce: DEBOUNCE,
    });
    (consul, start_with(config))
}

/// `/ready`'s status and body.
async fn ready(server: &TestServer) -> (u16, Value) {
    let answer = send(http().get(server.url("/ready")), None).await;
    (
        answer.status.as_u16(),
        serde_json::from_str(&answer.body).unwrap(),
    )
}

/// Wait (at most 10 s) until `/ready` shows `consul: <state>`; returns `/ready`'s status.
async fn consul_becomes(server: &TestServer, state: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = ready(server).await;
        if body["components"]["consul"] == state {
            return status;
        }
        assert!(Instant::now() < deadline, "consul never {state}: {body}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /api/v1/services` with the API key.
async fn services_api(server: &TestServer) -> Answer {
    send(
        http()
            .get(server.url("/api/v1/services"))
            .insert_header(("X-API-Key", API_KEY)),
        None,
    )
    .await
}

/// The notification payload of a `42["notification",{...}]` frame.
fn notification(frame: &str) -> Value {
    let packet: Value = serde_json::from_str(frame.strip_prefix("42").expect(frame)).unwrap();
    assert_eq!(packet[0], "notification", "{frame}");
    packet[1].clone()
}

/// An admin that joined room `admin`; returns it and the snapshot it got after `room_joined`.
async fn admin_in_admin_room(server: &TestServer) -> (RawClient, Value) {
    let mut admin = RawClient::connected(server, &server.token("admin-1", true)).await;
    admin.send(r#"42["join_room",{"room":"admin"}]"#).await;
    let joined = admin.expect_text().await;
    assert!(joined.starts_with(r#"42["room_joined""#), "{joined}");
    let snapshot = notification(&admin.expect_text().await);
    assert_eq!(snapshot["type"], "service.health.snapshot");
    (admin, snapshot)
}

/// The next `service.health.changed` data the client gets.
async fn next_change(client: &mut RawClient) -> Value {
    let n = notification(&client.next_text().await.expect("a change"));
    assert_eq!(n["type"], "service.health.changed", "{n}");
    n["data"].clone()
}

/// Frames other than pings that `client` gets in `time`.
async fn quiet_for(client: &mut RawClient, time: Duration) {
    let got = client.idle(time).await;
    assert!(got.is_empty(), "expected nothing, got {got:?}");
}

#[actix_web::test]
async fn a_joining_admin_gets_the_snapshot_right_after_room_joined_and_the_api_the_same() {
    let (_consul, server) = start_watched(10);
    consul_becomes(&server, "watching").await;
    let (_admin, snapshot) = admin_in_admin_room(&server).await;
    let services = snapshot["data"]["services"].as_array().unwrap();
    assert_eq!(services.len(), 2, "{snapshot}");
    let device = &services[0];
    assert_eq!(device["service"], "device-service");
    assert_eq!(device["serviceId"], "device-service-1");
    assert_eq!(device["node"], "node-b");
    assert_eq!(device["status"], "passing");
    let check_names: Vec<_> = device["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        check_names,
        ["Service 'device-service' check", "Serf Health Status"]
    );
    assert!(snapshot["data"]["timestamp"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    let api = services_api(&server).await;
    assert_eq!(api.status.as_u16(), 200, "{}", api.body);
    let api: Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(api["type"], snapshot["type"]);
    assert_eq!(api["data"]["services"], snapshot["data"]["services"]);
    let no_key = send(http().get(server.url("/api/v1/services")), None).await;
    assert_eq!(no_key.status.as_u16(), 401);
    let wrong_method = send(
        http()
            .post(server.url("/api/v1/services"))
            .insert_header(("X-API-Key", API_KEY)),
        Some(b"{}".to_vec()),
    )
    .await;
    assert_eq!(wrong_method.status.as_u16(), 405);
}

#[actix_web::test]
async fn without_consul_there_is_no_snapshot_no_consul_in_ready_and_the_route_says_off() {
    let server = start();
    let mut admin = RawClient::connected(&server, &server.token("admin-1", true)).await;
    admin.send(r#"42["join_room",{"room":"admin"}]"#).await;
    assert!(admin.expect_text().await.starts_with(r#"42["room_joined""#));
    quiet_for(&mut admin, Duration::from_millis(300)).await;
    let (_, body) = ready(&server).await;
    assert!(body["components"].get("consul").is_none(), "{body}");
    let api = services_api(&server).await;
    assert_eq!(api.status.as_u16(), 503);
    assert!(api.body.contains("service_health_off"), "{}", api.body);
}

#[actix_web::test]
async fn a_status_change_is_pushed_to_admins_and_not_to_other_users() {
    let (consul, server) = start_watched(10);
    consul_becomes(&server, "watching").await;
    let (mut admin, _) = admin_in_admin_room(&server).await;
    let mut user = RawClient::connected(&server, &server.token("42", false)).await;

    consul.set_check("user-service", "user-service-1", "node-a", "critical");
    let change = next_change(&mut admin).await;
    assert_eq!(change["service"], "user-service");
    assert_eq!(change["serviceId"], "user-service-1");
    assert_eq!(change["node"], "node-a");
    assert_eq!(change["oldStatus"], "passing");
    assert_eq!(change["newStatus"], "critical");
    assert_eq!(change["checks"][0]["status"], "critical");
    assert_eq!(
        change["checks"][0]["output"],
        "HTTP GET http://node-a/health: critical"
    );
    assert!(change["timestamp"].is_string());
    quiet_for(&mut user, Duration::from_millis(500)).await;

    // The snapshot follows the announced change.
    let (_second_admin, snapshot) = admin_in_admin_room(&server).await;
    let statuses: Vec<_> = snapshot["data"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["passing", "critical"]);
}

#[actix_web::test]
async fn a_status_that_changes_back_within_the_debounce_window_is_not_pushed() {
    let (consul, server) = start_watched(10);
    consul_becomes(&server, "watching").await;
    let (mut admin, _) = admin_in_admin_room(&server).await;

    consul.set_check("device-service", "device-service-1", "node-b", "critical");
    std::thread::sleep(DEBOUNCE / 6);
    consul.set_check("device-service", "device-service-1", "node-b", "passing");
    quiet_for(&mut admin, DEBOUNCE * 4).await;

    // The watcher was listening all along: a change that lasts is pushed.
    consul.set_check("device-service", "device-service-1", "node-b", "warning");
    let change = next_change(&mut admin).await;
    assert_eq!(
        (change["oldStatus"].as_str(), change["newStatus"].as_str()),
        (Some("passing"), Some("warning"))
    );
}

#[actix_web::test]
async fn consul_down_shows_unreachable_without_touching_readiness_and_back_pushes_again() {
    let (mut consul, server) = start_watched(10);
    let status_watching = consul_becomes(&server, "watching").await;
    assert!(server.metrics().await.contains("pushgate_consul_up 1"));
    let (mut admin, _) = admin_in_admin_room(&server).await;

    consul.stop();
    let status_unreachable = consul_becomes(&server, "unreachable").await;
    assert_eq!(
        status_unreachable, status_watching,
        "Consul never changes /ready's status"
    );
    assert!(server.metrics().await.contains("pushgate_consul_up 0"));
    consul.set_check("user-service", "user-service-1", "node-a", "critical");
    quiet_for(&mut admin, Duration::from_millis(300)).await;

    consul.restart();
    consul_becomes(&server, "watching").await;
    assert!(server.metrics().await.contains("pushgate_consul_up 1"));
    let change = next_change(&mut admin).await;
    assert_eq!(change["serviceId"], "user-service-1");
    assert_eq!(
        (change["oldStatus"].as_str(), change["newStatus"].as_str()),
        (Some("passing"), Some("critical"))
    );
}

#[actix_web::test]
async fn an_index_that_goes_backwards_starts_over_at_zero() {
    let (consul, server) = start_watched(1000);
    consul_becomes(&server, "watching").await;
    let (mut admin, _) = admin_in_admin_room(&server).await;
    // The watcher holds a query at index 1002 now.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !consul.queries().contains(&1002) {
        assert!(Instant::now() < deadline, "{:?}", consul.queries());
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }

    // Consul restored from a snapshot: index 5, with a change.
    consul.rewind(5, ("user-service", "user-service-1", "node-a", "warning"));
    let change = next_change(&mut admin).await;
    assert_eq!(change["newStatus"], "warning");
    let queries = consul.queries();
    let after = &queries[queries.iter().position(|i| *i == 1002).unwrap() + 1..];
    assert!(
        after.contains(&0),
        "no query started over at 0: {queries:?}"
    );

    // Changes at indexes below the old one still arrive.
    consul.set_check("user-service", "user-service-1", "node-a", "critical");
    let change = next_change(&mut admin).await;
    assert_eq!(
        (change["oldStatus"].as_str(), change["newStatus"].as_str()),
        (Some("warning"), Some("critical"))
    );
    assert!(consul.queries().iter().all(|i| *i <= 1002));
}
