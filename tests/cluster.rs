//! Cluster mode (`CLUSTER=rabbitmq`, docs/cluster.md), black-box: nodes of one cluster as real
//! `pushgate` children on 127.0.0.1, each with its own `NODE_ID` and port, sharing a vhost of
//! the real broker that belongs to the test; raw WebSocket clients spread over them.
//!
//! - HTTP pushes from every node reach every target client exactly once, whichever node it
//!   is on; a room's pushes come in one order, with the same offsets, on every node.
//! - A publisher's event is routed once for the cluster (delivered once per client, not once
//!   per node), `oldStatus` stays right after the node that routed the last one was killed
//!   (SIGKILL), and a poison event is dead-lettered once.
//! - A node cut from the broker answers `503 unavailable`, then recovers: its pushes are
//!   accepted again and its clients get what was pushed meanwhile, nothing twice.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use pushgate_test_support::broker::Vhost;
use serde_json::json;

/// How long a client waits for more pushes before it counts what it got.
const QUIET: Duration = Duration::from_millis(1500);

#[actix_web::test]
async fn http_pushes_from_every_node_reach_every_client_once_in_one_order() {
    let vhost = Vhost::create();
    let nodes = ClusterNode::start_many(3, &vhost.user_url(), "http");
    // On each node: user u<i>, and an admin in room `ops`.
    let mut users = Vec::new();
    let mut admins = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        users.push(cluster_client(node.addr(), &format!("u{i}"), false).await);
        let mut admin = cluster_client(node.addr(), &format!("a{i}"), true).await;
        join(&mut admin, "ops").await;
        admins.push(admin);
    }

    // Counts are cluster-wide once every node's figures went round (a heartbeat a second).
    let deadline = Instant::now() + Duration::from_secs(10);
    for node in &nodes {
        loop {
            let answer = send(
                http()
                    .get(format!("http://{}/api/v1/rooms/ops", node.addr()))
                    .insert_header(("X-API-Key", API_KEY)),
                None,
            )
            .await;
            if answer.body == r#"{"clients":3,"room":"ops"}"# {
                break;
            }
            assert!(Instant::now() < deadline, "{}", answer.body);
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Each user gets a push sent through each node; `clients` counts the whole cluster's.
    for (to, _) in nodes.iter().enumerate() {
        for (via, node) in nodes.iter().enumerate() {
            let body = json!({"to": to, "via": via});
            let answer = api_post(
                node.addr(),
                &format!("/api/v1/users/u{to}/notifications"),
                &body,
            )
            .await;
            assert_eq!(answer.status, 202, "{}", answer.body);
            assert_eq!(answer.body, r#"{"clients":1}"#, "u{to} through node {via}");
        }
    }
    // Room `ops` gets 30 messages sent through the three nodes at once, and one broadcast.
    let sends = (0..30).map(|n| {
        let addr = nodes[n % 3].addr();
        async move {
            let answer = api_post(addr, "/api/v1/rooms/ops/messages", &json!({"n": n})).await;
            assert_eq!(answer.status, 202, "{}", answer.body);
        }
    });
    futures::future::join_all(sends).await;
    let answer = api_post(nodes[2].addr(), "/api/v1/broadcast", &json!({"all": true})).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body, r#"{"clients":6}"#, "everyone on every node");

    for (i, user) in users.iter_mut().enumerate() {
        let got = pushes_until_quiet(user, QUIET).await;
        let vias: Vec<_> = got
            .iter()
            .map(|p| push_parts(p))
            .filter(|(event, _, _)| event == "notification")
            .map(|(_, payload, _)| payload)
            .collect();
        let mut expected: Vec<_> = (0..3).map(|via| json!({"to": i, "via": via})).collect();
        expected.push(json!({"all": true}));
        assert_eq!(vias, expected, "user u{i}: each push once, in order");
    }
    let mut orders = Vec::new();
    for admin in &mut admins {
        let got = pushes_until_quiet(admin, QUIET).await;
        assert_eq!(got.len(), 31, "30 messages and the broadcast: {got:?}");
        let ns: HashSet<_> = got[..30]
            .iter()
            .map(|p| push_parts(p).1["n"].as_u64().expect("n"))
            .collect();
        assert_eq!(ns.len(), 30, "every message once");
        orders.push(got);
    }
    // The same packets, offsets included, in the same order on every node.
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[0], orders[2]);
    let offsets: Vec<u64> = orders[0]
        .iter()
        .map(|p| push_parts(p).2.parse().expect("a numeric offset"))
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");

    // A record no node can read is skipped and counted by each, and the log goes on.
    let (_connection, channel) = publisher(&vhost).await;
    let confirm = channel
        .basic_publish(
            "".into(),
            "pushgate.http.log".into(),
            BasicPublishOptions::default(),
            b"PGL\x09not a record of this version",
            BasicProperties::default(),
        )
        .await
        .expect("publish to the log");
    assert!(confirm.await.expect("confirm").is_ack());
    let answer = api_post(
        nodes[1].addr(),
        "/api/v1/rooms/ops/messages",
        &json!({"after": 1}),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    for (node, admin) in nodes.iter().zip(&mut admins) {
        let got = pushes_until_quiet(admin, QUIET).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(push_parts(&got[0]).1, json!({"after": 1}));
        assert_eq!(
            node.metric_sum("pushgate_cluster_log_records_skipped_total", ""),
            1
        );
    }

    // A node started now rebuilds the history from the log, and delivers none of it.
    let late = ClusterNode::start(&vhost.user_url(), "http");
    assert!(late.metric_sum("pushgate_recovery_history_bytes", "") > 0);
    let mut admin = cluster_client(late.addr(), "late", true).await;
    join(&mut admin, "ops").await;
    let answer = api_post(
        nodes[0].addr(),
        "/api/v1/rooms/ops/messages",
        &json!({"late": 1}),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let got = pushes_until_quiet(&mut admin, QUIET).await;
    assert_eq!(got.len(), 1, "only what came after it started: {got:?}");
    assert_eq!(
        got[0],
        pushes_until_quiet(&mut admins[0], QUIET).await[0],
        "same packet"
    );
}

/// `/ready`'s status and what it says of the cluster's log.
async fn log_state(node: &ClusterNode) -> (u16, String) {
    let answer = send(http().get(format!("http://{}/ready", node.addr())), None).await;
    let body: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON");
    let log = body["components"]["log"].as_str().expect("the log's state");
    (answer.status.as_u16(), log.to_owned())
}

/// A publisher's channel on the test's vhost, in confirm mode.
async fn publisher(vhost: &Vhost) -> (Connection, lapin::Channel) {
    let connection = Connection::connect(&vhost.guest_url(), ConnectionProperties::default())
        .await
        .expect("publisher connects");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    (connection, channel)
}

async fn publish(channel: &lapin::Channel, key: &str, body: &[u8]) {
    let confirm = channel
        .basic_publish(
            "cloudphone.events".into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish");
    assert!(confirm.await.expect("confirm").is_ack());
}

/// How many messages wait in the dead-letter queue.
async fn dead_letters(channel: &lapin::Channel) -> u32 {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(
            "pushgate.dead-letter".into(),
            passive,
            FieldTable::default(),
        )
        .await
        .expect("the dead-letter queue")
        .message_count()
}

/// The `device.status.changed` pushes among `packets`: (oldStatus, newStatus).
fn status_changes(packets: &[String]) -> Vec<(String, String)> {
    packets
        .iter()
        .map(|p| push_parts(p).1)
        .filter(|payload| payload["type"] == "device.status.changed")
        .map(|payload| {
            let data = &payload["data"];
            (
                data["oldStatus"].as_str().expect("oldStatus").to_owned(),
                data["newStatus"].as_str().expect("newStatus").to_owned(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn publisher_events_are_routed_once_and_old_status_survives_the_routing_node() {
    let vhost = Vhost::create();
    let mut nodes = ClusterNode::start_many(3, &vhost.user_url(), "events");
    // The device's owner is connected to every node.
    let mut owners = Vec::new();
    for node in &nodes {
        owners.push(cluster_client(node.addr(), "owner", false).await);
    }
    let (_connection, channel) = publisher(&vhost).await;
    publish(
        &channel,
        "device.started",
        br#"{"userId":"owner","deviceId":"d-1","startedAt":"2024-01-01T00:00:00Z"}"#,
    )
    .await;
    for owner in &mut owners {
        let got = pushes_until_quiet(owner, QUIET).await;
        assert_eq!(
            status_changes(&got),
            [("stopped".to_owned(), "running".to_owned())],
            "routed once, delivered once: {got:?}"
        );
    }
    let routed = |node: &ClusterNode| {
        node.metric_sum(
            "pushgate_amqp_messages_total",
            r#"routing_key="device.started""#,
        )
    };
    let routing: Vec<_> = nodes.iter().map(routed).collect();
    assert_eq!(
        routing.iter().sum::<u64>(),
        1,
        "one node routed it: {routing:?}"
    );
    let active = routing
        .iter()
        .position(|&n| n == 1)
        .expect("the routing node");

    // The node that routed it dies; another one becomes the active consumer and routes the
    // stop with the status the dead one had set.
    nodes.remove(active).process.kill();
    owners.remove(active);
    publish(
        &channel,
        "device.stopped",
        br#"{"userId":"owner","deviceId":"d-1","stoppedAt":"2024-01-01T00:05:00Z"}"#,
    )
    .await;
    for owner in &mut owners {
        let got = pushes_until_quiet(owner, QUIET).await;
        assert_eq!(
            status_changes(&got),
            [("running".to_owned(), "stopped".to_owned())],
            "{got:?}"
        );
    }

    // A poison event is dead-lettered once, by one node.
    publish(&channel, "quota.updated", br#"{"no":"userId"}"#).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut dead = dead_letters(&channel).await;
    while dead == 0 && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        dead = dead_letters(&channel).await;
    }
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let counted: u64 = nodes
        .iter()
        .map(|n| n.metric_sum("pushgate_amqp_messages_total", r#"outcome="dead_lettered""#))
        .sum();
    assert_eq!((dead, counted), (1, 1), "dead-lettered once");
    for owner in &mut owners {
        assert_eq!(
            pushes_until_quiet(owner, Duration::from_millis(300)).await,
            Vec::<String>::new()
        );
    }
}

#[actix_web::test]
async fn a_node_cut_from_the_broker_answers_503_then_recovers_without_a_gap() {
    let vhost = Vhost::create();
    // The node under test connects as the vhost's own user, which the test can revoke; the
    // other as guest, which keeps its rights.
    let cut = ClusterNode::start(&vhost.user_url(), "cut");
    let steady = ClusterNode::start(&vhost.guest_url(), "cut");
    let mut on_cut = cluster_client(cut.addr(), "c", false).await;
    let mut on_steady = cluster_client(steady.addr(), "s", false).await;
    assert_eq!(log_state(&cut).await, (200, "reading".to_owned()));
    assert_eq!(log_state(&cut).await, (200, "reading".to_owned()));

    vhost.revoke().expect("revoke");
    vhost.close_connections().expect("close the connections");
    // The cut node refuses pushes: its log is unreachable. The steady one reconnects (as
    // guest) and accepts them again.
    let refused = api_post(
        cut.addr(),
        "/api/v1/users/s/notifications",
        &json!({"n": 0}),
    )
    .await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    let body: serde_json::Value = serde_json::from_str(&refused.body).expect("JSON");
    assert_eq!(body["error"], "unavailable");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = api_post(
            steady.addr(),
            "/api/v1/users/c/notifications",
            &json!({"n": 1}),
        )
        .await;
        if answer.status == 202 {
            break;
        }
        assert!(Instant::now() < deadline, "the steady node never recovered");
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    let refused = api_post(
        cut.addr(),
        "/api/v1/users/s/notifications",
        &json!({"n": 0}),
    )
    .await;
    assert_eq!(refused.status, 503, "still cut: {}", refused.body);
    assert_eq!(log_state(&cut).await, (503, "stopped".to_owned()));

    // Let it back in: it reconnects, accepts pushes again, and its reader resumes where it
    // stopped, so its client gets the push made while it was cut, once.
    vhost.grant().expect("grant");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = api_post(
            cut.addr(),
            "/api/v1/users/s/notifications",
            &json!({"n": 2}),
        )
        .await;
        if answer.status == 202 {
            break;
        }
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert!(Instant::now() < deadline, "the cut node never recovered");
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    // Its reader attaches right after its appender: ready again within moments.
    let deadline = Instant::now() + Duration::from_secs(10);
    while log_state(&cut).await != (200, "reading".to_owned()) {
        assert!(Instant::now() < deadline, "{:?}", log_state(&cut).await);
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let got: Vec<_> = pushes_until_quiet(&mut on_cut, QUIET)
        .await
        .iter()
        .map(|p| push_parts(p).1)
        .collect();
    assert_eq!(got, [json!({"n": 1})]);
    let got: Vec<_> = pushes_until_quiet(&mut on_steady, QUIET)
        .await
        .iter()
        .map(|p| push_parts(p).1)
        .collect();
    assert_eq!(got, [json!({"n": 2})], "the refused pushes went nowhere");
    assert!(cut.metric_sum("pushgate_cluster_log_append_failures_total", "") >= 2);
}
