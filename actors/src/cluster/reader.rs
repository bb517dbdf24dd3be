//! The log reader: one actor per node that reads the cluster's log, in order, and hands every
//! push to the room supervisor ([`LoggedPush`]), at its position in the log.
//!
//! The [`BrokerLink`](crate::consumers::BrokerLink) attaches it after each (re)connection, as
//! it does the event consumers ([`Attach`]). On its first attach it appends its start mark
//! ([`LogRecord::Mark`]) and consumes from a timestamp offset, "now minus the recovery
//! window"; every record before its mark is history (stored, not delivered), every record
//! after it is live. Session records, history or live, go to the supervisor as they are
//! ([`LoggedSession`]), in log order with the pushes. On a later attach it consumes from the stream offset after the last
//! record it read, so a reconnect neither skips nor repeats a record (a record read again, as
//! the broker starts at a chunk's beginning, is recognised by its offset and skipped).
//!
//! `/ready` follows it ([`ClusterLogState`]): `catching_up` while it reads the history before
//! its mark, `reading` once live (only then is the node ready), `stopped` without a consumer.
//!
//! Stream consumers need a prefetch (`basic.qos`) and manual acks, which here only return
//! credit: every delivery is acked once handed on. A record that does not decode is skipped
//! with a warning and counted (`pushgate_cluster_log_records_skipped_total`); a reader never
//! stops on a bad record. The device status changes that come with records from other node
//! processes are applied to the shared device status cache (this process's own were applied
//! when it routed them). Reading a fence of its own process passes it
//! ([`Fences::read`]): the device consumer that appended it may route from then on.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::Channel;

use super::appender::LogAppender;
use super::fence::Fences;
use super::logged_push::LoggedPush;
use super::record::LogRecord;
use super::session_log::LoggedSession;
use super::{position, ClusterParts, ClusterSettings, SharedDeviceStatus};
use crate::consumers::delivery_stream::{self, StreamItem};
use crate::consumers::event_consumer::ConsumeError;
use crate::consumers::messages::{Attach, ConsumerStopped, Detach};
use crate::consumers::settler::{Settler, Verdict};
use crate::metrics::Metrics;
use crate::readiness::{ClusterLogState, Readiness};
use crate::room_supervisor::RoomSupervisor;

/// The name the reader goes by in logs and in [`ConsumerStopped`].
pub const NAME: &str = "log";

struct Active {
    generation: u64,
    channel: Channel,
    stream: SpawnHandle,
    settler: Rc<Settler>,
}

/// Reads the cluster's log; see the module doc.
pub struct LogReader {
    cluster: ClusterSettings,
    prefetch: u16,
    supervisor: Addr<RoomSupervisor>,
    appender: LogAppender,
    devices: SharedDeviceStatus,
    fences: Arc<Fences>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    link: Recipient<ConsumerStopped>,
    /// The stream offset of the last record read.
    last_read: Option<u64>,
    /// This process's start mark was read: what follows is delivered.
    live: bool,
    active: Option<Active>,
    retired: bool,
}

impl LogReader {
    /// A reader of `cluster`'s log that appends its mark through its appender, hands pushes to
    /// `supervisor`, and applies other nodes' device status changes to `devices`.
    pub fn new(
        cluster: &ClusterParts,
        prefetch: u16,
        supervisor: Addr<RoomSupervisor>,
        devices: SharedDeviceStatus,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        link: Recipient<ConsumerStopped>,
    ) -> Self {
        readiness.set_cluster_log(ClusterLogState::Stopped);
        LogReader {
            cluster: cluster.settings.clone(),
            prefetch,
            supervisor,
            appender: cluster.appender.clone(),
            devices,
            fences: cluster.fences.clone(),
            metrics,
            readiness,
            link,
            last_read: None,
            live: false,
            active: None,
            retired: false,
        }
    }

    /// Where to start consuming: after the last record read, or, on the first attach, at
    /// "now minus the recovery window".
    fn start_offset(&self) -> AMQPValue {
        match self.last_read {
            Some(last) => AMQPValue::LongLongInt(i64::try_from(last + 1).unwrap_or(i64::MAX)),
            None => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or(Duration::ZERO);
                let from = now.saturating_sub(self.cluster.recovery_window);
                AMQPValue::Timestamp(from.as_secs())
            }
        }
    }

    fn handle_delivery(&mut self, delivery: Delivery) {
        let Some(active) = &self.active else {
            return;
        };
        active.settler.settle(delivery.delivery_tag, Verdict::Ack);
        let Some(offset) = stream_offset(&delivery) else {
            log::warn!("a record of the cluster's log came without its x-stream-offset; skipped");
            self.metrics.cluster_log_records_skipped.inc();
            return;
        };
        if self.last_read.is_some_and(|last| offset <= last) {
            return; // read before (the broker starts at a chunk's beginning)
        }
        self.last_read = Some(offset);
        match LogRecord::decode(&delivery.data) {
            Err(e) => {
                log::warn!(
                    "skipping record {offset} of the cluster's log `{}` ({} bytes): {e}",
                    self.cluster.log_name(),
                    delivery.data.len()
                );
                self.metrics.cluster_log_records_skipped.inc();
            }
            Ok(record) => self.take_record(offset, record),
        }
    }

    /// Act on `record`, read at `offset`.
    fn take_record(&mut self, offset: u64, record: LogRecord) {
        match record {
            LogRecord::Several(records) => {
                for record in records {
                    self.take_record(offset, record);
                }
            }
            LogRecord::Mark { origin } => {
                if origin == self.cluster.origin && !self.live {
                    self.live = true;
                    self.readiness.set_cluster_log(ClusterLogState::Reading);
                    log::info!(
                        "read the cluster's log up to this node's start (record {offset}); \
                         delivering from here"
                    );
                }
            }
            LogRecord::Fence { origin, number } => {
                if origin == self.cluster.origin {
                    self.fences.read(number);
                }
            }
            LogRecord::Session { origin, event } => {
                // History or live alike: every node's sessions, for recovery on this one.
                self.supervisor.do_send(LoggedSession { origin, event });
            }
            LogRecord::Pushes {
                origin,
                devices,
                pushes,
            } => {
                if origin != self.cluster.origin && !devices.is_empty() {
                    let mut cache = self.devices.lock().expect("device status lock");
                    for change in devices {
                        cache.apply(change);
                    }
                }
                for (index, push) in pushes.into_iter().enumerate() {
                    self.supervisor.do_send(LoggedPush {
                        position: position::of(offset, index),
                        push: push.into_push(Instant::now()),
                        live: self.live,
                    });
                }
            }
        }
    }

    fn drop_active(&mut self, ctx: &mut Context<Self>) {
        if let Some(active) = self.active.take() {
            ctx.cancel_future(active.stream);
            self.readiness.set_cluster_log(ClusterLogState::Stopped);
        }
    }

    /// What `/ready` says while consuming.
    fn consuming_state(&self) -> ClusterLogState {
        if self.live {
            ClusterLogState::Reading
        } else {
            ClusterLogState::CatchingUp
        }
    }
}

