//! The cluster log's appender against the real broker: appends made while a record is on its
//! way, or within the append interval after it, share the next record, in the order they were made, with their device changes in the
//! same order; an append after a quiet spell goes alone; an append that cannot be written
//! fails at once and alone; without a broker connection every append fails at once.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Connection, ConnectionProperties};
use pushgate_actors::cluster::record::RecordError;
use pushgate_actors::cluster::{AppendError, DeviceChange, LogAppender, LogRecord, RecordedPush};
use pushgate_actors::messages::{PushEvent, PushSource, PushTarget};
use pushgate_actors::metrics::Metrics;
use pushgate_test_support::broker::Vhost;

const STREAM: &str = "appender-test";

fn push(n: usize) -> RecordedPush {
    RecordedPush {
        target: PushTarget::Room(format!("user:{n}")),
        event: PushEvent::Notification,
        payload: format!("{{\"n\":{n}}}").into(),
        priority: false,
        source: PushSource::Amqp,
    }
}

fn started(n: usize) -> DeviceChange {
    DeviceChange::Set {
        device_id: format!("d-{n}"),
        status: "running",
    }
}

/// A connection to a vhost of its own holding the stream, and an appender attached to it
/// that appends at most one record per `interval`, counting into `metrics`.
async fn appender(
    vhost: &Vhost,
    interval: Duration,
    metrics: &Arc<Metrics>,
) -> (Connection, LogAppender) {
    let connection = Connection::connect(&vhost.user_url(), ConnectionProperties::default())
        .await
        .expect("connects");
    let setup = connection.create_channel().await.expect("channel");
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString(LongString::from("stream")),
    );
    setup
        .queue_declare(
            STREAM.into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .expect("declare the stream");
    // On the same connection as the readers, so that closing it takes the appender's away.
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    let appender = LogAppender::new(STREAM, "node-1/test", interval, metrics.clone());
    appender.attach(channel);
    (connection, appender)
}

/// The records of the stream, from its start, until they hold `pushes` pushes in all.
async fn records(connection: &Connection, pushes: usize) -> Vec<LogRecord> {
    let channel = connection.create_channel().await.expect("channel");
    channel
        .basic_qos(100, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-stream-offset"),
        AMQPValue::LongString(LongString::from("first")),
    );
    let mut consumer = channel
        .basic_consume(
            STREAM.into(),
            "reader".into(),
            BasicConsumeOptions::default(),
            args,
        )
        .await
        .expect("consume the stream");
    let (mut records, mut read) = (Vec::new(), 0);
    while read < pushes {
        let delivery = actix::clock::timeout(Duration::from_secs(5), consumer.next())
            .await
            .expect("a record within 5 s")
            .expect("the consumer goes on")
            .expect("a record");
        let record = LogRecord::decode(&delivery.data).expect("a record that decodes");
        if let LogRecord::Pushes { pushes, .. } = &record {
            read += pushes.len();
        }
        records.push(record);
    }
    records
}

