//! The seam where kept sessions are recorded: a session that ended for any reason but its
//! client's own disconnect is kept for the recovery window, keyed by its private id (`pid`).
//!
//! The in-process store is [`MemorySessionRecords`](super::MemorySessionRecords); a cluster
//! mode can keep the records on the broker behind the same trait.

use std::time::Instant;

use super::offset::LogPosition;
use crate::cluster::SessionEvent;

/// What is kept of an ended session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptSession {
    /// Its Socket.IO socket id, given back on recovery.
    pub sid: String,
    /// Its private session id: the key, known only to its client (never log it).
    pub pid: String,
    /// The `sub` it authenticated as; only the same user may recover it.
    pub user_id: String,
    /// The rooms it was in when it ended.
    pub rooms: Vec<String>,
    /// The log position when it registered: where recovery starts for a client that sends no
    /// offset (it received no push), and the earliest any recovery starts.
    pub registered_at: LogPosition,
    /// When it ended.
    pub ended_at: Instant,
}

/// Why a kept session was not handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotKept {
    /// It was kept, but its window has passed.
    #[error("the session's recovery window has passed")]
    Expired,
    /// No such session (never kept, already recovered, or expired long ago).
    #[error("no session is kept under this pid")]
    Unknown,
    /// It belongs to another user (the record stays for its owner).
    #[error("the session belongs to another user")]
    UserMismatch,
}

/// Kept sessions, each handed out at most once.
pub trait SessionRecords: Send {
    /// Keep `session` until `session.ended_at` plus the window (replacing one with its pid).
    fn keep(&mut self, session: KeptSession);

    /// Hand out the session kept under `pid` for `user_id` and forget it; a session of another
    /// user stays kept.
    fn take(&mut self, pid: &str, user_id: &str, now: Instant) -> Result<KeptSession, NotKept>;

    /// Whether any session is kept at `now` (when none is, a push nobody receives live need
    /// not be logged).
    fn any_kept(&mut self, now: Instant) -> bool;

    /// Cluster mode: a session record the node process `origin` appended to the cluster's
    /// log, read at `now`; what it means for this process. Records that know no log ignore
    /// it.
    fn apply(&mut self, origin: &str, event: SessionEvent, now: Instant) -> Applied {
        let _ = (origin, event, now);
        Applied::default()
    }
}

/// What a session record read from the cluster's log means for this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// It is this process's own claim, made for this session id: its outcome is what
    /// [`SessionRecords::take`] now hands out.
    pub claim_read_back: Option<u64>,
    /// A claim took a session still live here (its client reconnected elsewhere before this
    /// node noticed the drop): this session id is to be closed.
    pub superseded: Option<u64>,
}
