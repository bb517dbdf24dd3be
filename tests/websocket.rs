//! Raw Engine.IO / Socket.IO over a real WebSocket: the handshake, heartbeat, timeouts, and
//! every kind of bad input (bad packets, oversized frames, foreign origins, bad tokens), each
//! answered as the protocol says while other clients carry on.

mod common;

use std::time::Duration;

use awc::http::StatusCode;
use common::*;
use serde_json::Value;

#[actix_web::test]
async fn open_packet_carries_the_engine_settings() {
    let srv = start();
    let mut c = RawClient::connect(&srv.ws_url(""), &[]).await.unwrap();
    let open = c.next_text().await.unwrap();
    let v: Value = serde_json::from_str(&open[1..]).unwrap();
    assert_eq!(&open[..1], "0");
    assert_eq!(v["sid"].as_str().unwrap().len(), 20);
    assert_eq!(v["upgrades"], serde_json::json!([]));
    assert_eq!(v["pingInterval"], 300);
    assert_eq!(v["pingTimeout"], 200);
    assert_eq!(v["maxPayload"], 1_000_000);
}

#[actix_web::test]
async fn connect_with_token_welcomes_once_with_the_socket_id() {
    let srv = start();
    let mut c = RawClient::connect(&srv.ws_url(""), &[]).await.unwrap();
    let token = srv.token("42", false);
    let answer = c
        .handshake(Some(&format!(r#"{{"token":"{token}"}}"#)))
        .await;
    let sid: Value = serde_json::from_str(&answer[2..]).unwrap();
    let welcome = c.next_text().await.unwrap();
    let w: Value = serde_json::from_str(&welcome[2..]).unwrap();
    assert_eq!(w[0], "welcome");
    assert_eq!(w[1]["clientId"], sid["sid"]);
    assert_eq!(w[1]["userId"], "42");
    assert!(humantime::parse_rfc3339(w[1]["timestamp"].as_str().unwrap()).is_ok());
    // Nothing else follows (the old gateway sent welcome twice).
    c.send(r#"421["subscribe",{"userId":"42"}]"#).await;
    assert!(c
        .next_text()
        .await
        .unwrap()
        .starts_with("42[\"subscribed\""));
}

#[actix_web::test]
async fn token_from_query_and_bearer_header() {
    let srv = start();
    let token = srv.token("7", false);
    let mut c = RawClient::connect(&srv.ws_url(&format!("&token={token}")), &[])
        .await
        .unwrap();
    assert!(c.handshake(None).await.starts_with("40{"));
    // The scheme in any case (HTTP auth schemes are case-insensitive).
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let bearer = format!("{scheme} {token}");
        let mut c = RawClient::connect(&srv.ws_url(""), &[("Authorization", &bearer)])
            .await
            .unwrap();
        assert!(c.handshake(None).await.starts_with("40{"), "{scheme}");
    }
    // An invalid auth token is refused even with a valid query token.
    let mut c = RawClient::connect(&srv.ws_url(&format!("&token={token}")), &[])
        .await
        .unwrap();
    assert_eq!(
        c.handshake(Some(r#"{"token":"garbage"}"#)).await,
        r#"44{"message":"unauthorized"}"#
    );
}

#[actix_web::test]
async fn bad_tokens_get_connect_error_and_nothing_else() {
    let srv = start();
    for auth in [
        None,
        Some(r#"{"token":"garbage"}"#.to_owned()),
        Some(r#"{"token":42}"#.to_owned()),
        Some(r#"{"token":""}"#.to_owned()),
        Some(format!(
            r#"{{"token":"{}"}}"#,
            pushgate::auth::mint(
                "another-secret-another-secret-another",
                &pushgate::auth::TokenClaims::new(
                    &srv.config.jwt,
                    "1",
                    true,
                    Duration::from_secs(60)
                )
            )
        )),
    ] {
        let mut c = RawClient::connect(&srv.ws_url(""), &[]).await.unwrap();
        assert_eq!(
            c.handshake(auth.as_deref()).await,
            r#"44{"message":"unauthorized"}"#,
            "{auth:?}"
        );
        // No welcome, no room: the next thing is a ping or the connect-timeout close.
        match c.next(Duration::from_millis(400)).await {
            Some(Frame::Text(t)) => assert_eq!(t, "2"),
            other => assert!(matches!(other, None | Some(Frame::Close(_))), "{other:?}"),
        }
    }
    let metrics = http()
        .get(srv.url("/metrics"))
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    let text = String::from_utf8(metrics.to_vec()).unwrap();
    assert!(text.contains("pushgate_auth_rejected_total 5"), "{text}");
}

#[actix_web::test]
async fn unknown_namespace_is_refused() {
    let srv = start();
    let mut c = RawClient::connect(&srv.ws_url(""), &[]).await.unwrap();
    c.next_text().await.unwrap();
    c.send("40/admin,{}").await;
    assert_eq!(
        c.next_text().await.unwrap(),
        r#"44/admin,{"message":"Invalid namespace"}"#
    );
}

#[actix_web::test]
async fn heartbeat_pings_and_closes_silent_clients() {
    let srv = start();
    let mut c = RawClient::connect(&srv.ws_url(""), &[]).await.unwrap();
    let token = srv.token("1", false);
    c.handshake(Some(&format!(r#"{{"token":"{token}"}}"#)))
        .await;
    c.next_text().await.unwrap(); // welcome
                                  // Answered pings keep the session alive past several intervals.
    for _ in 0..4 {
        assert_eq!(
            c.next(Duration::from_secs(2)).await,
            Some(Frame::Text("2".into()))
        );
        c.send("3").await;
    }
    // A ping left unanswered closes the connection after pingTimeout.
    assert_eq!(
        c.next(Duration::from_secs(2)).await,
        Some(Frame::Text("2".into()))
    );
    assert_eq!(
        c.next(Duration::from_secs(2)).await,
        Some(Frame::Close(Some(1000)))
    );
}

#[actix_web::test]
async fn connect_timeout_closes_a_session_that_never_connects() {
    let srv = start();
    let mut c = RawClient::connect(&srv.ws_url(""), &[]).await.unwrap();
    c.next_text().await.unwrap();
    let started = std::time::Instant::now();
    loop {
        match c.next(Duration::from_secs(3)).await {
            Some(Frame::Text(t)) if t == "2" => c.send("3").await,
            Some(Frame::Close(code)) => {
                assert_eq!(code, Some(1000));
                break;
            }
            other => panic!("expected close, got {other:?}"),
        }
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[actix_web::test]
async fn malformed_packets_close_the_connection() {
    let srv = start();
    let token = srv.token("1", false);
    for bad in MALFORMED_PACKETS {
        let mut c = RawClient::connected(&srv, &token).await;
        eprintln!("malformed: {bad:?}");
        c.send(bad).await;
        c.expect_close(1002).await;
    }
    // Events before CONNECT are a protocol error too.
    let mut c = RawClient::connect(&srv.ws_url(""), &[]).await.unwrap();
    c.next_text().await.unwrap();
    c.send(r#"42["subscribe",{"userId":"1"}]"#).await;
    assert_eq!(
        c.next(Duration::from_secs(2)).await,
        Some(Frame::Close(Some(1002)))
    );
}

#[actix_web::test]
async fn oversized_message_closes_only_that_connection() {
    let mut config = config();
    config.engine.max_payload = 1000;
    let srv = start_with(config);
    let token = srv.token("1", false);
    let mut victim = RawClient::connected(&srv, &token).await;
    let mut other = RawClient::connected(&srv, &token).await;
    let big = format!(r#"42["subscribe",{{"userId":"{}"}}]"#, "x".repeat(2000));
    victim.send(&big).await;
    victim.expect_close(1009).await;
    other.send(r#"421["subscribe",{"userId":"1"}]"#).await;
    assert!(other
        .next_text()
        .await
        .unwrap()
        .starts_with("42[\"subscribed\""));
}

#[actix_web::test]
async fn a_message_of_max_payload_bytes_is_handled_and_one_byte_more_closes() {
    let mut config = config();
    config.engine.max_payload = 1000;
    let srv = start_with(config);
    let token = srv.token("1", false);
    let mut c = RawClient::connected(&srv, &token).await;
    // `421["subscribe",{"userId":"1xx…x"}]`, exactly `len` bytes long.
    let message = |len: usize| {
        let frame = |pad: usize| format!(r#"421["subscribe",{{"userId":"1{}"}}]"#, "x".repeat(pad));
        let pad = len - frame(0).len();
        let m = frame(pad);
        assert_eq!(m.len(), len);
        m
    };
    // Handled: refused (another user's id), with the `error` event and the ack.
    c.send(&message(1000)).await;
    let replies = [c.next_text().await.unwrap(), c.next_text().await.unwrap()];
    assert!(
        replies.iter().any(|r| r.starts_with("42[\"error\"")),
        "{replies:?}"
    );
    assert!(replies.iter().any(|r| r.starts_with("431[")), "{replies:?}");
    c.send(&message(1001)).await;
    c.expect_close(1009).await;
}

#[actix_web::test]
async fn foreign_origins_are_refused_and_listed_ones_accepted() {
    let srv = start();
    assert!(
        RawClient::connect(&srv.ws_url(""), &[("Origin", "http://evil.test")])
            .await
            .is_err()
    );
    let resp = http()
        .get(srv.url("/socket.io/?EIO=4&transport=websocket"))
        .insert_header(("Origin", "http://evil.test"))
        .insert_header(("Connection", "Upgrade"))
        .insert_header(("Upgrade", "websocket"))
        .insert_header(("Sec-WebSocket-Version", "13"))
        .insert_header(("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let mut ok = RawClient::connect(&srv.ws_url(""), &[("Origin", "http://localhost:5173")])
        .await
        .unwrap();
    assert!(ok.next_text().await.unwrap().starts_with("0{"));
}

#[actix_web::test]
async fn handshake_errors_use_engine_io_codes() {
    let srv = start();
    let client = http();
    for (query, status, code) in [
        ("", StatusCode::BAD_REQUEST, 5),
        ("?EIO=3&transport=websocket", StatusCode::BAD_REQUEST, 5),
        ("?EIO=4", StatusCode::BAD_REQUEST, 0),
        (
            "?EIO=4&transport=carrier-pigeon",
            StatusCode::BAD_REQUEST,
            0,
        ),
        ("?EIO=4&transport=websocket", StatusCode::BAD_REQUEST, 3),
        (
            "?EIO=4&transport=polling&sid=nope",
            StatusCode::BAD_REQUEST,
            1,
        ),
    ] {
        let mut resp = client
            .get(srv.url(&format!("/socket.io/{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{query}");
        let body: Value = serde_json::from_slice(&resp.body().await.unwrap()).unwrap();
        assert_eq!(body["code"], code, "{query}");
        assert!(body["message"].is_string());
    }
    let resp = client
        .put(srv.url("/ws/?EIO=4&transport=polling"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn a_client_vanishing_mid_push_breaks_nothing() {
    let srv = start();
    let token = srv.token("9", false);
    let mut survivor = RawClient::connected(&srv, &token).await;
    for _ in 0..5 {
        let vanishing = RawClient::connected(&srv, &token).await;
        drop(vanishing); // TCP gone without a close handshake
    }
    let big = format!(r#"{{"blob":"{}"}}"#, "y".repeat(200_000));
    for _ in 0..20 {
        let resp = http()
            .post(srv.url("/api/v1/users/9/notifications"))
            .insert_header(("X-API-Key", API_KEY))
            .send_body(big.clone())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    let mut received = 0;
    while received < 20 {
        match survivor.next(Duration::from_secs(5)).await {
            Some(Frame::Text(t)) if t == "2" => survivor.send("3").await,
            Some(Frame::Text(t)) => {
                assert!(t.starts_with("42[\"notification\""));
                received += 1;
            }
            other => panic!("survivor lost its connection: {other:?}"),
        }
    }
    // The vanished sessions are unregistered.
    assert_eq!(survivor.idle(Duration::from_millis(300)).await, vec![]);
    let stats: Value = serde_json::from_slice(
        &http()
            .get(srv.url("/api/v1/stats"))
            .insert_header(("X-API-Key", API_KEY))
            .send()
            .await
            .unwrap()
            .body()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stats["connections"], 1);
}

#[actix_web::test]
async fn coalesced_pushes_arrive_complete_in_order_and_one_packet_each() {
    let mut config = config();
    config.push_coalesce =
        pushgate_actors::adaptive_window::CoalesceWindow::Fixed(Duration::from_millis(100));
    let srv = start_with(config);
    let token = srv.token("42", false);
    let mut ws = RawClient::connected(&srv, &token).await;
    let mut polling = PollingClient::connected(&srv, &token).await;
    // Both sessions are in user:42 (one room actor per worker thread that has members).
    let pushes = 30;
    for i in 0..pushes {
        let body = format!(r#"{{"n":{i}}}"#);
        assert_eq!(srv.push_to_user("42", &body).await, 2);
    }
    let expected: Vec<String> = (0..pushes)
        .map(|i| format!(r#"42["notification",{{"n":{i}}}]"#))
        .collect();
    let mut got = Vec::new();
    while got.len() < expected.len() {
        match ws.next(Duration::from_secs(5)).await {
            Some(Frame::Text(t)) if t == "2" => ws.send("3").await,
            Some(Frame::Text(t)) => got.push(t),
            other => panic!("websocket client lost its connection: {other:?}"),
        }
    }
    assert_eq!(
        got, expected,
        "over WebSocket: one frame per push, in order"
    );
    let mut got = Vec::new();
    while got.len() < expected.len() {
        got.push(polling.next_packet().await.expect("polling session alive"));
    }
    assert_eq!(
        got, expected,
        "over long-polling: one packet per push, in order"
    );
    assert_eq!(ws.idle(Duration::from_millis(300)).await, vec![]);
}

#[actix_web::test]
async fn same_origin_upgrades_are_allowed_and_foreign_ones_still_refused() {
    let srv = start();
    let path = "/socket.io/?EIO=4&transport=websocket";
    // The page was served by this very host and port (Host header = server address): allowed,
    // though not in CORS_ORIGIN.
    let same = format!("http://{}", srv.addr);
    let answer = ws_handshake(&srv, path, &[("Origin", &same)]).await;
    assert_eq!(answer.status, StatusCode::SWITCHING_PROTOCOLS);
    // Same host, another port; another host; another scheme's default port: refused.
    let other_port = format!("http://{}:{}", srv.addr.ip(), srv.addr.port() + 1);
    let https = format!("https://{}", srv.addr.ip());
    for origin in [&other_port, "http://evil.test", &https] {
        let answer = ws_handshake(&srv, path, &[("Origin", origin)]).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{origin}");
    }
}

#[actix_web::test]
async fn engine_io_is_served_at_the_root_when_the_query_carries_eio() {
    let srv = start();
    // WebSocket straight away.
    let mut ws = RawClient::connect(&srv.ws_url_at("/", ""), &[])
        .await
        .unwrap();
    assert!(ws.next_text().await.unwrap().starts_with("0{"));
    // Polling, then the upgrade of that session, all at `/`.
    let polling = PollingClient::open_at(&srv, "/", "").await;
    let extra = format!("&sid={}", polling.sid);
    let mut upgrade = RawClient::connect(&srv.ws_url_at("/", &extra), &[])
        .await
        .unwrap();
    upgrade.send("2probe").await;
    assert_eq!(upgrade.next_text().await.as_deref(), Some("3probe"));
    upgrade.send("5").await;
    upgrade.send("40").await;
    let connected = upgrade.next_text().await.unwrap();
    assert!(
        connected.starts_with("44") || connected.starts_with("40"),
        "{connected}"
    );
    // Any other request to `/` keeps its answer.
    for path in ["/", "/?foo=1", "/?XEIO=4&transport=polling"] {
        let answer = send(http().get(srv.url(path)), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
    }
}
