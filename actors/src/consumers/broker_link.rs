//! The actor that owns the broker connection and keeps the consumers fed.
//!
//! Life of a [`BrokerLink`]:
//!
//! 1. connect (`/ready` shows `amqp: connecting`); on failure wait [`backoff_delay`] (100 ms
//!    doubling, capped at [`MAX_BACKOFF`](super::MAX_BACKOFF)) and try again, forever;
//! 2. once connected (`amqp: connected`; every connection after the first counts in
//!    `pushgate_amqp_reconnects_total`), declare the [`topology`] and [`Attach`] both consumers;
//!    a refusal (queue with other arguments, queue consumed exclusively by another node with the
//!    same id) is logged and retried with the same backoff, the consumer staying not ready;
//! 3. watch the connection (lapin's error events, a status check every
//!    [`WATCHDOG_INTERVAL`], and the consumers reporting [`ConsumerStopped`]): a lost
//!    connection detaches the consumers and goes back to 1; a consumer cancelled by the broker
//!    (its queue deleted) goes back to 2;
//! 4. on [`Shutdown`]: stop retrying, cancel the consumers (each finishes and acks the delivery
//!    it is handling), close their channels and the connection, answer, stop.
//!
//! In cluster mode ([`BrokerLink::in_cluster`]) step 2 declares the cluster's topology (the
//! shared queues and the log, [`crate::cluster::stream`]), gives the
//! [`LogAppender`](crate::cluster::LogAppender) a channel in confirm mode, and attaches the
//! [`LogReader`] after the consumers; a lost connection takes the appender's channel away too.
//!
//! lapin's own recovery is left off: the link rebuilds connection, topology and consumers
//! itself, which also covers what lapin does not (consumers cancelled by the broker).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::StreamExt;
use lapin::{Connection, ConnectionProperties, Event};

use super::device_events::DeviceEventsConsumer;
use super::event_consumer::ConsumeError;
use super::messages::{Attach, ConsumerStopped, Detach, Shutdown};
use super::quota_events::QuotaEventsConsumer;
use super::topology::{self, TopologyError};
use super::{backoff_delay, AmqpSettings};
use crate::cluster::{self, ClusterParts, LogReader, PresenceBeacon, SharedDeviceStatus};
use crate::metrics::Metrics;
use crate::readiness::{AmqpState, ConsumerKind, Readiness};
use crate::room_supervisor::RoomSupervisor;

/// How often the link checks that its connection is still up (lapin's events usually tell
/// sooner).
pub const WATCHDOG_INTERVAL: Duration = Duration::from_secs(1);

/// Longest wait for one connection attempt (TCP + AMQP handshake).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for the consumers, then the connection, to close on [`Shutdown`] (both steps
/// together).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection, declaration or consumer start failed (each is logged, then retried).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The broker could not be reached or refused the connection.
    #[error("cannot connect to the broker: {0}")]
    Connect(#[source] lapin::Error),
    /// The connection attempt took longer than [`CONNECT_TIMEOUT`].
    #[error("connecting to the broker timed out after {CONNECT_TIMEOUT:?}")]
    ConnectTimeout,
    /// Declaring the topology failed.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A consumer could not start.
    #[error("{kind} consumer: {source}")]
    Consume {
        /// Which consumer.
        kind: &'static str,
        /// Why.
        #[source]
        source: ConsumeError,
    },
    /// A consumer actor is gone (only while the system stops).
    #[error("{kind} consumer actor is not running: {source}")]
    ConsumerGone {
        /// Which consumer.
        kind: &'static str,
        /// The mailbox error.
        #[source]
        source: MailboxError,
    },
}

/// A connection event, tagged with the connection it came from.
struct LinkEvent {
    generation: u64,
    event: Event,
}

impl Message for LinkEvent {
    type Result = ();
}

/// What a scheduled retry does.
#[derive(Debug, Clone, Copy)]
enum Step {
    Connect,
    Setup,
}

struct ConsumerHandle {
    /// [`ConsumerKind::name`], or the log reader's [`cluster::reader::NAME`].
    name: &'static str,
    attach: Recipient<Attach>,
    detach: Recipient<Detach>,
}

