//! The consumer actor, shared by both families: [`EventConsumer<F>`] reads the queue
//! `pushgate.<node>.<family>` and turns each delivery into pushes.
//!
//! The [`BrokerLink`](super::BrokerLink) hands it a connection ([`Attach`]); it opens its own
//! channel, sets `basic_qos(prefetch)` and starts an exclusive, manually acked consumer. The
//! deliveries arrive as an actor stream and each one is handled under `ctx.wait`, so the next
//! delivery (and any message) waits until this one's pushes are handed on: per-consumer order
//! holds, and the device status cache sees the events in queue order. In cluster mode they are
//! handed on by queueing them for the cluster's log; its ack waits for the broker's confirm
//! of their record in the [`Settler`] (which keeps every verdict after it waiting too), while the
//! consumer goes on with the next delivery.
//!
//! Per delivery: [`route`] (with the settings' `max_event_bytes`: a larger body is poison);
//! `Routed` → each push (its payload already JSON text) is `send` to
//! the supervisor in order, then ack; `Ignored` → ack; `Poison` → one warning, `basic_reject`
//! without requeue (the queue dead-letters it to the DLX); the supervisor's mailbox failing →
//! nack with requeue. Each outcome is counted in `pushgate_amqp_messages_total`. The verdicts
//! go to the channel's [`Settler`], which writes them in order and merges runs of acks.
//!
//! **Storms** (`QUOTA_COALESCE_MS`, [`StormCoalescer`]): a `quota.updated` that arrives within
//! its quota's window is held instead of pushed, and stays unacked ([`Settler::defer`]); when
//! a later one replaces it, it is acked (the later one carries its content) and counted in
//! `pushgate_coalesced_total`; the one held at the window's end is pushed then (a timer of this
//! actor, under `ctx.wait` like a delivery) and acked once the supervisor took it. Any other
//! event about the same quota (alert, exceeded, renewal) pushes the held update first, then
//! itself, at once. At most half the prefetch is held, so held deliveries never stall the
//! consumer. A graceful [`Detach`] (shutdown) pushes what is held before it closes the
//! channel; a lost channel leaves the held deliveries unacked, and the broker redelivers them.
//! Alerts carry [`Push::priority`], so no room holds them either.
//!
//! **Fences** (cluster mode, device events): the first delivery of a consumer on the shared
//! single-active-consumer queue is the sign that this node became the active consumer. Before
//! routing it, the consumer appends a fence to the cluster's log and waits, under `ctx.wait`,
//! until its log reader has read it back ([`crate::cluster::fence`]): the status changes the
//! previous active node appended are then in the device status cache, and `oldStatus` is
//! right. Meanwhile the deliveries after it stay in the stream, unacked (at most the
//! prefetch). A fence that cannot be appended (no broker connection) or is not read back
//! within [`FENCE_WAIT`] requeues the delivery after a pause, as a failed append does; the
//! next delivery waits for the same fence again (or appends one, if none went in). A new
//! consumer (after a reconnect or a cancel) starts with a new fence.
//!
//! When the stream ends on its own (the broker cancelled the consumer, e.g. its queue was
//! deleted; the channel or the connection died) the consumer tells the link
//! ([`ConsumerStopped`]), which restores it.

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::protocol::AMQPSoftError;
use lapin::types::{FieldTable, ShortString};
use lapin::Channel;

use super::delivery_stream::{self, StreamItem};
use super::messages::{Attach, ConsumerStopped, Detach};
use super::settler::{Settler, Verdict};
use super::storm_coalescer::{Offered, StormCoalescer};
use super::topology::queue_name;
use super::{soft_error, AmqpSettings};
use crate::cluster::{
    ClusterParts, DeviceChange, Fences, LogAppender, LogRecord, PendingAppend, RecordedPush,
    SharedDeviceStatus,
};
use crate::device_status_cache::DeviceStatusCache;
use crate::messages::{Accepted, Push, PushSource, PushTarget};
use crate::metrics::{AmqpOutcome, Metrics};
use crate::readiness::{ConsumerKind, Readiness};
use crate::room_supervisor::RoomSupervisor;
use crate::routing::{route, EventFamily, RouteOutcome, RoutedPush, StormRole};

