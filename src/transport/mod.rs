//! The Engine.IO transports that carry a [`SocketSession`](crate::session::SocketSession):
//! WebSocket (the only file that uses actix-web-actors), the IO of upgraded connections (with
//! the frame size limit enforced on their raw bytes, and the frames pushgate encodes itself
//! for them), HTTP long-polling, the heartbeat timer both transports keep, and the close
//! reason a WebSocket's bad input earns.

pub mod frame_limit;
pub mod heartbeat_timer;
pub mod input_violation;
pub mod polling;
pub mod upgraded;
pub mod websocket;
pub mod wire_frames;
