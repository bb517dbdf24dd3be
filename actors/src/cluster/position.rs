//! Where a push read from the cluster's log sits in the recovery history: its record's stream
//! offset and its index in the record, as one [`LogPosition`].
//!
//! `position = (stream offset + 1) × 256 + index`: increasing in stream order, then record
//! order, never 0 (0 means "before everything"), and the same on every node. A record holds
//! at most [`MAX_PUSHES`](super::record::MAX_PUSHES) < 256 pushes.

use crate::recovery::LogPosition;

const PUSHES_PER_RECORD: u64 = 256;

/// The position of push `index` of the record at `stream_offset`.
pub fn of(stream_offset: u64, index: usize) -> LogPosition {
    debug_assert!((index as u64) < PUSHES_PER_RECORD);
    LogPosition((stream_offset + 1) * PUSHES_PER_RECORD + index as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_stream_then_record_order() {
        assert_eq!(of(0, 0), LogPosition(256));
        assert!(of(0, 63) < of(1, 0));
        assert!(of(7, 1) < of(7, 2));
        assert!(of(0, 0) > LogPosition(0));
    }
}