/// How much of a poison body the warning shows.
const LOGGED_BODY_BYTES: usize = 256;

/// Pause before requeueing a delivery the supervisor could not take, so a stopped supervisor
/// does not turn into a redelivery loop.
const REQUEUE_PAUSE: Duration = Duration::from_millis(500);

/// How long a new active consumer waits for its log reader to read its fence back before it
/// requeues the delivery it holds (and tries again with the next one).
pub const FENCE_WAIT: Duration = Duration::from_secs(5);

/// How long a graceful detach waits for the verdicts already handed to the settler.
const UNSETTLED_WAIT: Duration = Duration::from_secs(2);

/// What distinguishes the two consumers; implemented by the marker types
/// [`QuotaEvents`](super::quota_events::QuotaEvents) and
/// [`DeviceEvents`](super::device_events::DeviceEvents).
pub trait Family: Unpin + 'static {
    /// The routing family (queue suffix and binding key).
    const FAMILY: EventFamily;
    /// How many devices the status cache remembers (0: none; only device events use it).
    const DEVICE_CACHE_LIMIT: usize;
    /// Cluster mode: whether routing depends on what the log carries, so that a new active
    /// consumer must wait until its reader has read the log up to a fence of its own.
    const FENCED: bool;

    /// The readiness and metrics identity of this family's consumer.
    fn kind() -> ConsumerKind {
        match Self::FAMILY {
            EventFamily::Quota => ConsumerKind::Quota,
            EventFamily::Device => ConsumerKind::Device,
        }
    }
}

/// Why a consumer could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// Another connection already consumes the queue exclusively: most likely another pushgate
    /// process runs with the same `NODE_ID`.
    #[error(
        "queue `{queue}` is already consumed exclusively by another connection (another pushgate \
         running with the same NODE_ID?): {source}"
    )]
    ExclusiveInUse {
        /// The queue.
        queue: String,
        /// The broker's refusal.
        #[source]
        source: lapin::Error,
    },
    /// pushgate is shutting down: the consumer was detached for good.
    #[error("not consuming queue `{queue}`: pushgate is shutting down")]
    ShuttingDown {
        /// The queue.
        queue: String,
    },
    /// Cluster mode: the log reader could not append its start mark to the cluster's log.
    #[error("appending this node's start mark to `{queue}` failed: {source}")]
    Mark {
        /// The cluster's log.
        queue: String,
        /// Why.
        #[source]
        source: crate::cluster::AppendError,
    },
    /// Opening the channel, setting the prefetch or starting the consumer failed otherwise.
    #[error("starting the consumer on queue `{queue}` failed: {source}")]
    Broker {
        /// The queue.
        queue: String,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
}

/// A routed delivery whose pushes have not gone to the supervisor yet.
struct RoutedDelivery {
    tag: u64,
    routing_key: ShortString,
    pushes: Vec<RoutedPush>,
    /// When the consumer took it (its pushes' acceptance time).
    taken_at: Instant,
    /// Cluster mode: the device status change routing it made, for its log record.
    device: Option<DeviceChange>,
}

/// Where a consumer's routed pushes go.
#[derive(Clone)]
enum PushSink {
    /// A node on its own: to its room supervisor.
    Supervisor(Addr<RoomSupervisor>),
    /// Cluster mode: into the cluster's log (a delivery's pushes go into one record, with
    /// whatever else the appender gathers meanwhile).
    Log { appender: LogAppender },
}

/// Cluster mode, fenced families: what a consumer needs to append a fence and see it read.
#[derive(Clone)]
struct Fencing {
    fences: Arc<Fences>,
    appender: LogAppender,
    origin: Arc<str>,
}

/// Where a consumer stands with its fence.
#[derive(Debug, Clone, Copy)]
enum FenceState {
    /// It routes: no fence is needed, or its fence was read back.
    Passed,
    /// It holds its deliveries: no fence is in the log yet (`None`), or this one is and was
    /// not read back yet.
    Pending(Option<u64>),
}

