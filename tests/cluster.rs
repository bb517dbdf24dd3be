//! Cluster mode (`CLUSTER=rabbitmq`, docs/cluster.md), black-box: nodes of one cluster as real
//! `pushgate` children on 127.0.0.1, each with its own `NODE_ID` and port, sharing a vhost of
//! the real broker that belongs to the test; raw WebSocket clients spread over them.
//!
//! - HTTP pushes from every node reach every target client exactly once, whichever node it
//!   is on; a room's pushes come in one order, with the same offsets, on every node.
//! - A publisher's event is routed once for the cluster (delivered once per client, not once
//!   per node), `oldStatus` stays right after the node that routed the last one was killed
//!   (SIGKILL), and a poison event is dead-lettered once.
//! - A node that becomes the active consumer while its reader still catches up routes only
//!   once its reader read its fence: `oldStatus` is the status the killed node set last.
//! - A node cut from the broker answers `503 unavailable`, then recovers: its pushes are
//!   accepted again and its clients get what was pushed meanwhile, nothing twice.
//! - A kept session is recovered on any node (same ids, rooms, every missed push once, in
//!   order), also after its node was killed (SIGKILL) and by a node that restarted; once
//!   (two nodes claiming it at once: one recovers it); never after `41`, never by another
//!   user.
//! - A rolling restart of all three nodes (SIGTERM without drain, started again as
//!   themselves) under a steady HTTP push load: every client, moved to a live node with its
//!   `pid` and offset, is recovered each time and gets every accepted push once, in order.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};
use pushgate_test_support::broker::{confirming_channel, Vhost};
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
            let answer = api_get(node.addr(), "/api/v1/rooms/ops").await;
            if answer.body == r#"{"clients":3,"room":"ops"}"# {
                break;
            }
            assert!(Instant::now() < deadline, "{}", answer.body);
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // `/api/v1/stats` counts the whole cluster and lists each node: on each, its user, its
    // admin, their two user rooms and `ops`; cluster-wide six user rooms and `ops`.
    for node in &nodes {
        let answer = api_get(node.addr(), "/api/v1/stats").await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let stats: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON");
        assert_eq!(
            (stats["connections"].as_u64(), stats["rooms"].as_u64()),
            (Some(6), Some(7))
        );
        let listed = stats["nodes"].as_array().expect("nodes");
        assert_eq!(listed.len(), 3, "{listed:?}");
        for each in listed {
            assert_eq!(
                (each["connections"].as_u64(), each["rooms"].as_u64()),
                (Some(2), Some(3))
            );
            assert!(each["age_ms"].as_u64().expect("age_ms") <= 2_000, "{each}");
            assert!(each["node"]
                .as_str()
                .expect("node")
                .starts_with("pg-test-child-"));
        }
        assert!(
            stats["events"].is_object(),
            "this node's push statistics stay"
        );
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
    confirming_channel(&vhost.guest_url()).await
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

/// How many records the log holds before the device change in the fence test, so that a
/// starting node's reader takes a while to reach it.
const BACKLOG_RECORDS: usize = 30_000;

/// Append `count` start marks of a node that never reads to the cluster `name`'s log, the way
/// the nodes append (confirmed), as a backlog every starting node must read through.
async fn append_backlog(channel: &lapin::Channel, name: &str, count: usize) {
    let record = pushgate_actors::cluster::LogRecord::Mark {
        origin: "backlog/0".into(),
    }
    .encode()
    .expect("a mark");
    let stream = format!("pushgate.{name}.log");
    let mut confirms = Vec::with_capacity(count);
    for _ in 0..count {
        let confirm = channel
            .basic_publish(
                "".into(),
                stream.as_str().into(),
                BasicPublishOptions::default(),
                &record,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish");
        confirms.push(confirm);
    }
    for confirm in confirms {
        assert!(confirm.await.expect("confirm").is_ack());
    }
}

/// The pushes `client` gets, waiting up to 60 s for the first (behind a backlog), then until
/// quiet.
async fn first_pushes(client: &mut RawClient) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = pushes_until_quiet(client, QUIET).await;
        if !got.is_empty() || Instant::now() > deadline {
            return got;
        }
    }
}

