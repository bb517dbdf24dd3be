//! The in-process push log: a queue of the latest pushes, bounded in bytes, oldest dropped
//! first.
//!
//! Each entry holds the packet that was sent (shared with the receivers by reference count,
//! not copied) and its target. Finding an offset is arithmetic on the sequence numbers, so a
//! lookup costs O(1) plus one pass over the entries after it.

use std::collections::VecDeque;

use bytestring::ByteString;

use super::filter::{received, KeptPush};
use super::offset::{LogPosition, OffsetClock};
use super::push_log::{Appended, OffsetTooOld, PushLog};
use crate::messages::PushTarget;

pub use super::push_log::ENTRY_OVERHEAD_BYTES;

/// The pushes of this process, within `capacity` bytes.
pub struct MemoryPushLog {
    clock: OffsetClock,
    /// The entries, oldest first; the first has sequence number `first`.
    entries: VecDeque<KeptPush>,
    first: u64,
    bytes: usize,
    capacity: usize,
}

impl MemoryPushLog {
    /// An empty log holding at most `capacity` bytes, with offsets from `clock`.
    pub fn new(capacity: usize, clock: OffsetClock) -> Self {
        MemoryPushLog {
            clock,
            entries: VecDeque::new(),
            first: 1,
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
}

impl PushLog for MemoryPushLog {
    fn append(&mut self, target: PushTarget, encode: &mut dyn FnMut(&str) -> String) -> Appended {
        let position = LogPosition(self.head().0 + 1);
        let packet = ByteString::from(encode(&self.clock.offset(position)));
        let entry = KeptPush {
            target,
            packet: packet.clone(),
        };
        self.bytes += entry.bytes();
        self.entries.push_back(entry);
        let mut evicted = 0;
        // A push larger than the whole bound is sent but not kept: it evicts itself too.
        while self.bytes > self.capacity {
            let Some(oldest) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= oldest.bytes();
            self.first += 1;
            evicted += 1;
        }
        Appended { packet, evicted }
    }

    fn head(&self) -> LogPosition {
        LogPosition(self.first + self.entries.len() as u64 - 1)
    }

    fn position(&self, offset: &str) -> Option<LogPosition> {
        self.clock.position(offset)
    }

    fn pushes_after(
        &self,
        after: LogPosition,
        is_member: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<ByteString>, OffsetTooOld> {
        // Every push after `after` must still be here: the oldest kept is at most after + 1.
        if after.0 + 1 < self.first || after > self.head() {
            return Err(OffsetTooOld);
        }
        let skip = (after.0 + 1 - self.first) as usize;
        Ok(received(self.entries.range(skip..), is_member))
    }

    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(capacity: usize) -> MemoryPushLog {
        MemoryPushLog::new(capacity, OffsetClock::with_epoch(1))
    }

    /// Append a push of `text` to `room`, encoded as `text@offset`; returns the offset.
    fn push(log: &mut MemoryPushLog, room: &str, text: &str) -> (String, Appended) {
        let mut offset = String::new();
        let appended = log.append(PushTarget::Room(room.into()), &mut |o| {
            offset = o.to_owned();
            format!("{text}@{o}")
        });
        (offset, appended)
    }

    fn texts(packets: Vec<ByteString>) -> Vec<String> {
        packets
            .iter()
            .map(|p| p.split('@').next().unwrap().to_owned())
            .collect()
    }

    fn everything(_: &str) -> bool {
        true
    }

    #[test]
    fn offsets_increase_and_lookup_returns_what_follows_in_order() {
        let mut log = log(1 << 20);
        assert_eq!(log.head(), LogPosition(0));
        assert_eq!(log.pushes_after(log.head(), &everything), Ok(vec![]));
        let (a, appended) = push(&mut log, "r", "a");
        assert_eq!(
            &*appended.packet,
            format!("a@{a}"),
            "encoded with its offset"
        );
        let (b, _) = push(&mut log, "r", "b");
        push(&mut log, "other", "c");
        push(&mut log, "r", "d");
        assert_ne!(a, b);
        assert!(log.position(&a) < log.position(&b));
        let in_r = |room: &str| room == "r";
        let after_a = log.pushes_after(log.position(&a).unwrap(), &in_r);
        assert_eq!(texts(after_a.unwrap()), ["b", "d"]);
        let from_start = log.pushes_after(LogPosition(0), &everything).unwrap();
        assert_eq!(texts(from_start), ["a", "b", "c", "d"]);
        assert_eq!(log.pushes_after(log.head(), &everything), Ok(vec![]));
        assert_eq!(
            log.pushes_after(LogPosition(log.head().0 + 1), &everything),
            Err(OffsetTooOld),
            "beyond the head"
        );
        assert_eq!(log.position("1-x"), None);
        assert_eq!(log.position("2-1"), None, "another run's offset");
    }

    #[test]
    fn the_bound_drops_the_oldest_first_and_counts_them() {
        let entry = ENTRY_OVERHEAD_BYTES + "p0@1-1".len() + "r".len();
        let mut log = log(3 * entry);
        let offsets: Vec<String> = (0..3)
            .map(|i| {
                let (offset, appended) = push(&mut log, "r", &format!("p{i}"));
                assert_eq!(appended.evicted, 0);
                offset
            })
            .collect();
        assert_eq!(log.bytes(), 3 * entry);
        let (_, appended) = push(&mut log, "r", "p3");
        assert_eq!(appended.evicted, 1);
        assert_eq!(log.len(), 3);
        assert_eq!(log.bytes(), 3 * entry);
        let first = log.position(&offsets[0]).unwrap();
        let second = log.position(&offsets[1]).unwrap();
        assert_eq!(
            log.pushes_after(first, &everything).map(texts),
            Ok(vec!["p1".into(), "p2".into(), "p3".into()])
        );
        assert_eq!(
            log.pushes_after(LogPosition(0), &everything),
            Err(OffsetTooOld),
            "p0 is gone"
        );
        assert_eq!(
            texts(log.pushes_after(second, &everything).unwrap()),
            ["p2", "p3"]
        );
        // A big push evicts as many as it needs, and one over the bound keeps nothing.
        let (_, appended) = push(&mut log, "r", &"x".repeat(2 * entry));
        assert_eq!(appended.evicted, 3);
        let (_, appended) = push(&mut log, "r", &"y".repeat(4 * entry));
        assert_eq!(appended.evicted, 2);
        assert!(log.is_empty());
        assert_eq!(log.bytes(), 0);
        assert_eq!(log.pushes_after(log.head(), &everything), Ok(vec![]));
        assert_eq!(
            log.pushes_after(LogPosition(log.head().0 - 1), &everything),
            Err(OffsetTooOld)
        );
    }

    #[test]
    fn a_packet_is_stored_once_and_shared_with_the_receivers() {
        let mut log = log(1 << 20);
        let (offset, appended) = push(&mut log, "r", "shared");
        let before = log.position(&offset).map(|p| LogPosition(p.0 - 1)).unwrap();
        let replayed = log.pushes_after(before, &everything).unwrap();
        assert_eq!(
            replayed[0].as_bytes().as_ptr(),
            appended.packet.as_bytes().as_ptr()
        );
    }

    #[test]
    fn targets_are_filtered_by_membership() {
        let mut log = log(1 << 20);
        let targets = [
            PushTarget::Everyone,
            PushTarget::Room("admin".into()),
            PushTarget::RoomExceptMembersOf {
                room: "admin".into(),
                except_members_of: "user:a".into(),
            },
            PushTarget::RoomExceptMembersOf {
                room: "admin".into(),
                except_members_of: "user:b".into(),
            },
        ];
        for (i, target) in targets.into_iter().enumerate() {
            log.append(target, &mut |_| i.to_string());
        }
        let admin_a = |room: &str| room == "admin" || room == "user:a";
        let user_a = |room: &str| room == "user:a";
        let all = log.pushes_after(LogPosition(0), &admin_a).unwrap();
        assert_eq!(all, ["0", "1", "3"]);
        assert_eq!(log.pushes_after(LogPosition(0), &user_a).unwrap(), ["0"]);
    }
}