struct Active {
    generation: u64,
    channel: Channel,
    tag: ShortString,
    stream: SpawnHandle,
    settler: Rc<Settler>,
    fence: FenceState,
}

/// The consumer actor of one [`Family`]; see the module doc.
pub struct EventConsumer<F: Family> {
    queue: String,
    prefetch: u16,
    max_event_bytes: usize,
    /// Consume exclusively (a node's own queue) or not (cluster mode's shared queue, where
    /// the broker's single active consumer decides).
    exclusive: bool,
    sink: PushSink,
    /// Cluster mode, fenced families only.
    fencing: Option<Fencing>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    link: Recipient<ConsumerStopped>,
    device_cache: SharedDeviceStatus,
    /// The `quota.updated` held back by storm coalescing (on the active channel).
    storm: StormCoalescer<RoutedDelivery>,
    /// The timer of the storm coalescer's next window end, and when it fires.
    storm_timer: Option<(SpawnHandle, Instant)>,
    active: Option<Active>,
    /// A graceful [`Detach`] (shutdown) came: no [`Attach`] is taken any more, not even one
    /// the link's setup sent before it knew (it would consume while the clients are closed).
    retired: bool,
    family: PhantomData<F>,
}

impl<F: Family> EventConsumer<F> {
    /// A consumer of `pushgate.<settings.node_id>.<family>` that reports to `link`.
    pub fn new(
        settings: &AmqpSettings,
        supervisor: Addr<RoomSupervisor>,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        link: Recipient<ConsumerStopped>,
    ) -> Self {
        EventConsumer {
            queue: queue_name(&settings.node_id, F::FAMILY),
            prefetch: settings.prefetch,
            max_event_bytes: settings.max_event_bytes,
            exclusive: true,
            sink: PushSink::Supervisor(supervisor),
            fencing: None,
            metrics,
            readiness,
            link,
            device_cache: Arc::new(std::sync::Mutex::new(
                DeviceStatusCache::with_capacity_limit(F::DEVICE_CACHE_LIMIT),
            )),
            storm: StormCoalescer::new(settings.quota_coalesce, max_held(settings.prefetch)),
            storm_timer: None,
            active: None,
            retired: false,
            family: PhantomData,
        }
    }

    /// Cluster mode: consume the cluster's shared queue of this family, not exclusively, and
    /// append each delivery's pushes to the cluster's log; `devices` is the device status
    /// cache shared with the log reader (journaled here, so that the change each event makes
    /// goes into its record).
    pub fn in_cluster(mut self, cluster: &ClusterParts, devices: SharedDeviceStatus) -> Self {
        self.queue = cluster.settings.queue_name(F::FAMILY);
        self.exclusive = false;
        self.sink = PushSink::Log {
            appender: cluster.appender.clone(),
        };
        self.fencing = F::FENCED.then(|| Fencing {
            fences: cluster.fences.clone(),
            appender: cluster.appender.clone(),
            origin: Arc::from(cluster.settings.origin.as_str()),
        });
        {
            let mut cache = devices.lock().expect("device status lock");
            *cache = std::mem::take(&mut *cache).journaled();
        }
        self.device_cache = devices;
        self
    }

    fn set_up(&self, up: bool) {
        let kind = F::kind();
        self.readiness.set_consuming(kind, up);
        self.metrics
            .consumer_up
            .with_label_values(&[kind.name()])
            .set(i64::from(up));
    }

    /// Forget the current consumer (its stream keeps running until cancelled); returns it so
    /// the caller can cancel it on the broker first.
    fn deactivate(&mut self) -> Option<Active> {
        let active = self.active.take()?;
        self.set_up(false);
        Some(active)
    }

    /// Forget the current consumer and drop its stream and channel right away. The updates it
    /// held are dropped unacked: the broker redelivers them (the channel is gone or going).
    fn drop_active(&mut self, ctx: &mut Context<Self>) {
        if let Some(active) = self.deactivate() {
            ctx.cancel_future(active.stream);
        }
        self.storm.drain();
        if let Some((timer, _)) = self.storm_timer.take() {
            ctx.cancel_future(timer);
        }
    }

