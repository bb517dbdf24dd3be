//! Backpressure on HTTP/1 connections: a bound on what one makes the server buffer when its
//! client pipelines requests and does not read the answers.
//!
//! actix-http's HTTP/1 dispatcher decodes up to 16 pipelined requests at a time (from a read
//! buffer of up to 128 KiB) and calls the application for each of them, encoding every
//! answer into its write buffer whether or not the socket takes any of it. A client that
//! pipelines thousands of `GET /metrics` and never reads made the server hold every answer
//! (12–18 MB a connection).
//!
//! It also reads as much as the client sends, up to 128 KiB ahead, and decodes every complete
//! request in it at once (about 4 KiB each, whatever their size on the wire: a non-reading
//! client's 5,000 pipelined `GET /health` cost as much as its answers).
//!
//! So each connection is served through a [`BackloggedStream`] (`stream.rs`), a thin wrapper
//! of its `TcpStream`, and keeps a [`Pressure`] (`pressure.rs`): the write backlog (the bytes
//! the socket has not taken yet, exact since each of the dispatcher's writes offers the whole
//! unwritten rest of its buffer, plus the answers produced since that write), whether a
//! request is being served, and so how much may be read. The pressure reaches the
//! application's side through the connection's data (`on_connect_ext`), where [`Gated`]
//! (`gate.rs`) notes each request as served until answered and holds it (its future pending)
//! while the backlog is over [`BACKLOG_LIMIT`], until a write takes it back under.
//!
//! Reads follow the pressure: none while the backlog is over the limit; otherwise at most
//! [`READ_AHEAD`] bytes per turn of the connection's task, and while a request is being
//! served, its body and at most [`READ_AHEAD`] bytes more (enough to see the client close its
//! side during a long poll). So a connection costs at most the limit, one answer, and the
//! requests decoded from a few KiB; a client that reads and does not pipeline sees no
//! difference (one `Rc` clone and a few `Cell` updates per request, one small allocation per
//! connection). Upgraded connections leave the wrapper behind (it buffers nothing:
//! [`BackloggedStream::into_inner`]).

mod gate;
mod pressure;
mod stream;

pub use gate::{Gated, GatedService};
pub use pressure::{Pressure, BACKLOG_LIMIT, READ_AHEAD};
pub use stream::BackloggedStream;
