//! The Engine.IO transports that carry a [`SocketSession`](crate::session::SocketSession):
//! WebSocket (the only file that uses actix-web-actors), the IO of upgraded connections (with
//! the frame size limit enforced on their raw bytes, and the frames pushgate encodes itself
//! for them), HTTP long-polling, the heartbeat timer both transports keep, the close reason a
//! WebSocket's bad input earns, and the bound on what an HTTP/1 connection whose client does
//! not read makes the server buffer.

pub mod frame_limit;
pub mod heartbeat_timer;
pub mod http1_backpressure;
pub mod input_violation;
pub mod polling;
pub mod upgraded;
pub mod websocket;
pub mod wire_frames;
