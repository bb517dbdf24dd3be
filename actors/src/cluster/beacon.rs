//! The presence beacon: the actor that sends this node's figures every
//! [`HEARTBEAT_INTERVAL`] and records the other nodes' in the [`PresenceBoard`] (see
//! [`super::presence`]).
//!
//! The [`BrokerLink`](crate::consumers::BrokerLink) attaches it after each (re)connection,
//! as it does the consumers: it opens a channel, declares the fanout exchange and a queue of
//! its own (server-named, exclusive, auto-deleted), binds it, and consumes without acks.
//!
//! Figures go out and come in through [`super::figures_codec`]: unreadable or unbelievable
//! ones are skipped (logged at debug level). When the node runs the Admin UI, the beacon asks
//! its view for the [`ServerFigures`](super::presence::ServerFigures) to send with them.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, ExchangeKind};

use super::figures_codec::{self, MAX_FIGURES_BYTES};
use super::presence::{GetNodeFigures, GetServerFigures, PresenceBoard, HEARTBEAT_INTERVAL};
use super::ClusterSettings;
use crate::consumers::delivery_stream::{self, StreamItem};
use crate::consumers::event_consumer::ConsumeError;
use crate::consumers::messages::{Attach, ConsumerStopped, Detach};
use crate::room_supervisor::RoomSupervisor;

/// The name the beacon goes by in logs and in [`ConsumerStopped`].
pub const NAME: &str = "presence";

struct Active {
    generation: u64,
    channel: Channel,
    stream: SpawnHandle,
}

/// Sends this node's figures and hears the others'; see the module doc.
pub struct PresenceBeacon {
    cluster: ClusterSettings,
    node_id: String,
    supervisor: Addr<RoomSupervisor>,
    board: Arc<PresenceBoard>,
    server_figures: Option<Recipient<GetServerFigures>>,
    link: Recipient<ConsumerStopped>,
    active: Option<Active>,
    retired: bool,
}

impl PresenceBeacon {
    /// A beacon of node `node_id` in `cluster`, reading its figures from `supervisor` and
    /// keeping the others' in `board`.
    pub fn new(
        cluster: ClusterSettings,
        node_id: &str,
        supervisor: Addr<RoomSupervisor>,
        board: Arc<PresenceBoard>,
        link: Recipient<ConsumerStopped>,
    ) -> Self {
        PresenceBeacon {
            cluster,
            node_id: node_id.to_owned(),
            supervisor,
            board,
            server_figures: None,
            link,
            active: None,
            retired: false,
        }
    }

    /// Send the [`ServerFigures`](super::presence::ServerFigures) `view` gives with this
    /// node's figures (`view`: the Admin UI's, when the node runs it).
    pub fn with_server_figures(mut self, view: Option<Recipient<GetServerFigures>>) -> Self {
        self.server_figures = view;
        self
    }

    /// Send this node's figures, if attached.
    fn beat(&mut self, ctx: &mut Context<Self>) {
        let Some(active) = &self.active else {
            return;
        };
        let channel = active.channel.clone();
        let exchange = self.cluster.presence_name();
        let (node_id, origin) = (self.node_id.clone(), self.cluster.origin.clone());
        let supervisor = self.supervisor.clone();
        let view = self.server_figures.clone();
        let send = async move {
            let Ok(mut figures) = supervisor.send(GetNodeFigures).await else {
                return;
            };
            figures.node_id = node_id;
            figures.origin = origin;
            if let Some(view) = view {
                figures.server = view.send(GetServerFigures).await.ok();
            }
            let body = figures_codec::encode(&figures);
            if body.len() > MAX_FIGURES_BYTES {
                log::warn!(
                    "this node's figures ({} bytes, {} rooms) exceed what the other nodes \
                     read ({MAX_FIGURES_BYTES} bytes): they count without this node",
                    body.len(),
                    figures.rooms.len()
                );
                return;
            }
            let sent = channel
                .basic_publish(
                    exchange.as_str().into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default(),
                )
                .await;
            if let Err(e) = sent {
                log::debug!("sending this node's figures: {e}");
            }
        };
        ctx.spawn(send.into_actor(self));
    }
}

impl Actor for PresenceBeacon {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(HEARTBEAT_INTERVAL, |act, ctx| act.beat(ctx));
    }
}

impl Handler<Attach> for PresenceBeacon {
    type Result = AtomicResponse<Self, Result<(), ConsumeError>>;

    fn handle(&mut self, msg: Attach, ctx: &mut Self::Context) -> Self::Result {
        let exchange = self.cluster.presence_name();
        let current = self.active.as_ref().map(|a| a.generation);
        if let Some(answer) = msg.settled(self.retired, current, &exchange) {
            return AtomicResponse::new(Box::pin(fut::ready(answer)));
        }
        if let Some(old) = self.active.take() {
            ctx.cancel_future(old.stream);
        }
        let generation = msg.generation;
        let start = async move {
            let fail = |source| ConsumeError::Broker {
                queue: exchange.clone(),
                source,
            };
            let channel = msg.connection.create_channel().await.map_err(fail)?;
            let durable = ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            };
            channel
                .exchange_declare(
                    exchange.as_str().into(),
                    ExchangeKind::Fanout,
                    durable,
                    FieldTable::default(),
                )
                .await
                .map_err(fail)?;
            let own = QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            };
            let queue = channel
                .queue_declare("".into(), own, FieldTable::default())
                .await
                .map_err(fail)?;
            channel
                .queue_bind(
                    queue.name().clone(),
                    exchange.as_str().into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(fail)?;
            let no_ack = BasicConsumeOptions {
                no_ack: true,
                exclusive: true,
                ..BasicConsumeOptions::default()
            };
            let consumer = channel
                .basic_consume(
                    queue.name().clone(),
                    "presence".into(),
                    no_ack,
                    FieldTable::default(),
                )
                .await
                .map_err(fail)?;
            Ok((channel, consumer))
        };
        AtomicResponse::new(Box::pin(start.into_actor(self).map(
            move |result, act, ctx| {
                let (channel, consumer) = result?;
                let stream = ctx.add_stream(delivery_stream::tagged(consumer, generation));
                act.active = Some(Active {
                    generation,
                    channel,
                    stream,
                });
                act.beat(ctx);
                Ok(())
            },
        )))
    }
}

impl StreamHandler<StreamItem> for PresenceBeacon {
    fn handle(&mut self, msg: StreamItem, ctx: &mut Self::Context) {
        let current = self
            .active
            .as_ref()
            .is_some_and(|a| a.generation == msg.generation);
        if !current {
            return;
        }
        match msg.item {
            Some(Ok(delivery)) => match figures_codec::decode(&delivery.data) {
                Ok(figures) => self.board.record(figures, Instant::now()),
                Err(e) => log::debug!("node figures skipped: {e}"),
            },
            Some(Err(e)) => log::debug!("presence consumer: {e}"),
            None => {
                if let Some(active) = self.active.take() {
                    ctx.cancel_future(active.stream);
                }
                self.link.do_send(ConsumerStopped {
                    name: NAME,
                    generation: msg.generation,
                });
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl Handler<Detach> for PresenceBeacon {
    type Result = ();

    fn handle(&mut self, msg: Detach, ctx: &mut Self::Context) {
        self.retired |= msg.graceful;
        if let Some(active) = self.active.take() {
            ctx.cancel_future(active.stream);
        }
    }
}
