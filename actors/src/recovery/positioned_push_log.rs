//! A push log whose positions are given to it: the cluster's, where the broker's stream
//! numbers the pushes and every node must give a push the same offset.
//!
//! Entries are kept in position order, bounded in bytes like [`MemoryPushLog`](super::MemoryPushLog)
//! (oldest dropped first). Positions need not be consecutive (the stream numbers its records,
//! not their pushes, and skips what this node does not read), so the log remembers a *floor*:
//! the highest position it knows it does not hold (one it dropped, or the one before the
//! first it was given). An offset at or above the floor, and not beyond the head, can be
//! answered exactly; an older one is [`OffsetTooOld`].
//!
//! An offset is the position in decimal: the same string on every node that read the same
//! stream record.

use std::collections::VecDeque;

use bytestring::ByteString;

use super::filter::{received, KeptPush};
use super::offset::LogPosition;
use super::push_log::{Appended, OffsetTooOld, PushLog};
use crate::messages::PushTarget;

struct Entry {
    position: LogPosition,
    push: KeptPush,
}

/// The pushes read from the cluster's log, at the positions it gave them; see the module doc.
pub struct PositionedPushLog {
    entries: VecDeque<Entry>,
    /// The highest position known not to be held; `None` before the first push.
    floor: Option<LogPosition>,
    bytes: usize,
    capacity: usize,
}

impl PositionedPushLog {
    /// An empty log holding at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        PositionedPushLog {
            entries: VecDeque::new(),
            floor: None,
            bytes: 0,
            capacity,
        }
    }

    /// How many pushes it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no push.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn offset(position: LogPosition) -> String {
        position.0.to_string()
    }
}

impl PushLog for PositionedPushLog {
    fn append(&mut self, target: PushTarget, encode: &mut dyn FnMut(&str) -> String) -> Appended {
        let next = LogPosition(self.head().0 + 1);
        self.append_at(next, target, encode)
            .expect("the position after the head is always new")
    }

    fn append_at(
        &mut self,
        position: LogPosition,
        target: PushTarget,
        encode: &mut dyn FnMut(&str) -> String,
    ) -> Option<Appended> {
        if self.floor.is_some() && position <= self.head() {
            return None; // read again: it is here already, or was dropped
        }
        // Before the first push nothing is known, so the floor is the position before it.
        self.floor
            .get_or_insert(LogPosition(position.0.saturating_sub(1)));
        let packet = ByteString::from(encode(&Self::offset(position)));
        let entry = Entry {
            position,
            push: KeptPush {
                target,
                packet: packet.clone(),
            },
        };
        self.bytes += entry.push.bytes();
        self.entries.push_back(entry);
        let mut evicted = 0;
        while self.bytes > self.capacity {
            let Some(oldest) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= oldest.push.bytes();
            self.floor = Some(oldest.position);
            evicted += 1;
        }
        Some(Appended { packet, evicted })
    }

    fn head(&self) -> LogPosition {
        match (self.entries.back(), self.floor) {
            (Some(last), _) => last.position,
            (None, Some(floor)) => floor,
            (None, None) => LogPosition(0),
        }
    }

    fn position(&self, offset: &str) -> Option<LogPosition> {
        if offset.is_empty() || !offset.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        offset.parse().ok().map(LogPosition)
    }

    fn pushes_after(
        &self,
        after: LogPosition,
        is_member: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<ByteString>, OffsetTooOld> {
        if after < self.floor.unwrap_or_default() || after > self.head() {
            return Err(OffsetTooOld);
        }
        let first = self.entries.partition_point(|e| e.position <= after);
        Ok(received(
            self.entries.range(first..).map(|entry| &entry.push),
            is_member,
        ))
    }

    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::push_log::ENTRY_OVERHEAD_BYTES;

    fn everything(_: &str) -> bool {
        true
    }

    fn at(log: &mut PositionedPushLog, position: u64, room: &str) -> Option<Appended> {
        log.append_at(
            LogPosition(position),
            PushTarget::Room(room.into()),
            &mut |offset| format!("{room}@{offset}"),
        )
    }

    #[test]
    fn given_positions_are_the_offsets_and_gaps_are_fine() {
        let mut log = PositionedPushLog::new(1 << 20);
        assert_eq!(log.head(), LogPosition(0));
        let first = at(&mut log, 512, "r").unwrap();
        assert_eq!(&*first.packet, "r@512");
        at(&mut log, 513, "other");
        at(&mut log, 1024, "r");
        assert_eq!(log.head(), LogPosition(1024));
        assert_eq!(log.position("513"), Some(LogPosition(513)));
        for garbage in ["", "x", "-1", "1-2", "+5", "99999999999999999999999"] {
            assert_eq!(log.position(garbage), None, "{garbage:?}");
        }
        let in_r = |room: &str| room == "r";
        assert_eq!(
            log.pushes_after(LogPosition(512), &in_r).unwrap(),
            ["r@1024"]
        );
        assert_eq!(
            log.pushes_after(LogPosition(511), &everything).unwrap(),
            ["r@512", "other@513", "r@1024"],
            "from just before the first push read"
        );
        assert_eq!(
            log.pushes_after(LogPosition(510), &everything),
            Err(OffsetTooOld),
            "before what this node read"
        );
        assert_eq!(
            log.pushes_after(LogPosition(1025), &everything),
            Err(OffsetTooOld),
            "beyond the head"
        );
        assert!(at(&mut log, 1024, "r").is_none(), "read twice: kept once");
        assert!(at(&mut log, 700, "r").is_none(), "older than the head");
        assert_eq!(log.len(), 3);
        // The trait's own append continues after the head.
        let own = log.append(PushTarget::Everyone, &mut |o| o.to_owned());
        assert_eq!(&*own.packet, "1025");
    }

    #[test]
    fn the_bound_drops_the_oldest_and_raises_the_floor() {
        let entry = ENTRY_OVERHEAD_BYTES + "r@256".len() + 1;
        let mut log = PositionedPushLog::new(2 * entry);
        at(&mut log, 256, "r");
        at(&mut log, 512, "r");
        assert_eq!(at(&mut log, 768, "r").unwrap().evicted, 1);
        assert_eq!(log.bytes(), 2 * entry);
        assert_eq!(
            log.pushes_after(LogPosition(255), &everything),
            Err(OffsetTooOld)
        );
        assert_eq!(
            log.pushes_after(LogPosition(256), &everything).unwrap(),
            ["r@512", "r@768"]
        );
        let huge = log
            .append_at(LogPosition(900), PushTarget::Everyone, &mut |_| {
                "x".repeat(3 * entry)
            })
            .unwrap();
        assert_eq!(huge.evicted, 3, "one over the bound keeps nothing");
        assert!(log.is_empty());
        assert_eq!(log.head(), LogPosition(900));
        assert_eq!(log.pushes_after(LogPosition(900), &everything), Ok(vec![]));
        assert_eq!(
            log.pushes_after(LogPosition(899), &everything),
            Err(OffsetTooOld)
        );
    }
}
