//! The real RabbitMQ on 127.0.0.1:5672 for the server's tests: a server consuming from a
//! test's own vhost, and a publisher that publishes as the real backends do (persistent, no
//! content type, to the events exchange, each publish confirmed).

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use pushgate::config::Config;
use pushgate_test_support::broker::{confirming_channel, node_id, Vhost};
use serde_json::Value;

use super::{start_with, TestServer, API_KEY, SECRET};

/// Start a server with the default timers consuming from `vhost` under a fresh `NODE_ID`,
/// and wait until it is ready (both consumers consuming).
pub async fn start_consuming(vhost: &Vhost) -> TestServer {
    let mut config = Config::for_tests(SECRET, Some(API_KEY));
    config.consume = true;
    config.amqp.url = vhost.user_url();
    config.amqp.node_id = node_id();
    let server = start_with(config);
    server.wait_ready().await;
    server
}

/// A publisher on a test's vhost (as `guest`), with publisher confirms.
pub struct Publisher {
    /// Its connection (kept open as long as the publisher).
    pub connection: Connection,
    /// Its confirm channel.
    pub channel: Channel,
}

impl Publisher {
    /// Connect to `vhost` and turn confirms on.
    pub async fn connect(vhost: &Vhost) -> Publisher {
        let (connection, channel) = confirming_channel(&vhost.guest_url()).await;
        Publisher {
            connection,
            channel,
        }
    }

    /// Publish `event` with `routing_key` to `cloudphone.events` and wait for the broker's ack.
    pub async fn publish(&self, routing_key: &str, event: &Value) {
        let confirm = self
            .channel
            .basic_publish(
                "cloudphone.events".into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                event.to_string().as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish");
        assert!(confirm.await.expect("confirm").is_ack());
    }
}
