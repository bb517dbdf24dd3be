//! pushgate: a realtime Socket.IO push server fed by RabbitMQ, a drop-in replacement for the
//! cloud-phone platform's NestJS notification gateway.
//!
//! This crate holds the edges (configuration, JWT auth, the Engine.IO / Socket.IO codec, the
//! transports and session, the HTTP routes); the transport-independent core (rooms, the room
//! supervisor, RabbitMQ consumers, routing) lives in `pushgate-actors`.
//!
//! # Layout: the life of a push
//!
//! A RabbitMQ event, from the broker to a browser's socket, in the order it travels:
//!
//! 1. `actors/src/consumers/event_consumer.rs::EventConsumer::handle_delivery`: one delivery
//!    of the quota or device queue, read one at a time.
//! 2. `actors/src/routing/mod.rs::route`: the pure event → rooms table (docs/rabbitmq.md) turns it
//!    into [`RoutedPush`](pushgate_actors::routing::RoutedPush)es (or ignores it, or calls it
//!    poison); `event_consumer.rs::settle` sends each as a
//!    [`Push`](pushgate_actors::Push) and acks the delivery once the supervisor has taken them
//!    (a `quota.updated` in a storm may first be held, `consumers/storm_coalescer.rs`).
//! 3. `actors/src/room_supervisor.rs::RoomSupervisor` (`Handler<Push>`): encodes the push once
//!    into a Socket.IO packet (`protocol/socketio.rs::encode_push_message`; with recovery on,
//!    with its offset, logged by `actors/src/recovery/`) and
//!    `Shards::fanout`s it to the fan-out actor of each worker thread that has members in the
//!    room.
//! 4. `actors/src/worker_rooms.rs::WorkerRooms` (`Handler<Fanout>`): has the thread's other rooms
//!    deliver what they hold for the room's members (offset order), then
//!    `actors/src/room.rs::RoomState::push` hands the packet to each member's inbox, at once or
//!    at the end of a coalescing window (`coalescer.rs`); an alert at once, after what the
//!    room held.
//! 5. `actors/src/inbox.rs::Inbox::push`: a queue on the member's own thread; it wakes the
//!    connection that reads it.
//! 6. WebSocket: `transport/upgraded/driver.rs::Driver::poll` takes the inbox
//!    (`upgraded/wire.rs::Wire::take_inbox`), encodes the delivery into WebSocket frames once
//!    for every receiver on the thread (`Wire::push_delivery`, `transport/wire_frames.rs`) and
//!    writes them (`Wire::poll_write_to`). Long-polling: `transport/polling.rs::PollingSession`
//!    reads its inbox as `Deliver` messages and answers the waiting GET; after an upgrade it
//!    hands each delivery to its WebSocket (`CarrierCommand::Pushes`), which writes it through
//!    the same `Wire::push_delivery`. Server-Sent Events: `sse/stream_session.rs::SseStream`
//!    reads its inbox as `Deliver` messages and writes each packet as one event
//!    (`sse/event.rs::push_event`).
//!
//! An HTTP push enters at step 3: `http/api.rs::push` checks the key, reads the body
//! (`http/body.rs`), and sends the `Push`. A client joins the rooms through the same
//! supervisor: `transport/*` → [`session::SocketSession`] (CONNECT, JWT in `auth.rs`, client
//! events in `session/client_request.rs`, checked by `acl.rs`) → `RegisterSession` carrying the
//! session's [`OpenedInbox`](pushgate_actors::OpenedInbox) → `JoinRoom`. A CONNECT asking for
//! its kept session back (`session/recovery.rs`) waits for the supervisor's `Registration`
//! instead (the transport awaits it with `ctx.wait`), writes the pushes it missed a bounded
//! slice at a time (`session/replay.rs`), and reads its inbox behind them. How a session ends, and what the client then does, is the table in
//! [`disconnect`].
//!
//! In cluster mode (`CLUSTER=rabbitmq`) an HTTP push and a routed event do not enter at
//! step 3: they are appended to the cluster's log (`cluster.rs`,
//! `actors/src/cluster/`), and every node's log reader hands what it reads to its supervisor
//! (`Handler<LoggedPush>`), which goes on from step 3.
//!
//! Service health (docs/socketio.md) enters at step 3 too: [`consul_watcher::ConsulWatcher`]
//! follows Consul with blocking queries and sends each announced change as a `Push` to room
//! `admin`; a session whose client joins `admin` reads the snapshot
//! (`session/service_health.rs`).

pub mod acl;
pub mod admin_ui;
pub mod auth;
pub mod client_event_limit;
pub mod cluster;
pub mod config;
pub mod consul_watcher;
pub mod disconnect;
pub mod heartbeat;
pub mod http;
pub mod logging;
pub mod protocol;
pub mod refusal_log;
pub mod server;
pub mod session;
pub mod sse;
pub mod transport;

pub use server::{start, Running, ShutdownHandle};