    /// Route `delivery`, or, while the fence is pending, pass the fence first (under
    /// `ctx.wait`: the deliveries after it wait in the stream, unacked).
    fn take_delivery(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        let Some(active) = &self.active else {
            return; // not consuming: the broker redelivers it
        };
        let (FenceState::Pending(appended), Some(fencing)) = (active.fence, self.fencing.clone())
        else {
            return self.handle_delivery(delivery, ctx);
        };
        let generation = active.generation;
        let settler = active.settler.clone();
        let pass = pass_fence(fencing, appended, self.metrics.clone());
        ctx.wait(pass.into_actor(self).map(move |outcome, act, ctx| {
            let Some(active) = act.active.as_mut().filter(|a| a.generation == generation) else {
                return; // its consumer is gone: the broker redelivers it
            };
            match outcome {
                Ok(number) => {
                    active.fence = FenceState::Passed;
                    log::info!(
                        "read the cluster's log up to this node's fence {number}; routing from \
                         `{}`",
                        act.queue
                    );
                    act.handle_delivery(delivery, ctx);
                }
                Err((appended, reason)) => {
                    active.fence = FenceState::Pending(appended);
                    log::warn!("not routing from `{}` yet: {reason}; requeueing", act.queue);
                    let tag = delivery.delivery_tag;
                    let requeue = actix::clock::sleep(REQUEUE_PAUSE);
                    ctx.wait(requeue.into_actor(act).map(move |(), _, _| {
                        settler.settle(tag, Verdict::Requeue);
                    }));
                }
            }
        }));
    }

    fn handle_delivery(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        let Some(active) = &self.active else {
            return; // not consuming: the broker redelivers it
        };
        let taken_at = Instant::now();
        let settler = active.settler.clone();
        let tag = delivery.delivery_tag;
        let key = delivery.routing_key.as_str();
        let (outcome, device) = {
            let mut cache = self.device_cache.lock().expect("device status lock");
            let outcome = route(
                key,
                &delivery.data,
                self.max_event_bytes,
                SystemTime::now(),
                &mut cache,
            );
            (outcome, cache.take_change())
        };
        let (pushes, role) = match outcome {
            RouteOutcome::Routed(pushes, role) => (pushes, role),
            RouteOutcome::Ignored => {
                self.metrics.amqp_message(key, AmqpOutcome::Ignored);
                settler.settle(tag, Verdict::Ack);
                return;
            }
            RouteOutcome::Poison(reason) => {
                log::warn!(
                    "dead-lettering a `{key}` delivery: {reason}; body ({} bytes): {}",
                    delivery.data.len(),
                    truncated(&delivery.data)
                );
                self.metrics.amqp_message(key, AmqpOutcome::DeadLettered);
                settler.settle(tag, Verdict::DeadLetter);
                return;
            }
        };
        let routed = RoutedDelivery {
            tag,
            routing_key: delivery.routing_key,
            pushes,
            device,
            taken_at,
        };
        let in_order = match role {
            StormRole::Unrelated => vec![routed],
            StormRole::FlushesHeld(quota) => {
                // The update held for this quota first, so the console's state is right.
                let held = self.storm.take(&quota);
                held.into_iter().chain([routed]).collect()
            }
            StormRole::LatestWins(quota) => match self.storm.offer(quota, routed, Instant::now()) {
                Offered::PushNow(routed) => vec![routed],
                Offered::Held { superseded } => {
                    settler.defer(tag);
                    if let Some(replaced) = superseded {
                        // Its content is the later one's: acked, never pushed.
                        let key = replaced.routing_key.as_str();
                        self.metrics.coalesced.with_label_values(&[key]).inc();
                        self.metrics.amqp_message(key, AmqpOutcome::Routed);
                        settler.settle(replaced.tag, Verdict::Ack);
                    }
                    self.schedule_storm(ctx);
                    return;
                }
            },
        };
        self.push_in_order(in_order, settler, ctx);
    }