#[actix::test]
async fn appends_made_while_a_record_is_on_its_way_share_the_next_one_in_order() {
    let vhost = Vhost::create();
    // A long interval, so that the appends made right after the first record surely wait.
    let metrics = Arc::new(Metrics::new());
    let (connection, appender) = appender(&vhost, Duration::from_millis(300), &metrics).await;

    // A quiet spell: the first append goes at once, alone.
    let first = appender
        .submit(&[push(0)], Some(started(0)))
        .expect("queued");
    first.confirmed().await.expect("the first append is in");

    // Fifty appends right after it, every third with a device change, the ninth an event's
    // three pushes.
    let mut pending = Vec::new();
    for n in 1..=50 {
        let pushes = match n {
            9 => vec![push(9), push(1009), push(2009)],
            n => vec![push(n)],
        };
        let device = (n % 3 == 0).then(|| started(n));
        pending.push(appender.submit(&pushes, device).expect("queued"));
    }
    for append in pending {
        append.confirmed().await.expect("every append is in");
    }
    // Ten more, 10 ms apart: each comes while the interval since the last record runs, so
    // they wait for its end and go together (one at a time they would be ten records).
    let mut pending = Vec::new();
    for n in 51..=60 {
        pending.push(appender.submit(&[push(n)], None).expect("queued"));
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    for append in pending {
        append.confirmed().await.expect("every append is in");
    }

    let records = records(&connection, 63).await;
    let mut payloads = Vec::new();
    let mut devices = Vec::new();
    let mut sizes = Vec::new();
    for record in &records {
        let LogRecord::Pushes {
            origin,
            devices: changes,
            pushes,
        } = record
        else {
            panic!("only pushes were appended: {record:?}")
        };
        assert_eq!(origin, "node-1/test");
        sizes.push(pushes.len());
        payloads.extend(pushes.iter().map(|p| p.payload.to_string()));
        devices.extend(changes.iter().cloned());
    }
    assert_eq!(
        sizes[0], 1,
        "the append after a quiet spell went alone: {sizes:?}"
    );
    // The fifty and the ten: two records (64 pushes at most in one), a few more if this
    // machine is slow enough to stretch 100 ms of sleeps past the 300 ms interval.
    assert!(records.len() <= 5, "sixty appends took records {sizes:?}");
    let expected: Vec<String> = (0..=60)
        .flat_map(|n| match n {
            9 => vec![9, 1009, 2009],
            n => vec![n],
        })
        .map(|n| format!("{{\"n\":{n}}}"))
        .collect();
    assert_eq!(payloads, expected, "pushes in the order they were appended");
    let expected_devices: Vec<DeviceChange> = [0]
        .into_iter()
        .chain((1..=50).filter(|n| n % 3 == 0))
        .map(started)
        .collect();
    assert_eq!(devices, expected_devices, "device changes in their order");
    assert_eq!(
        metrics.cluster_log_records_appended.get(),
        records.len() as u64
    );
    assert_eq!(metrics.cluster_log_appends.get(), 61);
}

#[actix::test]
async fn an_append_that_cannot_be_written_fails_alone_and_without_a_broker_all_fail_at_once() {
    let vhost = Vhost::create();
    let metrics = Arc::new(Metrics::new());
    let (connection, appender) = appender(&vhost, Duration::from_millis(50), &metrics).await;
    let before = appender.submit(&[push(1)], None).expect("queued");
    let unwritable = RecordedPush {
        target: PushTarget::Room("r".repeat(70_000)),
        ..push(2)
    };
    match appender.submit(&[unwritable], None) {
        Err(AppendError::Record(RecordError::TooLong("room"))) => {}
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a room name over 65535 bytes was queued"),
    }
    let after = appender.submit(&[push(3)], None).expect("queued");
    before
        .confirmed()
        .await
        .expect("the append before it is in");
    after.confirmed().await.expect("the append after it is in");
    let payloads: Vec<String> = records(&connection, 2)
        .await
        .into_iter()
        .flat_map(|record| match record {
            LogRecord::Pushes { pushes, .. } => pushes,
            other => panic!("only pushes were appended: {other:?}"),
        })
        .map(|p| p.payload.to_string())
        .collect();
    assert_eq!(payloads, ["{\"n\":1}", "{\"n\":3}"]);

    // The broker connection goes: nothing waits for a confirm that cannot come.
    connection.close(200, "test".into()).await.expect("close");
    assert!(!appender.is_attached());
    assert!(matches!(
        appender.submit(&[push(4)], None),
        Err(AppendError::Unavailable)
    ));
    let mark = LogRecord::Mark {
        origin: "node-1/test".into(),
    };
    assert!(matches!(
        appender.append(&mark).await,
        Err(AppendError::Unavailable)
    ));
    let detached = LogAppender::new(STREAM, "node-2/test", Duration::ZERO, metrics);
    assert!(matches!(
        detached.submit(&[push(5)], None),
        Err(AppendError::Unavailable)
    ));
}

#[actix::test]
async fn marks_sessions_and_fences_queued_together_share_a_record_in_order() {
    let vhost = Vhost::create();
    let metrics = Arc::new(Metrics::new());
    let (connection, appender) = appender(&vhost, Duration::from_millis(300), &metrics).await;
    let fence = |number| LogRecord::Fence {
        origin: "node-1/test".into(),
        number,
    };
    let pending: Vec<_> = (0..20)
        .map(|n| appender.submit_record(&fence(n)).expect("queued"))
        .collect();
    for append in pending {
        append.confirmed().await.expect("every fence is in");
    }
    // A push after them, to know where they end.
    appender
        .submit(&[push(1)], None)
        .expect("queued")
        .confirmed()
        .await
        .expect("the push is in");
    let records = records(&connection, 1).await;
    let fences: Vec<LogRecord> = records
        .iter()
        .filter(|r| !matches!(r, LogRecord::Pushes { .. }))
        .flat_map(|r| match r {
            LogRecord::Several(inner) => inner.clone(),
            other => vec![other.clone()],
        })
        .collect();
    assert_eq!(fences, (0..20).map(fence).collect::<Vec<_>>());
    assert!(
        records.len() <= 3,
        "twenty fences and a push took {} records",
        records.len()
    );
    assert_eq!(metrics.cluster_log_appends.get(), 21);
}
