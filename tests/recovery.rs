//! Connection-state recovery on the wire, with raw clients: the `pid` in the CONNECT reply, a
//! recovered session's reply, missed pushes and `welcome`, on WebSocket and long-polling, and
//! which ends keep a session (every one but the client's own `41`). With recovery off the wire
//! is exactly the plain one. The real socket.io-client's side is in `tests/e2e/recovery.test.mjs`.

mod common;

use std::time::Duration;

use common::*;
use pushgate::session::replay::REPLAY_SLICE_BYTES;
use serde_json::{json, Value};

/// A connected session's socket id and private session id.
struct Ids {
    sid: String,
    pid: String,
}

fn json_of(packet: &str, prefix: &str) -> Value {
    assert!(
        packet.starts_with(prefix),
        "{packet} should start with {prefix}"
    );
    serde_json::from_str(&packet[prefix.len()..]).unwrap()
}

/// The ids of a CONNECT reply `40{"sid","pid"}`.
fn ids_of(reply: &str) -> Ids {
    let v = json_of(reply, "40");
    Ids {
        sid: v["sid"].as_str().expect("sid").to_owned(),
        pid: v["pid"].as_str().expect("pid").to_owned(),
    }
}

/// A `welcome` packet's `recovered` flag, after checking its `clientId`.
fn welcome_recovered(packet: &str, sid: &str) -> bool {
    let v = json_of(packet, "42");
    assert_eq!(
        (v[0].as_str(), v[1]["clientId"].as_str()),
        (Some("welcome"), Some(sid))
    );
    v[1]["recovered"].as_bool().expect("recovered")
}

/// A pushed notification's `n` and offset (its last argument).
fn push_of(packet: &str) -> (u64, String) {
    let v = json_of(packet, "42");
    assert_eq!(v[0], "notification", "{packet}");
    let offset = v[2].as_str().expect("offset").to_owned();
    (v[1]["data"]["n"].as_u64().expect("n"), offset)
}

fn notification(n: u64) -> String {
    json!({"type": "test.pushed", "data": {"n": n}}).to_string()
}

fn auth(token: &str, ids: &Ids, offset: Option<&str>) -> String {
    let mut a = json!({"token": token, "pid": ids.pid});
    if let Some(o) = offset {
        a["offset"] = Value::from(o);
    }
    a.to_string()
}

/// A WebSocket client connected as `token` with `auth` (a plain one when `None`): its CONNECT
/// reply and `welcome`.
async fn ws_connect(srv: &TestServer, auth: &str) -> (RawClient, String, String) {
    let mut c = RawClient::connect(&srv.ws_url(""), &[]).await.unwrap();
    let reply = c.handshake(Some(auth)).await;
    let welcome = c.expect_text().await;
    (c, reply, welcome)
}

/// Connect user 42 over WebSocket and have it receive push 1: its ids and that push's offset.
async fn ws_session_with_one_push(srv: &TestServer) -> (RawClient, Ids, String) {
    let token = srv.token("42", false);
    let (mut c, reply, welcome) = ws_connect(srv, &json!({ "token": token }).to_string()).await;
    let ids = ids_of(&reply);
    assert!(reply.starts_with("40{\"sid\":"), "{reply}");
    assert_eq!(ids.pid.len(), 22, "128 random bits, base64url");
    assert_ne!(ids.pid, ids.sid);
    assert!(!welcome_recovered(&welcome, &ids.sid));
    assert_eq!(srv.push_to_user("42", &notification(1)).await, 1);
    let (n, offset) = push_of(&c.expect_text().await);
    assert_eq!(n, 1);
    (c, ids, offset)
}

/// Connect user 42 over long-polling, have it receive push 1, then close its transport without
/// `41`: its ids and that push's offset.
async fn polling_session_with_one_push(srv: &TestServer) -> (Ids, String) {
    let token = srv.token("42", false);
    let mut c = PollingClient::open(srv).await;
    let ids = ids_of(
        &c.connect(Some(&json!({ "token": token }).to_string()))
            .await,
    );
    assert!(!welcome_recovered(
        &c.next_packet().await.unwrap(),
        &ids.sid
    ));
    srv.push_to_user("42", &notification(1)).await;
    let (n, offset) = push_of(&c.next_packet().await.unwrap());
    assert_eq!(n, 1);
    c.send("1").await; // the client closes its transport, without `41`
    (ids, offset)
}