    /// Push `deliveries` under `ctx.wait` (no delivery is handled before they are settled).
    fn push_in_order(
        &self,
        deliveries: Vec<RoutedDelivery>,
        settler: Rc<Settler>,
        ctx: &mut Context<Self>,
    ) {
        let work = settle(deliveries, self.sink.clone(), self.metrics.clone(), settler);
        ctx.wait(work.into_actor(self));
    }

    /// Arm the timer for the storm coalescer's next window end, unless one fires before.
    fn schedule_storm(&mut self, ctx: &mut Context<Self>) {
        let Some(due) = self.storm.next_due() else {
            return;
        };
        if let Some((timer, at)) = self.storm_timer {
            if at <= due {
                return; // It fires in time; then it looks again.
            }
            ctx.cancel_future(timer);
        }
        let wait = due.saturating_duration_since(Instant::now());
        let timer = ctx.run_later(wait, |consumer, ctx| {
            consumer.storm_timer = None;
            let due = consumer.storm.due(Instant::now());
            if let Some(active) = &consumer.active {
                let settler = active.settler.clone();
                consumer.push_in_order(due, settler, ctx);
            }
            consumer.schedule_storm(ctx);
        });
        self.storm_timer = Some((timer, due));
    }
}

/// The most `quota.updated` deliveries held at once: half the prefetch, so that the consumer
/// always has deliveries to work on (a prefetch of 0, unlimited, holds up to 128).
fn max_held(prefetch: u16) -> usize {
    match prefetch {
        0 => 128,
        n => usize::from(n / 2).max(1),
    }
}

/// Append a fence (unless `appended` already is in the log) and wait until the log reader has
/// read it back: `Ok` with its number, or why not and the fence that is in the log, if any.
async fn pass_fence(
    fencing: Fencing,
    appended: Option<u64>,
    metrics: Arc<Metrics>,
) -> Result<u64, (Option<u64>, String)> {
    let number = match appended {
        Some(number) => number,
        None => {
            let number = fencing.fences.next();
            let record = LogRecord::Fence {
                origin: fencing.origin.to_string(),
                number,
            };
            if let Err(e) = fencing.appender.append(&record).await {
                metrics.cluster_log_append_failures.inc();
                return Err((None, format!("appending a fence: {e}")));
            }
            number
        }
    };
    match actix::clock::timeout(FENCE_WAIT, fencing.fences.passed(number)).await {
        Ok(Ok(())) => Ok(number),
        _ => Err((
            Some(number),
            format!("this node's log reader did not read its fence {number} within {FENCE_WAIT:?}"),
        )),
    }
}

/// The push a routed push becomes, accepted from RabbitMQ at `taken_at`.
fn to_push(push: RoutedPush, taken_at: Instant) -> Push {
    let target = match push.except_members_of {
        None => PushTarget::Room(push.room),
        Some(except_members_of) => PushTarget::RoomExceptMembersOf {
            room: push.room,
            except_members_of,
        },
    };
    Push {
        target,
        event: push.event,
        payload: push.payload,
        priority: push.priority,
        accepted: Accepted {
            source: PushSource::Amqp,
            at: taken_at,
        },
    }
}

/// Hand a delivery's pushes on: to the supervisor, in order, or (cluster mode) into the
/// cluster's log, queued for the next record (its confirm comes later). `Err`: why they were not
/// taken.
async fn hand_over(
    sink: &PushSink,
    pushes: Vec<RoutedPush>,
    device: Option<DeviceChange>,
    taken_at: Instant,
    metrics: &Metrics,
) -> Result<HandedOver, String> {
    match sink {
        PushSink::Supervisor(supervisor) => {
            // The payload text is shared by the pushes that carry it (a user's push and its
            // admin-room copy).
            for push in pushes {
                supervisor
                    .send(to_push(push, taken_at))
                    .await
                    .map_err(|e| format!("room supervisor refused a push ({e})"))?;
            }
            Ok(HandedOver::Taken)
        }
        PushSink::Log { appender } => {
            let pushes: Vec<RecordedPush> = pushes
                .into_iter()
                .map(|p| to_push(p, taken_at).into())
                .collect();
            match appender.submit(&pushes, device) {
                Ok(pending) => Ok(HandedOver::Queued(pending)),
                Err(e) => {
                    metrics.cluster_log_append_failures.inc();
                    Err(e.to_string())
                }
            }
        }
    }
}

