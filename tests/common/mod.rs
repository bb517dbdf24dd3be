//! Shared harness for the integration tests, one concept a file: the server under test
//! ([`server`]), plain HTTP ([`http_client`]), raw Engine.IO clients over WebSocket
//! ([`raw_client`]) and over long-polling ([`polling_client`]), Server-Sent Events
//! ([`sse_client`]), the real binary as a child process ([`process`]), the node end-to-end
//! runner ([`node`]), the real RabbitMQ's side of a test ([`broker`]), and cluster mode's nodes
//! ([`cluster`]).
#![allow(dead_code, unused_imports)] // each test binary uses a different part of the harness

pub mod broker;
pub mod cluster;
pub mod http_client;
pub mod node;
pub mod polling_client;
pub mod process;
pub mod raw_client;
pub mod server;
pub mod sse_client;

pub use broker::*;
pub use cluster::*;
pub use http_client::*;
pub use node::*;
pub use polling_client::*;
pub use process::*;
pub use raw_client::*;
pub use server::*;
pub use sse_client::*;

/// The JWT secret every test server uses.
pub const SECRET: &str = "integration-test-secret-0123456789abcdef";
/// The push API key every test server uses.
pub const API_KEY: &str = "integration-test-api-key";

/// Socket.IO packets a client may not send once connected (each is a protocol error on
/// either transport).
pub const MALFORMED_PACKETS: [&str; 13] = [
    "",
    "x",
    "9",
    "4",
    "4x",
    "42",
    "42{\"not\":\"array\"}",
    "42[]",
    "42[\"disconnect\"]",
    "42[\"subscribe\"",
    "45-[\"x\"]",
    "0",
    "44{\"message\":\"client may not\"}",
];
