//! The RabbitMQ consumers against the real broker on 127.0.0.1:5672 (`scripts/ensure-rabbitmq.sh`).
//!
//! Every test runs in a vhost of its own (`pushgate_test_support::broker::Vhost`, created with
//! `rabbitmqctl` and deleted by a drop guard even when the test fails), so the tests run in
//! parallel and leave nothing behind. Pushes go through a real `RoomSupervisor` to probe sessions (`pushgate_actors::testing::ProbeSession`) that record
//! the packets they receive (`<event>|<payload json>`). Events are published the way the real
//! publishers do: flat JSON with a `_trace` field, persistent, no content type.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use pushgate_actors::consumers::topology::DEAD_LETTER_QUEUE;
use pushgate_actors::consumers::{start_consumers, AmqpSettings, BrokerLink, Shutdown};
use pushgate_actors::metrics::{AmqpOutcome, Metrics};
use pushgate_actors::readiness::{AmqpState, ConsumerKind, Readiness};
use pushgate_actors::testing::{ProbeSession, Received};
use pushgate_actors::{JoinRoom, RegisterSession, RoomSupervisor};
use pushgate_test_support::broker::{confirming_channel, node_id, queue_counts, Vhost};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);
const EXCHANGE: &str = "cloudphone.events";

// ---------------------------------------------------------------- publishers

/// A publisher like the real backends: its own connection, publisher confirms.
struct Publisher {
    _connection: Connection,
    channel: Channel,
}

impl Publisher {
    async fn connect(url: &str) -> Publisher {
        let (connection, channel) = confirming_channel(url).await;
        Publisher {
            _connection: connection,
            channel,
        }
    }

    /// Publish `body` persistently, without content type, and wait for the broker's confirm.
    async fn publish_raw(&self, routing_key: &str, body: &[u8]) {
        self.publish_raw_burst(&[(routing_key, body.to_vec())])
            .await;
    }

    /// Publish every event before waiting for the confirms (a burst, as a busy backend sends).
    async fn publish_burst(&self, routing_key: &str, events: &[Value]) {
        let messages: Vec<(&str, Vec<u8>)> = events
            .iter()
            .map(|e| (routing_key, e.to_string().into_bytes()))
            .collect();
        self.publish_raw_burst(&messages).await;
    }

    /// Publish raw messages persistently, without content type, back to back, then wait for
    /// every confirm.
    async fn publish_raw_burst(&self, messages: &[(&str, Vec<u8>)]) {
        let mut confirms = Vec::new();
        for (routing_key, body) in messages {
            confirms.push(
                self.channel
                    .basic_publish(
                        EXCHANGE.into(),
                        (*routing_key).into(),
                        BasicPublishOptions::default(),
                        body,
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .expect("publish"),
            );
        }
        for confirm in confirms {
            assert!(
                confirm.await.expect("confirm").is_ack(),
                "broker nacked a publish"
            );
        }
    }

    async fn publish(&self, routing_key: &str, event: &Value) {
        self.publish_raw(routing_key, event.to_string().as_bytes())
            .await;
    }

    /// Messages ready in `queue` (passive declare on a throw-away channel).
    async fn message_count(&self, queue: &str) -> u32 {
        self.queue(queue).await.0
    }

    async fn queue(&self, queue: &str) -> (u32, u32) {
        queue_counts(&self._connection, queue).await
    }

    /// Take every message of `queue` (auto-ack) and return the bodies.
    async fn drain(&self, queue: &str) -> Vec<Vec<u8>> {
        let mut bodies = Vec::new();
        while let Some(msg) = self
            .channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic_get")
        {
            bodies.push(msg.delivery.data);
        }
        bodies
    }
}

// ---------------------------------------------------------------- pushgate side

#[derive(Clone)]
struct Packets(Arc<Mutex<Vec<String>>>);

impl Packets {
    fn raw(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// `(event, payload)` of every packet, in arrival order.
    fn parsed(&self) -> Vec<(String, Value)> {
        self.raw()
            .iter()
            .map(|f| {
                let (event, payload) = f.split_once('|').expect("event|payload");
                (
                    event.to_owned(),
                    serde_json::from_str(payload).expect("JSON"),
                )
            })
            .collect()
    }

    /// Packets of quota events (the only ones carrying a `quotaId`), in order.
    fn quota(&self) -> Vec<(String, Value)> {
        self.parsed()
            .into_iter()
            .filter(|(_, p)| p.to_string().contains("\"quotaId\""))
            .collect()
    }

    /// Packets of device events, in order.
    fn device(&self) -> Vec<(String, Value)> {
        self.parsed()
            .into_iter()
            .filter(|(_, p)| !p.to_string().contains("\"quotaId\""))
            .collect()
    }
}

fn encode(event: &str, payload: &str, _offset: Option<&str>) -> String {
    format!("{event}|{payload}")
}

struct Node {
    settings: AmqpSettings,
    supervisor: Addr<RoomSupervisor>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    link: Addr<BrokerLink>,
    next_session: u64,
}

impl Node {
    fn start(url: &str, node_id: &str, prefetch: u16) -> Node {
        Node::start_with(url, node_id, |settings| settings.prefetch = prefetch)
    }

