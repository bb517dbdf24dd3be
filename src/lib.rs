//! pushgate: a realtime Socket.IO push server fed by RabbitMQ, a drop-in replacement for the
//! cloud-phone platform's NestJS notification gateway.
//!
//! This crate holds the edges (configuration, JWT auth, the Engine.IO / Socket.IO codec, the
//! transports and session, the HTTP routes); the transport-independent core (rooms, the room
//! supervisor, RabbitMQ consumers, routing) lives in `pushgate-actors`.

pub mod acl;
pub mod auth;
pub mod client_event_limit;
pub mod config;
pub mod disconnect;
pub mod heartbeat;
pub mod http;
pub mod protocol;
pub mod refusal_log;
pub mod server;
pub mod session;
pub mod transport;

pub use server::{start, Running, ShutdownHandle};
