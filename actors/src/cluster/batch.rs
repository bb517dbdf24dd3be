//! Several appends in one record (group commit): what the [`LogAppender`](super::LogAppender)
//! puts together when appends arrive faster than the broker confirms them.
//!
//! Every push and every routed event costs the broker the same per record, whatever the
//! record holds: one publish and its confirm, and one delivery and its ack per node reading
//! the log. So while a record is on its way, the appends that arrive meanwhile wait and go
//! together in the next record: one per round trip instead of one per append. Under a light
//! load each append is alone in its record and waits for nothing; under a heavy one the
//! records grow (up to [`MAX_PUSHES`] pushes and [`BATCH_BYTES`]) instead of the queue.
//!
//! What an append brings ([`EncodedPushes`]) is written when it is queued, by the caller
//! (an HTTP worker, the event consumer), so an append that cannot be written fails alone and
//! at once, never the record it would have shared. The pushes keep their order: the record
//! lists each append's pushes after the previous append's, and their device changes in the
//! same order ([`LogRecord::Pushes`](super::LogRecord::Pushes)). Records of other kinds
//! (marks, fences, sessions) go alone, in their place among the appends.

use std::collections::VecDeque;

use super::record::{
    finish, put_change, put_push, put_pushes, start, DeviceChange, RecordError, RecordedPush,
    MAX_PUSHES, MAX_RECORD_BYTES,
};

/// The most bytes of pushes a record of several appends gathers: an append larger than this
/// goes alone (up to [`MAX_RECORD_BYTES`]).
pub const BATCH_BYTES: usize = 1 << 20;

/// The pushes of one append (an HTTP request's push, a routed event's pushes), written ahead
/// of the record that will carry them, with the device status change that comes with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPushes {
    count: usize,
    bytes: Vec<u8>,
    device: Option<DeviceChange>,
}

impl EncodedPushes {
    /// Write `pushes` (1 to [`MAX_PUSHES`]); an error when they cannot be written (too many,
    /// a room name over 65535 bytes, larger than a record may be).
    pub fn new(
        pushes: &[RecordedPush],
        device: Option<DeviceChange>,
    ) -> Result<EncodedPushes, RecordError> {
        if pushes.is_empty() || pushes.len() > MAX_PUSHES {
            return Err(RecordError::PushCount(pushes.len()));
        }
        if let Some(change) = &device {
            put_change(&mut Vec::new(), change)?;
        }
        let mut bytes = Vec::with_capacity(pushes.iter().map(|p| p.payload.len() + 32).sum());
        for push in pushes {
            put_push(&mut bytes, push)?;
        }
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::Oversized(bytes.len()));
        }
        Ok(EncodedPushes {
            count: pushes.len(),
            bytes,
            device,
        })
    }

    /// How many pushes.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Their bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }
}

/// The one record of `origin` that carries `parts`, in order (at least one; at most
/// [`MAX_PUSHES`] pushes in all).
pub fn write_record(origin: &str, parts: &[EncodedPushes]) -> Result<Vec<u8>, RecordError> {
    let count = parts.iter().map(|p| p.count).sum();
    let devices: Vec<&DeviceChange> = parts.iter().filter_map(|p| p.device.as_ref()).collect();
    let mut out = start();
    put_pushes(
        &mut out,
        origin,
        &devices,
        count,
        parts.iter().map(|p| p.bytes.as_slice()),
    )?;
    finish(out)
}

/// One queued append: pushes that may share a record, or a whole record of another kind.
#[derive(Debug)]
pub enum Append<T> {
    /// Pushes, and who waits for them (`T`).
    Pushes(EncodedPushes, T),
    /// A record of its own (already written), and who waits for it.
    Whole(Vec<u8>, T),
}

/// What the next record carries: its bytes, and the waiters it answers, in order.
#[derive(Debug)]
pub struct NextRecord<T> {
    /// The record.
    pub bytes: Vec<u8>,
    /// Who waits for it.
    pub waiters: Vec<T>,
}

