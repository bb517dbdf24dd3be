//! Contract §9 at the protocol level: the `/admin` namespace the Socket.IO Admin UI connects,
//! driven by raw Engine.IO clients over real WebSockets against the real server (the browser
//! test with the official UI is `tests/admin_ui_browser.rs`).

mod common;

use std::time::Duration;

use common::*;
use pushgate::config::{AdminUiConfig, Config};
use serde_json::{json, Value};

const USERNAME: &str = "ops";
const PASSWORD: &str = "s3cret-pass";
/// bcrypt of [`PASSWORD`], cost 4 (quick to check in a debug build).
const PASSWORD_HASH: &str = "$2a$04$YfMLggF0BYhVhqzC4vwaZOkC1l7XP6auoYQwvMh.jRAKOQExEOenm";

/// The test configuration with the admin UI on, and the default heartbeat: the user sockets
/// of these tests do not answer pings while the test reads the UI's socket.
fn admin_config(readonly: bool) -> Config {
    let mut c = config();
    c.engine.ping_interval = Duration::from_secs(25);
    c.engine.ping_timeout = Duration::from_secs(20);
    c.admin_ui = Some(AdminUiConfig {
        username: USERNAME.into(),
        password_hash: PASSWORD_HASH.into(),
        readonly,
    });
    c
}

fn login() -> String {
    json!({"username": USERNAME, "password": PASSWORD}).to_string()
}

/// A raw client on `/admin`.
struct AdminClient {
    ws: RawClient,
}

impl AdminClient {
    /// Open a connection and CONNECT `/admin` with `auth`; returns the client and the answer.
    async fn connect(server: &TestServer, auth: &str) -> (Self, String) {
        let mut ws = RawClient::connect(&server.ws_url(""), &[]).await.unwrap();
        let open = ws.expect_text().await;
        assert!(open.starts_with("0{"), "open packet, got {open}");
        ws.send(&format!("40/admin,{auth}")).await;
        let answer = ws.expect_text().await;
        (AdminClient { ws }, answer)
    }

    /// Log in with the password; returns the client and the session id it was given.
    async fn logged_in(server: &TestServer) -> (Self, String) {
        let (mut admin, answer) = AdminClient::connect(server, &login()).await;
        assert!(answer.starts_with("40/admin,{\"sid\":"), "{answer}");
        let session = admin.next_event().await;
        assert_eq!(session[0], "session", "{session:?}");
        let id = session[1].as_str().unwrap().to_owned();
        (admin, id)
    }

    /// The next `/admin` event, as its JSON array.
    async fn next_event(&mut self) -> Value {
        self.ws.next_admin_event().await
    }

    /// The next event named `name`, skipping others (`server_stats` come every 2 s).
    async fn event(&mut self, name: &str) -> Value {
        loop {
            let event = self.next_event().await;
            if event[0] == name {
                return event;
            }
            assert_eq!(event[0], "server_stats", "waiting for {name}: {event}");
        }
    }

    async fn emit(&mut self, args: Value) {
        self.ws.send(&format!("42/admin,{args}")).await;
    }

    /// Read `config` and `all_sockets` (which follow a login); returns the features and the
    /// sockets.
    async fn config_and_sockets(&mut self) -> (Value, Vec<Value>) {
        let config = self.next_event().await;
        assert_eq!(config[0], "config", "{config}");
        let all = self.event("all_sockets").await;
        (
            config[1]["supportedFeatures"].clone(),
            all[1].as_array().unwrap().clone(),
        )
    }
}

/// A connected user socket and its socket id.
async fn user(server: &TestServer, sub: &str) -> (RawClient, String) {
    user_with(server, sub, false).await
}

