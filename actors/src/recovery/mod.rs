//! Connection-state recovery: a client whose connection dropped reconnects with its private
//! session id (`pid`) and the offset of the last push it got, and gets back its socket id, its
//! rooms and every push it missed, then live pushes, none lost and none repeated.
//!
//! # The parts
//!
//! - [`offset`]: offsets are opaque strings `<epoch>-<sequence>`, increasing in delivery order,
//!   unique per process life.
//! - [`PushLog`] (the seam where pushes are logged) and its in-process [`MemoryPushLog`]: every
//!   push, stored once as the packet its receivers got, bounded in bytes, oldest dropped first.
//! - [`PositionedPushLog`]: the same history at positions given to it, the cluster's
//!   (`CLUSTER=rabbitmq`): its stream numbers the pushes, so offsets are cluster-wide.
//! - [`SessionRecords`] (the seam where ended sessions are kept) and its in-process
//!   [`MemorySessionRecords`]: kept for the window, then remembered as expired for a while.
//! - [`LogSessionRecords`]: the cluster's kept sessions, every node's, fed by the session
//!   records of the cluster's log, each taken once cluster-wide by a claim read back.
//! - [`filter::receives`]: which logged pushes a recovering session gets; both logs keep their
//!   pushes as [`filter::KeptPush`]es and answer with [`filter::received`].
//! - [`RecoveryStore`]: both seams together and the recovery decision. A cluster mode replaces
//!   the two boxes with broker-backed ones; nothing else changes.
//!
//! # What the room supervisor does (see `room_supervisor.rs`)
//!
//! With recovery on ([`RoomSupervisor::with_recovery`](crate::RoomSupervisor::with_recovery)),
//! every accepted [`Push`](crate::Push) gets the next offset from the log and is encoded once
//! with it as its last argument, `42["notification",{...},"<offset>"]`; the packet is stored
//! once (a reference-counted clone) and fanned out as before. A push no live session receives
//! is logged only while some session is kept (it may be one of theirs), or once a stream has
//! registered (`room_supervisor/streams.rs`: a stream's client may resume from any offset).
//!
//! # What the edge (the session) does
//!
//! - On CONNECT with a valid token, it draws a new random `pid` (at least 128 bits; never log
//!   it) and sends [`RegisterSession`](crate::RegisterSession) with its new socket id `sid`,
//!   `pid: Some(..)` (`None` when recovery is off), the token's `user_id`, and — when the
//!   client's auth carried `pid` (and perhaps `offset`) — `recover: Some(Recover { pid,
//!   offset, may_join })`, `may_join` answering from the NEW token's rights (so `admin` comes
//!   back only to a token that is still admin).
//! - It awaits the [`Registration`](crate::Registration):
//!   - `Recovered { sid, rooms, missed }`: reply CONNECT with that `sid` and the client's old
//!     `pid`; the session is already in `rooms` (no `JoinRoom` is needed, its `user:` room
//!     included); write every packet of `missed`, in order, BEFORE anything from its inbox
//!     (the supervisor registered it in the same step it collected `missed`, so every later
//!     push is in the inbox and none is in both); then `welcome` with `"recovered": true`.
//!   - `Fresh { .. }`: reply CONNECT with its own new `sid` and `pid`, join `user:<sub>` as
//!     always, `welcome` with `"recovered": false`. The reason is for metrics only (the
//!     supervisor counts it); the client must not learn it.
//! - When the session ends, [`UnregisterSession`](crate::UnregisterSession) with `keep: true`
//!   for every reason but the client's own disconnect (`41`): the supervisor then keeps it for
//!   the window, with the rooms it was in.

pub mod filter;
pub mod log_session_records;
pub mod memory_push_log;
pub mod memory_session_records;
pub mod not_recovered;
pub mod offset;
pub mod positioned_push_log;
pub mod push_log;
pub mod session_records;
pub mod store;

#[cfg(test)]
mod supervisor_tests;

pub use log_session_records::LogSessionRecords;
pub use memory_push_log::MemoryPushLog;
pub use memory_session_records::MemorySessionRecords;
pub use not_recovered::NotRecovered;
pub use offset::{LogPosition, OffsetClock};
pub use positioned_push_log::PositionedPushLog;
pub use push_log::{Appended, OffsetTooOld, PushLog};
pub use session_records::{Applied, KeptSession, NotKept, SessionRecords};
pub use store::{Reclaimed, RecoveryStore};
