//! The settler against the real broker: a verdict that waits (a record's confirm, in cluster
//! mode) holds back every verdict handed over after it, merged acks included, so a delivery
//! is never acked before one before it was decided.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use pushgate_actors::consumers::settler::{Settler, Verdict};
use pushgate_test_support::broker::{queue_counts, Vhost};

const QUEUE: &str = "settler-test";

/// A channel of `connection` consuming `QUEUE` (declared, holding `count` messages), and the
/// delivery tags of those messages, in order.
async fn consume(connection: &Connection, count: usize) -> (Channel, Vec<u64>) {
    let channel = connection.create_channel().await.expect("channel");
    channel
        .basic_qos(100, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = channel
        .basic_consume(
            QUEUE.into(),
            "settler-test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut tags = Vec::new();
    while tags.len() < count {
        let delivery = actix::clock::timeout(Duration::from_secs(5), consumer.next())
            .await
            .expect("a delivery within 5 s")
            .expect("the consumer goes on")
            .expect("a delivery");
        tags.push(delivery.delivery_tag);
    }
    (channel, tags)
}

/// Messages in `QUEUE`, ready or unacked.
async fn queued(connection: &Connection) -> u32 {
    queue_counts(connection, QUEUE).await.0
}

#[actix::test]
async fn a_waiting_verdict_holds_back_the_ones_after_it() {
    let vhost = Vhost::create();
    let connection = Connection::connect(&vhost.user_url(), ConnectionProperties::default())
        .await
        .expect("connects");
    let setup = connection.create_channel().await.expect("channel");
    setup
        .queue_declare(
            QUEUE.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
    for n in 0..3u8 {
        setup
            .basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                &[n],
                BasicProperties::default(),
            )
            .await
            .expect("publish");
    }

    // The first delivery's verdict waits (as for a record's confirm); the two after it are
    // acks decided at once, which alone would be merged into one multiple-ack.
    let (channel, tags) = consume(&connection, 3).await;
    let settler = Settler::start(channel.clone());
    let (decide, decided) = futures::channel::oneshot::channel::<Verdict>();
    settler.settle_when(
        tags[0],
        async move { decided.await.unwrap_or(Verdict::Requeue) },
    );
    settler.settle(tags[1], Verdict::Ack);
    settler.settle(tags[2], Verdict::Ack);
    actix::clock::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        settler.unsettled(),
        3,
        "nothing written before the first is decided"
    );

    // The first is decided: requeue. The acks after it go out then, and only they.
    decide.send(Verdict::Requeue).expect("the settler waits");
    for _ in 0..50 {
        if settler.unsettled() == 0 {
            break;
        }
        actix::clock::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(settler.unsettled(), 0);
    channel.close(200, "done".into()).await.expect("close");
    assert_eq!(queued(&connection).await, 1, "the requeued first one only");

    // Cut before a waiting verdict is decided: the ack after it was never written, both
    // come back.
    setup
        .basic_publish(
            "".into(),
            QUEUE.into(),
            BasicPublishOptions::default(),
            &[9],
            BasicProperties::default(),
        )
        .await
        .expect("publish");
    let (channel, tags) = consume(&connection, 2).await;
    let settler = Settler::start(channel.clone());
    settler.settle_when(tags[0], futures::future::pending());
    settler.settle(tags[1], Verdict::Ack);
    actix::clock::sleep(Duration::from_millis(200)).await;
    channel.close(200, "cut".into()).await.expect("close");
    assert_eq!(queued(&connection).await, 2);
}
