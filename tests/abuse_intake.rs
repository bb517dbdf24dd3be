//! Issue 15, the intake: what a client that never authenticates, or a publisher, can make the
//! server hold (docs/limits.md).
//!
//! - `MAX_PENDING_SESSIONS`: a loop of polling handshakes that never CONNECT is refused with
//!   `503` past the cap, the server's memory stays bounded (the real binary as a child process,
//!   its `VmRSS` read from `/proc`), an authenticated client beside it still gets its pushes,
//!   and once the pending sessions time out new handshakes succeed again.
//! - `HTTP_BODY_TIMEOUT_MS`: a POST declaring a body it sends one byte at a time, or not at
//!   all, is answered `408` and its connection closed within the timeout; a polling POST's
//!   session ends with it.
//! - A RabbitMQ event over `MAX_PAYLOAD_BYTES` (10 MB) is dead-lettered unread through the real
//!   broker, and the small event after it reaches its client, which stays connected.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use pushgate::config::Config;
use pushgate_actors::consumers::topology::DEAD_LETTER_QUEUE;
use pushgate_test_support::broker::Vhost;
use serde_json::json;

// ------------------------------------------------------------------ plain HTTP/1.1 on a socket

/// One HTTP/1.1 response read off a blocking socket: its status and body.
struct RawAnswer {
    status: u16,
    body: String,
}

/// Read one `Content-Length`-framed response from `reader`.
fn read_answer(reader: &mut BufReader<TcpStream>) -> RawAnswer {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line, got {status_line:?}"));
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let mut body = vec![0; length.expect("a Content-Length")];
    reader.read_exact(&mut body).expect("body");
    RawAnswer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// What a connection sending a slow body got: the server's bytes, and how long after the
/// request head the server closed it.
struct SlowBodyEnd {
    answer: String,
    closed_after: Duration,
}

/// Send `head` (a request declaring a large body), then one byte of body every `trickle`
/// (`None`: nothing) until the server closes the connection; panics if it is still open after
/// `give_up`. Blocking: run it off the test's actix thread.
fn send_slow_body(
    addr: SocketAddr,
    head: String,
    trickle: Option<Duration>,
    give_up: Duration,
) -> SlowBodyEnd {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let tick = trickle.unwrap_or(Duration::from_millis(100));
    stream.set_read_timeout(Some(tick)).unwrap();
    stream.write_all(head.as_bytes()).expect("send the head");
    let sent = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            sent.elapsed() < give_up,
            "the connection is still open after {give_up:?}; got {:?}",
            String::from_utf8_lossy(&answer)
        );
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset) => break,
            Err(_timed_out) => {
                if trickle.is_some() {
                    // Once the server has answered, it may refuse more: that is fine.
                    let _ = stream.write_all(b"4");
                }
            }
        }
    }
    SlowBodyEnd {
        answer: String::from_utf8_lossy(&answer).into_owned(),
        closed_after: sent.elapsed(),
    }
}

/// A POST head to `path` on `addr` declaring a 999,999-byte body, plus `headers` lines.
fn slow_post_head(addr: SocketAddr, path: &str, headers: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 999999\r\n{headers}\r\n")
}

// ------------------------------------------------------------------ HTTP_BODY_TIMEOUT_MS

/// The body timeout of these tests.
const BODY_TIMEOUT: Duration = Duration::from_millis(800);
/// How much later than the timeout the connection may close (a loaded 2-core machine).
const CLOSE_MARGIN: Duration = Duration::from_secs(3);

/// The default Engine.IO timers (a polling session that does not poll must not end by its
/// heartbeat here), and the short body timeout.
fn body_timeout_config() -> Config {
    let mut config = Config::for_tests(SECRET, Some(API_KEY));
    config.limits.http_body_timeout = BODY_TIMEOUT;
    config
}

/// Run [`send_slow_body`] on a blocking thread and check the connection was answered `408`
/// and closed within the timeout (plus [`CLOSE_MARGIN`]).
async fn expect_timed_out(addr: SocketAddr, head: String, trickle: Option<Duration>) {
    let give_up = BODY_TIMEOUT + CLOSE_MARGIN;
    let end =
        actix_web::rt::task::spawn_blocking(move || send_slow_body(addr, head, trickle, give_up))
            .await
            .expect("the slow client thread");
    assert!(
        end.answer.starts_with("HTTP/1.1 408"),
        "answered 408: {:?}",
        end.answer
    );
    assert!(
        end.answer
            .to_ascii_lowercase()
            .contains("connection: close"),
        "{:?}",
        end.answer
    );
    assert!(
        end.closed_after >= BODY_TIMEOUT,
        "not closed before the timeout: {:?}",
        end.closed_after
    );
}