/// Where a delivery's pushes went.
enum HandedOver {
    /// The supervisor took them.
    Taken,
    /// They are queued for the cluster's log; they are in once their record is confirmed.
    Queued(PendingAppend),
}

/// Hands the pushes of each delivery on ([`hand_over`]), in order, and each delivery's verdict
/// to the channel's [`Settler`]: ack once they were taken (for the log: once the record is
/// confirmed, which the settler waits for while this consumer goes on), or requeue it and the
/// ones after it when they were not.
async fn settle(
    deliveries: Vec<RoutedDelivery>,
    sink: PushSink,
    metrics: Arc<Metrics>,
    settler: Rc<Settler>,
) {
    let mut deliveries = deliveries.into_iter();
    while let Some(delivery) = deliveries.next() {
        let key = delivery.routing_key;
        let handed = hand_over(
            &sink,
            delivery.pushes,
            delivery.device,
            delivery.taken_at,
            &metrics,
        )
        .await;
        match handed {
            Ok(HandedOver::Taken) => {
                metrics.amqp_message(key.as_str(), AmqpOutcome::Routed);
                settler.settle(delivery.tag, Verdict::Ack);
            }
            Ok(HandedOver::Queued(pending)) => {
                let metrics = metrics.clone();
                settler.settle_when(delivery.tag, async move {
                    match pending.confirmed().await {
                        Ok(()) => {
                            metrics.amqp_message(key.as_str(), AmqpOutcome::Routed);
                            Verdict::Ack
                        }
                        Err(e) => {
                            metrics.cluster_log_append_failures.inc();
                            log::error!("{e} for `{key}`; requeueing");
                            actix::clock::sleep(REQUEUE_PAUSE).await;
                            Verdict::Requeue
                        }
                    }
                });
            }
            Err(e) => {
                log::error!("{e} for `{key}`; requeueing");
                actix::clock::sleep(REQUEUE_PAUSE).await;
                settler.settle(delivery.tag, Verdict::Requeue);
                for rest in deliveries {
                    settler.settle(rest.tag, Verdict::Requeue);
                }
                return;
            }
        }
    }
}

/// The start of `body` as text, for the log.
fn truncated(body: &[u8]) -> String {
    let end = body.len().min(LOGGED_BODY_BYTES);
    let mut text = String::from_utf8_lossy(&body[..end]).into_owned();
    if body.len() > end {
        text.push('…');
    }
    text
}

impl<F: Family> Actor for EventConsumer<F> {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if self.active.take().is_some() {
            self.set_up(false);
        }
    }
}

impl<F: Family> Handler<Attach> for EventConsumer<F> {
    type Result = AtomicResponse<Self, Result<(), ConsumeError>>;

    fn handle(&mut self, msg: Attach, ctx: &mut Self::Context) -> Self::Result {
        let current = self.active.as_ref().map(|a| a.generation);
        if let Some(answer) = msg.settled(self.retired, current, &self.queue) {
            return AtomicResponse::new(Box::pin(fut::ready(answer)));
        }
        self.drop_active(ctx);
        let queue = self.queue.clone();
        let prefetch = self.prefetch;
        let exclusive = self.exclusive;
        let tag = ShortString::from(format!("{queue}#{}", msg.generation));
        let consume_tag = tag.clone();
        let start = async move {
            let fail = |source| ConsumeError::Broker {
                queue: queue.clone(),
                source,
            };
            let channel = msg.connection.create_channel().await.map_err(fail)?;
            channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await
                .map_err(fail)?;
            let options = BasicConsumeOptions {
                exclusive,
                no_ack: false,
                ..BasicConsumeOptions::default()
            };
            match channel
                .basic_consume(
                    queue.as_str().into(),
                    consume_tag,
                    options,
                    FieldTable::default(),
                )
                .await
            {
                Ok(consumer) => Ok((channel, consumer)),
                Err(source) if soft_error(&source) == Some(AMQPSoftError::ACCESSREFUSED) => {
                    Err(ConsumeError::ExclusiveInUse {
                        queue: queue.clone(),
                        source,
                    })
                }
                Err(source) => Err(fail(source)),
            }
        };
        let generation = msg.generation;
        AtomicResponse::new(Box::pin(start.into_actor(self).map(
            move |result, act, ctx| {
                let (channel, consumer) = result?;
                let stream = ctx.add_stream(delivery_stream::tagged(consumer, generation));
                let settler = Rc::new(Settler::start(channel.clone()));
                act.active = Some(Active {
                    generation,
                    channel,
                    tag,
                    stream,
                    settler,
                    fence: match act.fencing {
                        Some(_) => FenceState::Pending(None),
                        None => FenceState::Passed,
                    },
                });
                act.set_up(true);
                log::info!("consuming queue `{}`", act.queue);
                Ok(())
            },
        )))
    }
}

