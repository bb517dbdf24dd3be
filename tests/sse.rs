//! `GET /api/v1/stream`, Server-Sent Events, with a plain HTTP client: the user's pushes (and
//! `admin`'s for admins, and broadcasts) as events whose `id` is the push's offset, resuming
//! with `Last-Event-ID`, `reset` when it cannot, the JWT refusals, CORS, the heartbeat, 405,
//! a client that never reads, and the cleanup after a client goes away.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use pushgate::auth::{mint, TokenClaims};
use pushgate::config::{Config, CorsOrigins};
use pushgate::transport::upgraded::MAX_UNWRITTEN;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(3);

/// Open a stream of `user`'s with its token in the `Authorization` header, plus `headers`;
/// reads past the opening `retry:`.
async fn open(srv: &TestServer, user: &str, admin: bool, headers: &[(&str, &str)]) -> SseClient {
    let bearer = format!("Bearer {}", srv.token(user, admin));
    let mut all = vec![("Authorization", bearer.as_str())];
    all.extend_from_slice(headers);
    let client = SseClient::open(srv.addr, "/api/v1/stream", &all).await;
    assert_eq!(client.status, 200);
    client
}

/// The opening `retry:` line, then the stream.
async fn opened(mut client: SseClient) -> SseClient {
    assert_eq!(client.next(WAIT).await, Some(SseItem::Retry(2000)));
    client
}

/// A server with recovery on.
fn start_recovering() -> TestServer {
    start_with(recovery_config())
}

/// Open a stream of `user`'s, have it receive `body`, then close it: the event it got.
async fn gone_after_one_push(srv: &TestServer, user: &str, body: &str) -> SseEvent {
    let mut stream = opened(open(srv, user, false, &[]).await).await;
    srv.wait_for_connections(1).await;
    srv.push_to_user(user, body).await;
    let event = stream.next_event(WAIT).await.expect("the push");
    stream.close();
    srv.wait_for_connections(0).await;
    event
}