#[actix_web::test]
async fn a_slow_polling_post_is_closed_and_its_session_ended() {
    let server = start_with(body_timeout_config());
    let token = server.token("slow-poster", false);
    for trickle in [Some(Duration::from_millis(250)), None] {
        let client = PollingClient::connected(&server, &token).await;
        let path = format!("/socket.io/?EIO=4&transport=polling&sid={}", client.sid);
        let head = slow_post_head(server.addr, &path, "Content-Type: text/plain\r\n");
        expect_timed_out(server.addr, head, trickle).await;
        // The session had its one POST stuck: it ended, as when its connection breaks.
        client.expect_gone().await;
    }
    server.assert_disconnects("transport_error", 2).await;
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("pushgate_http_body_timeouts_total 2"),
        "{metrics}"
    );
}

#[actix_web::test]
async fn a_slow_api_post_is_closed() {
    let server = start_with(body_timeout_config());
    let path = "/api/v1/users/u1/notifications";
    let key = format!("X-API-Key: {API_KEY}\r\nContent-Type: application/json\r\n");
    for trickle in [Some(Duration::from_millis(250)), None] {
        let head = slow_post_head(server.addr, path, &key);
        expect_timed_out(server.addr, head, trickle).await;
    }
    // Without a key the answer comes before the body is read, and the connection, whose
    // unread body cannot be told from a next request, is closed too.
    let head = slow_post_head(server.addr, path, "Content-Type: application/json\r\n");
    let addr = server.addr;
    let trickle = Some(Duration::from_millis(250));
    let end = actix_web::rt::task::spawn_blocking(move || {
        send_slow_body(addr, head, trickle, BODY_TIMEOUT + CLOSE_MARGIN)
    })
    .await
    .unwrap();
    assert!(end.answer.starts_with("HTTP/1.1 401"), "{:?}", end.answer);
    // Other requests are served meanwhile and after.
    let health = send(http().get(server.url("/health")), None).await;
    assert_eq!(health.status.as_u16(), 200);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("pushgate_http_body_timeouts_total 2"),
        "{metrics}"
    );
}

// ------------------------------------------------------------------ MAX_PENDING_SESSIONS

/// The cap in the handshake-loop test.
const PENDING_CAP: usize = 2_000;
/// Handshakes the loop sends.
const HANDSHAKES: usize = 30_000;
/// How long a pending session lives in that test (`CONNECT_TIMEOUT_MS`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections the loop sends its handshakes over (keep-alive, one after the other on each).
const LOOP_CONNECTIONS: usize = 8;
/// The most the server's resident memory may grow by during the loop: 30,000 pending sessions
/// (no cap) took about 44 MiB, the capped 2,000 about 4 MiB.
const MAX_RSS_GROWTH_KIB: u64 = 16 * 1024;

