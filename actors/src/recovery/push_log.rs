//! The seam where pushes are logged for recovery: what the room supervisor asks of a push log.
//!
//! The in-process log is [`MemoryPushLog`](super::MemoryPushLog); a cluster mode can put the
//! history on the broker behind the same trait. The log, not the supervisor, makes offsets, so
//! a log on the broker can use the broker's own.

use bytestring::ByteString;

use super::offset::LogPosition;
use crate::messages::PushTarget;

/// The history no longer reaches back to the asked position (or the offset is not one of this
/// log's): the session cannot be recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the offset is older than the push history")]
pub struct OffsetTooOld;

/// What one append did.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The encoded packet, offset included, as stored (hand it to the receivers).
    pub packet: ByteString,
    /// How many of the oldest pushes were dropped to stay within the bound.
    pub evicted: usize,
}

/// What a logged push costs against the history's bound: a fixed overhead (the queue slot,
/// the target's and packet's headers, counted so that many tiny pushes are bounded too), the
/// packet and the room names.
pub fn entry_bytes(target: &PushTarget, packet: &str) -> usize {
    let rooms = match target {
        PushTarget::Room(room) => room.len(),
        PushTarget::RoomExceptMembersOf {
            room,
            except_members_of,
        } => room.len() + except_members_of.len(),
        PushTarget::Everyone => 0,
    };
    ENTRY_OVERHEAD_BYTES + packet.len() + rooms
}

/// What an entry costs besides its packet and room names (see [`entry_bytes`]).
pub const ENTRY_OVERHEAD_BYTES: usize = 96;

/// An ordered, bounded history of pushes, each stored once (the packet every receiver got).
pub trait PushLog: Send {
    /// Give the next push its offset, have `encode` make its packet with it (called exactly
    /// once), and store the packet with its `target`.
    fn append(&mut self, target: PushTarget, encode: &mut dyn FnMut(&str) -> String) -> Appended;

    /// Store a push at a `position` the log's source gave it (the cluster's stream), instead
    /// of the next one of its own: `encode` makes its packet with that position's offset.
    /// `None` when it is not stored: the position is not after the head (read again), or
    /// this log makes its own positions (the default).
    fn append_at(
        &mut self,
        position: LogPosition,
        target: PushTarget,
        encode: &mut dyn FnMut(&str) -> String,
    ) -> Option<Appended> {
        let _ = (position, target, encode);
        None
    }

    /// The position after the last appended push (where a session registering now starts).
    fn head(&self) -> LogPosition;

    /// The position an offset names, or `None` when it is not one of this log's offsets.
    fn position(&self, offset: &str) -> Option<LogPosition>;

    /// The packets of the pushes after `after` that a session in the rooms `is_member` accepts
    /// would have received, oldest first; [`OffsetTooOld`] when some push after `after` was
    /// dropped already, or `after` is beyond the head.
    fn pushes_after(
        &self,
        after: LogPosition,
        is_member: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<ByteString>, OffsetTooOld>;

    /// The bytes the history holds now, as counted against its bound.
    fn bytes(&self) -> usize;
}
