//! Raw Engine.IO / Socket.IO over HTTP long-polling, and its upgrade to WebSocket, against the
//! real server: every handshake and request error (on WebSocket too where it applies), the
//! payload framing (record separator, `b<base64>`), heartbeat and timeouts, pushes, the client
//! close, the `2probe` / `3probe` / `5` upgrade with no push lost or reordered, CORS, both
//! paths, and namespaces.
//!
//! The test server pings every 300 ms and gives 200 ms for the pong: every test answers pings
//! (or uses [`PollingClient::sync_with_ping`] so that the next one is a whole interval away).

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use awc::http::{Method, StatusCode};
use common::*;
use pushgate::config::CorsOrigins;
use pushgate::session::Mode;
use serde_json::{json, Value};

const ALLOWED_ORIGIN: &str = "http://localhost:5173";
const FOREIGN_ORIGIN: &str = "http://evil.test";

fn sleep(ms: u64) -> actix_rt::time::Sleep {
    actix_rt::time::sleep(Duration::from_millis(ms))
}

/// Start a GET of `url` in the background.
fn spawn_get(url: &str) -> actix_rt::task::JoinHandle<Answer> {
    let url = url.to_owned();
    actix_web::rt::spawn(async move { send(http().get(url), None).await })
}

/// `42["notification",{"type":"t","seq":<n>}]`, as pushed by [`push_seq`].
fn notification(seq: u64) -> String {
    format!(r#"42["notification",{{"type":"t","seq":{seq}}}]"#)
}

/// Push notification `seq` to `user:<user>`, expecting it to reach exactly one session.
async fn push_seq(srv: &TestServer, user: &str, seq: u64) {
    let body = format!(r#"{{"type":"t","seq":{seq}}}"#);
    assert_eq!(srv.push_to_user(user, &body).await, 1, "push {seq}");
}

/// The sequence numbers of notification packets, failing on any other packet.
fn seqs(packets: &[String]) -> Vec<u64> {
    packets
        .iter()
        .map(|p| {
            let v: Value = serde_json::from_str(p.strip_prefix("42").expect(p)).expect(p);
            assert_eq!(v[0], "notification", "{p}");
            v[1]["seq"].as_u64().expect(p)
        })
        .collect()
}

/// The JSON arguments of a `42[...]` / `43N[...]` packet.
fn args(packet: &str, prefix: &str) -> Value {
    let rest = packet
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected {prefix}..., got {packet}"));
    serde_json::from_str(rest).unwrap_or_else(|e| panic!("{packet}: {e}"))
}

fn token_auth(token: &str) -> String {
    format!(r#"{{"token":"{token}"}}"#)
}

// ---------------------------------------------------------------------------------------------
// Handshake and request errors

#[actix_web::test]
async fn handshake_and_request_errors_on_polling() {
    let srv = start();
    let live = PollingClient::open(&srv).await;
    for path in ["/socket.io/", "/ws/"] {
        let url = |q: &str| srv.url(&format!("{path}{q}"));
        for (query, code, what) in [
            ("?transport=polling", 5, "missing EIO"),
            ("?EIO=3&transport=polling", 5, "EIO=3"),
            ("?EIO=abc&transport=polling", 5, "EIO=abc"),
            ("?EIO=4", 0, "missing transport"),
            ("?EIO=4&transport=carrier-pigeon", 0, "unknown transport"),
            ("?EIO=4&transport=polling&sid=nope", 1, "unknown sid"),
        ] {
            let get = send(http().get(url(query)), None).await;
            assert_eq!(
                get.status,
                StatusCode::BAD_REQUEST,
                "GET {path}{query}: {what}"
            );
            assert_eq!(
                get.eio_code(),
                Some(code),
                "GET {path}{query}: {}",
                get.body
            );
            assert_eq!(get.header("content-type"), Some("application/json"));
            let post = send(http().post(url(query)), Some(b"40".to_vec())).await;
            assert_eq!(
                post.status,
                StatusCode::BAD_REQUEST,
                "POST {path}{query}: {what}"
            );
            assert_eq!(
                post.eio_code(),
                Some(code),
                "POST {path}{query}: {}",
                post.body
            );
        }
        // A handshake is a GET: POST without a sid, PUT, DELETE, PATCH are bad handshake methods.
        let post = send(
            http().post(url("?EIO=4&transport=polling")),
            Some(b"40".to_vec()),
        )
        .await;
        assert_eq!(post.status, StatusCode::BAD_REQUEST, "POST without sid");
        assert_eq!(post.eio_code(), Some(2), "POST without sid: {}", post.body);
        for method in [Method::PUT, Method::DELETE, Method::PATCH] {
            let a = send(
                http().request(method.clone(), url("?EIO=4&transport=polling")),
                None,
            )
            .await;
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{method}");
            assert_eq!(a.eio_code(), Some(2), "{method}: {}", a.body);
            let a = send(
                http().request(
                    method.clone(),
                    url(&format!("?EIO=4&transport=polling&sid={}", live.sid)),
                ),
                None,
            )
            .await;
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{method} with a sid");
        }
    }
    // `transport=websocket` with a live polling sid but no upgrade headers: no handshake.
    let a = send(
        http().get(srv.url(&format!(
            "/socket.io/?EIO=4&transport=websocket&sid={}",
            live.sid
        ))),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    // None of this hurt the live session.
    live.send("40").await;
    assert!(live.poll().await[0].starts_with("44{"));
}

#[actix_web::test]
async fn handshake_errors_on_websocket_upgrades() {
    let srv = start();
    for (query, code, what) in [
        ("?transport=websocket", 5, "missing EIO"),
        ("?EIO=3&transport=websocket", 5, "EIO=3"),
        ("?EIO=abc&transport=websocket", 5, "EIO=abc"),
        ("?EIO=4", 0, "missing transport"),
        ("?EIO=4&transport=carrier-pigeon", 0, "unknown transport"),
        ("?EIO=4&transport=websocket&sid=nope", 1, "unknown sid"),
    ] {
        for path in ["/socket.io/", "/ws/"] {
            let a = ws_handshake(&srv, &format!("{path}{query}"), &[]).await;
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}{query}: {what}");
            assert_eq!(a.eio_code(), Some(code), "{path}{query}: {}", a.body);
            let ws = format!("ws://{}{path}{query}", srv.addr);
            assert!(RawClient::connect(&ws, &[]).await.is_err(), "{ws}: {what}");
        }
    }
    // The sid of a session opened over WebSocket is no polling session to upgrade.
    let mut owner = RawClient::connect(&srv.ws_url(""), &[]).await.unwrap();
    let open: Value = serde_json::from_str(&owner.next_text().await.unwrap()[1..]).unwrap();
    let sid = open["sid"].as_str().unwrap();
    let a = ws_handshake(
        &srv,
        &format!("/socket.io/?EIO=4&transport=websocket&sid={sid}"),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    let a = send(
        http().get(srv.polling_url("/socket.io/", &format!("&sid={sid}"))),
        None,
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::BAD_REQUEST,
        "GET with a WebSocket session's sid"
    );
}

// ---------------------------------------------------------------------------------------------
// Handshake, connect, framing

#[actix_web::test]
async fn polling_handshake_sends_the_open_packet_at_every_path() {
    let srv = start();
    for path in ["/socket.io/", "/socket.io", "/ws/", "/ws"] {
        let a = send(http().get(srv.polling_url(path, "")), None).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert!(
            a.header("content-type").unwrap().starts_with("text/plain"),
            "{path}: {:?}",
            a.header("content-type")
        );
        assert_eq!(&a.body[..1], "0", "{path}: {}", a.body);
        let v: Value = serde_json::from_str(&a.body[1..]).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "maxPayload",
                "pingInterval",
                "pingTimeout",
                "sid",
                "upgrades"
            ],
            "{path}"
        );
        assert_eq!(v["sid"].as_str().unwrap().len(), 20);
        assert_eq!(v["upgrades"], json!(["websocket"]), "{path}");
        assert_eq!(v["pingInterval"], 300);
        assert_eq!(v["pingTimeout"], 200);
        assert_eq!(v["maxPayload"], 1_000_000);
    }
    // Every handshake opens its own session.
    let a = PollingClient::open(&srv).await;
    let b = PollingClient::open(&srv).await;
    assert_ne!(a.sid, b.sid);
}

#[actix_web::test]
async fn connect_over_post_is_answered_with_sid_and_welcome_on_the_next_get() {
    let srv = start();
    let mut c = PollingClient::open(&srv).await;
    let token = srv.token("42", false);
    let posted = c.post(format!("40{}", token_auth(&token))).await;
    assert_eq!(
        (posted.status, posted.body.as_str()),
        (StatusCode::OK, "ok")
    );
    // One GET carries both packets.
    let packets: Vec<_> = c.poll().await.into_iter().filter(|p| p != "2").collect();
    assert_eq!(packets.len(), 2, "{packets:?}");
    let connected = args(&packets[0], "40");
    let socket_id = connected["sid"].as_str().unwrap();
    assert_eq!(connected.as_object().unwrap().len(), 1, "{connected}");
    assert_ne!(
        socket_id, c.sid,
        "the Socket.IO id is not the Engine.IO sid"
    );
    let welcome = args(&packets[1], "42");
    assert_eq!(welcome[0], "welcome");
    assert_eq!(welcome[1]["clientId"], socket_id);
    assert_eq!(welcome[1]["userId"], "42");
    assert!(welcome[1]["message"].is_string());
    assert!(humantime::parse_rfc3339(welcome[1]["timestamp"].as_str().unwrap()).is_ok());
    // Nothing else comes (the welcome is sent once), and the user's room has the session.
    assert_eq!(
        c.idle(Duration::from_millis(400)).await,
        Vec::<String>::new()
    );
    assert_eq!(srv.push_to_user("42", r#"{"type":"x"}"#).await, 1);
    assert_eq!(
        c.next_packet().await.unwrap(),
        r#"42["notification",{"type":"x"}]"#
    );
}

#[actix_web::test]
async fn handshake_tokens_over_polling_query_and_bearer_header() {
    let srv = start();
    let token = srv.token("7", false);
    // `token` in the handshake query.
    let mut c = PollingClient::open_at(&srv, "/socket.io/", &format!("&token={token}")).await;
    assert!(c.connect(None).await.starts_with("40{\"sid\""));
    assert!(c.next_packet().await.unwrap().starts_with("42[\"welcome\""));
    assert_eq!(srv.push_to_user("7", "{}").await, 1);
    // `Authorization: Bearer` on the handshake GET.
    let token = srv.token("8", false);
    let a = send(
        http()
            .get(srv.polling_url("/socket.io/", ""))
            .insert_header(("Authorization", format!("Bearer {token}"))),
        None,
    )
    .await;
    let sid = serde_json::from_str::<Value>(&a.body[1..]).unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = srv.polling_url("/socket.io/", &format!("&sid={sid}"));
    assert_eq!(
        send(http().post(&url), Some(b"40".to_vec())).await.body,
        "ok"
    );
    let got = send(http().get(&url), None).await;
    assert!(got.body.starts_with("40{\"sid\""), "{}", got.body);
    assert_eq!(srv.push_to_user("8", "{}").await, 1);
    // No token, or an invalid one: CONNECT_ERROR and nothing else.
    for auth in [None, Some(r#"{"token":"garbage"}"#)] {
        let mut c = PollingClient::open(&srv).await;
        assert_eq!(
            c.connect(auth).await,
            r#"44{"message":"unauthorized"}"#,
            "{auth:?}"
        );
        let rest = c.idle(Duration::from_millis(300)).await;
        assert!(rest.is_empty(), "{auth:?}: {rest:?}");
    }
}

#[actix_web::test]
async fn several_packets_in_one_post_are_handled_in_order() {
    let srv = start();
    let token = srv.token("42", false);
    let mut c = PollingClient::connected(&srv, &token).await;
    let body = [
        r#"421["subscribe",{"userId":"42"}]"#,
        "6",
        r#"422["join_room",{"room":"user:42"}]"#,
        "3",
        r#"423["leave_room",{"room":"lobby"}]"#,
        r#"42["subscribe",{"userId":"43"}]"#,
    ]
    .join("\x1e");
    c.send(&body).await;
    let mut got = Vec::new();
    for _ in 0..7 {
        got.push(c.next_packet().await.expect("a reply"));
    }
    let expected = [
        ("42", "subscribed"),
        ("431", ""),
        ("42", "room_joined"),
        ("432", ""),
        ("42", "room_left"),
        ("433", ""),
        ("42", "error"),
    ];
    for (i, (packet, (prefix, event))) in got.iter().zip(expected).enumerate() {
        let v = args(packet, prefix);
        if event.is_empty() {
            // The ack carries the reply event's payload.
            let reply = args(&got[i - 1], "42");
            assert_eq!(v, json!([reply[1]]), "{packet}");
        } else {
            assert_eq!(v[0], event, "{packet}");
        }
    }
    let err = args(&got[6], "42");
    assert_eq!(err[1]["event"], "subscribe");
    assert_eq!(err[1]["code"], "forbidden");
}

#[actix_web::test]
async fn several_queued_packets_come_in_one_get() {
    let srv = start();
    let token = srv.token("42", false);
    let c = PollingClient::connected(&srv, &token).await;
    c.sync_with_ping().await;
    // No GET is waiting: the pushes queue up, and the next GET takes them all.
    for seq in 0..5 {
        push_seq(&srv, "42", seq).await;
    }
    let a = c.get().await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.header("content-type").unwrap().starts_with("text/plain"),
        "{:?}",
        a.header("content-type")
    );
    let expected: Vec<_> = (0..5).map(notification).collect();
    assert_eq!(a.body, expected.join("\x1e"));
}

#[actix_web::test]
async fn pushes_arrive_on_a_waiting_get() {
    let srv = start();
    let token = srv.token("42", true); // an admin: may join any room
    let c = PollingClient::connected(&srv, &token).await;
    c.send(r#"42["join_room",{"room":"lobby"}]"#).await;
    let other = c.sync_with_ping().await;
    assert!(other[0].starts_with("42[\"room_joined\""), "{other:?}");
    let api = |path: &str, body: &'static str| {
        http()
            .post(srv.url(path))
            .insert_header(("X-API-Key", API_KEY))
            .send_body(body)
    };
    for (path, body, expected) in [
        (
            "/api/v1/users/42/notifications",
            r#"{"type":"quota.updated","data":{"n":1}}"#,
            r#"42["notification",{"type":"quota.updated","data":{"n":1}}]"#,
        ),
        (
            "/api/v1/rooms/lobby/messages",
            r#"{"text":"héllo \"lobby\""}"#,
            r#"42["message",{"text":"héllo \"lobby\""}]"#,
        ),
        (
            "/api/v1/rooms/lobby/notifications",
            r#"{"type":"room.note"}"#,
            r#"42["notification",{"type":"room.note"}]"#,
        ),
        (
            "/api/v1/broadcast",
            r#"{"type":"everyone"}"#,
            r#"42["notification",{"type":"everyone"}]"#,
        ),
    ] {
        let get = spawn_get(&c.url);
        sleep(40).await; // the GET is waiting
        let pushed_at = Instant::now();
        let mut resp = api(path, body).await.unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "{path}");
        let answer: Value = serde_json::from_slice(&resp.body().await.unwrap()).unwrap();
        assert_eq!(answer["clients"], 1, "{path}");
        let got = get.await.unwrap();
        assert!(
            pushed_at.elapsed() < Duration::from_millis(250),
            "{path}: the waiting GET was answered late"
        );
        assert_eq!((got.status, got.body.as_str()), (StatusCode::OK, expected));
        c.sync_with_ping().await;
    }
}

#[actix_web::test]
async fn binary_attachments_travel_as_base64_records() {
    let srv = start();
    let token = srv.token("42", false);
    let mut c = PollingClient::connected(&srv, &token).await;
    // An unknown event with a binary attachment and an ack: the ack gets an error object.
    c.send("451-1[\"upload\",{\"_placeholder\":true,\"num\":0}]\x1ebAQIDBA==")
        .await;
    let ack = args(&c.next_packet().await.unwrap(), "431");
    assert_eq!(ack[0]["event"], "upload");
    assert_eq!(ack[0]["code"], "bad_request");
    assert!(ack[0]["message"].as_str().unwrap().contains("upload"));
    // A known event carrying a buffer, its attachment in the next POST.
    c.send(r#"451-2["subscribe",{"userId":"42","blob":{"_placeholder":true,"num":0}}]"#)
        .await;
    c.send("bAAEC/w==").await;
    assert!(c
        .next_packet()
        .await
        .unwrap()
        .starts_with("42[\"subscribed\""));
    assert!(c.next_packet().await.unwrap().starts_with("432["));
    // Two attachments in one payload with a text event after them.
    c.send(concat!(
        "452-3[\"upload\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
        "\x1ebAQ==\x1eb\x1e424[\"upload\"]"
    ))
    .await;
    assert!(c.next_packet().await.unwrap().starts_with("433[{"));
    assert!(c.next_packet().await.unwrap().starts_with("434[{"));
}

#[actix_web::test]
async fn server_binary_goes_out_as_base64_records_over_polling() {
    let srv = start_with_mode(config(), Mode::ProtocolTestSuite);
    // Engine.IO echo: text and binary in one payload, echoed as they came.
    let c = PollingClient::open_at(&srv, "/engine.io/", "").await;
    c.send("4hello\x1ebAQIDBA==").await;
    assert_eq!(c.poll().await.join("\x1e"), "4hello\x1ebAQIDBA==");
    // Socket.IO: a binary event echoed back as a binary event with its attachment.
    let c = PollingClient::open(&srv).await;
    c.send("40").await;
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(c.poll().await.into_iter().filter(|p| p != "2"));
    }
    assert!(got[0].starts_with("40{\"sid\""), "{got:?}");
    assert!(got[1].starts_with("42[\"auth\""), "{got:?}");
    c.send("451-[\"message\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID")
        .await;
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(c.poll().await.into_iter().filter(|p| p != "2"));
    }
    assert_eq!(
        got,
        [
            r#"451-["message-back",{"_placeholder":true,"num":0}]"#,
            "bAQID"
        ]
    );
}

#[actix_web::test]
async fn binary_attachment_over_websocket() {
    let srv = start();
    let token = srv.token("42", false);
    let mut c = RawClient::connected(&srv, &token).await;
    c.send(r#"451-1["upload",{"_placeholder":true,"num":0}]"#)
        .await;
    c.send_binary(vec![1, 2, 3, 4]).await;
    let ack = args(&c.next_text().await.unwrap(), "431");
    assert_eq!(ack[0]["event"], "upload");
    assert_eq!(ack[0]["code"], "bad_request");
    // The polling form `b<base64>` is accepted in a text frame too.
    c.send(r#"451-2["upload",{"_placeholder":true,"num":0}]"#)
        .await;
    c.send("bAQIDBA==").await;
    assert!(c.next_text().await.unwrap().starts_with("432[{"));
}

// ---------------------------------------------------------------------------------------------
// Heartbeat and timeouts

#[actix_web::test]
async fn heartbeat_over_polling_and_ping_timeout() {
    let srv = start();
    let token = srv.token("1", false);
    let c = PollingClient::connected(&srv, &token).await;
    // Answered pings keep the session alive for several intervals.
    for _ in 0..4 {
        let started = Instant::now();
        assert_eq!(c.poll().await, ["2"]);
        assert!(started.elapsed() < Duration::from_millis(600));
        c.send("3").await;
    }
    // A ping left unanswered: a GET waiting across the deadline gets the close packet.
    assert_eq!(c.poll().await, ["2"]);
    let started = Instant::now();
    let a = c.get().await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "1"));
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    let a = c.get().await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.eio_code(), Some(1));
    assert_eq!(c.post("3").await.status, StatusCode::BAD_REQUEST);
    // With no GET waiting, the session is gone all the same once pingTimeout has passed.
    let c = PollingClient::connected(&srv, &token).await;
    assert_eq!(c.poll().await, ["2"]);
    sleep(350).await;
    c.expect_gone().await;
    assert_eq!(srv.push_to_user("1", "{}").await, 0);
    srv.assert_disconnects("ping_timeout", 2).await;
}

#[actix_web::test]
async fn a_client_that_never_gets_is_ended_as_a_slow_reader() {
    let srv = start();
    let token = srv.token("7", false);
    let c = PollingClient::connected(&srv, &token).await;
    // Pongs by POST alone keep the heartbeat content; no GET ever takes the pushes.
    let url = c.url.clone();
    let ponging = actix_rt::spawn(async move {
        while send(http().post(&url), Some(b"3".to_vec())).await.status == StatusCode::OK {
            sleep(50).await;
        }
    });
    let body = format!(r#"{{"pad":"{}"}}"#, "z".repeat(64 * 1024));
    let mut pushes = 0;
    while srv.push_to_user("7", &body).await == 1 {
        pushes += 1;
        assert!(
            pushes < 100,
            "still buffering after {pushes} pushes of 64 KiB"
        );
    }
    // 4 MiB of pushes, not more, then the session is gone.
    assert!((60..=66).contains(&pushes), "{pushes}");
    c.expect_gone().await;
    ponging.await.unwrap();
    srv.assert_disconnects("slow_reader", 1).await;
}

#[actix_web::test]
async fn connect_timeout_over_polling() {
    let srv = start();
    let c = PollingClient::open(&srv).await;
    let started = Instant::now();
    loop {
        let a = c.get().await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no connect timeout"
        );
        match (a.status.as_u16(), a.body.as_str()) {
            (200, "2") => c.send("3").await,
            (200, "1") => break,
            (400, _) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    c.expect_gone().await;
    srv.assert_disconnects("connect_timeout", 1).await;
}

// ---------------------------------------------------------------------------------------------
// Closing, bad requests

#[actix_web::test]
async fn client_close_packet_ends_the_session() {
    let srv = start();
    let token = srv.token("5", false);
    // A waiting GET gets a noop, then the sid is gone.
    let c = PollingClient::connected(&srv, &token).await;
    c.sync_with_ping().await;
    let get = spawn_get(&c.url);
    sleep(40).await;
    c.send("1").await;
    let a = get.await.unwrap();
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "6"));
    c.expect_gone().await;
    assert_eq!(c.post("3").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(srv.push_to_user("5", "{}").await, 0);
    // With no GET waiting: the session ends too (a GET already on its way may still get a
    // noop), and it has left its rooms at once.
    let c = PollingClient::connected(&srv, &token).await;
    c.sync_with_ping().await;
    c.send("1").await;
    assert_eq!(srv.push_to_user("5", "{}").await, 0);
    let a = c.get().await;
    assert!(
        (a.status, a.body.as_str()) == (StatusCode::OK, "6") || a.status == StatusCode::BAD_REQUEST,
        "{a:?}"
    );
    sleep(600).await;
    c.expect_gone().await;
}

/// Engine.IO v4: "a client MUST NOT have more than one active `POST` request. Should it
/// happen, the server MUST return an HTTP 400 error status and close the session."
#[actix_web::test]
async fn a_second_concurrent_post_closes_the_session() {
    let srv = start();
    let token = srv.token("6", false);
    let c = PollingClient::connected(&srv, &token).await;
    c.sync_with_ping().await;
    // A first POST whose body is still coming: its head and part of its body are sent over
    // a raw socket (an HTTP client library may hold the head back until the body is done).
    let path = c.url.split_once("127.0.0.1").map(|(_, p)| p).unwrap();
    let path = &path[path.find('/').unwrap()..];
    let mut first = std::net::TcpStream::connect(srv.addr).unwrap();
    let partial = r#"421["subscribe","#;
    std::io::Write::write_all(
        &mut first,
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{partial}",
            partial.len() + 20
        )
        .as_bytes(),
    )
    .unwrap();
    sleep(100).await;
    let second = c.post("3").await;
    drop(first);
    assert_eq!(
        second.status,
        StatusCode::BAD_REQUEST,
        "a POST while another is active: {} {}",
        second.status,
        second.body
    );
    let a = c.get().await;
    assert_eq!(
        (a.status, a.eio_code()),
        (StatusCode::BAD_REQUEST, Some(1)),
        "the session is closed: {}",
        a.body
    );
}

#[actix_web::test]
async fn a_second_concurrent_get_closes_the_session() {
    let srv = start();
    let token = srv.token("6", false);
    for connected in [false, true] {
        let c = if connected {
            let c = PollingClient::connected(&srv, &token).await;
            c.sync_with_ping().await;
            c
        } else {
            PollingClient::open(&srv).await
        };
        let first = spawn_get(&c.url);
        sleep(40).await;
        let second = c.get().await;
        assert_eq!(second.status, StatusCode::BAD_REQUEST, "{}", second.body);
        assert!(second.eio_code().is_some());
        let first = first.await.unwrap();
        assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "1"));
        c.expect_gone().await;
        assert_eq!(c.post("3").await.status, StatusCode::BAD_REQUEST);
    }
    assert_eq!(srv.push_to_user("6", "{}").await, 0);
}

