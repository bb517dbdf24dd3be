//! The HTTP routes of docs/http-api.md against the real server on 127.0.0.1:0: probes, every API
//! route, and every error in the documented order (404, 405, 403, 401, 413, 400).

mod common;

use awc::http::StatusCode;
use common::*;
use serde_json::{json, Value};

async fn body_json(
    resp: &mut awc::ClientResponse<
        impl futures::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Value {
    let bytes = resp.body().limit(4 << 20).await.expect("body");
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("json body: {e}: {bytes:?}"))
}

#[actix_web::test]
async fn health_ready_and_metrics() {
    let srv = start();
    let client = http();
    let mut resp = client.get(srv.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_json(&mut resp).await, json!({"status": "ok"}));

    // No consumers are running in this server: not ready, with each component's state.
    let mut resp = client.get(srv.url("/ready")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body_json(&mut resp).await,
        json!({"status": "not_ready", "components": {"amqp": "disconnected",
               "consumers": {"quota": "stopped", "device": "stopped"}}})
    );
    use pushgate_actors::readiness::{AmqpState, ConsumerKind};
    srv.state.readiness.set_amqp(AmqpState::Connected);
    srv.state.readiness.set_consuming(ConsumerKind::Quota, true);
    srv.state
        .readiness
        .set_consuming(ConsumerKind::Device, true);
    let mut resp = client.get(srv.url("/ready")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_json(&mut resp).await["status"], "ready");

    let mut resp = client.get(srv.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap();
    for name in [
        "pushgate_connected_clients",
        "pushgate_rooms",
        "pushgate_pushes_total",
        "pushgate_auth_rejected_total",
        "pushgate_amqp_reconnects_total",
        "pushgate_consumer_up",
        "pushgate_push_fanout_seconds_bucket",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    // Probes have no CORS and refuse other methods.
    let resp = client
        .post(srv.url("/health"))
        .insert_header(("Origin", "http://localhost:5173"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[actix_web::test]
async fn pushes_reach_the_right_sessions_and_report_counts() {
    let srv = start();
    let client = http();
    let mut alice = RawClient::connected(&srv, &srv.token("alice", false)).await;
    let mut admin = RawClient::connected(&srv, &srv.token("root", true)).await;
    admin.send(r#"421["join_room",{"room":"admin"}]"#).await;
    assert!(admin
        .next_text()
        .await
        .unwrap()
        .starts_with("42[\"room_joined\""));
    assert!(admin.next_text().await.unwrap().starts_with("431["));

    let push = |path: &str, body: Value| {
        client
            .post(srv.url(path))
            .insert_header(("X-API-Key", API_KEY))
            .send_body(body.to_string())
    };
    // The body is pushed verbatim, as sent (key order kept).
    let mut resp = client
        .post(srv.url("/api/v1/users/alice/notifications"))
        .insert_header(("X-API-Key", API_KEY))
        .send_body(r#"{"type":"t1","data":{"n":1}}"#)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(body_json(&mut resp).await, json!({"clients": 1}));
    assert_eq!(
        alice.next_text().await.unwrap(),
        r#"42["notification",{"type":"t1","data":{"n":1}}]"#
    );

    let mut resp = push("/api/v1/rooms/admin/messages", json!({"m": 2}))
        .await
        .unwrap();
    assert_eq!(body_json(&mut resp).await, json!({"clients": 1}));
    assert_eq!(admin.next_text().await.unwrap(), r#"42["message",{"m":2}]"#);

    // Percent-encoded room names are decoded: user%3Aalice is user:alice.
    let mut resp = push("/api/v1/rooms/user%3Aalice/notifications", json!({"n": 3}))
        .await
        .unwrap();
    assert_eq!(body_json(&mut resp).await, json!({"clients": 1}));
    assert_eq!(
        alice.next_text().await.unwrap(),
        r#"42["notification",{"n":3}]"#
    );

    let mut resp = push("/api/v1/broadcast", json!({"all": true}))
        .await
        .unwrap();
    assert_eq!(body_json(&mut resp).await, json!({"clients": 2}));
    assert_eq!(
        alice.next_text().await.unwrap(),
        r#"42["notification",{"all":true}]"#
    );
    assert_eq!(
        admin.next_text().await.unwrap(),
        r#"42["notification",{"all":true}]"#
    );

    // Nobody in the room: accepted, zero clients.
    let mut resp = push("/api/v1/rooms/empty/messages", json!({}))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(body_json(&mut resp).await, json!({"clients": 0}));

    let mut resp = client
        .get(srv.url("/api/v1/rooms/admin"))
        .insert_header(("Authorization", format!("Bearer {API_KEY}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        body_json(&mut resp).await,
        json!({"room": "admin", "clients": 1})
    );

    let mut resp = client
        .get(srv.url("/api/v1/stats"))
        .insert_header(("X-API-Key", API_KEY))
        .send()
        .await
        .unwrap();
    let stats = body_json(&mut resp).await;
    assert_eq!(stats["connections"], 2);
    assert_eq!(stats["rooms"], 3); // user:alice, user:root, admin
    assert_eq!(stats["pushes"]["notification"], 3);
    assert_eq!(stats["pushes"]["message"], 2);
}

/// The arguments of a pushed `42[...]` event packet, its name first.
fn event_args(packet: &str) -> Vec<Value> {
    let json = packet.strip_prefix("42").expect("an event packet");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {packet}"))
}

#[actix_web::test]
async fn with_recovery_on_every_push_carries_its_offset_last_and_replies_none() {
    let srv = start_with(recovery_config());
    let mut alice = RawClient::connected(&srv, &srv.token("alice", false)).await;
    let mut root = RawClient::connected(&srv, &srv.token("root", true)).await;
    root.send(r#"42["join_room",{"room":"admin"}]"#).await;
    let reply = root.next_text().await.unwrap();
    assert_eq!(
        event_args(&reply).len(),
        2,
        "a reply has no offset: {reply}"
    );
    let client = http();
    let push = |path: &str, body: Value| {
        client
            .post(srv.url(path))
            .insert_header(("X-API-Key", API_KEY))
            .send_body(body.to_string())
    };
    let mut offsets = Vec::new();
    for (path, body, event) in [
        (
            "/api/v1/users/alice/notifications",
            json!({"n": 1}),
            "notification",
        ),
        ("/api/v1/rooms/admin/messages", json!({"n": 2}), "message"),
        (
            "/api/v1/rooms/user%3Aalice/notifications",
            json!({"n": 3}),
            "notification",
        ),
        ("/api/v1/broadcast", json!({"n": 4}), "notification"),
    ] {
        let resp = push(path, body.clone()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let to_alice = !path.contains("admin");
        let receiver = if to_alice { &mut alice } else { &mut root };
        let args = event_args(&receiver.next_text().await.unwrap());
        assert_eq!(args[..2], [json!(event), body]);
        assert_eq!(args.len(), 3, "{args:?}");
        let offset = args[2].as_str().expect("the offset is a string").to_owned();
        assert!(!offset.is_empty() && !offsets.contains(&offset), "{offset}");
        offsets.push(offset);
    }
    // The broadcast is one push: both receivers get the same packet, offset included.
    let same = event_args(&root.next_text().await.unwrap());
    assert_eq!(same[2], json!(offsets[3]));
}

#[actix_web::test]
async fn errors_come_in_the_documented_order_with_json_bodies() {
    let srv = start();
    let client = http();
    let big = "x".repeat(srv.config.push_max_body_bytes + 1);

    // 404 beats everything; routes are whole segments (no trailing slash, no empty or extra
    // segment), and an unknown route has no preflight either.
    for path in [
        "/api/v1/nope",
        "/api/v1/stats/",
        "/api/v1/users//notifications",
        "/api/v1/users/42/notifications/x",
        "/api/v1/broadcast/x",
        "/api/v1/rooms/",
        "/api/v1/",
        "/api/v1",
    ] {
        let mut resp = client.post(srv.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body_json(&mut resp).await["error"], "not_found");
    }
    let resp = client
        .request(actix_web::http::Method::OPTIONS, srv.url("/api/v1/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // 405: known route, wrong method, even without a key.
    let mut resp = client
        .get(srv.url("/api/v1/broadcast"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body_json(&mut resp).await["error"], "method_not_allowed");
    for (method, path) in [
        ("DELETE", "/api/v1/stats"),
        ("HEAD", "/api/v1/rooms/admin"),
        ("PUT", "/api/v1/users/42/notifications"),
        ("GET", "/api/v1/rooms/admin/messages"),
    ] {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = client.request(method, srv.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    // 401 before 413 and 400: no key, wrong key, wrong scheme.
    for headers in [
        vec![],
        vec![("X-API-Key", "wrong")],
        vec![("Authorization", "Basic aW50ZWdyYXRpb24=")],
        vec![("Authorization", "Bearer wrong")],
    ] {
        let mut req = client.post(srv.url("/api/v1/broadcast"));
        for h in headers {
            req = req.insert_header(h);
        }
        let mut resp = req.send_body(big.clone()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(body_json(&mut resp).await["error"], "unauthorized");
    }
    // 413 before 400: of a body that is not JSON, and on a route whose room or user id is
    // itself a 400.
    for path in [
        "/api/v1/broadcast",
        "/api/v1/rooms/bad%20room/messages",
        "/api/v1/rooms/bad%zz/notifications",
        "/api/v1/users/%E2%82/notifications",
    ] {
        let mut resp = client
            .post(srv.url(path))
            .insert_header(("X-API-Key", API_KEY))
            .send_body(big.clone())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(body_json(&mut resp).await["error"], "payload_too_large");
    }
    // 400: malformed JSON, not an object, empty, invalid room, bad percent-encoding.
    for (path, body) in [
        ("/api/v1/broadcast", "{\"a\":"),
        ("/api/v1/broadcast", "[1,2]"),
        ("/api/v1/broadcast", "\"str\""),
        ("/api/v1/broadcast", ""),
        ("/api/v1/broadcast", "{} trailing"),
        ("/api/v1/rooms/bad%20room/messages", "{}"),
        ("/api/v1/rooms/bad%zz/messages", "{}"),
        ("/api/v1/users/%E2%82/notifications", "{}"),
    ] {
        let mut resp = client
            .post(srv.url(path))
            .insert_header(("X-API-Key", API_KEY))
            .send_body(body)
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path} {body:?}");
        let err = body_json(&mut resp).await;
        assert_eq!(err["error"], "bad_request");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[actix_web::test]
async fn disabled_api_answers_403_after_routing() {
    let mut config = config();
    config.push_api_key = None;
    let srv = start_with(config);
    let client = http();
    let mut resp = client
        .post(srv.url("/api/v1/broadcast"))
        .insert_header(("X-API-Key", "anything"))
        .send_body("not json")
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let err = body_json(&mut resp).await;
    assert_eq!(err["error"], "push_api_disabled");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("push API disabled"));
    let resp = client
        .get(srv.url("/api/v1/broadcast"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let resp = client.get(srv.url("/api/v1/stats")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn cors_preflight_and_origins() {
    let srv = start();
    let client = http();
    let resp = client
        .request(awc::http::Method::OPTIONS, srv.url("/api/v1/broadcast"))
        .insert_header(("Origin", "http://localhost:5173"))
        .insert_header(("Access-Control-Request-Method", "POST"))
        .insert_header(("Access-Control-Request-Headers", "x-api-key,content-type"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let h = resp.headers();
    assert_eq!(
        h.get("access-control-allow-origin").unwrap(),
        "http://localhost:5173"
    );
    assert_eq!(h.get("access-control-allow-credentials").unwrap(), "true");
    assert!(h.get("access-control-allow-methods").is_some());
    assert_eq!(
        h.get("access-control-allow-headers").unwrap(),
        "x-api-key,content-type"
    );

    // An unlisted origin gets no CORS headers at all.
    let resp = client
        .request(awc::http::Method::OPTIONS, srv.url("/api/v1/broadcast"))
        .insert_header(("Origin", "http://evil.test"))
        .send()
        .await
        .unwrap();
    assert!(resp
        .headers()
        .iter()
        .all(|(k, _)| !k.as_str().starts_with("access-control-")));

    // Real requests carry the headers too, errors included.
    let resp = client
        .get(srv.url("/api/v1/stats"))
        .insert_header(("Origin", "http://localhost:5173"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers().get("access-control-allow-origin").unwrap(),
        "http://localhost:5173"
    );
}

#[actix_web::test]
async fn wildcard_cors_echoes_any_origin() {
    let mut config = config();
    config.cors = pushgate::config::CorsOrigins::Any;
    let srv = start_with(config);
    let resp = http()
        .get(srv.url("/api/v1/stats"))
        .insert_header(("Origin", "https://anything.example"))
        .insert_header(("X-API-Key", API_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().get("access-control-allow-origin").unwrap(),
        "https://anything.example"
    );
    assert_eq!(
        resp.headers()
            .get("access-control-allow-credentials")
            .unwrap(),
        "true"
    );
}

#[actix_web::test]
async fn the_api_key_is_accepted_as_a_bearer_token_in_any_case() {
    let srv = start();
    for (authorization, expected) in [
        (format!("Bearer {API_KEY}"), StatusCode::OK),
        (format!("bearer {API_KEY}"), StatusCode::OK),
        (format!("BEARER  {API_KEY}"), StatusCode::OK),
        (format!("Basic {API_KEY}"), StatusCode::UNAUTHORIZED),
        (format!("Bearer {API_KEY}x"), StatusCode::UNAUTHORIZED),
        (
            format!("bearer {}", &API_KEY[1..]),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let resp = http()
            .get(srv.url("/api/v1/rooms/admin"))
            .insert_header(("Authorization", authorization.as_str()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), expected, "{authorization}");
    }
}
