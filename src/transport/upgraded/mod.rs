//! Upgraded connections without actix-http's per-connection buffers.
//!
//! actix-http's HTTP/1 dispatcher keeps an 8 KiB read buffer and an 8 KiB write buffer (plus
//! its payload channel and timers) for as long as a connection lives, and a WebSocket started
//! the usual way is streamed *through* the dispatcher as a response body: an idle WebSocket
//! costs ~15 KiB, most of it in those buffers. Instead, the server is built with an upgrade
//! service ([`service`]): the dispatcher hands every request carrying `Upgrade: websocket`
//! (and `CONNECT`) over with its connection and buffers, and [`serve`] drops the buffers.
//!
//! One concept per file, in the order a connection meets them:
//!
//! - [`service`] (`service.rs`) answers such a request with the application itself, so that
//!   every check and every answer (Origin, handshake headers, unknown sid, CORS headers,
//!   404s, ...) is the one the HTTP path gives. The handler that accepts a WebSocket leaves
//!   the connection's start in the request's [`Handover`] (`handover.rs`, see
//!   `WsTransport::start`) and answers 101; the 101 goes out in one write with the first
//!   frames (the Engine.IO open packet). Any other answer (an error, a fallback) is written
//!   in full and the connection is closed, as a request whose body is "the rest of the
//!   connection" cannot be followed by another one.
//! - A request that names the upgrade but is no handshake (not a GET: an API POST, say) is
//!   an ordinary request: its body is read per its `Content-Length`, bounded in size and
//!   time ([`PlainBodyLimits`], `plain_body.rs`), and the application answers it as any.
//! - [`Input`] (`input.rs`) is the socket's read side, as the WebSocket context's input:
//!   reads go into the worker thread's read buffer and are handed on only when the context
//!   asks (so a busy actor reads nothing), at most [`READ_BUDGET`] bytes in a row; a frame
//!   whose header announces more than the limit ends the input at once.
//! - [`Wire`] (`wire.rs`) is the write side: one queue, in order, of the room pushes the
//!   connection takes from its session's inbox itself, the data frames the actor encodes,
//!   then the chunks the context encodes (control frames: pongs, the close frame).
//! - The driver (`driver.rs`) is the connection's task: it writes the wire to the socket
//!   (several chunks per `writev`) and polls the context only when the context itself was
//!   woken (its mailbox, timers or input), so a push runs no actor; it drops a client more
//!   than [`MAX_UNWRITTEN`] bytes behind as a slow reader, and gives a closed session's last
//!   frames [`LAST_FRAMES_TIMEOUT`] to go out, with no push after its close frame.
//! - [`Connections`] (`connections.rs`) counts the open ones: each runs as a task of its own
//!   on the worker's thread (so that the dispatcher's task, ~3.8 KiB, ends with the
//!   handshake), which actix-server no longer counts, and the shutdown waits for their close
//!   frames to go out.
//!
//! An idle connection holds no buffer here at all. EOF on the socket (the client closed or
//! half-closed its side) ends the context's input, and the actor stops; a write error drops
//! the context, which stops the actor too.

mod connections;
mod driver;
mod handover;
mod input;
mod plain_body;
mod service;
mod wire;

pub use connections::Connections;
pub use driver::LAST_FRAMES_TIMEOUT;
pub use handover::{Accepted, Handover, Output};
pub use input::{Input, InputFault, READ_BUDGET};
pub use plain_body::{PlainBodyError, PlainBodyLimits};
pub use service::{serve, service};
pub use wire::{Wire, MAX_UNWRITTEN};
