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
//! same order ([`LogRecord::Pushes`](super::LogRecord::Pushes)). Marks, session records and
//! fences share a record of their own kind, [`LogRecord::Several`](super::LogRecord::Several),
//! in their place among the appends: a record never mixes them with pushes, whose positions
//! in the log are their record's offset and their index in it.

use std::collections::VecDeque;

use super::record::{
    finish, put_change, put_push, put_pushes, put_several, start, DeviceChange, RecordError,
    RecordedPush, MAX_PUSHES, MAX_RECORD_BYTES, MAX_SEVERAL,
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
    devices: Vec<DeviceChange>,
}

impl EncodedPushes {
    /// Write `pushes` (1 to [`MAX_PUSHES`]) with the device changes behind them; an error
    /// when they cannot be written (too many, a room name or device id over 65535 bytes,
    /// larger than a record may be).
    pub fn new(
        pushes: &[RecordedPush],
        devices: Vec<DeviceChange>,
    ) -> Result<EncodedPushes, RecordError> {
        if pushes.is_empty() || pushes.len() > MAX_PUSHES {
            return Err(RecordError::PushCount(pushes.len()));
        }
        if devices.len() > MAX_PUSHES {
            return Err(RecordError::DeviceCount(devices.len()));
        }
        for change in &devices {
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
            devices,
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
    let devices: Vec<&DeviceChange> = parts.iter().flat_map(|p| &p.devices).collect();
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

/// One queued append, and who waits for it (`T`).
#[derive(Debug)]
pub enum Append<T> {
    /// Pushes: a run of them shares a pushes record.
    Pushes(EncodedPushes, T),
    /// A mark, session record or fence, written: a run of them shares a record of several.
    Whole(Vec<u8>, T),
    /// A record that goes alone (a record of several, written).
    Alone(Vec<u8>, T),
}

impl<T> Append<T> {
    /// Who waits for it.
    pub fn waiter(&self) -> &T {
        match self {
            Append::Pushes(_, w) | Append::Whole(_, w) | Append::Alone(_, w) => w,
        }
    }

    /// Who waits for it, the append dropped.
    pub fn into_waiter(self) -> T {
        match self {
            Append::Pushes(_, w) | Append::Whole(_, w) | Append::Alone(_, w) => w,
        }
    }
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
    let mut wholes = Vec::new();
    let mut waiters = Vec::new();
    let (mut pushes, mut bytes) = (0, 0);
    while let Some(front) = queue.front() {
        let first = waiters.is_empty();
        let fits = match front {
            Append::Alone(..) => first,
            Append::Whole(whole, _) => {
                parts.is_empty()
                    && (first
                        || (wholes.len() < MAX_SEVERAL && bytes + 4 + whole.len() <= BATCH_BYTES))
            }
            Append::Pushes(part, _) => {
                wholes.is_empty()
                    && (first
                        || (pushes + part.count <= MAX_PUSHES
                            && bytes + part.byte_len() <= BATCH_BYTES))
            }
        };
        if !fits {
            break;
        }
        match queue.pop_front().expect("the front was looked at") {
            Append::Alone(bytes, waiter) => {
                return Some(Ok(NextRecord {
                    bytes,
                    waiters: vec![waiter],
                }))
            }
            Append::Whole(whole, waiter) => {
                bytes += 4 + whole.len();
                wholes.push(whole);
                waiters.push(waiter);
            }
            Append::Pushes(part, waiter) => {
                pushes += part.count;
                bytes += part.byte_len();
                parts.push(part);
                waiters.push(waiter);
            }
        }
    }
    let written = match (parts.is_empty(), wholes.len()) {
        (true, 0) => return None,
        (true, 1) => Ok(wholes.pop().expect("one record")),
        (true, _) => {
            let mut out = start();
            put_several(&mut out, &wholes).and_then(|()| finish(out))
        }
        (false, _) => write_record(origin, &parts),
    };
    Some(match written {
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

    fn started(device: &str) -> DeviceChange {
        DeviceChange::Set {
            device_id: device.into(),
            status: "running",
        }
    }

    fn pushes(n: usize, tag: &str) -> EncodedPushes {
        let all: Vec<_> = (0..n).map(|i| push(tag, &format!("{i}"))).collect();
        EncodedPushes::new(&all, vec![]).unwrap()
    }

    #[test]
    fn appends_queued_together_become_one_record_in_their_order() {
        let mut queue = VecDeque::from([
            Append::Pushes(
                EncodedPushes::new(
                    &[push("user:1", "{\"a\":1}"), push("admin", "{\"a\":1}")],
                    vec![started("d-1")],
                )
                .unwrap(),
                1,
            ),
            Append::Pushes(
                EncodedPushes::new(&[push("user:2", "{\"b\":2}")], vec![]).unwrap(),
                2,
            ),
            Append::Pushes(
                EncodedPushes::new(
                    &[push("user:1", "{\"c\":3}")],
                    vec![DeviceChange::Removed {
                        device_id: "d-1".into(),
                    }],
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
                started("d-1"),
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
            EncodedPushes::new(&alone, vec![started("d")]).unwrap(),
            (),
        )]);
        let next = next_record("n", &mut queue).unwrap().unwrap();
        let before = LogRecord::Pushes {
            origin: "n".into(),
            devices: vec![started("d")],
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
    fn marks_sessions_and_fences_queued_together_share_a_record_of_several() {
        let mark = |o: &str| LogRecord::Mark { origin: o.into() };
        let fence = |n| LogRecord::Fence {
            origin: "n".into(),
            number: n,
        };
        let whole = |r: &LogRecord| r.encode().unwrap();
        let several = LogRecord::Several(vec![mark("x"), fence(8)]);
        let mut queue = VecDeque::from([
            Append::Whole(whole(&mark("a")), 1),
            Append::Whole(whole(&fence(1)), 2),
            Append::Whole(whole(&mark("b")), 3),
            Append::Pushes(pushes(1, "r"), 4),
            Append::Whole(whole(&fence(2)), 5),
            Append::Alone(whole(&several), 6),
            Append::Whole(whole(&fence(3)), 7),
        ]);
        let first = next_record("n", &mut queue).unwrap().unwrap();
        assert_eq!(first.waiters, vec![1, 2, 3]);
        assert_eq!(
            LogRecord::decode(&first.bytes),
            Ok(LogRecord::Several(vec![mark("a"), fence(1), mark("b")]))
        );
        let second = next_record("n", &mut queue).unwrap().unwrap();
        assert_eq!(second.waiters, vec![4]); // pushes never mix with the others
        let third = next_record("n", &mut queue).unwrap().unwrap();
        assert_eq!(third.waiters, vec![5]); // one alone is the record it always was
        assert_eq!(third.bytes, whole(&fence(2)));
        let fourth = next_record("n", &mut queue).unwrap().unwrap();
        assert_eq!((fourth.waiters, fourth.bytes), (vec![6], whole(&several)));
        let fifth = next_record("n", &mut queue).unwrap().unwrap();
        assert_eq!(fifth.waiters, vec![7]);
        assert!(next_record("n", &mut queue).is_none());

        // At most MAX_SEVERAL in one.
        let mut many: VecDeque<_> = (0..=MAX_SEVERAL as u64)
            .map(|n| Append::Whole(whole(&fence(n)), n))
            .collect();
        let full = next_record("n", &mut many).unwrap().unwrap();
        assert_eq!(full.waiters.len(), MAX_SEVERAL);
        assert_eq!(many.len(), 1);
    }

    #[test]
    fn a_large_append_goes_alone_and_the_byte_bound_splits_records() {
        let half = "x".repeat(BATCH_BYTES / 2);
        let big = "y".repeat(BATCH_BYTES * 2);
        let mut queue = VecDeque::from([
            Append::Pushes(EncodedPushes::new(&[push("r", &half)], vec![]).unwrap(), 1),
            Append::Pushes(EncodedPushes::new(&[push("r", &half)], vec![]).unwrap(), 2),
            Append::Pushes(EncodedPushes::new(&[push("r", &big)], vec![]).unwrap(), 3),
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
            EncodedPushes::new(&[], vec![]),
            Err(RecordError::PushCount(0))
        );
        let many: Vec<_> = (0..=MAX_PUSHES).map(|_| push("r", "{}")).collect();
        assert_eq!(
            EncodedPushes::new(&many, vec![]),
            Err(RecordError::PushCount(MAX_PUSHES + 1))
        );
        assert_eq!(
            EncodedPushes::new(&[push(&"r".repeat(70_000), "{}")], vec![]),
            Err(RecordError::TooLong("room"))
        );
        assert_eq!(
            EncodedPushes::new(&[push("r", "{}")], vec![started(&"d".repeat(70_000))]),
            Err(RecordError::TooLong("device id"))
        );
        let huge = "z".repeat(MAX_RECORD_BYTES);
        assert!(matches!(
            EncodedPushes::new(&[push("r", &huge)], vec![]),
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