/// Owns the broker connection and the two consumer actors; see the module doc.
pub struct BrokerLink {
    settings: AmqpSettings,
    supervisor: Addr<RoomSupervisor>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    consumers: Vec<ConsumerHandle>,
    /// Cluster mode's parts, when it is on.
    cluster: Option<ClusterParts>,
    connection: Option<Arc<Connection>>,
    /// Number of the current (or last) connection; stale results carry an older one.
    generation: u64,
    /// Consecutive failures, for the backoff.
    attempt: u32,
    /// Consecutive failed connection attempts, to keep the log short while the broker is down.
    connect_failures: u32,
    connecting: bool,
    retry: Option<SpawnHandle>,
    events: Option<SpawnHandle>,
    shutting_down: bool,
}

impl BrokerLink {
    /// A link that has not started yet; [`start_consumers`](super::start_consumers) is the
    /// usual way to create and start one.
    pub fn new(
        settings: AmqpSettings,
        supervisor: Addr<RoomSupervisor>,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
    ) -> Self {
        BrokerLink {
            settings,
            supervisor,
            metrics,
            readiness,
            consumers: Vec::new(),
            cluster: None,
            connection: None,
            generation: 0,
            attempt: 0,
            connect_failures: 0,
            connecting: false,
            retry: None,
            events: None,
            shutting_down: false,
        }
    }

    /// Cluster mode: consume the cluster's shared queues, append to and read its log (see the
    /// module doc).
    pub fn in_cluster(mut self, cluster: ClusterParts) -> Self {
        self.cluster = Some(cluster);
        self
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down || self.connecting || self.connection.is_some() {
            return;
        }
        self.connecting = true;
        self.readiness.set_amqp(AmqpState::Connecting);
        let url = self.settings.url.clone();
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("pushgate {}", self.settings.node_id).into());
        // `Connection::connect` runs lapin on the ambient tokio runtime: actix's.
        let attempt = async move {
            match actix::clock::timeout(CONNECT_TIMEOUT, Connection::connect(&url, properties))
                .await
            {
                Ok(result) => result.map_err(LinkError::Connect),
                Err(_elapsed) => Err(LinkError::ConnectTimeout),
            }
        };
        ctx.spawn(
            attempt
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(connection) => act.connected(connection, ctx),
                    Err(e) => {
                        act.connecting = false;
                        act.readiness.set_amqp(AmqpState::Disconnected);
                        act.connect_failures += 1;
                        let delay = backoff_delay(act.attempt);
                        // The first failure, then about once a minute at the 5 s cap.
                        if act.connect_failures % 12 == 1 {
                            log::warn!(
                                "{e} (attempt {}); not ready, retrying in {delay:?}",
                                act.connect_failures
                            );
                        } else {
                            log::debug!("{e}; retrying in {delay:?}");
                        }
                        act.schedule(Step::Connect, ctx);
                    }
                }),
        );
    }

    fn connected(&mut self, connection: Connection, ctx: &mut Context<Self>) {
        self.connecting = false;
        if self.shutting_down {
            ctx.spawn(
                async move {
                    let _ = connection.close(200, "OK".into()).await;
                }
                .into_actor(self),
            );
            return;
        }
        if self.generation > 0 {
            self.metrics.amqp_reconnects.inc();
        }
        self.generation += 1;
        // `attempt` is reset only once consuming: a connection that keeps failing right after
        // the handshake still backs off.
        self.connect_failures = 0;
        self.readiness.set_amqp(AmqpState::Connected);
        log::info!(
            "connected to the broker (connection {} of this process)",
            self.generation
        );
        let generation = self.generation;
        let events = connection
            .events_listener()
            .map(move |event| LinkEvent { generation, event });
        if let Some(old) = self.events.replace(ctx.add_stream(events)) {
            ctx.cancel_future(old);
        }
        self.connection = Some(Arc::new(connection));
        self.setup(ctx);
    }

    /// Declare the topology, then attach every consumer not consuming yet.
    fn setup(&mut self, ctx: &mut Context<Self>) {
        let Some(connection) = self.connection.clone() else {
            return;
        };
        let generation = self.generation;
        let settings = self.settings.clone();
        let consumers: Vec<_> = self
            .consumers
            .iter()
            .map(|c| (c.name, c.attach.clone()))
            .collect();
        let cluster = self.cluster.clone();
        let work = async move {
            let cluster_settings = cluster.as_ref().map(|c| &c.settings);
            if let Err(e) = topology::declare(&connection, &settings, cluster_settings).await {
                return vec![LinkError::Topology(e)];
            }
            if let Some(cluster) = &cluster {
                if let Err(e) = attach_appender(&connection, cluster).await {
                    return vec![e];
                }
            }
            let mut errors = Vec::new();
            for (kind, attach) in consumers {
                let request = Attach {
                    connection: connection.clone(),
                    generation,
                };
                match attach.send(request).await {
                    Ok(Ok(())) => {}
                    Ok(Err(source)) => errors.push(LinkError::Consume { kind, source }),
                    Err(source) => errors.push(LinkError::ConsumerGone { kind, source }),
                }
            }
            errors
        };
        ctx.spawn(work.into_actor(self).map(move |errors, act, ctx| {
            if act.shutting_down || generation != act.generation || act.connection.is_none() {
                return;
            }
            if errors.is_empty() {
                act.attempt = 0;
                if let Some(cluster) = &act.cluster {
                    log::info!(
                        "consuming the cluster's shared queues `{}` and `{}`, appending to and \
                         reading its log `{}`",
                        cluster
                            .settings
                            .queue_name(crate::routing::EventFamily::Quota),
                        cluster
                            .settings
                            .queue_name(crate::routing::EventFamily::Device),
                        cluster.settings.log_name()
                    );
                    return;
                }
                let node = &act.settings.node_id;
                log::info!(
                    "consuming `pushgate.{node}.quota` and `pushgate.{node}.device`; they outlive \
                     this process by RABBITMQ_QUEUE_EXPIRES_MS ({:?}), for a restart under \
                     the same NODE_ID",
                    Duration::from_millis(act.settings.queue_expires_ms.into())
                );
                return;
            }
            let delay = backoff_delay(act.attempt);
            for e in &errors {
                log::error!("{e}; not ready, retrying in {delay:?}");
            }
            if act.connection_alive() {
                act.schedule(Step::Setup, ctx);
            } else {
                act.connection_lost("connection closed during setup", ctx);
            }
        }));
    }

    fn connection_alive(&self) -> bool {
        self.connection
            .as_ref()
            .is_some_and(|c| c.status().connected())
    }

    fn connection_lost(&mut self, reason: &str, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let Some(connection) = self.connection.take() else {
            return;
        };
        log::warn!("lost the broker connection ({reason}); reconnecting");
        if let Some(events) = self.events.take() {
            ctx.cancel_future(events);
        }
        for consumer in &self.consumers {
            consumer.detach.do_send(Detach { graceful: false });
        }
        if let Some(cluster) = &self.cluster {
            cluster.appender.detach();
        }
        self.readiness.set_amqp(AmqpState::Disconnected);
        drop(connection);
        self.schedule(Step::Connect, ctx);
    }

    fn schedule(&mut self, step: Step, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let delay = backoff_delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let handle = ctx.run_later(delay, move |act, ctx| {
            act.retry = None;
            match step {
                Step::Connect => act.connect(ctx),
                Step::Setup => act.setup(ctx),
            }
        });
        if let Some(old) = self.retry.replace(handle) {
            ctx.cancel_future(old);
        }
    }
}