    /// A node whose settings `adjust` changes first.
    fn start_with(url: &str, node_id: &str, adjust: impl FnOnce(&mut AmqpSettings)) -> Node {
        let mut settings = AmqpSettings::with_node_id(node_id);
        settings.url = url.to_owned();
        adjust(&mut settings);
        let metrics = Arc::new(Metrics::new());
        let readiness = Arc::new(Readiness::new());
        let supervisor = RoomSupervisor::new(encode, metrics.clone()).start();
        let link = start_consumers(
            settings.clone(),
            supervisor.clone(),
            metrics.clone(),
            readiness.clone(),
        );
        Node {
            settings,
            supervisor,
            metrics,
            readiness,
            link,
            next_session: 1,
        }
    }

    /// A session in `rooms`, recording what it receives.
    async fn session(&mut self, rooms: &[&str]) -> Packets {
        let packets = Arc::new(Mutex::new(Vec::new()));
        let session = self.next_session;
        self.next_session += 1;
        self.supervisor
            .send({
                let seen = packets.clone();
                let (probe, inbox) = ProbeSession::start(move |received| {
                    if let Received::Packets(packets) = received {
                        seen.lock().unwrap().extend(packets);
                    }
                });
                RegisterSession {
                    session,
                    inbox,
                    going_away: probe.recipient(),
                    sid: format!("s{session}"),
                    pid: None,
                    user_id: format!("u{session}"),
                    recover: None,
                }
            })
            .await
            .unwrap();
        for room in rooms {
            self.supervisor
                .send(JoinRoom {
                    session,
                    room: (*room).to_owned(),
                })
                .await
                .unwrap();
        }
        Packets(packets)
    }

    fn queue(&self, family: &str) -> String {
        format!("pushgate.{}.{family}", self.settings.node_id)
    }

    async fn ready(&self) {
        let r = self.readiness.clone();
        wait_until("consumers ready", WAIT, || r.is_ready()).await;
    }