/// A connected socket of `sub` (an admin when `admin`) and its socket id.
async fn user_with(server: &TestServer, sub: &str, admin: bool) -> (RawClient, String) {
    let token = server.token(sub, admin);
    let url = server.ws_url(&format!("&token={token}"));
    let mut ws = RawClient::connect(&url, &[]).await.unwrap();
    let answer = ws.handshake(None).await;
    let reply: Value = serde_json::from_str(answer.strip_prefix("40").unwrap()).unwrap();
    let welcome = ws.expect_text().await;
    assert!(welcome.starts_with("42[\"welcome\""), "{welcome}");
    (ws, reply["sid"].as_str().unwrap().to_owned())
}

#[actix_web::test]
async fn admin_is_an_invalid_namespace_when_the_ui_is_not_configured() {
    let srv = start_with(config());
    let (_admin, answer) = AdminClient::connect(&srv, &login()).await;
    assert_eq!(answer, r#"44/admin,{"message":"Invalid namespace"}"#);
}

#[actix_web::test]
async fn missing_wrong_or_hostile_credentials_are_refused() {
    let srv = start_with(admin_config(true));
    let huge = "x".repeat(100_000);
    for auth in [
        json!({}),
        json!({"username": USERNAME, "password": "wrong"}),
        json!({"username": "root", "password": PASSWORD}),
        json!({"username": USERNAME}),
        json!({"username": USERNAME, "password": 12345}),
        json!({"username": [USERNAME], "password": PASSWORD}),
        json!({"username": USERNAME, "password": huge}),
        json!({"sessionId": "forged-session-id"}),
        json!({"sessionId": 7, "username": USERNAME, "password": "nope"}),
    ] {
        let (mut admin, answer) = AdminClient::connect(&srv, &auth.to_string()).await;
        assert_eq!(
            answer, r#"44/admin,{"message":"invalid credentials"}"#,
            "{auth:.60}"
        );
        // Refused, not connected: an event on /admin is a protocol error.
        admin.emit(json!(["join", "/", "x"])).await;
        admin.ws.expect_close(1002).await;
    }
    // A CONNECT without any payload, and the root namespace's JWT payload.
    let (_admin, answer) = AdminClient::connect(&srv, "").await;
    assert_eq!(answer, r#"44/admin,{"message":"invalid credentials"}"#);
    let token = json!({"token": srv.token("u1", true)}).to_string();
    let (_admin, answer) = AdminClient::connect(&srv, &token).await;
    assert_eq!(answer, r#"44/admin,{"message":"invalid credentials"}"#);
}

#[actix_web::test]
async fn a_login_is_given_a_session_id_the_config_the_sockets_and_the_stats() {
    let srv = start_with(admin_config(true));
    let (_u1, sid) = user(&srv, "u1").await;
    let (mut admin, session_id) = AdminClient::logged_in(&srv).await;
    assert_eq!(session_id.len(), 22, "{session_id}");
    let (features, sockets) = admin.config_and_sockets().await;
    assert_eq!(features, json!([]), "read-only: no action advertised");
    assert_eq!(
        sockets.len(),
        1,
        "the admin UI's own socket is not listed: {sockets:?}"
    );
    let socket = &sockets[0];
    assert_eq!(socket["id"], sid.as_str());
    assert_eq!(socket["nsp"], "/");
    assert_eq!(socket["transport"], "websocket");
    assert_eq!(socket["rooms"], json!(["user:u1"]));
    assert!(socket["clientId"].as_str().is_some_and(|c| !c.is_empty()));
    let handshake = &socket["handshake"];
    assert_eq!(handshake["address"], "127.0.0.1");
    assert_eq!(handshake["query"]["token"], "[redacted]");
    assert_eq!(handshake["query"]["transport"], "websocket");
    assert!(!handshake.to_string().contains("eyJ"), "no JWT shown");
    assert!(handshake["issued"].as_u64().unwrap() > 0);
    assert!(handshake["url"]
        .as_str()
        .unwrap()
        .starts_with("/socket.io/?"));

    let stats = admin.event("server_stats").await;
    let stats = &stats[1];
    assert_eq!(stats["serverId"], "test", "NODE_ID");
    assert_eq!(stats["pid"], std::process::id());
    assert!(stats["hostname"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(stats["uptime"].as_f64().unwrap() >= 0.0);
    assert_eq!(stats["clientsCount"], 1);
    assert_eq!(stats["pollingClientsCount"], 0);
    assert_eq!(
        stats["namespaces"],
        json!([{"name": "/", "socketsCount": 1}])
    );
    // Every 2 s, another.
    admin.event("server_stats").await;

    // The UI reconnects with its session id instead of the password: no new session id.
    let auth = json!({"sessionId": session_id}).to_string();
    let (mut again, answer) = AdminClient::connect(&srv, &auth).await;
    assert!(answer.starts_with("40/admin,{\"sid\":"), "{answer}");
    let (_, sockets) = again.config_and_sockets().await;
    assert_eq!(sockets.len(), 1);

    // The UI's sockets are no clients.
    let metrics = srv.metrics().await;
    assert!(
        metrics.contains("pushgate_connected_clients 1\n"),
        "{metrics}"
    );
}

#[actix_web::test]
async fn connects_joins_leaves_and_disconnects_are_streamed() {
    let srv = start_with(admin_config(true));
    let (mut admin, _) = AdminClient::logged_in(&srv).await;
    let (_, sockets) = admin.config_and_sockets().await;
    assert!(sockets.is_empty());

    let (mut u2, sid) = user_with(&srv, "u2", true).await;
    let connected = admin.event("socket_connected").await;
    assert_eq!(connected[1]["id"], sid.as_str());
    assert_eq!(connected[1]["rooms"], json!([]));
    assert!(connected[2].as_str().unwrap().ends_with('Z'), "a timestamp");
    let joined = admin.event("room_joined").await;
    assert_eq!(
        &joined.as_array().unwrap()[..4],
        &[
            json!("room_joined"),
            json!("/"),
            json!("user:u2"),
            json!(sid)
        ]
    );

    u2.send(r#"42["join_room",{"room":"device:d1"}]"#).await;
    let joined = admin.event("room_joined").await;
    assert_eq!(joined[2], "device:d1");
    u2.send(r#"42["leave_room",{"room":"device:d1"}]"#).await;
    let left = admin.event("room_left").await;
    assert_eq!((&left[2], &left[3]), (&json!("device:d1"), &json!(sid)));

    u2.close().await;
    let left = admin.event("room_left").await;
    assert_eq!(left[2], "user:u2", "its rooms are left first");
    let gone = admin.event("socket_disconnected").await;
    assert_eq!((&gone[1], &gone[2]), (&json!("/"), &json!(sid)));
    assert_eq!(gone[3], "client_close");

    // A polling client is counted as one.
    let _polling = PollingClient::connected(&srv, &srv.token("u3", false)).await;
    admin.event("socket_connected").await;
    admin.event("room_joined").await;
    let stats = admin.event("server_stats").await;
    assert_eq!(stats[1]["pollingClientsCount"], 1);
}

#[actix_web::test]
async fn a_read_only_ui_cannot_act_and_unknown_events_are_ignored() {
    let srv = start_with(admin_config(true));
    let (mut u1, sid) = user(&srv, "u1").await;
    let (mut admin, _) = AdminClient::logged_in(&srv).await;
    admin.config_and_sockets().await;
    admin.emit(json!(["join", "/", "ops", sid])).await;
    admin.emit(json!(["leave", "/", "user:u1"])).await;
    admin.emit(json!(["_disconnect", "/", true, sid])).await;
    admin.emit(json!(["_disconnect", "/", false])).await;
    admin
        .emit(json!(["emit", "/", null, "notification", {"x": 1}]))
        .await;
    admin.emit(json!(["no_such_event", {"a": [1, 2]}])).await;
    admin.emit(json!(["join"])).await;
    admin.emit(json!([])).await;
    // Still connected, nothing changed: the next event is the stats, with the socket there.
    let stats = admin.next_event().await;
    assert_eq!(stats[0], "server_stats", "{stats}");
    assert_eq!(stats[1]["clientsCount"], 1);
    let frames = u1.idle(Duration::from_millis(300)).await;
    assert!(frames.is_empty(), "the user socket got {frames:?}");
    assert_eq!(srv.push_to_user("u1", r#"{"type":"t"}"#).await, 1);
}

#[actix_web::test]
async fn a_read_write_ui_joins_leaves_and_disconnects_sockets() {
    let srv = start_with(admin_config(false));
    let (mut u1, sid) = user(&srv, "u1").await;
    let (_u2, sid2) = user(&srv, "u2").await;
    let (mut admin, _) = AdminClient::logged_in(&srv).await;
    let (features, sockets) = admin.config_and_sockets().await;
    assert_eq!(sockets.len(), 2);
    for feature in pushgate::admin_ui::READ_WRITE_FEATURES {
        assert!(
            features.as_array().unwrap().contains(&json!(feature)),
            "{features}"
        );
    }
    assert!(!features.as_array().unwrap().contains(&json!("EMIT")));

    // Join a room the client's ACL would refuse it (an admin room), for one socket.
    admin.emit(json!(["join", "/", "admin", sid])).await;
    let joined = admin.event("room_joined").await;
    assert_eq!((&joined[2], &joined[3]), (&json!("admin"), &json!(sid)));
    let answer = send(
        http()
            .post(srv.url("/api/v1/rooms/admin/messages"))
            .insert_header(("X-API-Key", API_KEY))
            .insert_header(("Content-Type", "application/json")),
        Some(br#"{"type":"ops.push"}"#.to_vec()),
    )
    .await;
    assert_eq!(answer.status.as_u16(), 202, "push: {}", answer.body);
    let pushed = u1.expect_text().await;
    assert!(pushed.contains("ops.push"), "{pushed}");

    // Leave it again; an invalid room name is not joined.
    admin.emit(json!(["leave", "/", "admin", sid])).await;
    let left = admin.event("room_left").await;
    assert_eq!(left[2], "admin");
    admin
        .emit(json!(["join", "/", "no spaces allowed", sid]))
        .await;
    admin
        .emit(json!(["join", "/", "x", "no-such-socket"]))
        .await;

    // Disconnect one socket: told so, then closed; the other stays.
    admin.emit(json!(["_disconnect", "/", false, sid])).await;
    assert_eq!(u1.expect_text().await, "41");
    u1.expect_close(1000).await;
    loop {
        let event = admin.next_event().await;
        match event[0].as_str().unwrap() {
            "room_left" => assert_eq!(event[3], sid.as_str()),
            "server_stats" => {}
            "socket_disconnected" => {
                assert_eq!((&event[2], &event[3]), (&json!(sid), &json!("admin_ui")));
                break;
            }
            other => panic!("unexpected {other}: {event}"),
        }
    }
    srv.assert_disconnects("admin_ui", 1).await;
    let stats = admin.event("server_stats").await;
    assert_eq!(stats[1]["clientsCount"], 1, "{sid2} is still there");
}

#[actix_web::test]
async fn operator_joins_stay_within_max_rooms_per_socket() {
    let mut c = admin_config(false);
    c.limits.max_rooms_per_socket = 2;
    let srv = start_with(c);
    let (_u1, sid) = user(&srv, "u1").await;
    let (mut admin, _) = AdminClient::logged_in(&srv).await;
    admin.config_and_sockets().await;
    admin.emit(json!(["join", "/", "r1", sid])).await;
    admin.emit(json!(["join", "/", "r2", sid])).await;
    let joined = admin.event("room_joined").await;
    assert_eq!(joined[2], "r1");
    // r2 would be a third room (with user:u1): refused, so the next is the stats.
    let next = admin.next_event().await;
    assert_eq!(next[0], "server_stats", "{next}");
    assert_eq!(next[1]["clientsCount"], 1);
    let metrics = srv.metrics().await;
    assert!(
        metrics.contains("pushgate_room_joins_refused_total 1"),
        "{metrics}"
    );
}
