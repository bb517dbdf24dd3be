//! A consumer's deliveries as an actor stream: each tagged with the connection it came from,
//! and the end of the stream marked, so an actor tells a stale consumer's leftovers from its
//! current one's and notices when the broker stopped it.

use actix::Message;
use futures::{Stream, StreamExt};
use lapin::message::Delivery;
use lapin::Consumer;

/// One item of a consumer's stream; `item: None` marks the end of that stream.
pub struct StreamItem {
    /// The connection generation the consumer was started on.
    pub generation: u64,
    /// A delivery (or lapin's error), or `None` at the end.
    pub item: Option<lapin::Result<Delivery>>,
}

impl Message for StreamItem {
    type Result = ();
}

/// `consumer`'s deliveries tagged with `generation`, then one `item: None`.
pub fn tagged(consumer: Consumer, generation: u64) -> impl Stream<Item = StreamItem> {
    consumer
        .map(move |d| StreamItem {
            generation,
            item: Some(d),
        })
        .chain(futures::stream::once(async move {
            StreamItem {
                generation,
                item: None,
            }
        }))
}
