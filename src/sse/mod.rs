//! Server-Sent Events for clients without socket.io (`GET /api/v1/stream`, served by
//! `http/sse.rs`): one stream per request, carrying its user's pushes, as events.
//!
//! - [`stream_session`]: the stream's actor, a session of the room supervisor.
//! - [`event`]: a push packet as an SSE event, and the stream's other lines.
//! - [`outbox`]: the queue between the actor and the response body, which measures how far
//!   the client is behind.

pub mod event;
pub mod outbox;
pub mod stream_session;

pub use stream_session::SseStream;