/// `count` polling handshakes over one keep-alive connection, never CONNECTing; returns how
/// many were answered 200 (an open packet) and 503.
fn handshake_loop(addr: SocketAddr, count: usize) -> (usize, usize) {
    let stream = TcpStream::connect(addr).expect("connect");
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let request =
        format!("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let (mut opened, mut refused) = (0, 0);
    for _ in 0..count {
        (&stream).write_all(request.as_bytes()).expect("send");
        let answer = read_answer(&mut reader);
        match answer.status {
            200 if answer.body.starts_with("0{") => opened += 1,
            503 => {
                let v: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
                assert_eq!(v["error"], "unavailable", "{}", answer.body);
                assert!(v["message"].is_string(), "{}", answer.body);
                refused += 1;
            }
            other => panic!("handshake answered {other}: {}", answer.body),
        }
    }
    (opened, refused)
}

/// A user token for `sub` from the child's secret (the harness's configuration is the same).
fn token(sub: &str) -> String {
    let config = Config::for_tests(SECRET, Some(API_KEY));
    pushgate::auth::mint(
        &config.jwt.secret,
        &pushgate::auth::TokenClaims::new(&config.jwt, sub, false, Duration::from_secs(3600)),
    )
}

/// A WebSocket client connected to the child as `sub`.
async fn connect(addr: SocketAddr, sub: &str) -> RawClient {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let mut client = RawClient::connect(&url, &[]).await.expect("WebSocket");
    let auth = format!(r#"{{"token":"{}"}}"#, token(sub));
    let answer = client.handshake(Some(&auth)).await;
    assert!(
        answer.starts_with("40{\"sid\""),
        "CONNECT accepted: {answer}"
    );
    let welcome = client.expect_text().await;
    assert!(welcome.starts_with("42[\"welcome\""), "{welcome}");
    client
}

/// Push a notification to `user:<sub>` through the child's API; the client must get it.
async fn push_reaches(addr: SocketAddr, sub: &str, client: &mut RawClient, marker: &str) {
    let answer = send(
        http()
            .post(format!("http://{addr}/api/v1/users/{sub}/notifications"))
            .insert_header(("X-API-Key", API_KEY))
            .insert_header(("Content-Type", "application/json")),
        Some(json!({ "marker": marker }).to_string().into_bytes()),
    )
    .await;
    assert_eq!(answer.status.as_u16(), 202, "{}", answer.body);
    let frame = client.expect_text().await;
    assert!(
        frame.starts_with("42[\"notification\"") && frame.contains(marker),
        "{frame}"
    );
}

#[actix_web::test]
async fn a_handshake_loop_is_capped_and_memory_stays_bounded() {
    let cap = PENDING_CAP.to_string();
    let connect_timeout = CONNECT_TIMEOUT.as_millis().to_string();
    let server = ServerProcess::start(&[
        ("MAX_PENDING_SESSIONS", &cap),
        ("CONNECT_TIMEOUT_MS", &connect_timeout),
    ]);
    let addr = server.addr;
    let mut ordinary = connect(addr, "ordinary").await;
    // Warm up the allocator and the workers with what the loop does (those 200 sessions stay
    // pending, under the cap), then take the baseline.
    actix_web::rt::task::spawn_blocking(move || handshake_loop(addr, 200))
        .await
        .unwrap();
    let baseline = server.rss_kib();

    let started = Instant::now();
    let loops = (0..LOOP_CONNECTIONS)
        .map(|_| std::thread::spawn(move || handshake_loop(addr, HANDSHAKES / LOOP_CONNECTIONS)))
        .collect::<Vec<_>>();
    let results = actix_web::rt::task::spawn_blocking(move || {
        loops
            .into_iter()
            .map(|l| l.join().expect("a handshake loop"))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let took = started.elapsed();
    let grown = server.rss_kib().saturating_sub(baseline);
    let (opened, refused) = results
        .iter()
        .fold((0, 0), |(o, r), (lo, lr)| (o + lo, r + lr));
    println!("{opened} opened, {refused} refused in {took:?}; RSS +{grown} KiB");

    assert_eq!(opened + refused, HANDSHAKES);
    assert!(refused > 0, "handshakes past the cap are refused");
    // A slot is freed only when its session times out: within `took`, each of the cap's slots
    // served at most one session per connect timeout, plus the one it started with.
    let rounds = took.as_millis() / CONNECT_TIMEOUT.as_millis() + 1;
    assert!(
        opened <= PENDING_CAP * rounds as usize + 200,
        "{opened} sessions opened in {took:?} with a cap of {PENDING_CAP}"
    );
    assert!(server.metric("pushgate_pending_sessions ") <= PENDING_CAP as u64);
    assert_eq!(
        server.metric("pushgate_handshakes_refused_total{reason=\"pending_sessions\"} "),
        refused as u64
    );
    assert!(
        grown < MAX_RSS_GROWTH_KIB,
        "RSS grew by {grown} KiB for {opened} pending sessions"
    );

    // The authenticated client beside the loop still gets its pushes.
    push_reaches(addr, "ordinary", &mut ordinary, "during-the-loop").await;

    // The pending sessions time out, and handshakes succeed again.
    let deadline = Instant::now() + CONNECT_TIMEOUT + Duration::from_secs(10);
    while server.metric("pushgate_pending_sessions ") > 0 {
        assert!(
            Instant::now() < deadline,
            "pending sessions never timed out"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let mut later = connect(addr, "later").await;
    push_reaches(addr, "later", &mut later, "after-the-loop").await;
    let (opened, refused) = actix_web::rt::task::spawn_blocking(move || handshake_loop(addr, 10))
        .await
        .unwrap();
    assert_eq!((opened, refused), (10, 0));
    push_reaches(addr, "ordinary", &mut ordinary, "still-there").await;
}

#[actix_web::test]
async fn the_cap_counts_both_transports_and_an_accepted_connect_frees_a_slot() {
    let mut config = Config::for_tests(SECRET, Some(API_KEY));
    config.limits.max_pending_sessions = 2;
    let server = start_with(config);
    let token = server.token("capped", false);
    let handshake = server.polling_url("/socket.io/", "");
    let ws_handshake_path = "/socket.io/?EIO=4&transport=websocket";
    // One pending session on each transport: the cap is reached.
    let mut polling = PollingClient::open(&server).await;
    let mut ws = RawClient::connect(&server.ws_url(""), &[]).await.unwrap();
    assert!(ws.next_text().await.expect("open packet").starts_with("0{"));
    let refused = send(http().get(&handshake), None).await;
    assert_eq!(refused.status.as_u16(), 503, "{}", refused.body);
    let body: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(body["error"], "unavailable", "{}", refused.body);
    let refused = ws_handshake(&server, ws_handshake_path, &[]).await;
    assert_eq!(refused.status.as_u16(), 503, "{}", refused.body);
    // A refused CONNECT keeps the slot; an accepted one frees it.
    let answer = polling.connect(Some(r#"{"token":"forged"}"#)).await;
    assert!(answer.starts_with("44"), "{answer}");
    let refused = send(http().get(&handshake), None).await;
    assert_eq!(refused.status.as_u16(), 503, "{}", refused.body);
    let answer = polling
        .connect(Some(&format!(r#"{{"token":"{token}"}}"#)))
        .await;
    assert!(answer.starts_with("40{\"sid\""), "{answer}");
    let again = ws_handshake(&server, ws_handshake_path, &[]).await;
    assert_eq!(again.status.as_u16(), 101, "{}", again.body);
    // A session that ends frees its slot too (the WebSocket closed, the raw handshake's
    // connection dropped).
    ws.close().await;
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"pushgate_handshakes_refused_total{reason="pending_sessions"} 3"#),
        "{metrics}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.state.pending_sessions.held() > 0 {
        assert!(
            Instant::now() < deadline,
            "the ended sessions kept their slots"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

// ------------------------------------------------------------------ oversized AMQP events

#[actix_web::test]
async fn a_ten_megabyte_event_is_dead_lettered_and_the_next_one_delivered() {
    let vhost = Vhost::create();
    let server = start_consuming(&vhost).await;
    let mut client = RawClient::connected(&server, &server.token("big-1", false)).await;

    let publisher = Publisher::connect(&vhost).await;
    let big = json!({"userId": "big-1", "quotaId": "q-big", "padding": "x".repeat(10 << 20)});
    let small = json!({"userId": "big-1", "quotaId": "q-small", "usagePercent": 12});
    for event in [big, small] {
        publisher.publish("quota.updated", &event).await;
    }

    // The small one arrives, and only it.
    let frame = match client.next(Duration::from_secs(10)).await {
        Some(Frame::Text(text)) => text,
        other => panic!("expected the small event, got {other:?}"),
    };
    assert!(
        frame.starts_with("42[\"notification\"") && frame.contains("q-small"),
        "{frame}"
    );
    let more = client.idle(Duration::from_millis(300)).await;
    assert!(more.is_empty(), "nothing else: {more:?}");

    let metrics = server.metrics().await;
    for series in [
        r#"pushgate_amqp_messages_total{outcome="dead_lettered",routing_key="quota.updated"} 1"#,
        r#"pushgate_amqp_messages_total{outcome="routed",routing_key="quota.updated"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    assert!(
        !metrics.contains("pushgate_disconnects_total{reason="),
        "nobody was disconnected:\n{metrics}"
    );
    let dead = publisher
        .channel
        .queue_declare(
            DEAD_LETTER_QUEUE.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("the dead-letter queue");
    assert_eq!(dead.message_count(), 1, "the big event is dead-lettered");
    // Still connected: a push through the API reaches it.
    assert_eq!(server.push_to_user("big-1", r#"{"after":"big"}"#).await, 1);
    assert!(client.expect_text().await.contains("after"));
}