/// A record that cannot be written, and the waiters it fails.
#[derive(Debug)]
pub struct Unwritable<T> {
    /// Why.
    pub error: RecordError,
    /// Who waited for it.
    pub waiters: Vec<T>,
}

/// Take the next record off the front of `queue`: a whole record alone, or a run of pushes
/// appends that fits one record. [`Unwritable`] when the record cannot be written
/// (each append was checked when queued, so only an origin over 65535 bytes does this).
pub fn next_record<T>(
    origin: &str,
    queue: &mut VecDeque<Append<T>>,
) -> Option<Result<NextRecord<T>, Unwritable<T>>> {
    let mut parts = Vec::new();
    let mut waiters = Vec::new();
    let (mut pushes, mut bytes) = (0, 0);
    while let Some(front) = queue.front() {
        match front {
            Append::Whole(..) if !parts.is_empty() => break,
            Append::Whole(..) => {
                let Some(Append::Whole(bytes, waiter)) = queue.pop_front() else {
                    unreachable!("the front is a whole record")
                };
                return Some(Ok(NextRecord {
                    bytes,
                    waiters: vec![waiter],
                }));
            }
            Append::Pushes(part, _) => {
                let fits =
                    pushes + part.count <= MAX_PUSHES && bytes + part.byte_len() <= BATCH_BYTES;
                if !parts.is_empty() && !fits {
                    break;
                }
                pushes += part.count;
                bytes += part.byte_len();
                let Some(Append::Pushes(part, waiter)) = queue.pop_front() else {
                    unreachable!("the front is pushes")
                };
                parts.push(part);
                waiters.push(waiter);
            }
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(match write_record(origin, &parts) {
        Ok(bytes) => Ok(NextRecord { bytes, waiters }),
        Err(error) => Err(Unwritable { error, waiters }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::LogRecord;
    use crate::messages::{PushEvent, PushSource, PushTarget};

    fn push(room: &str, payload: &str) -> RecordedPush {
        RecordedPush {
            target: PushTarget::Room(room.into()),
            event: PushEvent::Notification,
            payload: payload.into(),
            priority: false,
            source: PushSource::Amqp,
        }
    }

    fn started(device: &str) -> Option<DeviceChange> {
        Some(DeviceChange::Set {
            device_id: device.into(),
            status: "running",
        })
    }

    fn pushes(n: usize, tag: &str) -> EncodedPushes {
        let all: Vec<_> = (0..n).map(|i| push(tag, &format!("{i}"))).collect();
        EncodedPushes::new(&all, None).unwrap()
    }

    #[test]
    fn appends_queued_together_become_one_record_in_their_order() {
        let mut queue = VecDeque::from([
            Append::Pushes(
                EncodedPushes::new(
                    &[push("user:1", "{\"a\":1}"), push("admin", "{\"a\":1}")],
                    started("d-1"),
                )
                .unwrap(),
                1,
            ),
            Append::Pushes(
                EncodedPushes::new(&[push("user:2", "{\"b\":2}")], None).unwrap(),
                2,
            ),
            Append::Pushes(
                EncodedPushes::new(
                    &[push("user:1", "{\"c\":3}")],
                    Some(DeviceChange::Removed {
                        device_id: "d-1".into(),
                    }),
                )
                .unwrap(),
                3,
            ),
        ]);
        let next = next_record("n1/x", &mut queue).unwrap().unwrap();
        assert_eq!(next.waiters, vec![1, 2, 3]);
        assert!(queue.is_empty());
        let LogRecord::Pushes {
            origin,
            devices,
            pushes,
        } = LogRecord::decode(&next.bytes).unwrap()
        else {
            panic!("not a pushes record")
        };
        assert_eq!(origin, "n1/x");
        assert_eq!(
            devices,
            vec![
                started("d-1").unwrap(),
                DeviceChange::Removed {
                    device_id: "d-1".into()
                }
            ]
        );
        let payloads: Vec<&str> = pushes.iter().map(|p| &*p.payload).collect();
        assert_eq!(
            payloads,
            ["{\"a\":1}", "{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]
        );
        assert!(next_record("n1/x", &mut queue).is_none());
    }

    #[test]
    fn one_append_alone_is_the_record_it_always_was() {
        let alone = [push("user:9", "{}")];
        let mut queue = VecDeque::from([Append::Pushes(
            EncodedPushes::new(&alone, started("d")).unwrap(),
            (),
        )]);
        let next = next_record("n", &mut queue).unwrap().unwrap();
        let before = LogRecord::Pushes {
            origin: "n".into(),
            devices: vec![started("d").unwrap()],
            pushes: alone.to_vec(),
        };
        assert_eq!(next.bytes, before.encode().unwrap());
    }

    #[test]
    fn a_record_stops_at_the_push_limit_and_at_a_record_of_another_kind() {
        let mut queue = VecDeque::from([
            Append::Pushes(pushes(40, "a"), 1),
            Append::Pushes(pushes(24, "b"), 2),
            Append::Pushes(pushes(1, "c"), 3),
            Append::Whole(b"mark".to_vec(), 4),
            Append::Pushes(pushes(1, "d"), 5),
        ]);
        let first = next_record("n", &mut queue).unwrap().unwrap();
        assert_eq!(first.waiters, vec![1, 2]); // 64 pushes: full
        let second = next_record("n", &mut queue).unwrap().unwrap();
        assert_eq!(second.waiters, vec![3]); // the mark is not merged
        let third = next_record("n", &mut queue).unwrap().unwrap();
        assert_eq!(
            (third.bytes.as_slice(), third.waiters),
            (&b"mark"[..], vec![4])
        );
        let fourth = next_record("n", &mut queue).unwrap().unwrap();
        assert_eq!(fourth.waiters, vec![5]);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_large_append_goes_alone_and_the_byte_bound_splits_records() {
        let half = "x".repeat(BATCH_BYTES / 2);
        let big = "y".repeat(BATCH_BYTES * 2);
        let mut queue = VecDeque::from([
            Append::Pushes(EncodedPushes::new(&[push("r", &half)], None).unwrap(), 1),
            Append::Pushes(EncodedPushes::new(&[push("r", &half)], None).unwrap(), 2),
            Append::Pushes(EncodedPushes::new(&[push("r", &big)], None).unwrap(), 3),
            Append::Pushes(pushes(1, "r"), 4),
        ]);
        let waiters: Vec<Vec<i32>> = std::iter::from_fn(|| next_record("n", &mut queue))
            .map(|next| next.unwrap().waiters)
            .collect();
        assert_eq!(waiters, vec![vec![1], vec![2], vec![3], vec![4]]);
    }

    #[test]
    fn an_append_that_cannot_be_written_fails_when_queued_not_later() {
        assert_eq!(
            EncodedPushes::new(&[], None),
            Err(RecordError::PushCount(0))
        );
        let many: Vec<_> = (0..=MAX_PUSHES).map(|_| push("r", "{}")).collect();
        assert_eq!(
            EncodedPushes::new(&many, None),
            Err(RecordError::PushCount(MAX_PUSHES + 1))
        );
        assert_eq!(
            EncodedPushes::new(&[push(&"r".repeat(70_000), "{}")], None),
            Err(RecordError::TooLong("room"))
        );
        assert_eq!(
            EncodedPushes::new(&[push("r", "{}")], started(&"d".repeat(70_000))),
            Err(RecordError::TooLong("device id"))
        );
        let huge = "z".repeat(MAX_RECORD_BYTES);
        assert!(matches!(
            EncodedPushes::new(&[push("r", &huge)], None),
            Err(RecordError::Oversized(_))
        ));
        // Only the origin is left to fail a record, and it fails every waiter of it.
        let mut queue = VecDeque::from([Append::Pushes(pushes(1, "r"), 7)]);
        let Some(Err(unwritable)) = next_record(&"o".repeat(70_000), &mut queue) else {
            panic!("an unwritable origin was written")
        };
        assert_eq!(unwritable.error, RecordError::TooLong("origin"));
        assert_eq!(unwritable.waiters, vec![7]);
    }
}
