//! Issue 18 part 4, push statistics, against the real server on 127.0.0.1:0 with real clients
//! (WebSocket and long-polling) and the real RabbitMQ on 127.0.0.1:5672:
//!
//! - pushes from the HTTP API and from RabbitMQ are counted under their source and Socket.IO
//!   event, in `GET /api/v1/stats` and `/metrics`; deliveries are the sessions reached;
//! - each (event, source) that was written to a socket has latency percentiles, with
//!   p50 ≤ p90 ≤ p99;
//! - the busiest rooms are ranked by deliveries and limited to 10.
//!
//! That a room quiet for over a minute leaves the ranking is shown by the window's own unit
//! tests (`pushgate_actors::push_stats::busiest_rooms`), with their clock, not by waiting here.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pushgate_test_support::broker::Vhost;
use serde_json::{json, Value};

/// `GET /api/v1/stats`.
async fn stats(server: &TestServer) -> Value {
    let answer = send(
        http()
            .get(server.url("/api/v1/stats"))
            .insert_header(("X-API-Key", API_KEY)),
        None,
    )
    .await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.body);
    serde_json::from_str(&answer.body).expect("stats JSON")
}

/// The stats once `ready` holds for them (the latency of a push is recorded just after its
/// bytes are written, so it may trail the client's read by a moment); panics after 10 s.
async fn stats_when(server: &TestServer, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = stats(server).await;
        if ready(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "stats never got there: {stats:#}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// POST `body` to an API push route; returns the `clients` count.
async fn push(server: &TestServer, route: &str) -> u64 {
    let answer = send(
        http()
            .post(server.url(route))
            .insert_header(("X-API-Key", API_KEY))
            .insert_header(("Content-Type", "application/json")),
        Some(br#"{"type":"stats-test"}"#.to_vec()),
    )
    .await;
    assert_eq!(answer.status.as_u16(), 202, "{route}: {}", answer.body);
    let clients: Value = serde_json::from_str(&answer.body).unwrap();
    clients["clients"].as_u64().expect("clients")
}

/// Publish a `quota.renewed` for `user` (one `notification` to `user:<user>`).
async fn publish_renewed(publisher: &Publisher, user: &str, n: usize) {
    let event = json!({"userId": user, "quotaId": format!("q-{n}")});
    publisher.publish("quota.renewed", &event).await;
}

/// `n` packets of `client` that start with `prefix` (pings answered, nothing else expected).
async fn expect_ws(client: &mut RawClient, prefix: &str, n: usize) {
    for i in 0..n {
        let text = client.next_text().await.expect("a push");
        assert!(text.starts_with(prefix), "push {i}: {text}");
    }
}

/// `latency_ms` holds its three percentiles, above zero and ordered.
fn assert_percentiles(stats: &Value) {
    let (p50, p90, p99) = (
        stats["p50"].as_f64().expect("p50"),
        stats["p90"].as_f64().expect("p90"),
        stats["p99"].as_f64().expect("p99"),
    );
    assert!(0.0 < p50 && p50 <= p90 && p90 <= p99, "{stats}");
}

#[actix_web::test]
async fn pushes_are_counted_by_event_and_source_with_their_latency() {
    let vhost = Vhost::create();
    let server = start_consuming(&vhost).await;
    // Alice on two WebSockets, Bob on long-polling.
    let alice_token = server.token("alice", false);
    let mut alice = [
        RawClient::connected(&server, &alice_token).await,
        RawClient::connected(&server, &alice_token).await,
    ];
    let mut bob = PollingClient::connected(&server, &server.token("bob", false)).await;

    for _ in 0..3 {
        assert_eq!(push(&server, "/api/v1/users/alice/notifications").await, 2);
    }
    for _ in 0..2 {
        assert_eq!(push(&server, "/api/v1/rooms/user%3Abob/messages").await, 1);
    }
    let publisher = Publisher::connect(&vhost).await;
    for n in 0..4 {
        publish_renewed(&publisher, "alice", n).await;
    }
    publish_renewed(&publisher, "bob", 4).await;

    for client in &mut alice {
        expect_ws(client, "42[\"notification\"", 7).await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(bob.next_packet().await.expect("bob's push"));
    }
    let messages = got
        .iter()
        .filter(|p| p.starts_with("42[\"message\""))
        .count();
    assert_eq!(messages, 2, "{got:?}");

    let written = |s: &Value, event: &str, source: &str| {
        s["events"][event][source]["written"]
            .as_u64()
            .unwrap_or_default()
    };
    let stats = stats_when(&server, |s| {
        written(s, "notification", "http") == 6
            && written(s, "message", "http") == 2
            && written(s, "notification", "amqp") == 9
    })
    .await;
    let events = &stats["events"];
    let counts = |event: &str, source: &str| {
        let s = &events[event][source];
        (
            s["pushes"].as_u64(),
            s["deliveries"].as_u64(),
            s["written"].as_u64(),
        )
    };
    assert_eq!(counts("notification", "http"), (Some(3), Some(6), Some(6)));
    assert_eq!(counts("message", "http"), (Some(2), Some(2), Some(2)));
    assert_eq!(counts("notification", "amqp"), (Some(5), Some(9), Some(9)));
    assert_eq!(counts("message", "amqp"), (Some(0), Some(0), Some(0)));
    assert_eq!(
        counts("notification", "consul"),
        (Some(0), Some(0), Some(0))
    );
    for (event, source) in [
        ("notification", "http"),
        ("message", "http"),
        ("notification", "amqp"),
    ] {
        assert_percentiles(&events[event][source]["latency_ms"]);
    }
    assert_eq!(
        events["message"]["amqp"]["latency_ms"],
        Value::Null,
        "nothing written"
    );
    // The existing members are still there.
    assert_eq!(stats["connections"], 3);
    assert_eq!(stats["pushes"], json!({"notification": 8, "message": 2}));
    assert_eq!(
        stats["deliveries"],
        json!({"notification": 15, "message": 2})
    );
    assert_eq!(
        stats["busiest_rooms"],
        json!([
            {"room": "user:alice", "pushes": 7, "deliveries": 14},
            {"room": "user:bob", "pushes": 3, "deliveries": 3},
        ])
    );

    let metrics = server.metrics().await;
    for series in [
        r#"pushgate_pushes_total{event="notification"} 8"#,
        r#"pushgate_pushes_by_source_total{event="notification",source="amqp"} 5"#,
        r#"pushgate_pushes_by_source_total{event="message",source="http"} 2"#,
        r#"pushgate_push_deliveries_total{event="notification",source="http"} 6"#,
        r#"pushgate_push_deliveries_total{event="notification",source="amqp"} 9"#,
        r#"pushgate_push_latency_seconds_count{event="notification",source="amqp"} 9"#,
        r#"pushgate_push_latency_seconds_bucket{event="message",source="http",le="+Inf"} 2"#,
        r#"pushgate_push_latency_seconds_count{event="message",source="amqp"} 0"#,
    ] {
        assert!(metrics.contains(series), "missing {series} in:\n{metrics}");
    }
}

#[actix_web::test]
async fn the_busiest_rooms_are_the_ten_with_the_most_deliveries() {
    let server = start();
    let mut clients = Vec::new();
    for i in 1..=12 {
        let user = format!("busy-{i:02}");
        clients.push(RawClient::connected(&server, &server.token(&user, false)).await);
        // Room i gets i pushes, each to its one session.
        for _ in 0..i {
            assert_eq!(
                push(&server, &format!("/api/v1/users/{user}/notifications")).await,
                1
            );
        }
    }
    let stats = stats(&server).await;
    let busiest = stats["busiest_rooms"].as_array().expect("busiest_rooms");
    let ranked: Vec<(&str, u64)> = busiest
        .iter()
        .map(|r| {
            (
                r["room"].as_str().unwrap(),
                r["deliveries"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u64)> = (3..=12)
        .rev()
        .map(|i| (format!("user:busy-{i:02}"), i))
        .collect();
    let expected: Vec<(&str, u64)> = expected.iter().map(|(r, d)| (r.as_str(), *d)).collect();
    assert_eq!(ranked, expected, "the ten busiest, busiest first");
    assert!(busiest.iter().all(|r| r["pushes"] == r["deliveries"]));
    drop(clients);
}