impl<F: Family> StreamHandler<StreamItem> for EventConsumer<F> {
    fn handle(&mut self, msg: StreamItem, ctx: &mut Self::Context) {
        let current = self
            .active
            .as_ref()
            .is_some_and(|a| a.generation == msg.generation);
        if !current {
            // A leftover of a consumer already replaced; its deliveries are redelivered.
            return;
        }
        match msg.item {
            Some(Ok(delivery)) => self.take_delivery(delivery, ctx),
            Some(Err(e)) => log::warn!("consumer of queue `{}` failed: {e}", self.queue),
            None => {
                log::warn!(
                    "consumer of queue `{}` stopped (cancelled by the broker or channel lost)",
                    self.queue
                );
                self.drop_active(ctx);
                self.link.do_send(ConsumerStopped {
                    name: F::kind().name(),
                    generation: msg.generation,
                });
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // Each stream ends with its own `item: None` marker, handled above; the actor lives on.
    }
}

impl<F: Family> Handler<Detach> for EventConsumer<F> {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Detach, ctx: &mut Self::Context) -> Self::Result {
        // Handled only between deliveries (each runs under `ctx.wait`); only their acks may
        // still be on their way, and a graceful detach waits for those.
        self.retired |= msg.graceful;
        // The held updates: a graceful detach pushes them (and acks them) before it closes the
        // channel; otherwise the channel is gone and the broker redelivers them.
        let held = self.storm.drain();
        if let Some((timer, _)) = self.storm_timer.take() {
            ctx.cancel_future(timer);
        }
        let Some(Active {
            channel,
            tag,
            stream,
            settler,
            ..
        }) = self.deactivate()
        else {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        };
        if !msg.graceful {
            ctx.cancel_future(stream);
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        let queue = self.queue.clone();
        let push_held = settle(
            held,
            self.sink.clone(),
            self.metrics.clone(),
            settler.clone(),
        );
        let close = async move {
            push_held.await;
            // Let the verdicts on the deliveries already handled reach the channel first.
            let deadline = Instant::now() + UNSETTLED_WAIT;
            while settler.unsettled() > 0 && Instant::now() < deadline {
                actix::clock::sleep(Duration::from_millis(1)).await;
            }
            if let Err(e) = channel
                .basic_cancel(tag, BasicCancelOptions::default())
                .await
            {
                log::debug!("cancelling the consumer of `{queue}`: {e}");
            }
            // Prefetched deliveries not handled yet go back to the queue with the channel.
            if let Err(e) = channel.close(200, "OK".into()).await {
                log::debug!("closing the channel of `{queue}`: {e}");
            }
            log::info!("stopped consuming queue `{queue}`");
        };
        AtomicResponse::new(Box::pin(close.into_actor(self).map(
            move |(), _act, ctx| {
                ctx.cancel_future(stream);
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_bodies_are_truncated() {
        assert_eq!(truncated(b"{\"a\":1}"), "{\"a\":1}");
        let long = vec![b'x'; 1000];
        let shown = truncated(&long);
        assert_eq!(shown.chars().count(), LOGGED_BODY_BYTES + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(truncated(&[0xff, b'a']), "\u{fffd}a");
    }
}