#[actix_web::test]
async fn a_new_active_consumer_routes_only_once_its_reader_read_the_last_status_change() {
    let vhost = Vhost::create();
    let url = vhost.user_url();
    let first = ClusterNode::start(&url, "fence");
    let (_connection, channel) = publisher(&vhost).await;
    // The log's backlog lies before the status change: a node that starts now reads it all
    // before it reads the change.
    append_backlog(&channel, "fence", BACKLOG_RECORDS).await;
    let mut owner = cluster_client(first.addr(), "owner", false).await;
    publish(
        &channel,
        "device.started",
        br#"{"userId":"owner","deviceId":"d-1","startedAt":"2024-01-01T00:00:00Z"}"#,
    )
    .await;
    let got = first_pushes(&mut owner).await;
    assert_eq!(
        status_changes(&got),
        [("stopped".to_owned(), "running".to_owned())],
        "{got:?}"
    );
    // The node that routed it (and appended the change, confirmed) dies at once.
    first.process.kill();

    // The next node becomes the active consumer as soon as it consumes, while its reader
    // still reads the backlog (prefetch 1: one record per round trip).
    let started = Instant::now();
    let next = ClusterNode::launch(&url, "fence", &[("RABBITMQ_PREFETCH", "1")]);
    next.wait_for_lines(
        &[
            "consuming queue `pushgate.fence.device`",
            "reading the cluster's log",
        ],
        Duration::from_secs(30),
    );
    let mut owner = cluster_client(next.addr(), "owner", false).await;
    // A second start: its `oldStatus` is `running` only from the change the dead node logged
    // (a node that did not read it would say `stopped`, the default before a start).
    publish(
        &channel,
        "device.started",
        br#"{"userId":"owner","deviceId":"d-1","startedAt":"2024-01-01T00:05:00Z"}"#,
    )
    .await;
    assert_eq!(
        log_state(&next).await,
        (503, "catching_up".to_owned()),
        "the event must come while the reader still reads the backlog (make it larger)"
    );
    next.wait_for_line("delivering from here", Duration::from_secs(60));
    println!(
        "a starting node read {BACKLOG_RECORDS} records of backlog in {:?}",
        started.elapsed()
    );
    let got = first_pushes(&mut owner).await;
    assert_eq!(
        status_changes(&got),
        [("running".to_owned(), "running".to_owned())],
        "oldStatus is the status the dead node set: {got:?}"
    );
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

/// `POST` a push through `node`, expecting `202`.
async fn push_via(node: &ClusterNode, path: &str, body: serde_json::Value) {
    let answer = api_post(node.addr(), path, &body).await;
    assert_eq!(answer.status, 202, "{path}: {}", answer.body);
}

/// The payloads of `packets`.
fn payloads(packets: &[String]) -> Vec<serde_json::Value> {
    packets.iter().map(|p| push_parts(p).1).collect()
}

/// The offset of the last of `packets`.
fn last_offset(packets: &[String]) -> String {
    push_parts(packets.last().expect("a push")).2
}

#[actix_web::test]
async fn kept_sessions_are_recovered_on_any_node_once_even_after_a_sigkill_or_a_restart() {
    let vhost = Vhost::create();
    let url = vhost.user_url();
    let node_ids = ["rec-a", "rec-b", "rec-c"];
    let mut nodes = ClusterNode::start_each(&node_ids.map(Some), &url, "rec");

    // x, an admin in `ops`, on node A, gets one push, then its transport drops.
    let first = reconnect(nodes[0].addr(), "x", true, None, None).await;
    assert!(!first.recovered);
    let mut x = first.client;
    join(&mut x, "ops").await;
    push_via(&nodes[1], "/api/v1/rooms/ops/messages", json!({"m": 1})).await;
    let got = pushes_until_quiet(&mut x, QUIET).await;
    assert_eq!(payloads(&got), [json!({"m": 1})]);
    let offset = last_offset(&got);
    drop(x);
    // Meanwhile: to its room, to itself, to a room it is not in, through every node.
    push_via(&nodes[2], "/api/v1/rooms/ops/messages", json!({"m": 2})).await;
    push_via(&nodes[0], "/api/v1/users/x/notifications", json!({"n": 1})).await;
    push_via(&nodes[1], "/api/v1/rooms/other/messages", json!({"o": 1})).await;
    push_via(&nodes[1], "/api/v1/rooms/ops/messages", json!({"m": 3})).await;
    // It reconnects to node B: the same ids, every missed push once, in order, then live.
    let back = reconnect(nodes[1].addr(), "x", true, Some(&first.pid), Some(&offset)).await;
    assert!(back.recovered);
    assert_eq!((&back.sid, &back.pid), (&first.sid, &first.pid));
    assert_eq!(
        payloads(&back.missed),
        [json!({"m": 2}), json!({"n": 1}), json!({"m": 3})]
    );
    let mut x = back.client;
    push_via(&nodes[2], "/api/v1/rooms/ops/messages", json!({"m": 4})).await;
    let got = pushes_until_quiet(&mut x, QUIET).await;
    assert_eq!(
        payloads(&got),
        [json!({"m": 4})],
        "its rooms are back, live"
    );
    // Taken once: two reconnects with its pid at once, to two nodes, recover it once (the
    // log's order decides); the one recovered supersedes the session on node B, closed.
    let (on_a, on_c) = futures::join!(
        reconnect(nodes[0].addr(), "x", true, Some(&first.pid), Some(&offset)),
        reconnect(nodes[2].addr(), "x", true, Some(&first.pid), Some(&offset)),
    );
    assert!(on_a.recovered != on_c.recovered, "exactly one is recovered");
    let winner = if on_a.recovered { &on_a } else { &on_c };
    assert_eq!(winner.sid, first.sid);
    assert_eq!(
        payloads(&winner.missed),
        [json!({"m": 4})],
        "what came before node B recovered it was delivered there"
    );
    x.expect_closed(Duration::from_secs(5)).await;

    // y disconnects itself (`41`): nothing to recover, on any node.
    let y = reconnect(nodes[2].addr(), "y", false, None, None).await;
    let mut y_client = y.client;
    y_client.send("41").await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let y_again = reconnect(nodes[0].addr(), "y", false, Some(&y.pid), None).await;
    assert!(!y_again.recovered);
    assert_ne!(y_again.sid, y.sid);

    // z's pid from another user is refused, and stays kept for z.
    let z = reconnect(nodes[0].addr(), "z", false, None, None).await;
    drop(z.client);
    let intruder = reconnect(nodes[1].addr(), "intruder", false, Some(&z.pid), None).await;
    assert!(!intruder.recovered);
    assert_ne!((&intruder.sid, &intruder.pid), (&z.sid, &z.pid));
    let z_back = reconnect(nodes[2].addr(), "z", false, Some(&z.pid), None).await;
    assert!(z_back.recovered);
    assert_eq!(z_back.sid, z.sid);

    // k on node A, whose node is killed (SIGKILL): recovered on node C with every push
    // published meanwhile.
    let k = reconnect(nodes[0].addr(), "k", false, None, None).await;
    let mut k_client = k.client;
    push_via(&nodes[1], "/api/v1/users/k/notifications", json!({"k": 1})).await;
    let got = pushes_until_quiet(&mut k_client, QUIET).await;
    let offset = last_offset(&got);
    nodes.remove(0).process.kill();
    drop(k_client);
    for n in 2..5 {
        push_via(&nodes[0], "/api/v1/users/k/notifications", json!({"k": n})).await;
    }
    let k_back = reconnect(nodes[1].addr(), "k", false, Some(&k.pid), Some(&offset)).await;
    assert!(k_back.recovered);
    assert_eq!(k_back.sid, k.sid);
    assert_eq!(
        payloads(&k_back.missed),
        [json!({"k": 2}), json!({"k": 3}), json!({"k": 4})]
    );

    // r on node B drops; node A restarts (same NODE_ID), rebuilds the history from the log
    // and recovers r.
    let r = reconnect(nodes[0].addr(), "r", false, None, None).await;
    drop(r.client);
    push_via(&nodes[1], "/api/v1/users/r/notifications", json!({"r": 1})).await;
    let restarted = ClusterNode::start_with(&url, "rec", &[("NODE_ID", "rec-a")]);
    let r_back = reconnect(restarted.addr(), "r", false, Some(&r.pid), None).await;
    assert!(r_back.recovered);
    assert_eq!(r_back.sid, r.sid);
    assert_eq!(payloads(&r_back.missed), [json!({"r": 1})]);
    assert!(
        restarted.metric_sum("pushgate_recoveries_total", r#"outcome="recovered""#) == 1,
        "recovered by the restarted node itself"
    );
}

/// What a roaming client of the rolling restart got.
#[derive(Default)]
struct Tally {
    /// The `seq` of every push, in the order it came.
    seqs: Vec<u64>,
    /// Their offsets, in the same order.
    offsets: Vec<u64>,
    /// How often it reconnected, and how often it was not recovered.
    reconnects: usize,
    fresh: usize,
}

impl Tally {
    fn record(&mut self, packet: &str) {
        let (_, payload, offset) = push_parts(packet);
        self.seqs.push(payload["seq"].as_u64().expect("seq"));
        self.offsets.push(offset.parse().expect("a numeric offset"));
    }
}

/// A client (admin `sub`, in room `load`) that reads pushes until `stop` and a quiet
/// second, and whenever its node closes it, reconnects to a live node of `addrs` with its
/// `pid` and last offset.
async fn roaming_client(
    index: usize,
    sub: String,
    addrs: std::rc::Rc<std::cell::RefCell<Vec<std::net::SocketAddr>>>,
    stop: std::rc::Rc<std::cell::Cell<bool>>,
) -> Tally {
    const TICK: Duration = Duration::from_millis(200);
    let mut tally = Tally::default();
    let addr = addrs.borrow()[index % 3];
    let first = reconnect(addr, &sub, true, None, None).await;
    let pid = first.pid;
    let mut client = first.client;
    join(&mut client, "load").await;
    let mut last_push = Instant::now();
    let mut closed = false;
    loop {
        let asked = Instant::now();
        match client.next(TICK).await {
            Some(Frame::Text(t)) if t == "2" => client.send("3").await,
            Some(Frame::Text(t)) if t.starts_with("42") => {
                tally.record(&t);
                last_push = Instant::now();
            }
            // A close, or the end of the stream (`None` before the tick is up).
            Some(Frame::Close(_)) => closed = true,
            None if asked.elapsed() < TICK => closed = true,
            None if stop.get() && last_push.elapsed() > QUIET => return tally,
            None => {}
            Some(other) => panic!("{sub}: unexpected {other:?}"),
        }
        if closed {
            closed = false;
            {
                // Closed by its node: back, to any live node, with its pid and offset.
                let offset = tally.offsets.last().map(u64::to_string);
                let live = addrs.borrow().clone();
                let addr = live[(index + tally.reconnects) % live.len()];
                let back = reconnect(addr, &sub, true, Some(&pid), offset.as_deref()).await;
                tally.reconnects += 1;
                tally.fresh += usize::from(!back.recovered);
                for packet in &back.missed {
                    tally.record(packet);
                }
                client = back.client;
            }
        }
    }
}

#[actix_web::test]
async fn a_rolling_restart_under_load_loses_and_repeats_no_push() {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    const CLIENTS: usize = 6;
    let vhost = Vhost::create();
    let url = vhost.user_url();
    let ids = ["roll-a", "roll-b", "roll-c"];
    let mut nodes = ClusterNode::start_each(&ids.map(Some), &url, "roll");
    let addrs = Rc::new(RefCell::new(
        nodes.iter().map(|n| n.addr()).collect::<Vec<_>>(),
    ));
    let stop_clients = Rc::new(Cell::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            actix_web::rt::spawn(roaming_client(
                i,
                format!("u{i}"),
                addrs.clone(),
                stop_clients.clone(),
            ))
        })
        .collect();
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;

    // A steady load: a push every 10 ms, every other one to the room, the others to a user
    // in turn, each through a live node in turn. `seq` n is accepted (202), or unknown when
    // its request failed (its node stopped meanwhile: it may or may not be in the log).
    let stop_load = Rc::new(Cell::new(false));
    let load = {
        let (addrs, stop) = (addrs.clone(), stop_load.clone());
        actix_web::rt::spawn(async move {
            let (mut accepted, mut unknown) = (Vec::new(), Vec::new());
            let mut seq = 0u64;
            while !stop.get() {
                let live = addrs.borrow().clone();
                let addr = live[seq as usize % live.len()];
                let path = if seq.is_multiple_of(2) {
                    "/api/v1/rooms/load/messages".to_owned()
                } else {
                    format!(
                        "/api/v1/users/u{}/notifications",
                        (seq / 2) as usize % CLIENTS
                    )
                };
                match try_api_post(addr, &path, &json!({ "seq": seq })).await {
                    Some(202) => accepted.push(seq),
                    _ => unknown.push(seq),
                }
                seq += 1;
                actix_web::rt::time::sleep(Duration::from_millis(10)).await;
            }
            (accepted, unknown)
        })
    };

    // Each node in turn: out of the load balancer, SIGTERM (no drain), started again as
    // itself on a new port, back in.
    for (i, id) in ids.iter().enumerate() {
        actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        let old = nodes[i].addr();
        addrs.borrow_mut().retain(|a| *a != old);
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        nodes[i].process.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while nodes[i].process.wait_exit(Duration::ZERO).is_none() {
            assert!(Instant::now() < deadline, "{id} did not stop");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        let (url, id) = (url.clone(), id.to_string());
        let restarted = actix_web::rt::task::spawn_blocking(move || {
            ClusterNode::start_with(&url, "roll", &[("NODE_ID", &id)])
        })
        .await
        .expect("restarted");
        addrs.borrow_mut().push(restarted.addr());
        nodes[i] = restarted;
    }
    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    stop_load.set(true);
    let (accepted, unknown) = load.await.expect("the load");
    stop_clients.set(true);
    let mut reconnects = 0;
    for (i, client) in clients.into_iter().enumerate() {
        let tally = client.await.expect("a client");
        assert_eq!(tally.fresh, 0, "u{i} was always recovered");
        reconnects += tally.reconnects;
        assert!(
            tally.offsets.windows(2).all(|w| w[0] < w[1]),
            "u{i}: in order, nothing twice"
        );
        let mine = |seq: &u64| seq.is_multiple_of(2) || (seq / 2) as usize % CLIENTS == i;
        let got: HashSet<u64> = tally.seqs.iter().copied().collect();
        assert_eq!(got.len(), tally.seqs.len(), "u{i}: no push twice");
        let lost: Vec<_> = accepted
            .iter()
            .filter(|s| mine(s) && !got.contains(s))
            .collect();
        assert!(lost.is_empty(), "u{i} lost {lost:?}");
        let foreign: Vec<_> = tally
            .seqs
            .iter()
            .filter(|s| !mine(s) || !(accepted.contains(s) || unknown.contains(s)))
            .collect();
        assert!(foreign.is_empty(), "u{i} got {foreign:?}");
    }
    // About 600 on a quiet machine (a push every 10 ms or so for the ~7 s of restarts); fewer
    // when the machine is busy, which still keeps pushes coming through every restart.
    assert!(accepted.len() > 150, "a steady load: {}", accepted.len());
    assert!(reconnects >= CLIENTS, "every client moved at least once");
}