/// Cluster mode: open the appender's channel, in confirm mode, and hand it over.
async fn attach_appender(connection: &Connection, cluster: &ClusterParts) -> Result<(), LinkError> {
    let fail = |source| LinkError::Consume {
        kind: cluster::reader::NAME,
        source: ConsumeError::Broker {
            queue: cluster.settings.log_name(),
            source,
        },
    };
    let channel = connection.create_channel().await.map_err(fail)?;
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .map_err(fail)?;
    cluster.appender.attach(channel);
    Ok(())
}

impl Actor for BrokerLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let link = ctx.address().recipient::<ConsumerStopped>();
        let devices = SharedDeviceStatus::default();
        let mut quota = QuotaEventsConsumer::new(
            &self.settings,
            self.supervisor.clone(),
            self.metrics.clone(),
            self.readiness.clone(),
            link.clone(),
        );
        let mut device = DeviceEventsConsumer::new(
            &self.settings,
            self.supervisor.clone(),
            self.metrics.clone(),
            self.readiness.clone(),
            link.clone(),
        );
        if let Some(cluster) = &self.cluster {
            // The quota consumer routes no device event: its cache is its own.
            quota = quota.in_cluster(cluster, SharedDeviceStatus::default());
            device = device.in_cluster(cluster, devices.clone());
        }
        let (quota, device) = (quota.start(), device.start());
        self.consumers = vec![
            ConsumerHandle {
                name: ConsumerKind::Quota.name(),
                attach: quota.clone().recipient(),
                detach: quota.recipient(),
            },
            ConsumerHandle {
                name: ConsumerKind::Device.name(),
                attach: device.clone().recipient(),
                detach: device.recipient(),
            },
        ];
        if let Some(cluster) = &self.cluster {
            let reader = LogReader::new(
                cluster,
                self.settings.prefetch,
                self.supervisor.clone(),
                devices,
                self.metrics.clone(),
                self.readiness.clone(),
                link,
            )
            .start();
            self.consumers.push(ConsumerHandle {
                name: cluster::reader::NAME,
                attach: reader.clone().recipient(),
                detach: reader.recipient(),
            });
            let beacon = PresenceBeacon::new(
                cluster.settings.clone(),
                &self.settings.node_id,
                self.supervisor.clone(),
                cluster.presence.clone(),
                ctx.address().recipient(),
            )
            .with_server_figures(cluster.server_figures.clone())
            .start();
            self.consumers.push(ConsumerHandle {
                name: cluster::beacon::NAME,
                attach: beacon.clone().recipient(),
                detach: beacon.recipient(),
            });
        }
        ctx.run_interval(WATCHDOG_INTERVAL, |act, ctx| {
            if act.connection.is_some() && !act.connection_alive() {
                act.connection_lost("connection no longer open", ctx);
            }
        });
        self.connect(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.readiness.set_amqp(AmqpState::Disconnected);
    }
}