#[actix_web::test]
async fn a_users_pushes_are_events_whose_id_is_the_offset_a_socketio_client_sees() {
    let srv = start_recovering();
    let stream = open(&srv, "7", false, &[]).await;
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    assert_eq!(stream.header("cache-control"), Some("no-cache"));
    assert_eq!(stream.header("x-accel-buffering"), Some("no"));
    let mut stream = opened(stream).await;
    // A Socket.IO client of the same user, for the offset it is given.
    let mut socket = RawClient::connect(&srv.ws_url(""), &[]).await.unwrap();
    assert!(matches!(socket.next(WAIT).await, Some(Frame::Text(t)) if t.starts_with('0')));
    socket
        .send(&format!(r#"40{{"token":"{}"}}"#, srv.token("7", false)))
        .await;
    for _ in 0..2 {
        socket.next(WAIT).await.expect("CONNECT reply, welcome");
    }
    srv.wait_for_connections(2).await;

    let body = r#"{"type":"quota.updated","data":{"used":3}}"#;
    assert_eq!(srv.push_to_user("7", body).await, 2);
    let event = stream.next_event(WAIT).await.expect("the push");
    assert_eq!(event.event, "notification");
    assert_eq!(event.data, body, "the payload as sent");
    let Some(Frame::Text(packet)) = socket.next(WAIT).await else {
        panic!("the Socket.IO client got no push");
    };
    let args: Vec<Value> = serde_json::from_str(&packet[2..]).unwrap();
    assert_eq!(
        event.id.as_deref(),
        args[2].as_str(),
        "the offset: {packet}"
    );
    // Another user's push is not on this stream.
    assert_eq!(srv.push_to_user("8", "{}").await, 0);
    assert!(stream.no_event_within(Duration::from_millis(300)).await);
}

#[actix_web::test]
async fn admins_get_the_admin_rooms_pushes_and_everyone_gets_broadcasts() {
    let srv = start_recovering();
    let mut admin = opened(open(&srv, "boss", true, &[]).await).await;
    let mut user = opened(open(&srv, "u1", false, &[]).await).await;
    srv.wait_for_connections(2).await;

    assert_eq!(
        srv.push("/api/v1/rooms/admin/messages", r#"{"m":1}"#).await,
        1
    );
    assert_eq!(
        srv.push("/api/v1/rooms/admin/notifications", r#"{"n":2}"#)
            .await,
        1
    );
    let first = admin.next_event(WAIT).await.unwrap();
    assert_eq!(
        (first.event.as_str(), first.json()),
        ("message", json!({"m":1}))
    );
    let second = admin.next_event(WAIT).await.unwrap();
    assert_eq!(
        (second.event.as_str(), second.json()),
        ("notification", json!({"n":2}))
    );

    assert_eq!(srv.push("/api/v1/broadcast", r#"{"all":true}"#).await, 2);
    for stream in [&mut admin, &mut user] {
        let event = stream.next_event(WAIT).await.expect("the broadcast");
        assert_eq!(
            (event.event.as_str(), event.json()),
            ("notification", json!({"all":true}))
        );
    }
    assert!(
        user.no_event_within(Duration::from_millis(300)).await,
        "the admin pushes were not the user's"
    );
}

#[actix_web::test]
async fn last_event_id_resumes_after_a_disconnect_with_nothing_missed_or_repeated() {
    let srv = start_recovering();
    let last = gone_after_one_push(&srv, "9", r#"{"n":1}"#).await;
    assert_eq!(last.json(), json!({"n":1}));
    // While it is away: its own pushes, another user's, a broadcast.
    srv.push_to_user("9", r#"{"n":2}"#).await;
    srv.push_to_user("10", r#"{"other":true}"#).await;
    srv.push("/api/v1/broadcast", r#"{"n":3}"#).await;
    srv.push_to_user("9", r#"{"n":4}"#).await;

    let id = last.id.clone().unwrap();
    let mut resumed = opened(open(&srv, "9", false, &[("Last-Event-ID", &id)]).await).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(resumed.next_event(WAIT).await.expect("a missed push"));
    }
    srv.wait_for_connections(1).await;
    srv.push_to_user("9", r#"{"n":5}"#).await;
    got.push(resumed.next_event(WAIT).await.expect("the live push"));
    let numbers: Vec<Value> = got.iter().map(|e| e.json()["n"].clone()).collect();
    assert_eq!(numbers, [json!(2), json!(3), json!(4), json!(5)]);
    assert!(resumed.no_event_within(Duration::from_millis(300)).await);
    // Each with its own, increasing offset: what the browser would send next time.
    let ids: Vec<&str> = got.iter().map(|e| e.id.as_deref().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] != w[1]), "{ids:?}");

    // `?lastEventId=` does the same for a client that cannot send the header.
    resumed.close();
    srv.wait_for_connections(0).await;
    srv.push_to_user("9", r#"{"n":6}"#).await;
    let path = format!("/api/v1/stream?lastEventId={}", ids[3]);
    let bearer = format!("Bearer {}", srv.token("9", false));
    let mut by_query =
        opened(SseClient::open(srv.addr, &path, &[("Authorization", &bearer)]).await).await;
    assert_eq!(
        by_query.next_event(WAIT).await.unwrap().json(),
        json!({"n":6})
    );
}

#[actix_web::test]
async fn a_resume_longer_than_the_slow_reader_bound_arrives_whole_then_live_pushes() {
    let srv = start_recovering();
    let last = gone_after_one_push(&srv, "9", r#"{"n":0}"#).await;
    // More missed bytes than a stream may hold unread: written all at once, they would end
    // it as a slow reader, and its client would resume from the same id again and again.
    let filler = "x".repeat(32 * 1024);
    let missed = MAX_UNWRITTEN / filler.len() + 8;
    for n in 1..=missed {
        srv.push_to_user("9", &json!({ "n": n, "filler": filler }).to_string())
            .await;
    }
    let id = last.id.clone().unwrap();
    let mut resumed = opened(open(&srv, "9", false, &[("Last-Event-ID", &id)]).await).await;
    srv.wait_for_connections(1).await;
    // A live push while the replay is still being written: it comes after it.
    srv.push_to_user("9", &json!({ "n": missed + 1 }).to_string())
        .await;
    for n in 1..=missed + 1 {
        let event = resumed.next_event(WAIT).await.expect("every missed push");
        assert_eq!(event.json()["n"], json!(n), "in order, once each");
    }
    assert!(resumed.no_event_within(Duration::from_millis(300)).await);
}

#[actix_web::test]
async fn an_unknown_or_too_old_last_event_id_starts_live_with_a_reset_event() {
    let mut config = recovery_config();
    config.recovery.history_bytes = 4096;
    let srv = start_with(config);
    let mut stream = opened(open(&srv, "9", false, &[]).await).await;
    srv.wait_for_connections(1).await;
    srv.push_to_user("9", r#"{"n":1}"#).await;
    let old = stream.next_event(WAIT).await.unwrap().id.unwrap();
    stream.close();
    srv.wait_for_connections(0).await;
    // More than the history holds.
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(1000));
    for _ in 0..8 {
        srv.push_to_user("9", &big).await;
    }
    for last in [old.as_str(), "not-an-offset", "1-1"] {
        let mut stream = opened(open(&srv, "9", false, &[("Last-Event-ID", last)]).await).await;
        let reset = stream.next_event(WAIT).await.expect("reset");
        assert_eq!(reset.event, "reset", "{last}");
        assert_eq!(reset.id.as_deref(), Some(""), "forget the offset");
        assert!(reset.json()["message"].is_string());
        srv.wait_for_connections(1).await;
        srv.push_to_user("9", r#"{"live":true}"#).await;
        let live = stream.next_event(WAIT).await.expect("live");
        assert_eq!(live.json(), json!({"live": true}));
        stream.close();
        srv.wait_for_connections(0).await;
    }
}

#[actix_web::test]
async fn without_recovery_events_have_no_id_and_a_last_event_id_gets_reset() {
    let srv = start();
    let mut stream = opened(open(&srv, "3", false, &[]).await).await;
    srv.wait_for_connections(1).await;
    srv.push_to_user("3", r#"{"a":1}"#).await;
    let event = stream.next_event(WAIT).await.unwrap();
    assert_eq!((event.json(), event.id), (json!({"a":1}), None));
    let mut asking = opened(open(&srv, "3", false, &[("Last-Event-ID", "1-1")]).await).await;
    assert_eq!(asking.next_event(WAIT).await.unwrap().event, "reset");
}

#[actix_web::test]
async fn a_payload_with_raw_line_breaks_arrives_as_several_data_lines_of_the_same_json() {
    let srv = start_recovering();
    let mut stream = opened(open(&srv, "4", false, &[]).await).await;
    srv.wait_for_connections(1).await;
    let body = "{\n  \"type\": \"x\",\r\n  \"data\": {\"t\": \"a\\nb\"}\r}";
    srv.push_to_user("4", body).await;
    let event = stream.next_event(WAIT).await.unwrap();
    assert_eq!(event.data_lines, 4);
    assert_eq!(event.json(), json!({"type": "x", "data": {"t": "a\nb"}}));
}

#[actix_web::test]
async fn a_missing_bad_or_expired_token_or_the_api_key_is_401() {
    let srv = start();
    let expired = {
        let mut claims = TokenClaims::new(&srv.config.jwt, "5", false, Duration::from_secs(60));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        claims.exp = now - 10;
        mint(&srv.config.jwt.secret, &claims)
    };
    let wrong_secret = mint(
        "another-secret-another-secret-0123456789",
        &TokenClaims::new(&srv.config.jwt, "5", false, Duration::from_secs(60)),
    );
    let cases: [(&str, Option<String>); 6] = [
        ("no token", None),
        ("garbage", Some("Bearer not.a.jwt".into())),
        ("wrong secret", Some(format!("Bearer {wrong_secret}"))),
        ("expired", Some(format!("Bearer {expired}"))),
        ("the API key", Some(format!("Bearer {API_KEY}"))),
        (
            "not Bearer",
            Some(format!("Basic {}", srv.token("5", false))),
        ),
    ];
    for (what, authorization) in cases {
        let mut req = http().get(srv.url("/api/v1/stream"));
        if let Some(a) = authorization {
            req = req.insert_header(("Authorization", a));
        }
        let answer = send(req, None).await;
        assert_eq!(answer.status.as_u16(), 401, "{what}");
        let v: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(v["error"], "unauthorized", "{what}");
        assert!(v["message"].is_string());
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    }
    let by_api_key = send(
        http()
            .get(srv.url("/api/v1/stream"))
            .insert_header(("X-API-Key", API_KEY)),
        None,
    )
    .await;
    assert_eq!(by_api_key.status.as_u16(), 401);
    let by_query = send(
        http().get(srv.url(&format!("/api/v1/stream?token={expired}"))),
        None,
    )
    .await;
    assert_eq!(by_query.status.as_u16(), 401);
    // A good token in the query opens it.
    let path = format!("/api/v1/stream?token={}", srv.token("5", false));
    let stream = opened(SseClient::open(srv.addr, &path, &[]).await).await;
    assert_eq!(stream.status, 200);
}

#[actix_web::test]
async fn cors_headers_for_a_listed_origin_only_and_other_methods_are_405() {
    let mut config: Config = common::config();
    config.cors = CorsOrigins::List(vec!["http://console.test".into()]);
    let srv = start_with(config);
    let listed = open(&srv, "1", false, &[("Origin", "http://console.test")]).await;
    assert_eq!(
        listed.header("access-control-allow-origin"),
        Some("http://console.test")
    );
    assert_eq!(
        listed.header("access-control-allow-credentials"),
        Some("true")
    );
    let unlisted = open(&srv, "1", false, &[("Origin", "http://evil.test")]).await;
    assert!(unlisted
        .headers
        .iter()
        .all(|(k, _)| !k.starts_with("access-control-")));

    let preflight = send(
        http()
            .request(awc::http::Method::OPTIONS, srv.url("/api/v1/stream"))
            .insert_header(("Origin", "http://console.test"))
            .insert_header(("Access-Control-Request-Headers", "authorization")),
        None,
    )
    .await;
    assert_eq!(preflight.status.as_u16(), 204);
    assert!(preflight
        .header("access-control-allow-methods")
        .unwrap()
        .contains("GET"));
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("http://console.test")
    );

    let bearer = format!("Bearer {}", srv.token("1", false));
    for method in [awc::http::Method::POST, awc::http::Method::DELETE] {
        let answer = send(
            http()
                .request(method.clone(), srv.url("/api/v1/stream"))
                .insert_header(("Authorization", bearer.as_str())),
            None,
        )
        .await;
        assert_eq!(answer.status.as_u16(), 405, "{method}");
        let v: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(v["error"], "method_not_allowed");
    }
}

#[actix_web::test]
async fn a_heartbeat_comment_comes_every_ping_interval() {
    let srv = start(); // PING_INTERVAL_MS 300
    let mut stream = opened(open(&srv, "1", false, &[]).await).await;
    for _ in 0..2 {
        assert_eq!(
            stream.next(Duration::from_secs(2)).await,
            Some(SseItem::Comment("ping".into()))
        );
    }
}

#[actix_web::test]
async fn a_client_that_goes_away_leaves_no_session_or_room_behind() {
    let srv = start();
    let stream = opened(open(&srv, "1", true, &[]).await).await;
    srv.wait_for_connections(1).await;
    let stats = srv.stats().await;
    assert_eq!(
        (&stats["connections"], &stats["rooms"]),
        (&json!(1), &json!(2)),
        "user:1 and admin"
    );
    let metrics = srv.metrics().await;
    assert!(
        metrics.contains("pushgate_connected_clients 1"),
        "{metrics}"
    );
    stream.close();
    srv.wait_for_connections(0).await;
    let stats = srv.stats().await;
    assert_eq!(
        (&stats["connections"], &stats["rooms"]),
        (&json!(0), &json!(0))
    );
    srv.assert_disconnects("client_close", 1).await;
}

#[actix_web::test]
async fn a_stream_ends_when_its_token_expires() {
    let srv = start();
    let token = mint(
        &srv.config.jwt.secret,
        &TokenClaims::new(&srv.config.jwt, "2", false, Duration::from_secs(2)),
    );
    let bearer = format!("Bearer {token}");
    let mut stream =
        opened(SseClient::open(srv.addr, "/api/v1/stream", &[("Authorization", &bearer)]).await)
            .await;
    srv.wait_for_connections(1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match stream.next(Duration::from_secs(5)).await {
            Some(SseItem::End) => break,
            Some(_) => assert!(std::time::Instant::now() < deadline, "not ended"),
            None => panic!("not ended"),
        }
    }
    srv.wait_for_connections(0).await;
    srv.assert_disconnects("token_expired", 1).await;
}

#[actix_web::test]
async fn a_client_that_never_reads_is_ended_as_a_slow_reader() {
    let srv = start();
    let bearer = format!("Bearer {}", srv.token("6", false));
    // Sends its request and never reads a byte.
    let request = format!(
        "GET /api/v1/stream HTTP/1.1\r\nHost: {}\r\nAuthorization: {bearer}\r\n\r\n",
        srv.addr
    );
    let mut stuck = std::net::TcpStream::connect(srv.addr).unwrap();
    std::io::Write::write_all(&mut stuck, request.as_bytes()).unwrap();
    srv.wait_for_connections(1).await;
    srv.push_until_the_slow_reader_is_dropped("6", MAX_UNWRITTEN)
        .await;
    srv.wait_for_connections(0).await;
    srv.assert_disconnects("slow_reader", 1).await;
    drop(stuck);
}

#[actix_web::test]
async fn a_shutdown_ends_every_stream() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (srv, shutdown) = start_on(common::config(), listener);
    let mut stream = opened(open(&srv, "1", false, &[]).await).await;
    srv.wait_for_connections(1).await;
    shutdown.shutdown().await;
    loop {
        match stream.next(WAIT).await {
            Some(SseItem::End) => break,
            Some(_) => {}
            None => panic!("the stream did not end"),
        }
    }
    let ended = srv
        .state
        .metrics
        .disconnects
        .with_label_values(&["server_shutdown"]);
    assert_eq!(ended.get(), 1);
}
