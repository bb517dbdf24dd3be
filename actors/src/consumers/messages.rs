//! The messages between the server, the [`BrokerLink`](super::BrokerLink) and the consumer
//! actors.

use std::sync::Arc;

use actix::prelude::*;

use super::event_consumer::ConsumeError;

/// Graceful stop (the server sends it on SIGTERM): cancel both consumers, let the delivery in
/// flight finish and be acked, push (and ack) the `quota.updated` held by storm coalescing,
/// close the channels and the connection. Answers once done (within
/// `SHUTDOWN_TIMEOUT`, ten seconds, whatever the broker does); the link then stops and retries
/// nothing.
#[derive(Message, Debug, Clone, Copy, Default)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Link → consumer: start consuming on `connection` (a no-op if already consuming on it).
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ConsumeError>")]
pub struct Attach {
    /// The live broker connection; the consumer opens its own channel on it.
    pub connection: Arc<lapin::Connection>,
    /// Which connection this is (the link counts them); stale events carry an older number.
    pub generation: u64,
}

impl Attach {
    /// The answer when there is nothing to start: `Some(Err(..))` for a consumer of `queue`
    /// that was `retired` (shutting down), `Some(Ok(()))` when it already consumes on this
    /// connection (`current`: the generation it consumes on), `None` when it must start.
    pub fn settled(
        &self,
        retired: bool,
        current: Option<u64>,
        queue: &str,
    ) -> Option<Result<(), ConsumeError>> {
        if retired {
            let queue = queue.to_owned();
            return Some(Err(ConsumeError::ShuttingDown { queue }));
        }
        (current == Some(self.generation)).then_some(Ok(()))
    }
}

/// Link → consumer: stop consuming.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Detach {
    /// `true`: cancel the consumer and close the channel on the broker, and take no `Attach`
    /// after it (shutdown). `false`: just drop them (the connection is already gone).
    pub graceful: bool,
}

/// Consumer → link: the consumer stopped on its own (cancelled by the broker, channel or
/// connection lost), so the link must restore it.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ConsumerStopped {
    /// Which consumer ([`ConsumerKind::name`](crate::readiness::ConsumerKind::name), or the
    /// cluster's log reader's name).
    pub name: &'static str,
    /// The connection generation it was consuming on.
    pub generation: u64,
}