impl StreamHandler<LinkEvent> for BrokerLink {
    fn handle(&mut self, msg: LinkEvent, ctx: &mut Self::Context) {
        if msg.generation != self.generation {
            return;
        }
        match msg.event {
            // Channel errors (a refused declaration or consume) come here too; those leave the
            // connection open and are handled where the call failed.
            Event::Error(e) if !self.connection_alive() => {
                self.connection_lost(&e.to_string(), ctx)
            }
            Event::Error(e) => log::debug!("broker error event: {e}"),
            Event::ConnectionBlocked(reason) => {
                log::warn!("the broker blocked the connection: {reason}")
            }
            Event::ConnectionUnblocked => log::info!("the broker unblocked the connection"),
            _ => {}
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // The connection's event stream ended with it; the watchdog notices the rest.
    }
}

impl Handler<ConsumerStopped> for BrokerLink {
    type Result = ();

    fn handle(&mut self, msg: ConsumerStopped, ctx: &mut Self::Context) {
        if self.shutting_down || msg.generation != self.generation || self.connection.is_none() {
            return;
        }
        if self.connection_alive() {
            log::warn!(
                "{} consumer was cancelled; declaring its queue and consuming again",
                msg.name
            );
            self.schedule(Step::Setup, ctx);
        } else {
            self.connection_lost("consumer stream ended", ctx);
        }
    }
}

impl Handler<Shutdown> for BrokerLink {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        if self.shutting_down {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        log::info!("stopping the RabbitMQ consumers");
        self.shutting_down = true;
        for handle in [self.retry.take(), self.events.take()]
            .into_iter()
            .flatten()
        {
            ctx.cancel_future(handle);
        }
        let detached: Vec<_> = self
            .consumers
            .iter()
            .map(|c| c.detach.send(Detach { graceful: true }))
            .collect();
        let connection = self.connection.take();
        // One deadline for both steps, so that the answer comes within SHUTDOWN_TIMEOUT.
        let deadline = actix::clock::Instant::now() + SHUTDOWN_TIMEOUT;
        let left = move || deadline.saturating_duration_since(actix::clock::Instant::now());
        let work = async move {
            if actix::clock::timeout(left(), futures::future::join_all(detached))
                .await
                .is_err()
            {
                log::warn!("consumers did not stop within {SHUTDOWN_TIMEOUT:?}");
            }
            if let Some(connection) = connection.filter(|c| c.status().connected()) {
                match actix::clock::timeout(left(), connection.close(200, "OK".into())).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => log::debug!("closing the broker connection: {e}"),
                    Err(_) => log::warn!("closing the broker connection timed out"),
                }
            }
        };
        AtomicResponse::new(Box::pin(work.into_actor(self).map(|(), act, ctx| {
            act.readiness.set_amqp(AmqpState::Disconnected);
            log::info!("RabbitMQ consumers stopped");
            ctx.stop();
        })))
    }
}
