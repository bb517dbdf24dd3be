//! pushgate's transport-independent core.
//!
//! Everything here speaks in rooms, sessions and pre-encoded packets, never in sockets or HTTP:
//!
//! - [`room_supervisor::RoomSupervisor`] owns the room registry and the session registry, and
//!   turns each accepted push into one encoded packet handed to the [`worker_rooms::WorkerRooms`]
//!   actor of every worker thread with members in its room.
//! - [`worker_rooms::WorkerRooms`] is one actor per worker thread; it keeps each room's
//!   members on that thread as a [`room::RoomState`] and keeps every session's pushes in
//!   offset order across its rooms. A room fans a packet out to
//!   its members, through each one's [`inbox::Inbox`] on that thread, at the times its
//!   [`coalescer::Coalescer`] says, within the window [`adaptive_window`] chooses (fixed, or
//!   adapting to the room's load).
//! - [`messages`] are the messages between sessions, rooms, the supervisor and the pushers.
//! - [`routing`] is the pure RabbitMQ event → rooms table; the consumers feed it, the device
//!   consumer with its [`device_status_cache::DeviceStatusCache`].
//! - [`consumers`] are the RabbitMQ side: the broker link and the quota and device consumers
//!   (the quota consumer coalesces storms of `quota.updated`, [`consumers::storm_coalescer`]).
//! - [`recovery`] is connection-state recovery: the push log and the kept sessions (each behind
//!   a trait, in memory for now), and how a reconnecting session gets its state back.
//! - [`service_health`] is what admins are told about Consul's service health: the answer's
//!   state, the debounce, the notification bodies and the shared snapshot (the HTTP watcher is
//!   an edge actor of the server crate).
//! - [`cluster`] is cluster mode (`CLUSTER=rabbitmq`): the push log on the broker that every
//!   node appends to and reads, and the shared event queues.
//! - [`admin_view`] is what the Socket.IO Admin UI is shown: the live sockets, their rooms and
//!   the node's statistics, and the operator's actions handed to the sockets' sessions.
//! - [`metrics`] and [`readiness`] are the shared counters behind `/metrics` and `/ready`;
//!   [`process_metrics`] adds the standard `process_*` ones and `pushgate_build_info`, and
//!   [`push_stats`] the push statistics (per event and source, latency to the socket, busiest
//!   rooms) behind `/api/v1/stats` and part of `/metrics`.

pub mod adaptive_window;
pub mod admin_view;
pub mod cluster;
pub mod coalescer;
pub mod consumers;
pub mod device_status_cache;
pub mod inbox;
pub mod messages;
pub mod metrics;
pub mod process_metrics;
pub mod push_stats;
pub mod readiness;
pub mod recovery;
pub mod room;
pub mod room_supervisor;
pub mod routing;
pub mod service_health;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod worker_rooms;

pub use inbox::{Inbox, OpenedInbox};
pub use messages::*;
pub use room_supervisor::RoomSupervisor;