#[actix_web::test]
async fn a_dropped_websocket_gets_its_missed_pushes_then_welcome_then_live_ones() {
    let srv = start_with(recovery_config());
    let (mut c, ids, offset) = ws_session_with_one_push(&srv).await;
    c.close().await; // the transport drops: no `41`
    c.expect_closed(Duration::from_secs(2)).await;
    for n in 2..=3 {
        srv.push_to_user("42", &notification(n)).await;
    }
    let token = srv.token("42", false);
    let (mut c, reply, first) = ws_connect(&srv, &auth(&token, &ids, Some(&offset))).await;
    let back = ids_of(&reply);
    assert_eq!((&back.sid, &back.pid), (&ids.sid, &ids.pid));
    let second = c.expect_text().await;
    let (n2, o2) = push_of(&first);
    let (n3, o3) = push_of(&second);
    assert_eq!((n2, n3), (2, 3));
    assert!(o2 > offset && o3 > o2, "{offset} {o2} {o3}");
    assert!(welcome_recovered(&c.expect_text().await, &ids.sid));
    // Its user room is back: a live push arrives, once.
    assert_eq!(srv.push_to_user("42", &notification(4)).await, 1);
    assert_eq!(push_of(&c.expect_text().await).0, 4);
    assert!(c.idle(Duration::from_millis(200)).await.is_empty());
    let m = srv.metrics().await;
    assert!(
        m.contains(r#"pushgate_recoveries_total{outcome="recovered"} 1"#),
        "{m}"
    );
    assert!(!m.contains(&ids.pid), "the pid never appears in metrics");
}

#[actix_web::test]
async fn a_session_closed_by_the_server_is_recovered_too() {
    let srv = start_with(recovery_config());
    let (mut c, ids, offset) = ws_session_with_one_push(&srv).await;
    // Pings left unanswered: the server closes it (ping timeout).
    c.expect_close(1000).await;
    srv.assert_disconnects("ping_timeout", 1).await;
    srv.push_to_user("42", &notification(2)).await;
    let token = srv.token("42", false);
    let (mut c, reply, first) = ws_connect(&srv, &auth(&token, &ids, Some(&offset))).await;
    assert_eq!(ids_of(&reply).sid, ids.sid);
    assert_eq!(push_of(&first).0, 2);
    assert!(welcome_recovered(&c.expect_text().await, &ids.sid));
}

#[actix_web::test]
async fn the_clients_own_disconnect_keeps_nothing() {
    let srv = start_with(recovery_config());
    let (mut c, ids, offset) = ws_session_with_one_push(&srv).await;
    c.send("41").await;
    c.close().await;
    c.expect_closed(Duration::from_secs(2)).await;
    let token = srv.token("42", false);
    let (_c, reply, welcome) = ws_connect(&srv, &auth(&token, &ids, Some(&offset))).await;
    let fresh = ids_of(&reply);
    assert_ne!(fresh.sid, ids.sid);
    assert_ne!(fresh.pid, ids.pid);
    assert!(!welcome_recovered(&welcome, &fresh.sid));
}

#[actix_web::test]
async fn another_users_or_an_unknown_pid_gets_a_new_session_and_a_bad_token_is_refused() {
    let srv = start_with(recovery_config());
    let (mut c, ids, offset) = ws_session_with_one_push(&srv).await;
    c.close().await;
    c.expect_closed(Duration::from_secs(2)).await;
    let unknown = Ids {
        sid: String::new(),
        pid: "AAAAAAAAAAAAAAAAAAAAAA".into(),
    };
    for (sub, asked) in [("43", &ids), ("42", &unknown)] {
        let token = srv.token(sub, false);
        let (_c, reply, welcome) = ws_connect(&srv, &auth(&token, asked, Some(&offset))).await;
        let fresh = ids_of(&reply);
        assert_ne!((&fresh.sid, &fresh.pid), (&ids.sid, &ids.pid), "{sub}");
        assert!(!welcome_recovered(&welcome, &fresh.sid));
    }
    // A bad token is refused as always, whatever the pid.
    let mut c = RawClient::connect(&srv.ws_url(""), &[]).await.unwrap();
    let answer = c
        .handshake(Some(&auth("not-a-jwt", &ids, Some(&offset))))
        .await;
    assert_eq!(answer, r#"44{"message":"unauthorized"}"#);
    // The session kept is still there for its own user.
    let token = srv.token("42", false);
    let (_c, reply, _) = ws_connect(&srv, &auth(&token, &ids, Some(&offset))).await;
    assert_eq!(ids_of(&reply).sid, ids.sid);
}

#[actix_web::test]
async fn a_polling_session_is_recovered_and_what_followed_its_connect_waits_for_it() {
    let srv = start_with(recovery_config());
    let token = srv.token("42", false);
    let (ids, offset) = polling_session_with_one_push(&srv).await;
    srv.push_to_user("42", &notification(2)).await;
    // One POST: the CONNECT asking for recovery, then an event, answered after `welcome`.
    let mut c = PollingClient::open(&srv).await;
    let body = format!(
        "40{}\u{1e}421[\"subscribe\",{{\"userId\":\"42\"}}]",
        auth(&token, &ids, Some(&offset))
    );
    c.send(&body).await;
    let back = ids_of(&c.next_packet().await.unwrap());
    assert_eq!((&back.sid, &back.pid), (&ids.sid, &ids.pid));
    assert_eq!(push_of(&c.next_packet().await.unwrap()).0, 2);
    assert!(welcome_recovered(&c.next_packet().await.unwrap(), &ids.sid));
    let reply = c.next_packet().await.unwrap();
    assert!(reply.starts_with("42[\"subscribed\""), "{reply}");
    assert!(c.next_packet().await.unwrap().starts_with("431["));
    srv.push_to_user("42", &notification(3)).await;
    assert_eq!(push_of(&c.next_packet().await.unwrap()).0, 3);
}

#[actix_web::test]
async fn with_recovery_off_the_wire_is_the_plain_one() {
    let srv = start(); // RECOVERY_WINDOW_MS=0
    let token = srv.token("42", false);
    let (mut c, reply, welcome) = ws_connect(&srv, &json!({ "token": token }).to_string()).await;
    let v = json_of(&reply, "40");
    assert_eq!(v.as_object().unwrap().len(), 1, "only the sid: {reply}");
    let w = json_of(&welcome, "42");
    let mut keys: Vec<&str> = w[1]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["clientId", "message", "timestamp", "userId"]);
    srv.push_to_user("42", &notification(1)).await;
    let push = c.expect_text().await;
    assert_eq!(
        json_of(&push, "42").as_array().unwrap().len(),
        2,
        "no offset: {push}"
    );
    // A pid asks for nothing: a plain session.
    c.close().await;
    let asked = Ids {
        sid: String::new(),
        pid: "p".into(),
    };
    let (_c, reply, _) = ws_connect(&srv, &auth(&token, &asked, None)).await;
    assert_eq!(
        json_of(&reply, "40").as_object().unwrap().len(),
        1,
        "{reply}"
    );
}

/// Pushes `from..=to` to user 42, one after another, on a task of their own.
fn push_meanwhile(srv: &TestServer, from: u64, to: u64) -> actix_web::rt::task::JoinHandle<()> {
    let (url, api_key) = (srv.url("/api/v1/users/42/notifications"), API_KEY);
    actix_web::rt::spawn(async move {
        for n in from..=to {
            let req = http()
                .post(&url)
                .insert_header(("X-API-Key", api_key))
                .insert_header(("Content-Type", "application/json"));
            let answer = send(req, Some(notification(n).into_bytes())).await;
            assert_eq!(answer.status.as_u16(), 202, "{}", answer.body);
        }
    })
}

#[actix_web::test]
async fn pushes_during_the_reconnection_arrive_once_and_in_order_around_welcome() {
    const LAST: u64 = 60;
    let srv = start_with(recovery_config());
    let (mut c, ids, offset) = ws_session_with_one_push(&srv).await;
    c.close().await;
    c.expect_closed(Duration::from_secs(2)).await;
    let pusher = push_meanwhile(&srv, 2, LAST);
    srv.push_to_user("42", &notification(1_000)).await; // one certainly missed
    let token = srv.token("42", false);
    let mut c = RawClient::connect(&srv.ws_url(""), &[]).await.unwrap();
    let reply = c.handshake(Some(&auth(&token, &ids, Some(&offset)))).await;
    assert_eq!(ids_of(&reply).sid, ids.sid);
    let (mut got, mut welcomed) = (Vec::new(), false);
    while got.len() < LAST as usize {
        let packet = c.expect_text().await;
        if packet.starts_with("42[\"welcome\"") {
            assert!(!welcomed, "one welcome");
            assert!(welcome_recovered(&packet, &ids.sid));
            assert!(
                got.contains(&1_000),
                "the missed pushes come before welcome"
            );
            welcomed = true;
        } else {
            got.push(push_of(&packet).0);
        }
    }
    pusher.await.unwrap();
    assert!(welcomed);
    // Every push once, each in the order it was made (the HTTP ones among themselves).
    let in_order: Vec<u64> = got.iter().copied().filter(|&n| n != 1_000).collect();
    assert_eq!(in_order, (2..=LAST).collect::<Vec<_>>());
    assert!(c.idle(Duration::from_millis(200)).await.is_empty());
}

/// Pushes `1..=last` to user 42 and to the room `shared`, interleaved, one after another.
fn push_to_two_rooms(srv: &TestServer, last: u64) -> actix_web::rt::task::JoinHandle<()> {
    let api_key = API_KEY;
    let user = srv.url("/api/v1/users/42/notifications");
    let room = srv.url("/api/v1/rooms/shared/notifications");
    actix_web::rt::spawn(async move {
        for n in 1..=last {
            let url = if n % 3 == 0 { &room } else { &user };
            let req = http()
                .post(url)
                .insert_header(("X-API-Key", api_key))
                .insert_header(("Content-Type", "application/json"));
            let answer = send(req, Some(notification(n).into_bytes())).await;
            assert_eq!(answer.status.as_u16(), 202, "{}", answer.body);
        }
    })
}

/// A client in its user room and a shared room, pushed to in both, is cut mid-stream and
/// comes back from the offset of the last push it read: it must have had every push in
/// offset order, so that nothing is missing and nothing comes twice.
async fn a_member_of_two_rooms_cut_mid_stream_misses_nothing(window_ms: u64) {
    const LAST: u64 = 90;
    let mut config = recovery_config();
    config.push_coalesce =
        pushgate_actors::adaptive_window::CoalesceWindow::Fixed(Duration::from_millis(window_ms));
    let srv = start_with(config);
    let token = srv.token("42", true);
    let (mut c, reply, welcome) = ws_connect(&srv, &json!({ "token": token }).to_string()).await;
    let ids = ids_of(&reply);
    assert!(!welcome_recovered(&welcome, &ids.sid));
    c.send(r#"42["join_room",{"room":"shared"}]"#).await;
    assert!(c.expect_text().await.starts_with("42[\"room_joined\""));
    let pusher = push_to_two_rooms(&srv, LAST);
    let (mut got, mut offsets) = (Vec::new(), Vec::new());
    while got.len() < LAST as usize / 2 {
        let (n, offset) = push_of(&c.expect_text().await);
        got.push(n);
        offsets.push(offset);
    }
    drop(c); // the connection is cut: no `41`, no close frame
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    let last_offset = offsets.last().unwrap().clone();
    let auth = auth(&token, &ids, Some(&last_offset));
    let mut c = RawClient::connect(&srv.ws_url(""), &[]).await.unwrap();
    let reply = c.handshake(Some(&auth)).await;
    assert_eq!(ids_of(&reply).sid, ids.sid);
    let mut welcomed = false;
    while got.len() < LAST as usize || !welcomed {
        let packet = c.expect_text().await;
        if packet.starts_with("42[\"welcome\"") {
            assert!(!welcomed && welcome_recovered(&packet, &ids.sid));
            welcomed = true;
            continue;
        }
        let (n, offset) = push_of(&packet);
        got.push(n);
        offsets.push(offset);
    }
    pusher.await.unwrap();
    assert_eq!(got, (1..=LAST).collect::<Vec<_>>(), "in order, once each");
    assert_increasing(&offsets);
    assert!(c.idle(Duration::from_millis(200)).await.is_empty());
}

#[actix_web::test]
async fn a_member_of_two_rooms_cut_mid_stream_misses_nothing_without_a_window() {
    a_member_of_two_rooms_cut_mid_stream_misses_nothing(0).await;
}

#[actix_web::test]
async fn a_member_of_two_rooms_cut_mid_stream_misses_nothing_with_a_window() {
    a_member_of_two_rooms_cut_mid_stream_misses_nothing(40).await;
}

/// Assert that single-node offsets (`<epoch>-<n>`) increase: same epoch, growing `n` (compared
/// as numbers, not as strings, where `-10` would sort before `-9`).
fn assert_increasing(offsets: &[String]) {
    let epoch_and_n = |o: &String| -> (String, u64) {
        let (epoch, n) = o.rsplit_once('-').expect("<epoch>-<n>");
        (epoch.to_owned(), n.parse().expect("a number"))
    };
    let numbers: Vec<(String, u64)> = offsets.iter().map(epoch_and_n).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
}

/// Missed pushes enough for a replay many times [`REPLAY_SLICE_BYTES`] long.
const MANY: u64 = 3_000;

/// Have user 42's session miss pushes `2..=MANY + 1` (its client is gone).
async fn miss_many(srv: &TestServer) {
    push_meanwhile(srv, 2, MANY + 1).await.unwrap();
}

#[actix_web::test]
async fn a_websocket_replay_many_slices_long_arrives_whole_in_order_then_live_pushes() {
    let srv = start_with(recovery_config());
    let (mut c, ids, offset) = ws_session_with_one_push(&srv).await;
    c.close().await;
    c.expect_closed(Duration::from_secs(2)).await;
    miss_many(&srv).await;
    let token = srv.token("42", false);
    let mut c = RawClient::connect(&srv.ws_url(""), &[]).await.unwrap();
    let reply = c.handshake(Some(&auth(&token, &ids, Some(&offset)))).await;
    assert_eq!(ids_of(&reply).sid, ids.sid);
    // A live push while the client has read nothing of its replay: it waits behind it.
    assert_eq!(srv.push_to_user("42", &notification(MANY + 2)).await, 1);
    let (mut got, mut offsets, mut replayed_bytes) = (Vec::new(), Vec::new(), 0);
    loop {
        let packet = c.expect_text().await;
        if packet.starts_with("42[\"welcome\"") {
            assert!(welcome_recovered(&packet, &ids.sid));
            break;
        }
        replayed_bytes += packet.len();
        let (n, offset) = push_of(&packet);
        got.push(n);
        offsets.push(offset);
    }
    assert_eq!(
        got,
        (2..=MANY + 1).collect::<Vec<_>>(),
        "every missed push once, in order"
    );
    assert_increasing(&offsets);
    assert!(
        replayed_bytes > 10 * REPLAY_SLICE_BYTES,
        "{replayed_bytes} bytes"
    );
    assert_eq!(push_of(&c.expect_text().await).0, MANY + 2);
    assert_eq!(srv.push_to_user("42", &notification(MANY + 3)).await, 1);
    assert_eq!(push_of(&c.expect_text().await).0, MANY + 3);
    assert!(c.idle(Duration::from_millis(200)).await.is_empty());
}

#[actix_web::test]
async fn a_polling_replay_many_slices_long_comes_a_slice_per_get_in_order_then_live_pushes() {
    let srv = start_with(recovery_config());
    let token = srv.token("42", false);
    let (ids, offset) = polling_session_with_one_push(&srv).await;
    miss_many(&srv).await;
    let c = PollingClient::open(&srv).await;
    c.send(&format!("40{}", auth(&token, &ids, Some(&offset))))
        .await;
    let (mut got, mut later, mut gets) = (Vec::new(), Vec::new(), 0);
    let (mut welcomed, mut live) = (false, false);
    while !welcomed {
        let mut replayed_bytes = 0;
        for packet in c.poll().await {
            match packet.as_str() {
                "2" => c.send("3").await,
                p if p.starts_with("40") => assert_eq!(ids_of(p).sid, ids.sid),
                p if p.starts_with("42[\"welcome\"") => {
                    assert!(welcome_recovered(p, &ids.sid));
                    welcomed = true;
                }
                p if welcomed => later.push(push_of(p).0),
                p => {
                    replayed_bytes += p.len();
                    got.push(push_of(p).0);
                }
            }
        }
        assert!(
            replayed_bytes <= REPLAY_SLICE_BYTES,
            "one slice a GET: {replayed_bytes}"
        );
        gets += 1;
        if !live {
            // Pushed while the replay is being fetched: it waits behind it.
            assert_eq!(srv.push_to_user("42", &notification(MANY + 2)).await, 1);
            live = true;
        }
    }
    assert_eq!(
        got,
        (2..=MANY + 1).collect::<Vec<_>>(),
        "every missed push once, in order"
    );
    assert!(gets > 10, "{gets} GETs");
    let mut c = c;
    if later.is_empty() {
        later.push(push_of(&c.next_packet().await.unwrap()).0);
    }
    assert_eq!(later, [MANY + 2]);
    srv.push_to_user("42", &notification(MANY + 3)).await;
    assert_eq!(push_of(&c.next_packet().await.unwrap()).0, MANY + 3);
}
