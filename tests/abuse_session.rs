//! Contract §7, what one client may cost a session, against the real server: bad tokens in a
//! loop (the connection closed after three, the log summarised once a second), a socket
//! joining more rooms than `MAX_ROOMS_PER_SOCKET`, a token expiring while connected, and a
//! client over its event rate. Beside each attack an ordinary client keeps receiving pushes.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pushgate::auth::{mint, TokenClaims};

const BAD_CONNECT: &str = r#"40{"token":"bad"}"#;
const UNAUTHORIZED: &str = r#"44{"message":"unauthorized"}"#;

/// The test configuration with a heartbeat slow enough that clients left unread for a few
/// seconds (the bystanders, a flooding client) are not ended for a missed pong.
fn quiet_config() -> pushgate::config::Config {
    let mut config = config();
    config.engine.ping_interval = Duration::from_secs(30);
    config.engine.ping_timeout = Duration::from_secs(20);
    config
}

/// An ordinary client of `user` on `srv`, connected over WebSocket.
async fn bystander(srv: &TestServer, user: &str) -> RawClient {
    RawClient::connected(srv, &srv.token(user, false)).await
}

/// A push to `user` reaches `client` (pings on the way are answered).
async fn assert_push_arrives(srv: &TestServer, client: &mut RawClient, user: &str) {
    assert_eq!(srv.push_to_user(user, r#"{"type":"still.here"}"#).await, 1);
    let push = client.expect_text().await;
    assert!(push.contains("still.here"), "{push}");
}

/// The value of the unlabelled metric `name` (e.g. `pushgate_auth_rejected_total`).
async fn metric(srv: &TestServer, name: &str) -> u64 {
    let metrics = srv.metrics().await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

/// Open a WebSocket session and send three bad CONNECTs: each is refused, and the third
/// closes the connection (1008).
async fn three_bad_connects(url: &str) {
    let mut c = RawClient::connect(url, &[]).await.expect("WebSocket");
    assert_eq!(c.handshake(Some(r#"{"token":"bad"}"#)).await, UNAUTHORIZED);
    for _ in 0..2 {
        c.send(BAD_CONNECT).await;
        assert_eq!(c.expect_text().await, UNAUTHORIZED);
    }
    c.expect_close(1008).await;
}

#[actix_web::test]
async fn three_refused_connects_in_a_row_close_the_connection() {
    let srv = start_with(quiet_config());
    let mut ordinary = bystander(&srv, "7").await;

    // WebSocket: closed after the third refusal, however fast they come.
    three_bad_connects(&srv.ws_url("")).await;
    srv.assert_disconnects("connect_refused", 1).await;

    // A successful CONNECT resets the count: two refusals, a connect, a namespace disconnect,
    // two refusals more, and the connection is still open (it answers a ping).
    let mut c = RawClient::connect(&srv.ws_url(""), &[]).await.unwrap();
    assert_eq!(c.handshake(Some(r#"{"token":"bad"}"#)).await, UNAUTHORIZED);
    c.send(BAD_CONNECT).await;
    assert_eq!(c.expect_text().await, UNAUTHORIZED);
    let token = srv.token("8", false);
    c.send(&format!(r#"40{{"token":"{token}"}}"#)).await;
    assert!(c.expect_text().await.starts_with("40{\"sid\""));
    assert!(c.expect_text().await.starts_with("42[\"welcome\""));
    c.send("41").await;
    for _ in 0..2 {
        c.send(BAD_CONNECT).await;
        assert_eq!(c.expect_text().await, UNAUTHORIZED);
    }
    c.send("2").await;
    assert_eq!(c.expect_text().await, "3");
    c.send(BAD_CONNECT).await;
    assert_eq!(c.expect_text().await, UNAUTHORIZED);
    c.expect_close(1008).await;

    // Long-polling: the third refusal ends the session.
    let mut p = PollingClient::open(&srv).await;
    for _ in 0..2 {
        assert_eq!(p.connect(Some(r#"{"token":"bad"}"#)).await, UNAUTHORIZED);
    }
    assert_eq!(p.post(BAD_CONNECT).await.status.as_u16(), 400);
    p.expect_gone().await;

    srv.assert_disconnects("connect_refused", 3).await;
    // Every refusal is counted, the ones that closed a connection too.
    assert_eq!(
        metric(&srv, "pushgate_auth_rejected_total").await,
        3 + 5 + 3
    );
    assert_push_arrives(&srv, &mut ordinary, "7").await;
}

/// The refusal counts in the summary lines of `lines` (`connect refused: ...` is one,
/// `N connects refused since the last report ...` is N).
fn refusals_logged(lines: &[String]) -> u64 {
    lines
        .iter()
        .filter_map(|l| {
            if l.contains("connect refused: ") {
                Some(1)
            } else {
                let (before, _) = l.split_once(" connects refused since the last report")?;
                before.rsplit(' ').next()?.parse().ok()
            }
        })
        .sum()
}

#[actix_web::test]
async fn a_bad_token_loop_is_logged_at_most_once_a_second() {
    // The real binary, so that its log is what an operator would see.
    let server = ServerProcess::start(&[]);
    let addr = server.addr;
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");

    // 2,100 bad CONNECTs, three per fresh connection, ten connections at a time, for at most
    // 5 s; each connection is closed after its third.
    let started = Instant::now();
    let mut connects = 0u64;
    while connects < 2_100 && started.elapsed() < Duration::from_secs(5) {
        futures::future::join_all((0..10).map(|_| three_bad_connects(&url))).await;
        connects += 30;
    }
    let attack = started.elapsed();
    // The summary of the last burst comes with a once-a-second flush, the first one a second
    // after the previous line (so up to 2 s from now).
    std::thread::sleep(Duration::from_millis(2_500));
    // Everything it wrote, but the unreachable broker's retries.
    let logged: Vec<String> = server
        .kill()
        .into_iter()
        .filter(|l| !l.contains("broker"))
        .collect();

    assert!(connects >= 600, "only {connects} CONNECTs in {attack:?}");
    let summaries = logged.iter().filter(|l| l.contains("refused")).count() as u64;
    let seconds = attack.as_secs() + 3;
    assert!(
        summaries <= seconds,
        "{summaries} refusal lines for {connects} refusals in {attack:?}: {logged:#?}"
    );
    assert!(
        logged.len() <= 50,
        "{} log lines: {logged:#?}",
        logged.len()
    );
    assert_eq!(refusals_logged(&logged), connects, "{logged:#?}");
}

/// `POST /api/v1/rooms/<room>/messages`; returns the `clients` count.
async fn push_to_room(srv: &TestServer, room: &str) -> u64 {
    let answer = send(
        http()
            .post(srv.url(&format!("/api/v1/rooms/{room}/messages")))
            .insert_header(("X-API-Key", API_KEY))
            .insert_header(("Content-Type", "application/json")),
        Some(br#"{"type":"room.push"}"#.to_vec()),
    )
    .await;
    assert_eq!(answer.status.as_u16(), 202, "push: {}", answer.body);
    let v: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    v["clients"].as_u64().expect("clients")
}

#[actix_web::test]
async fn joins_beyond_max_rooms_per_socket_are_refused() {
    let mut config = quiet_config();
    config.limits.client_events_per_s = 0; // the rate limit is another test's
    config.limits.max_rooms_per_socket = 1_000;
    let srv = start_with(config);
    let mut ordinary = bystander(&srv, "7").await;
    let mut admin = RawClient::connected(&srv, &srv.token("1", true)).await;

    // 1,000 joins with acks: the own `user:1` room counts, so 999 are joined and the last is
    // refused, through its `error` event and its ack; the connection stays open.
    for i in 0..1_000 {
        admin
            .send(&format!(r#"42{i}["join_room",{{"room":"r{i}"}}]"#))
            .await;
    }
    let (mut joined, mut refused, mut acks) = (0, Vec::new(), 0);
    while joined + refused.len() < 1_000 || acks < 1_000 {
        let text = admin.expect_text().await;
        if text.starts_with(r#"42["room_joined""#) {
            joined += 1;
        } else if text.starts_with(r#"42["error""#) {
            refused.push(text);
        } else if text.starts_with("43") {
            acks += 1;
        } else {
            panic!("unexpected {text}");
        }
    }
    assert_eq!(joined, 999);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].contains(r#""code":"bad_request""#),
        "{refused:?}"
    );
    assert!(refused[0].contains(r#""event":"join_room""#), "{refused:?}");
    assert_eq!(metric(&srv, "pushgate_room_joins_refused_total").await, 1);

    // A room held may be joined again; after leaving one, another may be joined.
    admin.send(r#"42["join_room",{"room":"r5"}]"#).await;
    assert!(admin.expect_text().await.starts_with(r#"42["room_joined""#));
    admin.send(r#"42["leave_room",{"room":"r5"}]"#).await;
    assert!(admin.expect_text().await.starts_with(r#"42["room_left""#));
    admin.send(r#"42["join_room",{"room":"r999"}]"#).await;
    assert!(admin.expect_text().await.starts_with(r#"42["room_joined""#));

    // Pushes to one of its rooms and to the user still arrive, and to the bystander.
    assert_eq!(push_to_room(&srv, "r998").await, 1);
    assert!(admin.expect_text().await.contains("room.push"));
    assert_eq!(srv.push_to_user("1", r#"{"type":"to.admin"}"#).await, 1);
    assert!(admin.expect_text().await.contains("to.admin"));
    assert_push_arrives(&srv, &mut ordinary, "7").await;
}

/// The next `count` texts `client` reads are all `event`s.
async fn expect_all(client: &mut RawClient, event: &str, count: usize) {
    for _ in 0..count {
        let text = client.expect_text().await;
        assert!(text.starts_with(&format!(r#"42["{event}""#)), "{text}");
    }
}

#[actix_web::test]
async fn a_socket_in_thousands_of_rooms_joins_and_leaves_each_once() {
    // A socket's rooms are a set on both sides (the session's count, the supervisor's entry):
    // 5,000 joins, a join of a room held, and 2,500 leaves leave exactly the rooms expected.
    let mut config = quiet_config();
    config.limits.client_events_per_s = 0;
    config.limits.max_rooms_per_socket = 5_001;
    let srv = start_with(config);
    let mut admin = RawClient::connected(&srv, &srv.token("1", true)).await;
    for i in 0..5_000 {
        admin
            .send(&format!(r#"42["join_room",{{"room":"r{i}"}}]"#))
            .await;
    }
    admin.send(r#"42["join_room",{"room":"r0"}]"#).await;
    expect_all(&mut admin, "room_joined", 5_001).await;
    assert_eq!(
        metric(&srv, "pushgate_rooms").await,
        5_001,
        "5,000 rooms and user:1"
    );
    for i in (0..5_000).step_by(2) {
        admin
            .send(&format!(r#"42["leave_room",{{"room":"r{i}"}}]"#))
            .await;
    }
    expect_all(&mut admin, "room_left", 2_500).await;
    assert_eq!(metric(&srv, "pushgate_rooms").await, 2_501);
    assert_eq!(push_to_room(&srv, "r4998").await, 0);
    assert_eq!(push_to_room(&srv, "r4999").await, 1);
    assert!(admin.expect_text().await.contains("room.push"));
}

#[actix_web::test]
async fn a_session_ends_when_its_token_expires() {
    let srv = start_with(quiet_config());
    let mut ordinary = bystander(&srv, "7").await;
    let short = mint(
        SECRET,
        &TokenClaims::new(&srv.config.jwt, "9", false, Duration::from_secs(2)),
    );
    let connected_at = Instant::now();
    let mut ws = RawClient::connected(&srv, &short).await;
    let mut polling = PollingClient::connected(&srv, &short).await;

    // Both close at `exp` (a whole second, so 1-2 s from now), without a Socket.IO DISCONNECT
    // (socket.io-client then reconnects by itself); pings are answered until then.
    let (frames, polled) = futures::join!(
        ws.idle(Duration::from_secs(4)),
        polling.idle(Duration::from_secs(4))
    );
    let closed_after = connected_at.elapsed();
    assert_eq!(frames, vec![Frame::Close(Some(1008))], "{closed_after:?}");
    assert!(
        closed_after > Duration::from_millis(900) && closed_after < Duration::from_millis(3_900),
        "{closed_after:?}"
    );
    // The polling session was closed (`1`), then is gone.
    assert_eq!(polled.first().map(String::as_str), Some("1"), "{polled:?}");
    assert!(
        polled.iter().skip(1).all(|p| p.starts_with("400")),
        "{polled:?}"
    );
    srv.assert_disconnects("token_expired", 2).await;

    // A fresh token connects again, and pushes reach it.
    let mut again = RawClient::connected(&srv, &srv.token("9", false)).await;
    assert_push_arrives(&srv, &mut again, "9").await;
    assert_push_arrives(&srv, &mut ordinary, "7").await;
}

/// Read what `client` is sent for `duration` (pings answered): how many `subscribed` replies
/// and `rate_limited` errors, and whether it was closed (with its code).
async fn tally(client: &mut RawClient, duration: Duration) -> (usize, usize, Option<Frame>) {
    let frames = client.idle(duration).await;
    let texts = || {
        frames.iter().filter_map(|f| match f {
            Frame::Text(t) => Some(t.as_str()),
            _ => None,
        })
    };
    let answered = texts()
        .filter(|t| t.starts_with(r#"42["subscribed""#))
        .count();
    let limited = texts()
        .filter(|t| t.starts_with(r#"42["error""#) && t.contains("rate_limited"))
        .count();
    let close = frames.into_iter().find(|f| matches!(f, Frame::Close(_)));
    (answered, limited, close)
}

#[actix_web::test]
async fn client_events_over_the_rate_are_dropped_then_disconnected() {
    let mut config = quiet_config();
    config.limits.client_events_per_s = 2;
    config.limits.client_events_burst = 50;
    let srv = start_with(config);
    let mut ordinary = bystander(&srv, "7").await;
    let mut flood = RawClient::connected(&srv, &srv.token("5", false)).await;

    // A burst of 200: the bucket's 50 are answered (one more may have come back meanwhile),
    // the rest dropped, told `rate_limited` once (through its ack too).
    let subscribe = r#"421["subscribe",{"userId":"5"}]"#;
    for _ in 0..200 {
        flood.send(subscribe).await;
    }
    let started = Instant::now();
    let (answered, limited, close) = tally(&mut flood, Duration::from_millis(500)).await;
    assert!((50..=51).contains(&answered), "{answered} answered");
    assert_eq!(limited, 1);
    assert_eq!(close, None);

    // The ordinary client's events have their own bucket.
    ordinary.send(subscribe.replace('5', "7").as_str()).await;
    assert!(ordinary
        .expect_text()
        .await
        .starts_with(r#"42["subscribed""#));
    assert!(ordinary.expect_text().await.starts_with("431["));

    // Ten events a second, five times the rate, with no quiet second: disconnected
    // (`rate_limited`) about 10 s after the first drop, told at most once a second meanwhile.
    let mut limited_total = limited;
    let close = loop {
        for _ in 0..3 {
            flood.send(subscribe).await;
        }
        let (_, limited, close) = tally(&mut flood, Duration::from_millis(300)).await;
        limited_total += limited;
        if close.is_some() || started.elapsed() > Duration::from_secs(14) {
            break close;
        }
    };
    let elapsed = started.elapsed();
    assert_eq!(close, Some(Frame::Close(Some(1008))), "after {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(9_500), "{elapsed:?}");
    let seconds = elapsed.as_secs() as usize + 1;
    assert!(
        (5..=seconds).contains(&limited_total),
        "{limited_total} rate_limited errors in {elapsed:?}"
    );
    srv.assert_disconnects("rate_limited", 1).await;
    assert_push_arrives(&srv, &mut ordinary, "7").await;
}