#[actix_web::test]
async fn a_post_that_is_not_valid_packets_closes_the_session() {
    let srv = start();
    let token = srv.token("8", false);
    let mut bad: Vec<Vec<u8>> = MALFORMED_PACKETS
        .iter()
        .chain(&[
            "abc",
            "b!!!",
            "\x1e",
            "3\x1e",
            "421[\"subscribe\",{\"userId\":\"8\"}]\x1ex",
        ])
        .map(|s| s.as_bytes().to_vec())
        .collect();
    bad.push(b"4\xff\xfe".to_vec()); // not UTF-8
    bad.push(b"42[\"subscribe\",{\"userId\":\"\xc3\"}]".to_vec()); // truncated UTF-8
    for body in bad {
        let c = PollingClient::connected(&srv, &token).await;
        let a = c.post(body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body:?}: {}", a.body);
        let a = c.get().await;
        assert_eq!(
            (a.status, a.eio_code()),
            (StatusCode::BAD_REQUEST, Some(1)),
            "{body:?}: the session is gone"
        );
    }
    assert_eq!(srv.push_to_user("8", "{}").await, 0);
    // An event before CONNECT, and one for a namespace that is not connected.
    for body in [
        r#"42["subscribe",{"userId":"8"}]"#,
        r#"42/admin,["subscribe"]"#,
    ] {
        let c = if body.contains("/admin") {
            PollingClient::connected(&srv, &token).await
        } else {
            PollingClient::open(&srv).await
        };
        assert_eq!(c.post(body).await.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(c.get().await.status, StatusCode::BAD_REQUEST, "{body}");
    }
}

#[actix_web::test]
async fn a_post_over_max_payload_gets_413_and_ends_only_that_session() {
    let mut config = config();
    config.engine.max_payload = 1000;
    let srv = start_with(config);
    let token = srv.token("9", false);
    // The victims are another user, so that pushes to user 9 count the others only.
    let victim_token = srv.token("v", false);
    let victim = PollingClient::connected(&srv, &victim_token).await;
    assert_eq!(victim.handshake["maxPayload"], 1000);
    // Exactly maxPayload bytes is fine (an unknown event without ack: ignored).
    let pad = |len: usize| {
        let head = r#"42["x",""]"#.len();
        format!(r#"42["x","{}"]"#, "y".repeat(len - head))
    };
    assert_eq!(pad(1000).len(), 1000);
    victim.send(&pad(1000)).await;
    victim.send(&[pad(500), pad(499)].join("\x1e")).await;
    victim.send("1").await;
    // More, in one packet or spread over several, is not.
    for body in [pad(1001), [pad(600), pad(401)].join("\x1e")] {
        let victim = PollingClient::connected(&srv, &victim_token).await;
        let a = victim.post(body.clone()).await;
        assert_eq!(
            a.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{} bytes",
            body.len()
        );
        victim.expect_gone().await;
    }
    // Other sessions (polling and WebSocket) are unaffected; the victim's waiting GET gets
    // the close packet.
    let mut other = PollingClient::connected(&srv, &token).await;
    other.sync_with_ping().await;
    let mut ws = RawClient::connected(&srv, &token).await;
    let victim = PollingClient::connected(&srv, &victim_token).await;
    let waiting = spawn_get(&victim.url);
    sleep(30).await;
    let a = victim.post(pad(2000)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    let a = waiting.await.unwrap();
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "1"));
    victim.expect_gone().await;
    assert_eq!(srv.push_to_user("v", "{}").await, 0, "every victim is gone");
    // The others carry on.
    other.subscribe("9").await;
    assert_eq!(srv.push_to_user("9", r#"{"n":1}"#).await, 2);
    assert_eq!(
        other.next_packet().await.unwrap(),
        r#"42["notification",{"n":1}]"#
    );
    assert_eq!(
        ws.next_text().await.unwrap(),
        r#"42["notification",{"n":1}]"#
    );
    // Pushes larger than maxPayload still reach a polling client (it limits the client).
    let big = format!(r#"{{"blob":"{}"}}"#, "z".repeat(5000));
    assert_eq!(srv.push_to_user("9", &big).await, 2);
    assert_eq!(
        other.next_packet().await.unwrap(),
        format!(r#"42["notification",{big}]"#)
    );
}

// ---------------------------------------------------------------------------------------------
// Upgrade to WebSocket

/// Poll like engine.io-client while it upgrades: keep one GET going, answer pings, and stop
/// after the first GET that completes once `paused` is set (the client pauses polling after
/// the `3probe`). Returns every other packet, in order, and the last GET's body.
fn poll_until_paused(
    url: &str,
    paused: Rc<Cell<bool>>,
) -> actix_rt::task::JoinHandle<(Vec<String>, String)> {
    let url = url.to_owned();
    actix_web::rt::spawn(async move {
        let mut got = Vec::new();
        loop {
            let a = send(http().get(&url), None).await;
            assert_eq!(a.status, StatusCode::OK, "GET while upgrading: {}", a.body);
            let packets = split_payload(&a.body);
            if packets.iter().any(|p| p == "2") {
                let pong = send(http().post(&url), Some(b"3".to_vec())).await;
                assert_eq!(pong.body, "ok");
            }
            got.extend(packets.into_iter().filter(|p| p != "2" && p != "6"));
            if paused.get() {
                return (got, a.body);
            }
        }
    })
}

/// The start of an upgrade while a GET waits, as engine.io-client does it: a GET waiting, the
/// upgrading WebSocket opened and probed. Returns the WebSocket and the waiting GET's answer.
async fn probe_with_a_waiting_get(c: &PollingClient) -> (RawClient, Answer) {
    let pending = spawn_get(&c.url);
    sleep(30).await;
    let mut ws = c.websocket(&[]).await;
    ws.probe().await;
    (ws, pending.await.unwrap())
}

#[actix_web::test]
async fn upgrade_to_websocket() {
    let srv = start();
    let token = srv.token("42", false);
    let c = PollingClient::connected(&srv, &token).await;
    c.sync_with_ping().await;
    // No open packet on the upgrading WebSocket: it only answers the probe.
    let (mut ws, a) = probe_with_a_waiting_get(&c).await;
    // The waiting GET is ended with a noop.
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "6"));
    ws.send("5").await;
    // Pushes and events now go over the WebSocket.
    assert_eq!(srv.push_to_user("42", r#"{"type":"after"}"#).await, 1);
    assert_eq!(
        ws.expect_text().await,
        r#"42["notification",{"type":"after"}]"#
    );
    ws.send(r#"421["subscribe",{"userId":"42"}]"#).await;
    assert!(ws.expect_text().await.starts_with("42[\"subscribed\""));
    assert!(ws.expect_text().await.starts_with("431[{"));
    // Polling is over for this sid: GET and POST are refused, the session goes on.
    let a = c.get().await;
    assert_eq!((a.status, a.eio_code()), (StatusCode::BAD_REQUEST, Some(3)));
    let a = c.post(r#"42["subscribe",{"userId":"42"}]"#).await;
    assert_eq!((a.status, a.eio_code()), (StatusCode::BAD_REQUEST, Some(3)));
    // A second WebSocket with the same sid is closed at once, the first carries on.
    c.websocket(&[])
        .await
        .expect_closed(Duration::from_secs(2))
        .await;
    ws.send(r#"422["join_room",{"room":"user:42"}]"#).await;
    assert!(ws.expect_text().await.starts_with("42[\"room_joined\""));
    assert!(ws.expect_text().await.starts_with("432[{"));
    // The heartbeat goes on over the WebSocket: pings answered there keep the session alive.
    assert_eq!(ws.idle(Duration::from_millis(900)).await, vec![]);
    assert_eq!(srv.push_to_user("42", r#"{"type":"alive"}"#).await, 1);
    assert_eq!(
        ws.expect_text().await,
        r#"42["notification",{"type":"alive"}]"#
    );
    // ... and an unanswered one closes it.
    ws.expect_close(1000).await;
    c.expect_gone().await;
    assert_eq!(srv.push_to_user("42", "{}").await, 0);
}

#[actix_web::test]
async fn a_second_websocket_during_the_upgrade_is_closed_at_once() {
    let srv = start();
    let token = srv.token("42", false);
    let c = PollingClient::connected(&srv, &token).await;
    c.sync_with_ping().await;
    let mut ws = c.websocket(&[]).await;
    c.websocket(&[])
        .await
        .expect_closed(Duration::from_secs(2))
        .await;
    c.complete_upgrade(&mut ws).await;
    assert_eq!(srv.push_to_user("42", r#"{"n":2}"#).await, 1);
    assert_eq!(ws.expect_text().await, r#"42["notification",{"n":2}]"#);
}

#[actix_web::test]
async fn a_session_that_ends_during_its_upgrade_closes_the_websocket_too() {
    let srv = start();
    // Ends by the heartbeat: a ping, no pong, while the WebSocket has claimed the upgrade.
    let token = srv.token("42", false);
    let c = PollingClient::connected(&srv, &token).await;
    c.sync_with_ping().await;
    let mut ws = c.websocket(&[]).await;
    ws.probe().await;
    assert_eq!(c.poll().await, ["6"]);
    ws.expect_closed(Duration::from_secs(3)).await;
    // Ends by the connect timeout, with no CONNECT ever sent: the WebSocket is all that holds
    // the connection, and it must not outlive the session.
    let c = PollingClient::open(&srv).await;
    c.websocket(&[])
        .await
        .expect_closed(Duration::from_secs(3))
        .await;
    c.expect_gone().await;
}

#[actix_web::test]
async fn an_abandoned_upgrade_leaves_polling_working() {
    let srv = start();
    let token = srv.token("42", false);
    let mut c = PollingClient::connected(&srv, &token).await;
    c.sync_with_ping().await;
    let (mut ws, pending) = probe_with_a_waiting_get(&c).await;
    assert_eq!(pending.body, "6");
    // The client gives up on the WebSocket (e.g. a proxy broke it) without sending `5`.
    ws.close().await;
    drop(ws);
    sleep(50).await;
    c.subscribe("42").await;
    assert_eq!(srv.push_to_user("42", r#"{"n":3}"#).await, 1);
    assert_eq!(
        c.next_packet().await.unwrap(),
        r#"42["notification",{"n":3}]"#
    );
    assert_eq!(
        c.idle(Duration::from_millis(700)).await,
        Vec::<String>::new()
    );
    // A later upgrade succeeds.
    c.sync_with_ping().await;
    let mut ws = c.upgrade(&[]).await;
    assert_eq!(srv.push_to_user("42", r#"{"n":4}"#).await, 1);
    assert_eq!(ws.expect_text().await, r#"42["notification",{"n":4}]"#);
}

#[actix_web::test]
async fn pushes_during_the_upgrade_are_neither_lost_nor_reordered() {
    let srv = start();
    let token = srv.token("42", false);
    let c = PollingClient::connected(&srv, &token).await;
    c.sync_with_ping().await;
    let paused = Rc::new(Cell::new(false));
    let polling = poll_until_paused(&c.url, paused.clone());
    // Before the WebSocket exists, pushes go to the polling GETs.
    for seq in 0..10 {
        push_seq(&srv, "42", seq).await;
    }
    let mut ws = c.websocket(&[]).await;
    // The WebSocket is open but not probed: still polling.
    for seq in 10..20 {
        push_seq(&srv, "42", seq).await;
    }
    ws.probe().await;
    paused.set(true);
    let (polled, _) = polling.await.unwrap();
    // Probed, polling paused, `5` not sent yet: these wait on the server.
    for seq in 20..30 {
        push_seq(&srv, "42", seq).await;
    }
    ws.send("5").await;
    for seq in 30..40 {
        push_seq(&srv, "42", seq).await;
    }
    let mut over_ws = Vec::new();
    while polled.len() + over_ws.len() < 40 {
        over_ws.push(ws.expect_text().await);
    }
    let all: Vec<u64> = seqs(&polled).into_iter().chain(seqs(&over_ws)).collect();
    assert_eq!(all, (0..40).collect::<Vec<_>>(), "polled {polled:?}");
    // Nothing pushed after the probe went over polling (a push accepted before it may still
    // have been on its way to the session when polling paused: it then goes over the
    // WebSocket, in its place).
    assert!(polled.len() <= 20, "polled {polled:?}");
    assert_eq!(ws.idle(Duration::from_millis(400)).await, vec![]);
}

#[actix_web::test]
async fn a_push_burst_racing_the_upgrade_arrives_complete_and_in_order() {
    let srv = Rc::new(start());
    for round in 0..3 {
        // A user per round: the previous round's session may still be closing.
        let user = format!("burst{round}");
        let token = srv.token(&user, false);
        let c = PollingClient::connected(&srv, &token).await;
        c.sync_with_ping().await;
        let paused = Rc::new(Cell::new(false));
        let polling = poll_until_paused(&c.url, paused.clone());
        let pushed = Rc::new(RefCell::new(0u64));
        let pusher = {
            let srv = srv.clone();
            let pushed = pushed.clone();
            let user = user.clone();
            actix_web::rt::spawn(async move {
                for seq in 0..100 {
                    push_seq(&srv, &user, seq).await;
                    *pushed.borrow_mut() += 1;
                }
            })
        };
        // Upgrade while the burst is under way, at a different point each round.
        while *pushed.borrow() < 10 + 30 * round {
            sleep(1).await;
        }
        let mut ws = c.websocket(&[]).await;
        ws.probe().await;
        paused.set(true);
        let (polled, _) = polling.await.unwrap();
        ws.send("5").await;
        // Read (and answer pings) while the burst goes on, as a client does.
        let mut over_ws = Vec::new();
        while polled.len() + over_ws.len() < 100 {
            over_ws.push(ws.expect_text().await);
        }
        pusher.await.unwrap();
        let all: Vec<u64> = seqs(&polled).into_iter().chain(seqs(&over_ws)).collect();
        assert_eq!(all, (0..100).collect::<Vec<_>>(), "round {round}");
        assert_eq!(
            ws.idle(Duration::from_millis(100)).await,
            vec![],
            "round {round}"
        );
        ws.close().await;
    }
}

// ---------------------------------------------------------------------------------------------
// CORS

#[actix_web::test]
async fn cors_on_polling_echoes_listed_origins_only() {
    let srv = start();
    let c = PollingClient::open(&srv).await;
    // A listed origin: echoed with credentials on the handshake, GET, POST, errors, preflight.
    let answers = cors_answers(&srv, &c, ALLOWED_ORIGIN).await;
    for (what, a) in &answers {
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some(ALLOWED_ORIGIN),
            "{what}"
        );
        assert_eq!(
            a.header("access-control-allow-credentials"),
            Some("true"),
            "{what}"
        );
        assert!(
            a.headers
                .get_all("vary")
                .any(|v| v.to_str().unwrap().contains("Origin")),
            "{what}: Vary: Origin"
        );
    }
    assert_eq!(answers[0].1.status, StatusCode::OK);
    assert_eq!(answers[1].1.body, "ok");
    assert!(
        answers[2].1.body.starts_with("44{"),
        "{}",
        answers[2].1.body
    );
    assert_eq!(answers[3].1.status, StatusCode::BAD_REQUEST);
    let preflight = &answers[4].1;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    let methods = preflight.header("access-control-allow-methods").unwrap();
    assert!(
        methods.contains("GET") && methods.contains("POST"),
        "{methods}"
    );
    assert!(preflight
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase()
        .contains("content-type"));
    // An unlisted origin: the same answers, without any Access-Control-* header.
    let c = PollingClient::open(&srv).await;
    let answers = cors_answers(&srv, &c, FOREIGN_ORIGIN).await;
    for (what, a) in &answers {
        assert_eq!(a.cors_headers(), Vec::<String>::new(), "{what}");
    }
    assert_eq!(answers[0].1.status, StatusCode::OK);
    assert_eq!(answers[1].1.body, "ok");
    assert_eq!(answers[4].1.status, StatusCode::NO_CONTENT);
    // No Origin at all (not a browser): no CORS headers either.
    let a = send(http().get(srv.polling_url("/socket.io/", "")), None).await;
    assert_eq!(a.cors_headers(), Vec::<String>::new());
}

/// The polling answers a browser at `origin` sees: the handshake, a POST, a GET, an error
/// (unknown sid on `/ws/`) and a preflight, in that order.
async fn cors_answers(
    srv: &TestServer,
    c: &PollingClient,
    origin: &str,
) -> [(&'static str, Answer); 5] {
    let with = |req: awc::ClientRequest| req.insert_header(("Origin", origin.to_owned()));
    [
        (
            "handshake",
            send(with(http().get(srv.polling_url("/socket.io/", ""))), None).await,
        ),
        (
            "POST",
            send(with(http().post(&c.url)), Some(b"40".to_vec())).await,
        ),
        ("GET", send(with(http().get(&c.url)), None).await),
        (
            "400",
            send(with(http().get(srv.polling_url("/ws/", "&sid=nope"))), None).await,
        ),
        (
            "OPTIONS",
            send(
                with(http().request(Method::OPTIONS, &c.url))
                    .insert_header(("Access-Control-Request-Method", "POST"))
                    .insert_header(("Access-Control-Request-Headers", "content-type")),
                None,
            )
            .await,
        ),
    ]
}

#[actix_web::test]
async fn cors_star_echoes_any_origin_with_credentials() {
    let mut config = config();
    config.cors = CorsOrigins::Any;
    let srv = start_with(config);
    for origin in [FOREIGN_ORIGIN, "https://console.example.com:8443"] {
        let a = send(
            http()
                .get(srv.polling_url("/socket.io/", ""))
                .insert_header(("Origin", origin)),
            None,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.header("access-control-allow-origin"), Some(origin));
        assert_eq!(a.header("access-control-allow-credentials"), Some("true"));
        // ... and WebSocket upgrades from it are accepted.
        let mut ws = RawClient::connect(&srv.ws_url(""), &[("Origin", origin)])
            .await
            .unwrap();
        assert!(ws.next_text().await.unwrap().starts_with("0{"));
    }
}

#[actix_web::test]
async fn websocket_upgrade_of_a_polling_session_from_a_foreign_origin_is_refused() {
    let srv = start();
    let token = srv.token("42", false);
    let c = PollingClient::connected(&srv, &token).await;
    c.sync_with_ping().await;
    for path in ["/socket.io/", "/ws/"] {
        let url = format!("{path}?EIO=4&transport=websocket&sid={}", c.sid);
        let a = ws_handshake(&srv, &url, &[("Origin", FOREIGN_ORIGIN)]).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}: {}", a.body);
        assert_eq!(a.eio_code(), Some(4));
        assert!(RawClient::connect(
            &srv.ws_url_at(path, &format!("&sid={}", c.sid)),
            &[("Origin", FOREIGN_ORIGIN)]
        )
        .await
        .is_err());
    }
    // The session is untouched, and upgrades from the listed origin.
    assert_eq!(srv.push_to_user("42", r#"{"n":1}"#).await, 1);
    assert_eq!(c.poll().await, [r#"42["notification",{"n":1}]"#]);
    let mut ws = c.upgrade(&[("Origin", ALLOWED_ORIGIN)]).await;
    assert_eq!(srv.push_to_user("42", r#"{"n":2}"#).await, 1);
    assert_eq!(ws.expect_text().await, r#"42["notification",{"n":2}]"#);
}

// ---------------------------------------------------------------------------------------------
// Paths and namespaces

#[actix_web::test]
async fn the_ws_path_serves_polling_and_its_upgrade() {
    let srv = start();
    for (i, path) in ["/ws/", "/ws", "/socket.io"].into_iter().enumerate() {
        // A user per path: the previous path's session may still be closing.
        let user = format!("path{i}");
        let token = srv.token(&user, false);
        let (mut c, welcome) = PollingClient::connected_at(&srv, path, &token).await;
        assert!(c.url.contains(&format!("{path}?EIO=4")), "{}", c.url);
        assert_eq!(args(&welcome, "42")[1]["userId"], user);
        c.send(&format!(r#"421["subscribe",{{"userId":"{user}"}}]"#))
            .await;
        assert!(c
            .next_packet()
            .await
            .unwrap()
            .starts_with("42[\"subscribed\""));
        assert!(c.next_packet().await.unwrap().starts_with("431["));
        assert_eq!(srv.push_to_user(&user, r#"{"p":1}"#).await, 1);
        assert_eq!(
            c.next_packet().await.unwrap(),
            r#"42["notification",{"p":1}]"#
        );
        // Upgrade on the same path.
        c.sync_with_ping().await;
        let mut ws = c.upgrade(&[]).await;
        assert_eq!(srv.push_to_user(&user, r#"{"p":2}"#).await, 1);
        assert_eq!(ws.expect_text().await, r#"42["notification",{"p":2}]"#);
        ws.close().await;
        sleep(50).await;
    }
}

#[actix_web::test]
async fn namespaces_over_polling() {
    let srv = start();
    let token = srv.token("42", false);
    let mut c = PollingClient::open(&srv).await;
    // Another namespace is refused, before and after connecting to `/`.
    c.send("40/admin,{}").await;
    assert_eq!(
        c.next_packet().await.unwrap(),
        r#"44/admin,{"message":"Invalid namespace"}"#
    );
    assert!(c
        .connect(Some(&token_auth(&token)))
        .await
        .starts_with("40{\"sid\""));
    assert!(c.next_packet().await.unwrap().starts_with("42[\"welcome\""));
    c.send(&format!("40/admin,{}", token_auth(&token))).await;
    assert_eq!(
        c.next_packet().await.unwrap(),
        r#"44/admin,{"message":"Invalid namespace"}"#
    );
    // `/` is still connected.
    c.subscribe("42").await;
    // A DISCONNECT from `/` leaves its rooms: no more pushes.
    c.send("41").await;
    assert_eq!(srv.push_to_user("42", "{}").await, 0);
}

// ---------------------------------------------------------------------------------------------
// An aborted GET

/// A GET the client gave up on (connection closed while it waited) must not swallow the next
/// push: `PollingSession::answer_poll` means to put packets back when the GET is gone, but
/// actix-web does not drop a pending handler when its client disconnects (actix-web#1313,
/// #3462), so the push is written to a dead connection. The reference server closes the
/// session on a cancelled poll instead (engine.io-protocol v4 test suite: "closes the session
/// upon cancelled polling request"); either is fine, a silent loss is not.
#[actix_web::test]
async fn a_get_abandoned_by_the_client_loses_no_push() {
    let srv = start();
    let token = srv.token("42", false);
    let c = PollingClient::connected(&srv, &token).await;
    c.sync_with_ping().await;
    // The client gives up on a waiting GET (its connection is closed).
    let abandoned = actix_rt::time::timeout(Duration::from_millis(50), c.get()).await;
    assert!(abandoned.is_err(), "the GET should still be waiting");
    sleep(50).await;
    let reached = srv.push_to_user("42", r#"{"type":"t","seq":1}"#).await;
    // Either the session goes on and the next GET has the push, or it was closed (as the
    // reference server does on a cancelled poll) and the sid is gone: never a silent loss.
    let a = c.get().await;
    match a.status.as_u16() {
        200 => {
            assert_eq!(reached, 1);
            let packets: Vec<_> = split_payload(&a.body)
                .into_iter()
                .filter(|p| p != "2")
                .collect();
            assert_eq!(packets, [notification(1)], "the push was lost: {}", a.body);
        }
        400 => {
            c.expect_gone().await;
        }
        s => panic!("unexpected {s}: {}", a.body),
    }
}
