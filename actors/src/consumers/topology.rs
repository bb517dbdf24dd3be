//! The broker objects pushgate declares (docs/rabbitmq.md), all idempotent: declaring them again
//! with the same properties is a no-op, so [`declare`] runs after every (re)connection.
//!
//! - the publishers' exchange (`RABBITMQ_EXCHANGE`): durable topic;
//! - the dead-letter exchange (`RABBITMQ_DLX`): durable topic when absent; when it already
//!   exists with another type the broker refuses the declaration (PRECONDITION_FAILED, which
//!   closes the channel) and it is used as it is, with a log line;
//! - [`DEAD_LETTER_QUEUE`], durable, bound to the DLX with `#`;
//! - per node and family, `pushgate.<node_id>.<family>` ([`queue_name`]), durable, with
//!   `x-dead-letter-exchange` and `x-expires`, bound to the exchange with the family's key.
//!
//! Nothing else is declared, bound or deleted: the old service's `notification-service.*`
//! queues are never touched.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::AMQPSoftError;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

use super::{soft_error, AmqpSettings};
use crate::cluster::{stream, ClusterSettings};
use crate::routing::EventFamily;

/// The durable queue bound to the dead-letter exchange with `#`.
pub const DEAD_LETTER_QUEUE: &str = "pushgate.dead-letter";

/// Why the topology could not be declared.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A queue already exists with other arguments (or other properties) than pushgate's.
    #[error("queue `{queue}` exists with other arguments than pushgate declares: {reason}")]
    QueueConflict {
        /// The queue's name.
        queue: String,
        /// The broker's explanation.
        reason: String,
    },
    /// Any other refusal or failure (connection lost, exchange of another type, ...).
    #[error("declaring {what} failed: {source}")]
    Broker {
        /// What was being declared, e.g. "exchange `cloudphone.events`".
        what: String,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
}

/// `pushgate.<node_id>.<family>`, e.g. `pushgate.node-1.quota`.
pub fn queue_name(node_id: &str, family: EventFamily) -> String {
    format!("pushgate.{node_id}.{}", family.name())
}

/// The arguments of a node queue: `x-dead-letter-exchange` and `x-expires`.
pub fn node_queue_arguments(settings: &AmqpSettings) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-dead-letter-exchange"),
        AMQPValue::LongString(LongString::from(settings.dlx.as_str())),
    );
    args.insert(
        ShortString::from("x-expires"),
        AMQPValue::LongLongInt(i64::from(settings.queue_expires_ms)),
    );
    args
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn broker(what: String) -> impl FnOnce(lapin::Error) -> TopologyError {
    move |source| TopologyError::Broker { what, source }
}

async fn open_channel(connection: &Connection) -> Result<Channel, TopologyError> {
    connection
        .create_channel()
        .await
        .map_err(broker("a channel".to_owned()))
}

async fn declare_queue(
    channel: &Channel,
    queue: &str,
    arguments: FieldTable,
) -> Result<(), TopologyError> {
    match channel
        .queue_declare(queue.into(), durable_queue(), arguments)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if soft_error(&e) == Some(AMQPSoftError::PRECONDITIONFAILED) => {
            Err(TopologyError::QueueConflict {
                queue: queue.to_owned(),
                reason: e.to_string(),
            })
        }
        Err(e) => Err(broker(format!("queue `{queue}`"))(e)),
    }
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
) -> Result<(), TopologyError> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(broker(format!(
            "binding `{queue}` to `{exchange}` with `{key}`"
        )))
}

/// Declares everything listed in the module doc on a channel of its own, closed at the end;
/// in cluster mode (`cluster`) the cluster's shared queues and its log instead of the node's
/// queues ([`crate::cluster::stream`]).
pub async fn declare(
    connection: &Connection,
    settings: &AmqpSettings,
    cluster: Option<&ClusterSettings>,
) -> Result<(), TopologyError> {
    let mut channel = open_channel(connection).await?;
    channel
        .exchange_declare(
            settings.exchange.as_str().into(),
            ExchangeKind::Topic,
            durable_exchange(),
            FieldTable::default(),
        )
        .await
        .map_err(broker(format!("exchange `{}`", settings.exchange)))?;

    match channel
        .exchange_declare(
            settings.dlx.as_str().into(),
            ExchangeKind::Topic,
            durable_exchange(),
            FieldTable::default(),
        )
        .await
    {
        Ok(()) => {}
        Err(e) if soft_error(&e) == Some(AMQPSoftError::PRECONDITIONFAILED) => {
            log::warn!(
                "dead-letter exchange `{}` already exists with another type or other properties \
                 ({e}); using it as it is",
                settings.dlx
            );
            // The broker closed the channel with the refusal.
            channel = open_channel(connection).await?;
        }
        Err(e) => {
            return Err(broker(format!("dead-letter exchange `{}`", settings.dlx))(
                e,
            ))
        }
    }
    declare_queue(&channel, DEAD_LETTER_QUEUE, FieldTable::default()).await?;
    bind(&channel, DEAD_LETTER_QUEUE, &settings.dlx, "#").await?;

    let (arguments, queue_of): (_, Box<dyn Fn(EventFamily) -> String>) = match cluster {
        None => (
            node_queue_arguments(settings),
            Box::new(|family| queue_name(&settings.node_id, family)),
        ),
        Some(cluster) => {
            declare_queue(
                &channel,
                &cluster.log_name(),
                stream::log_arguments(cluster),
            )
            .await?;
            (
                stream::shared_queue_arguments(settings),
                Box::new(|family| cluster.queue_name(family)),
            )
        }
    };
    for family in EventFamily::ALL {
        let queue = queue_of(family);
        declare_queue(&channel, &queue, arguments.clone()).await?;
        bind(&channel, &queue, &settings.exchange, family.binding_key()).await?;
    }
    if let Err(e) = channel.close(200, "OK".into()).await {
        log::debug!("closing the topology channel: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_and_arguments() {
        let mut s = AmqpSettings::with_node_id("n-1");
        s.dlx = "my.dlx".into();
        s.queue_expires_ms = 1234;
        assert_eq!(queue_name("n-1", EventFamily::Quota), "pushgate.n-1.quota");
        assert_eq!(
            queue_name("n-1", EventFamily::Device),
            "pushgate.n-1.device"
        );
        let args = node_queue_arguments(&s);
        let inner = args.inner();
        assert_eq!(
            inner.get("x-dead-letter-exchange"),
            Some(&AMQPValue::LongString("my.dlx".into()))
        );
        assert_eq!(inner.get("x-expires"), Some(&AMQPValue::LongLongInt(1234)));
    }
}