    async fn shutdown(&self) {
        actix::clock::timeout(Duration::from_secs(15), self.link.send(Shutdown))
            .await
            .expect("shutdown answers in time")
            .expect("link alive");
    }
}

fn init_log() {
    let _ = env_logger::builder().is_test(true).try_init();
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix::clock::sleep(Duration::from_millis(20)).await;
    }
}

/// Let stragglers (packets that must not come) arrive before asserting on exact contents.
async fn settle() {
    actix::clock::sleep(Duration::from_millis(300)).await;
}

/// A fresh vhost (keep it: dropping it deletes it), a node consuming there with `prefetch`,
/// one session in `user:<user>`, and a publisher.
async fn one_user(user: &str, prefetch: u16) -> (Vhost, Node, Packets, Publisher) {
    init_log();
    let vhost = Vhost::create();
    let mut node = Node::start(&vhost.guest_url(), &node_id(), prefetch);
    let packets = node.session(&[&format!("user:{user}")]).await;
    node.ready().await;
    let publisher = Publisher::connect(&vhost.guest_url()).await;
    (vhost, node, packets, publisher)
}

fn trace() -> Value {
    json!({"traceId": "abc123", "spanId": "s1"})
}

// ---------------------------------------------------------------- tests

#[actix::test]
async fn every_routing_key_reaches_exactly_the_rooms_of_the_table() {
    init_log();
    let vhost = Vhost::create();
    let mut node = Node::start(&vhost.guest_url(), &node_id(), 256);
    let user = node.session(&["user:42"]).await;
    let other = node.session(&["user:43"]).await;
    let admin = node.session(&["admin"]).await;
    node.ready().await;
    let publisher = Publisher::connect(&vhost.guest_url()).await;

    let updated = json!({"userId": "42", "quotaId": "q1", "usagePercent": 50, "_trace": trace()});
    let alert_warning = json!({"userId": 42, "quotaId": "q1", "usagePercent": "80",
        "alertLevel": "warning", "_trace": trace()});
    let alert_critical = json!({"userId": "42", "quotaId": "q1", "severity": "critical",
        "timestamp": "2026-01-02T03:04:05.000Z", "_trace": trace()});
    let exceeded = json!({"userId": "42", "quotaId": "q1", "percentage": {"cpu": 101},
        "timestamp": "2026-01-02T03:04:06.000Z", "_trace": trace()});
    let renewed = json!({"userId": "42", "quotaId": "q1", "_trace": trace()});
    let deducted = json!({"userId": "42", "quotaId": "q1", "amount": 1, "_trace": trace()});
    for (key, event) in [
        ("quota.updated", &updated),
        ("quota.alert", &alert_warning),
        ("quota.alert", &alert_critical),
        ("quota.exceeded", &exceeded),
        ("quota.renewed", &renewed),
        ("quota.deducted", &deducted),
    ] {
        publisher.publish(key, event).await;
    }

    let started = json!({"userId": "42", "deviceId": "d1", "startedAt": "2026-01-02T00:00:01Z",
        "_trace": trace()});
    let stopped = json!({"userId": "42", "deviceId": "d1", "deviceName": "Pixel",
        "stoppedAt": "2026-01-02T00:00:02Z", "_trace": trace()});
    let passthrough = [
        "device.created",
        "device.deleted",
        "device.error",
        "device.connection_lost",
        "device.creation_failed",
    ];
    publisher.publish("device.started", &started).await;
    publisher.publish("device.stopped", &stopped).await;
    let mut passthrough_events = Vec::new();
    for key in passthrough {
        let event = json!({"userId": "42", "deviceId": "d1", "reason": key, "_trace": trace()});
        publisher.publish(key, &event).await;
        passthrough_events.push((key, event));
    }

    // quota: 5 to the user (deducted is ignored); device: 7 to the user.
    // admin: updated, both alerts and exceeded as messages, critical, error; 7 device messages.
    wait_until("user packets", WAIT, || user.len() == 12).await;
    wait_until("admin packets", WAIT, || admin.len() == 13).await;
    settle().await;

    let typed = |key: &str, event: &Value| json!({"type": key, "data": event});
    // The console's names, added from the publisher's `severity` / `percentage`.
    let mut alert_critical_data = alert_critical.clone();
    alert_critical_data["alertLevel"] = json!("critical");
    let mut exceeded_data = exceeded.clone();
    exceeded_data["usagePercent"] = json!(101);
    assert_eq!(
        user.quota(),
        vec![
            ("notification".into(), typed("quota.updated", &updated)),
            ("notification".into(), typed("quota.alert", &alert_warning)),
            (
                "notification".into(),
                typed("quota.alert", &alert_critical_data)
            ),
            (
                "notification".into(),
                typed("quota.exceeded", &exceeded_data)
            ),
            ("notification".into(), typed("quota.renewed", &renewed)),
        ]
    );
    let status = |old: &str, new: &str, name: &str, ts: &str| {
        json!({"type": "device.status.changed", "data": {"deviceId": "d1", "deviceName": name,
            "oldStatus": old, "newStatus": new, "timestamp": ts}})
    };
    let mut device_expected = vec![
        (
            "notification".to_owned(),
            status("stopped", "running", "d1", "2026-01-02T00:00:01Z"),
        ),
        (
            "notification".to_owned(),
            status("running", "stopped", "Pixel", "2026-01-02T00:00:02Z"),
        ),
    ];
    for (key, event) in &passthrough_events {
        device_expected.push(("notification".into(), typed(key, event)));
    }
    assert_eq!(user.device(), device_expected);

    let admin_quota = admin.quota();
    assert_eq!(admin_quota.len(), 6, "{admin_quota:#?}");
    assert_eq!(
        admin_quota[..3],
        [
            ("message".into(), typed("quota.updated", &updated)),
            ("message".into(), typed("quota.alert", &alert_warning)),
            ("message".into(), typed("quota.alert", &alert_critical_data)),
        ]
    );
    assert_eq!(
        admin_quota[4],
        ("message".into(), typed("quota.exceeded", &exceeded_data))
    );
    let (event, critical) = &admin_quota[3];
    assert_eq!(event, "notification");
    assert_eq!(critical["type"], "critical");
    assert_eq!(critical["data"], alert_critical_data);
    assert_eq!(critical["timestamp"], "2026-01-02T03:04:05.000Z");
    assert!(critical["title"].is_string() && critical["message"].is_string());
    let (event, error) = &admin_quota[5];
    assert_eq!(event, "notification");
    assert_eq!(error["type"], "error");
    assert_eq!(error["data"], exceeded_data);
    assert_eq!(error["timestamp"], "2026-01-02T03:04:06.000Z");
    assert!(error["title"].is_string() && error["message"].is_string());
    let admin_device: Vec<_> = device_expected
        .into_iter()
        .map(|(_, payload)| ("message".to_owned(), payload))
        .collect();
    assert_eq!(admin.device(), admin_device);

    assert!(other.raw().is_empty(), "user:43 got {:?}", other.raw());

    let m = &node.metrics;
    assert_eq!(m.amqp_message_count("quota.alert", AmqpOutcome::Routed), 2);
    assert_eq!(
        m.amqp_message_count("quota.deducted", AmqpOutcome::Ignored),
        1
    );
    assert_eq!(m.amqp_message_count("device.error", AmqpOutcome::Routed), 1);
    for family in ["quota", "device"] {
        assert_eq!(publisher.message_count(&node.queue(family)).await, 0);
    }
    node.shutdown().await;
}

#[actix::test]
async fn poison_messages_are_dead_lettered_and_the_consumer_goes_on() {
    let (_vhost, node, user, publisher) = one_user("7", 256).await;

    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("quota.updated", b"not json at all".to_vec()),
        ("quota.updated", b"[1,2,3]".to_vec()),
        ("quota.updated", b"".to_vec()),
        ("quota.updated", br#"{"quotaId":"q1","_trace":{}}"#.to_vec()),
        (
            "quota.alert",
            br#"{"userId":true,"quotaId":"q1","_trace":{}}"#.to_vec(),
        ),
        (
            "quota.exceeded",
            br#"{"userId":"7","quotaId":1.5,"_trace":{}}"#.to_vec(),
        ),
        ("quota.renewed", br#"{"userId":"","quotaId":"q1"}"#.to_vec()),
        ("device.started", br#"{"userId":"7","_trace":{}}"#.to_vec()),
        (
            "device.stopped",
            br#"{"userId":-1,"deviceId":"d1"}"#.to_vec(),
        ),
        ("device.created", b"\"just a string\"".to_vec()),
        (
            "device.error",
            br#"{"userId":"7","deviceId":{"x":1}}"#.to_vec(),
        ),
    ];
    for (key, body) in &poison {
        publisher.publish_raw(key, body).await;
    }
    let valid_quota = json!({"userId": "7", "quotaId": "q1", "_trace": trace()});
    let valid_device = json!({"userId": 7, "deviceId": "d9", "_trace": trace()});
    publisher.publish("quota.renewed", &valid_quota).await;
    publisher.publish("device.created", &valid_device).await;

    wait_until("the valid events", WAIT, || user.len() == 2).await;
    let dlq_has_all = async {
        let deadline = Instant::now() + WAIT;
        loop {
            let n = publisher.message_count(DEAD_LETTER_QUEUE).await;
            if n as usize >= poison.len() || Instant::now() > deadline {
                return n;
            }
            actix::clock::sleep(Duration::from_millis(50)).await;
        }
    };
    assert_eq!(dlq_has_all.await as usize, poison.len());
    settle().await;
    assert_eq!(user.len(), 2, "{:?}", user.raw());

    let mut dead: Vec<Vec<u8>> = publisher.drain(DEAD_LETTER_QUEUE).await;
    let mut expected: Vec<Vec<u8>> = poison.iter().map(|(_, b)| b.clone()).collect();
    dead.sort();
    expected.sort();
    assert_eq!(
        dead, expected,
        "the dead-letter queue holds exactly the poison"
    );

    let mut per_key: BTreeMap<&str, u64> = BTreeMap::new();
    for (key, _) in &poison {
        *per_key.entry(key).or_default() += 1;
    }
    for (key, n) in per_key {
        assert_eq!(
            node.metrics
                .amqp_message_count(key, AmqpOutcome::DeadLettered),
            n,
            "{key}"
        );
    }
    assert_eq!(
        node.metrics
            .amqp_message_count("quota.renewed", AmqpOutcome::Routed),
        1
    );
    assert!(node.metrics.render().contains(
        "pushgate_amqp_messages_total{outcome=\"dead_lettered\",routing_key=\"quota.updated\"} 4"
    ));
    node.shutdown().await;
}

/// Acks are merged into multiple-acks under load; a poison message between two valid ones must
/// still be dead-lettered (rejected before any ack of a later delivery), and every valid one
/// acked (nothing returns to the queue when the consumer stops).
#[actix::test]
async fn poison_interleaved_with_a_burst_is_dead_lettered_and_the_rest_acked() {
    let (_vhost, node, user, publisher) = one_user("7", 256).await;

    let mut burst = Vec::new();
    let mut poison = Vec::new();
    let mut valid = 0;
    for i in 0..300 {
        if i % 3 == 1 {
            let body = format!("poison #{i}").into_bytes();
            poison.push(body.clone());
            burst.push(("quota.updated", body));
        } else {
            let event = json!({"userId": "7", "quotaId": format!("q{i}"), "_trace": trace()});
            burst.push(("quota.renewed", event.to_string().into_bytes()));
            valid += 1;
        }
    }
    publisher.publish_raw_burst(&burst).await;

    wait_until("the valid events", WAIT, || user.len() == valid).await;
    let ids: Vec<String> = user
        .quota()
        .iter()
        .map(|(_, v)| v["data"]["quotaId"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..300)
        .filter(|i| i % 3 != 1)
        .map(|i| format!("q{i}"))
        .collect();
    assert_eq!(ids, expected, "every valid event once, in order");

    node.shutdown().await;
    let mut dead = publisher.drain(DEAD_LETTER_QUEUE).await;
    dead.sort();
    poison.sort();
    assert_eq!(
        dead, poison,
        "the dead-letter queue holds exactly the poison"
    );
    assert_eq!(
        publisher.queue(&node.queue("quota")).await,
        (0, 0),
        "every delivery was settled: none went back to the queue"
    );
}

#[actix::test]
async fn unknown_routing_keys_are_acked_not_dead_lettered() {
    let (_vhost, node, user, publisher) = one_user("9", 256).await;

    publisher
        .publish_raw("quota.deducted", b"\x00garbage{")
        .await;
    publisher.publish_raw("quota.metrics", b"[]").await;
    publisher
        .publish_raw("device.heartbeat", br#"{"no":"ids"}"#)
        .await;
    // A valid event after them on each queue: once it arrives, the ones before were settled.
    publisher
        .publish("quota.renewed", &json!({"userId": "9", "quotaId": "q"}))
        .await;
    publisher
        .publish("device.deleted", &json!({"userId": "9", "deviceId": "d"}))
        .await;
    wait_until("the valid events", WAIT, || user.len() == 2).await;

    let m = &node.metrics;
    for key in ["quota.deducted", "quota.metrics", "device.heartbeat"] {
        assert_eq!(m.amqp_message_count(key, AmqpOutcome::Ignored), 1, "{key}");
        assert_eq!(
            m.amqp_message_count(key, AmqpOutcome::DeadLettered),
            0,
            "{key}"
        );
    }
    settle().await;
    assert_eq!(publisher.message_count(DEAD_LETTER_QUEUE).await, 0);
    for family in ["quota", "device"] {
        assert_eq!(publisher.message_count(&node.queue(family)).await, 0);
    }
    node.shutdown().await;
}

#[actix::test]
async fn reconnects_after_the_connection_drops_and_loses_nothing() {
    init_log();
    let vhost = Vhost::create();
    let mut node = Node::start(&vhost.user_url(), &node_id(), 256);
    let user = node.session(&["user:5"]).await;
    node.ready().await;
    assert_eq!(node.metrics.amqp_reconnects.get(), 0);

    // Cut pushgate off: its user may no longer open the vhost, then drop every connection of
    // the vhost. It stays down (not ready) until the permissions come back.
    vhost.revoke().expect("clear_permissions");
    vhost.close_connections().expect("close_all_connections");
    let r = node.readiness.clone();
    wait_until("not ready after the close", WAIT, || !r.is_ready()).await;
    assert_ne!(node.readiness.amqp(), AmqpState::Connected);

    let publisher = Publisher::connect(&vhost.guest_url()).await;
    let mut sent = Vec::new();
    for i in 0..5 {
        let quota = json!({"userId": "5", "quotaId": format!("q{i}"), "_trace": trace()});
        publisher.publish("quota.updated", &quota).await;
        let device = json!({"userId": "5", "deviceId": format!("d{i}"), "_trace": trace()});
        publisher.publish("device.created", &device).await;
        sent.push(quota);
        sent.push(device);
    }
    // Held by the durable queues meanwhile.
    assert_eq!(publisher.message_count(&node.queue("quota")).await, 5);
    assert_eq!(publisher.message_count(&node.queue("device")).await, 5);
    assert!(!node.readiness.is_ready());

    vhost.grant().expect("set_permissions");
    let started = Instant::now();
    wait_until("every event after the reconnect", WAIT, || user.len() == 10).await;
    node.ready().await;
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "reconnected within the backoff cap"
    );
    assert_eq!(node.metrics.amqp_reconnects.get(), 1);
    assert_eq!(node.readiness.amqp(), AmqpState::Connected);
    settle().await;
    let got: Vec<Value> = user
        .parsed()
        .into_iter()
        .map(|(_, p)| p["data"].clone())
        .collect();
    for event in &sent {
        assert_eq!(
            got.iter().filter(|g| *g == event).count(),
            1,
            "{event} delivered once"
        );
    }
    assert!(node
        .metrics
        .render()
        .contains("pushgate_consumer_up{consumer=\"quota\"} 1"));
    node.shutdown().await;
}

#[actix::test]
async fn a_consumer_cancelled_by_the_broker_is_restored() {
    let (_vhost, node, user, publisher) = one_user("3", 256).await;

    // Deleting the queue cancels its consumer on the broker side.
    publisher
        .channel
        .queue_delete(node.queue("quota").into(), QueueDeleteOptions::default())
        .await
        .expect("queue_delete");
    let r = node.readiness.clone();
    wait_until("quota consumer down", WAIT, || {
        !r.consuming(ConsumerKind::Quota)
    })
    .await;
    wait_until("quota consumer back", WAIT, || r.is_ready()).await;
    publisher
        .publish("quota.renewed", &json!({"userId": "3", "quotaId": "q"}))
        .await;
    wait_until("event on the re-declared queue", WAIT, || user.len() == 1).await;
    // Same connection: not a reconnect.
    assert_eq!(node.metrics.amqp_reconnects.get(), 0);
    node.shutdown().await;
}

#[actix::test]
async fn readiness_follows_the_broker_and_the_exclusive_consumer() {
    init_log();
    // Unreachable broker: serves, never ready, keeps trying.
    let down = Node::start("amqp://guest:guest@127.0.0.1:1/%2f", &node_id(), 256);
    assert!(!down.readiness.is_ready());
    actix::clock::sleep(Duration::from_millis(1500)).await;
    assert!(!down.readiness.is_ready());
    assert_ne!(down.readiness.amqp(), AmqpState::Connected);
    assert!(down
        .metrics
        .render()
        .contains("pushgate_consumer_up{consumer=\"device\"} 0"));
    down.shutdown().await;

    init_log();
    let vhost = Vhost::create();
    let id = node_id();
    let first = Node::start(&vhost.guest_url(), &id, 256);
    assert!(!first.readiness.is_ready(), "not ready before consuming");
    first.ready().await;
    assert_eq!(first.readiness.amqp(), AmqpState::Connected);

    // Same NODE_ID: the broker refuses the second exclusive consumer; it stays not ready.
    let second = Node::start(&vhost.guest_url(), &id, 256);
    let r = second.readiness.clone();
    wait_until("second connected", WAIT, || {
        r.amqp() == AmqpState::Connected
    })
    .await;
    actix::clock::sleep(Duration::from_secs(2)).await;
    assert!(!second.readiness.consuming(ConsumerKind::Quota));
    assert!(!second.readiness.consuming(ConsumerKind::Device));
    assert_eq!(
        second.readiness.amqp(),
        AmqpState::Connected,
        "refusal keeps the connection"
    );
    assert_eq!(second.metrics.amqp_reconnects.get(), 0);
    assert!(first.readiness.is_ready());

    // Once the first one is gone, the second one takes over (retrying at most every 5 s).
    first.shutdown().await;
    assert!(!first.readiness.is_ready());
    wait_until("second takes over", WAIT, || r.is_ready()).await;
    second.shutdown().await;
}

#[actix::test]
async fn graceful_shutdown_acks_what_it_handled_and_leaves_the_rest_queued() {
    let (_vhost, node, user, publisher) = one_user("1", 10).await;
    const N: usize = 2000;
    let events: Vec<Value> = (0..N)
        .map(|i| json!({"userId": "1", "deviceId": format!("d{i}"), "_trace": trace()}))
        .collect();
    publisher.publish_burst("device.error", &events).await;
    wait_until("the first deliveries", WAIT, || user.len() >= 1).await;
    node.shutdown().await;

    assert!(!node.readiness.is_ready());
    assert_eq!(node.readiness.amqp(), AmqpState::Disconnected);
    assert!(node
        .metrics
        .render()
        .contains("pushgate_consumer_up{consumer=\"device\"} 0"));
    let r = node.link.clone();
    wait_until("the link stopped", WAIT, || !r.connected()).await;

    settle().await;
    let handled = user.len();
    eprintln!("handled {handled} of {N} before the shutdown");
    let queue = node.queue("device");
    let (left, consumers) = publisher.queue(&queue).await;
    assert_eq!(consumers, 0, "consumer cancelled");
    // Everything handled was acked (not requeued), everything else is still queued.
    assert_eq!(handled + left as usize, N, "handled {handled}, left {left}");
    let ids: std::collections::HashSet<_> = user
        .parsed()
        .into_iter()
        .map(|(_, p)| p["data"]["deviceId"].clone())
        .collect();
    assert_eq!(ids.len(), handled, "no duplicates");

    // Nothing is consumed any more.
    publisher
        .publish("device.error", &json!({"userId": "1", "deviceId": "late"}))
        .await;
    settle().await;
    assert_eq!(user.len(), handled);
    assert_eq!(
        publisher.message_count(&queue).await as usize,
        left as usize + 1
    );
}

/// Storm coalescing and shutdown: the `quota.updated` held for its window's end (a minute
/// here) is pushed and acked by a graceful shutdown, neither lost nor left for redelivery.
#[actix::test]
async fn a_graceful_shutdown_pushes_the_update_held_by_storm_coalescing() {
    init_log();
    let vhost = Vhost::create();
    let mut node = Node::start_with(&vhost.guest_url(), &node_id(), |settings| {
        settings.quota_coalesce = Duration::from_secs(60);
    });
    let user = node.session(&["user:1"]).await;
    node.ready().await;
    let publisher = Publisher::connect(&vhost.guest_url()).await;
    let update = |seq: u32| json!({"userId": "1", "quotaId": "q", "seq": seq, "_trace": trace()});

    publisher.publish("quota.updated", &update(0)).await;
    wait_until("the first update, at once", WAIT, || user.len() == 1).await;
    publisher.publish("quota.updated", &update(1)).await;
    publisher.publish("quota.updated", &update(2)).await;
    let coalesced = node.metrics.coalesced.with_label_values(&["quota.updated"]);
    wait_until("update 1 replaced by 2", WAIT, || coalesced.get() == 1).await;
    settle().await;
    assert_eq!(user.len(), 1, "update 2 is held");

    node.shutdown().await;
    wait_until("the held update, pushed", WAIT, || user.len() == 2).await;
    let seqs: Vec<_> = user
        .quota()
        .iter()
        .map(|(_, p)| p["data"]["seq"].clone())
        .collect();
    assert_eq!(seqs, [json!(0), json!(2)]);
    assert_eq!(
        node.metrics
            .amqp_message_count("quota.updated", AmqpOutcome::Routed),
        3
    );
    let (left, consumers) = publisher.queue(&node.queue("quota")).await;
    assert_eq!((left, consumers), (0, 0), "all three acked, none requeued");
}

/// The race of a shutdown with the link's setup: an `Attach` the setup sent before it knew
/// arrives after the shutdown's `Detach`. The consumer must not start consuming then.
#[actix::test]
async fn a_consumer_detached_for_shutdown_takes_no_later_attach() {
    use pushgate_actors::consumers::event_consumer::ConsumeError;
    use pushgate_actors::consumers::messages::{Attach, Detach};
    use pushgate_actors::consumers::QuotaEventsConsumer;
    init_log();
    let vhost = Vhost::create();
    // A node, for its topology and its link (the consumer reports to it); the consumer under
    // test has a node id of its own.
    let node = Node::start(&vhost.guest_url(), &node_id(), 10);
    node.ready().await;
    let settings = AmqpSettings::with_node_id(node_id());
    let consumer = QuotaEventsConsumer::new(
        &settings,
        node.supervisor.clone(),
        node.metrics.clone(),
        node.readiness.clone(),
        node.link.clone().recipient(),
    )
    .start();
    let connection = Arc::new(
        Connection::connect(&vhost.guest_url(), ConnectionProperties::default())
            .await
            .expect("connect"),
    );
    consumer.send(Detach { graceful: true }).await.unwrap();
    let attach = Attach {
        connection: connection.clone(),
        generation: 1,
    };
    match consumer.send(attach).await.unwrap() {
        Err(ConsumeError::ShuttingDown { queue }) => {
            assert_eq!(queue, format!("pushgate.{}.quota", settings.node_id))
        }
        other => panic!("attached after the shutdown's detach: {other:?}"),
    }
}

#[actix::test]
async fn topology_conflicts_are_survived() {
    init_log();
    let vhost = Vhost::create();
    let id = node_id();
    let publisher = Publisher::connect(&vhost.guest_url()).await;
    // The DLX already exists as a fanout exchange: used as it is.
    publisher
        .channel
        .exchange_declare(
            "cloudphone.dlx".into(),
            lapin::ExchangeKind::Fanout,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("fanout DLX");
    // This node's quota queue exists with other arguments: refused, not ready, retried.
    let quota_queue = format!("pushgate.{id}.quota");
    publisher
        .channel
        .queue_declare(
            quota_queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("conflicting queue");

    let mut node = Node::start(&vhost.guest_url(), &id, 256);
    let user = node.session(&["user:8"]).await;
    let r = node.readiness.clone();
    wait_until("connected", WAIT, || r.amqp() == AmqpState::Connected).await;
    actix::clock::sleep(Duration::from_millis(1500)).await;
    assert!(
        !node.readiness.is_ready(),
        "a conflicting queue keeps the node not ready"
    );

    // Once the operator deletes the old queue, the next retry declares it and consumes.
    let publisher = Publisher::connect(&vhost.guest_url()).await;
    publisher
        .channel
        .queue_delete(quota_queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("queue_delete");
    node.ready().await;

    publisher.publish_raw("quota.updated", b"{oops").await;
    publisher
        .publish("quota.renewed", &json!({"userId": "8", "quotaId": "q"}))
        .await;
    wait_until("valid event", WAIT, || user.len() == 1).await;
    let dlq = async {
        let deadline = Instant::now() + WAIT;
        while publisher.message_count(DEAD_LETTER_QUEUE).await == 0 {
            assert!(
                Instant::now() < deadline,
                "poison reaches the fanout DLX's queue"
            );
            actix::clock::sleep(Duration::from_millis(50)).await;
        }
    };
    dlq.await;
    assert_eq!(
        publisher.drain(DEAD_LETTER_QUEUE).await,
        vec![b"{oops".to_vec()]
    );
    node.shutdown().await;
}