/// A delivery's `x-stream-offset` header: its record's place in the stream.
fn stream_offset(delivery: &Delivery) -> Option<u64> {
    let headers = delivery.properties.headers().as_ref()?;
    match headers.inner().get("x-stream-offset")? {
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

impl Actor for LogReader {
    type Context = Context<Self>;
}

impl Handler<Attach> for LogReader {
    type Result = AtomicResponse<Self, Result<(), ConsumeError>>;

    fn handle(&mut self, msg: Attach, ctx: &mut Self::Context) -> Self::Result {
        let stream_name = self.cluster.log_name();
        let current = self.active.as_ref().map(|a| a.generation);
        if let Some(answer) = msg.settled(self.retired, current, &stream_name) {
            return AtomicResponse::new(Box::pin(fut::ready(answer)));
        }
        self.drop_active(ctx);
        let mark = (!self.live).then(|| LogRecord::Mark {
            origin: self.cluster.origin.clone(),
        });
        let appender = self.appender.clone();
        let prefetch = self.prefetch;
        let generation = msg.generation;
        let tag = ShortString::from(format!("{stream_name}#{}", self.cluster.origin));
        let start_offset = self.start_offset();
        let start = async move {
            if let Some(mark) = mark {
                appender
                    .append(&mark)
                    .await
                    .map_err(|source| ConsumeError::Mark {
                        queue: stream_name.clone(),
                        source,
                    })?;
            }
            let fail = |source| ConsumeError::Broker {
                queue: stream_name.clone(),
                source,
            };
            let channel = msg.connection.create_channel().await.map_err(fail)?;
            channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await
                .map_err(fail)?;
            let mut args = FieldTable::default();
            args.insert(ShortString::from("x-stream-offset"), start_offset);
            let consumer = channel
                .basic_consume(
                    stream_name.as_str().into(),
                    tag,
                    BasicConsumeOptions::default(),
                    args,
                )
                .await
                .map_err(fail)?;
            Ok((channel, consumer))
        };
        AtomicResponse::new(Box::pin(start.into_actor(self).map(
            move |result, act, ctx| {
                let (channel, consumer) = result?;
                let stream = ctx.add_stream(delivery_stream::tagged(consumer, generation));
                let settler = Rc::new(Settler::start(channel.clone()));
                act.active = Some(Active {
                    generation,
                    channel,
                    stream,
                    settler,
                });
                act.readiness.set_cluster_log(act.consuming_state());
                log::info!(
                    "reading the cluster's log `{}` from {}",
                    act.cluster.log_name(),
                    match act.last_read {
                        Some(last) => format!("record {}", last + 1),
                        None => "the start of the recovery window".to_owned(),
                    }
                );
                Ok(())
            },
        )))
    }
}

impl StreamHandler<StreamItem> for LogReader {
    fn handle(&mut self, msg: StreamItem, ctx: &mut Self::Context) {
        let current = self
            .active
            .as_ref()
            .is_some_and(|a| a.generation == msg.generation);
        if !current {
            return; // a leftover of a consumer already replaced
        }
        match msg.item {
            Some(Ok(delivery)) => self.handle_delivery(delivery),
            Some(Err(e)) => log::warn!("reading the cluster's log failed: {e}"),
            None => {
                log::warn!("reading the cluster's log stopped (cancelled or channel lost)");
                self.drop_active(ctx);
                self.link.do_send(ConsumerStopped {
                    name: NAME,
                    generation: msg.generation,
                });
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl Handler<Detach> for LogReader {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Detach, ctx: &mut Self::Context) -> Self::Result {
        self.retired |= msg.graceful;
        let Some(active) = self.active.take() else {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        };
        ctx.cancel_future(active.stream);
        self.readiness.set_cluster_log(ClusterLogState::Stopped);
        if !msg.graceful {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        let close = async move {
            if let Err(e) = active.channel.close(200, "OK".into()).await {
                log::debug!("closing the log reader's channel: {e}");
            }
        };
        AtomicResponse::new(Box::pin(close.into_actor(self)))
    }
}
