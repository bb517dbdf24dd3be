//! One message of the cluster's push log: what a node appends and every node reads.
//!
//! A record is self-contained ("room-free"): it names its targets by room name and carries the
//! payload bytes exactly as the pusher gave them, so a node that reads it needs nothing but
//! its own session registry to deliver it. The kinds:
//!
//! - [`LogRecord::Pushes`]: the pushes of one HTTP request or one routed publisher event (a
//!   user's push and its admin-room copies go together, so they are durable together or not
//!   at all), the node that appended them, and for device events the status change behind
//!   `oldStatus`, so that every node's device status cache follows the one routing.
//! - [`LogRecord::Mark`]: a node's start mark; the node appends it before it reads, and
//!   everything it reads before its own mark is history, everything after it is live.
//! - [`LogRecord::Session`]: what recovery needs of a session, so that any node can recover
//!   it ([`SessionEvent`](super::session_record::SessionEvent), its own file).
//! - [`LogRecord::Fence`]: a node that became the active device consumer waits until its
//!   reader has read this record back before it routes ([`fence`](super::fence)).
//! - [`LogRecord::Several`]: marks, session records and fences a node appended together
//!   ([`batch`](super::batch)), read as if they came one after another.
//!
//! # Wire format (version 1)
//!
//! Big-endian, length-prefixed, no padding: `"PGL"`, version `1`, kind (`0` pushes, `1`
//! mark, `2` session, `3` fence, `4` several); for several, their count (`u16`, 2 to
//! [`MAX_SEVERAL`]) and each as a `u32` length and a whole record of kind 1, 2 or 3; for the
//! others, the origin (string); for a fence, its number (`u64`); for a
//! session, the event as
//! [`session_record`](super::session_record) writes it; for pushes: the device changes (`0`
//! none; one change: `1` set: id string and status `1` running / `2` stopped, or `2` removed:
//! id string; `3` a list: its count, 2 to [`MAX_PUSHES`], then each change as one is
//! written), the push count (1 to
//! [`MAX_PUSHES`]), then each push: target (`0` everyone, `1` room: name, `2` room except the
//! members of another: two names), event (`0` notification, `1` message), priority (`0`/`1`),
//! source (`0` amqp, `1` http, `2` consul), payload (`u32` length, UTF-8 bytes). A string is a `u16` length and UTF-8 bytes. Nothing
//! may follow the last field.
//!
//! A record that does not decode ([`RecordError`]) is skipped and counted by its reader,
//! never fatal; a newer version is one such record, so nodes of different versions can share
//! a log during an upgrade (the old ones skip what they cannot read). Session records are a
//! kind added within version 1: a node that predates them skips them (`invalid kind tag`)
//! and reads pushes on. Fences are such a kind too: a node that predates them skips them
//! (with a warning, counted), and needs none (it routes at once, as it always did). Records of
//! several came with appends sharing records, after the cluster's other kinds; a node that
//! predates them skips them likewise.

use std::sync::Arc;

use std::time::Instant;

use super::session_record::SessionEvent;
use crate::messages::{Accepted, Push, PushEvent, PushSource, PushTarget};

/// One push as the log holds it: a [`Push`] without anything of the node that accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPush {
    /// The receivers, by room name.
    pub target: PushTarget,
    /// The Socket.IO event it is emitted as.
    pub event: PushEvent,
    /// The payload's JSON text, as the pusher gave it.
    pub payload: Arc<str>,
    /// An alert, never held by a coalescing window ([`Push::priority`]).
    pub priority: bool,
    /// Where the accepting node got it (for the push statistics of every node).
    pub source: PushSource,
}

impl RecordedPush {
    /// The push a reading node hands its room supervisor, accepted (as far as this node's
    /// statistics go) when it was read, `read_at`: the accepting node's clock is not this one's.
    pub fn into_push(self, read_at: Instant) -> Push {
        Push {
            target: self.target,
            event: self.event,
            payload: self.payload,
            priority: self.priority,
            accepted: Accepted {
                source: self.source,
                at: read_at,
            },
        }
    }
}

impl From<Push> for RecordedPush {
    fn from(push: Push) -> Self {
        RecordedPush {
            target: push.target,
            event: push.event,
            payload: push.payload,
            priority: push.priority,
            source: push.accepted.source,
        }
    }
}

/// The current format version.
pub const VERSION: u8 = 1;

/// The largest record, encoded: a larger one is refused on both sides (pushes are bounded by
/// `PUSH_MAX_BODY_BYTES` and `MAX_PAYLOAD_BYTES` long before this).
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// The most pushes one record holds (a routed event has at most three).
pub const MAX_PUSHES: usize = 64;

const MAGIC: &[u8; 3] = b"PGL";

/// A device's status change, as the device status cache applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceChange {
    /// `device.started` / `device.stopped`: the device's status is now this one.
    Set {
        /// The device id's string form.
        device_id: String,
        /// `"running"` or `"stopped"`.
        status: &'static str,
    },
    /// `device.deleted`: the device is forgotten.
    Removed {
        /// The device id's string form.
        device_id: String,
    },
}

/// One record of the push log; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRecord {
    /// Pushes to deliver, in order.
    Pushes {
        /// The node process that appended them (`<NODE_ID>/<run>`).
        origin: String,
        /// The device status changes that come with them (device events only), in the order
        /// they were made: one per routed device event in the record.
        devices: Vec<DeviceChange>,
        /// The pushes, in delivery order; at least one.
        pushes: Vec<RecordedPush>,
    },
    /// A node's start mark (see the module doc).
    Mark {
        /// The node process that appended it.
        origin: String,
    },
    /// A session's state, for recovery on any node.
    Session {
        /// The node process that appended it.
        origin: String,
        /// What happened to the session.
        event: SessionEvent,
    },
    /// A fence of the node process that appended it (see [`fence`](super::fence)).
    Fence {
        /// The node process that appended it.
        origin: String,
        /// Its number, growing per process.
        number: u64,
    },
    /// Several marks, session records or fences that a node appended together, in order (2 to
    /// [`MAX_SEVERAL`]; never pushes, never several again).
    Several(Vec<LogRecord>),
}

/// The most records one [`LogRecord::Several`] holds.
pub const MAX_SEVERAL: usize = 1024;

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes do not start with the record magic.
    #[error("not a pushgate log record")]
    NotARecord,
    /// Written by a newer (or unknown) version of pushgate.
    #[error("unknown record version {0}")]
    UnknownVersion(u8),
    /// The bytes end inside a field.
    #[error("record truncated")]
    Truncated,
    /// Larger than [`MAX_RECORD_BYTES`].
    #[error("record of {0} bytes, larger than the {MAX_RECORD_BYTES} allowed")]
    Oversized(usize),
    /// A tag (kind, target, event, status, ...) has no meaning.
    #[error("invalid {field} tag {tag}")]
    BadTag {
        /// Which field.
        field: &'static str,
        /// The tag found.
        tag: u8,
    },
    /// A string or payload is not UTF-8.
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    /// No pushes, or more than [`MAX_PUSHES`].
    #[error("{0} pushes in one record (1 to {MAX_PUSHES} allowed)")]
    PushCount(usize),
    /// A record of several records holding fewer than 2 or more than [`MAX_SEVERAL`].
    #[error("{0} records in a record of several (2 to {MAX_SEVERAL} allowed)")]
    SeveralCount(usize),
    /// A list of device changes shorter than 2 (one or none has its own tag) or longer than
    /// [`MAX_PUSHES`].
    #[error("a list of {0} device changes in one record (2 to {MAX_PUSHES} allowed)")]
    DeviceCount(usize),
    /// A string longer than a `u16` length can say.
    #[error("{0} longer than 65535 bytes")]
    TooLong(&'static str),
    /// Bytes after the last field.
    #[error("{0} bytes after the end of the record")]
    Trailing(usize),
    /// More rooms in a session record than it may hold.
    #[error("{0} rooms in one session record (at most {max} allowed)", max = super::session_record::MAX_ROOMS)]
    RoomCount(usize),
}

impl LogRecord {
    /// The record's bytes; an error when it cannot be written (no pushes, too many, too
    /// large, a room name over 65535 bytes).
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let mut out = start();
        match self {
            LogRecord::Pushes {
                origin,
                devices,
                pushes,
            } => {
                let mut body = Vec::new();
                for push in pushes {
                    put_push(&mut body, push)?;
                }
                let devices: Vec<&DeviceChange> = devices.iter().collect();
                put_pushes(&mut out, origin, &devices, pushes.len(), [body.as_slice()])?;
            }
            LogRecord::Mark { origin } => {
                out.push(1);
                put_str(&mut out, origin, "origin")?;
            }
            LogRecord::Session { origin, event } => {
                out.push(2);
                put_str(&mut out, origin, "origin")?;
                event.encode(&mut out)?;
            }
            LogRecord::Fence { origin, number } => {
                out.push(3);
                put_str(&mut out, origin, "origin")?;
                out.extend_from_slice(&number.to_be_bytes());
            }
            LogRecord::Several(records) => {
                let parts = records
                    .iter()
                    .map(|record| match record {
                        LogRecord::Pushes { .. } => Err(RecordError::BadTag {
                            field: "kind in several",
                            tag: 0,
                        }),
                        LogRecord::Several(_) => Err(RecordError::BadTag {
                            field: "kind in several",
                            tag: 4,
                        }),
                        other => other.encode(),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                put_several(&mut out, &parts)?;
            }
        }
        finish(out)
    }

    /// Read a record; see [`RecordError`] for what is refused.
    pub fn decode(bytes: &[u8]) -> Result<LogRecord, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::Oversized(bytes.len()));
        }
        let mut r = Reader { bytes };
        if r.take(MAGIC.len()).map_err(|_| RecordError::NotARecord)? != MAGIC {
            return Err(RecordError::NotARecord);
        }
        match r.u8()? {
            VERSION => {}
            other => return Err(RecordError::UnknownVersion(other)),
        }
        let record = match r.u8()? {
            0 => {
                let origin = r.string("origin")?;
                let devices = match r.u8()? {
                    0 => Vec::new(),
                    3 => {
                        let count = usize::from(r.u8()?);
                        if !(2..=MAX_PUSHES).contains(&count) {
                            return Err(RecordError::DeviceCount(count));
                        }
                        (0..count)
                            .map(|_| {
                                let tag = r.u8()?;
                                r.change(tag)
                            })
                            .collect::<Result<Vec<_>, _>>()?
                    }
                    tag => vec![r.change(tag)?],
                };
                let count = usize::from(r.u8()?);
                if count == 0 || count > MAX_PUSHES {
                    return Err(RecordError::PushCount(count));
                }
                let pushes = (0..count)
                    .map(|_| r.push())
                    .collect::<Result<Vec<_>, _>>()?;
                LogRecord::Pushes {
                    origin,
                    devices,
                    pushes,
                }
            }
            1 => LogRecord::Mark {
                origin: r.string("origin")?,
            },
            2 => LogRecord::Session {
                origin: r.string("origin")?,
                event: SessionEvent::decode(&mut r)?,
            },
            3 => LogRecord::Fence {
                origin: r.string("origin")?,
                number: r.u64()?,
            },
            4 => {
                let count =
                    usize::from(u16::from_be_bytes(r.take(2)?.try_into().expect("2 bytes")));
                if !(2..=MAX_SEVERAL).contains(&count) {
                    return Err(RecordError::SeveralCount(count));
                }
                let mut records = Vec::with_capacity(count);
                for _ in 0..count {
                    let len = u32::from_be_bytes(r.take(4)?.try_into().expect("4 bytes"));
                    let inner = r.take(len as usize)?;
                    let record = LogRecord::decode(inner)?;
                    if let LogRecord::Pushes { .. } | LogRecord::Several(_) = record {
                        return Err(RecordError::BadTag {
                            field: "kind in several",
                            tag: inner[4],
                        });
                    }
                    records.push(record);
                }
                LogRecord::Several(records)
            }
            tag => return Err(RecordError::BadTag { field: "kind", tag }),
        };
        match r.bytes.len() {
            0 => Ok(record),
            n => Err(RecordError::Trailing(n)),
        }
    }
}

/// A record's first bytes: magic and version.
pub(super) fn start() -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out
}

/// A record's bytes, unless they are too many.
pub(super) fn finish(out: Vec<u8>) -> Result<Vec<u8>, RecordError> {
    if out.len() > MAX_RECORD_BYTES {
        return Err(RecordError::Oversized(out.len()));
    }
    Ok(out)
}

/// The rest of a record of several after [`start`]: kind, count, then each record's bytes
/// (`parts`, whole records as [`LogRecord::encode`] writes them, none of pushes or several),
/// each after its `u32` length.
pub(super) fn put_several(out: &mut Vec<u8>, parts: &[Vec<u8>]) -> Result<(), RecordError> {
    if !(2..=MAX_SEVERAL).contains(&parts.len()) {
        return Err(RecordError::SeveralCount(parts.len()));
    }
    out.push(4);
    out.extend_from_slice(&(parts.len() as u16).to_be_bytes());
    for part in parts {
        let len = u32::try_from(part.len()).map_err(|_| RecordError::Oversized(part.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    Ok(())
}

/// The rest of a pushes record after [`start`]: kind, origin, the device changes, the push
/// count, then `bodies`, the `count` pushes already written by [`put_push`], in order.
pub(super) fn put_pushes<'a>(
    out: &mut Vec<u8>,
    origin: &str,
    devices: &[&DeviceChange],
    count: usize,
    bodies: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(), RecordError> {
    out.push(0);
    put_str(out, origin, "origin")?;
    match devices {
        [] => out.push(0),
        [one] => put_change(out, one)?,
        many => {
            if many.len() > MAX_PUSHES {
                return Err(RecordError::DeviceCount(many.len()));
            }
            out.push(3);
            out.push(many.len() as u8);
            for change in many {
                put_change(out, change)?;
            }
        }
    }
    if count == 0 || count > MAX_PUSHES {
        return Err(RecordError::PushCount(count));
    }
    out.push(count as u8);
    for body in bodies {
        out.extend_from_slice(body);
    }
    Ok(())
}

/// One device change: tag `1` set (id, status `1` running / `2` stopped) or `2` removed (id).
pub(super) fn put_change(out: &mut Vec<u8>, change: &DeviceChange) -> Result<(), RecordError> {
    match change {
        DeviceChange::Set { device_id, status } => {
            out.push(1);
            put_str(out, device_id, "device id")?;
            out.push(if *status == "running" { 1 } else { 2 });
        }
        DeviceChange::Removed { device_id } => {
            out.push(2);
            put_str(out, device_id, "device id")?;
        }
    }
    Ok(())
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &str, what: &'static str) -> Result<(), RecordError> {
    let len = u16::try_from(s.len()).map_err(|_| RecordError::TooLong(what))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

pub(super) fn put_push(out: &mut Vec<u8>, push: &RecordedPush) -> Result<(), RecordError> {
    match &push.target {
        PushTarget::Everyone => out.push(0),
        PushTarget::Room(room) => {
            out.push(1);
            put_str(out, room, "room")?;
        }
        PushTarget::RoomExceptMembersOf {
            room,
            except_members_of,
        } => {
            out.push(2);
            put_str(out, room, "room")?;
            put_str(out, except_members_of, "room")?;
        }
    }
    out.push(match push.event {
        PushEvent::Notification => 0,
        PushEvent::Message => 1,
    });
    out.push(u8::from(push.priority));
    out.push(match push.source {
        PushSource::Amqp => 0,
        PushSource::Http => 1,
        PushSource::Consul => 2,
    });
    let len = u32::try_from(push.payload.len())
        .map_err(|_| RecordError::Oversized(push.payload.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(push.payload.as_bytes());
    Ok(())
}

/// Reads fields off the front of a record.
pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.bytes.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub(super) fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn text(&mut self, len: usize, what: &'static str) -> Result<&'a str, RecordError> {
        std::str::from_utf8(self.take(len)?).map_err(|_| RecordError::NotUtf8(what))
    }

    pub(super) fn string(&mut self, what: &'static str) -> Result<String, RecordError> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().expect("two bytes"));
        self.text(usize::from(len), what).map(str::to_owned)
    }

    /// The device change after its tag `tag` (see [`put_change`]).
    fn change(&mut self, tag: u8) -> Result<DeviceChange, RecordError> {
        match tag {
            1 => {
                let device_id = self.string("device id")?;
                let status = match self.u8()? {
                    1 => "running",
                    2 => "stopped",
                    tag => {
                        return Err(RecordError::BadTag {
                            field: "status",
                            tag,
                        })
                    }
                };
                Ok(DeviceChange::Set { device_id, status })
            }
            2 => Ok(DeviceChange::Removed {
                device_id: self.string("device id")?,
            }),
            tag => Err(RecordError::BadTag {
                field: "device",
                tag,
            }),
        }
    }

    fn push(&mut self) -> Result<RecordedPush, RecordError> {
        let target = match self.u8()? {
            0 => PushTarget::Everyone,
            1 => PushTarget::Room(self.string("room")?),
            2 => PushTarget::RoomExceptMembersOf {
                room: self.string("room")?,
                except_members_of: self.string("room")?,
            },
            tag => {
                return Err(RecordError::BadTag {
                    field: "target",
                    tag,
                })
            }
        };
        let event = match self.u8()? {
            0 => PushEvent::Notification,
            1 => PushEvent::Message,
            tag => {
                return Err(RecordError::BadTag {
                    field: "event",
                    tag,
                })
            }
        };
        let priority = match self.u8()? {
            0 => false,
            1 => true,
            tag => {
                return Err(RecordError::BadTag {
                    field: "priority",
                    tag,
                })
            }
        };
        let source = match self.u8()? {
            0 => PushSource::Amqp,
            1 => PushSource::Http,
            2 => PushSource::Consul,
            tag => {
                return Err(RecordError::BadTag {
                    field: "source",
                    tag,
                })
            }
        };
        let len = u32::from_be_bytes(self.take(4)?.try_into().expect("four bytes"));
        let payload: Arc<str> = Arc::from(self.text(len as usize, "payload")?);
        Ok(RecordedPush {
            target,
            event,
            payload,
            priority,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(target: PushTarget, event: PushEvent, payload: &str, priority: bool) -> RecordedPush {
        RecordedPush {
            target,
            event,
            payload: payload.into(),
            priority,
            source: PushSource::Http,
        }
    }

    fn sample() -> LogRecord {
        LogRecord::Pushes {
            origin: "node-1/3f2a".into(),
            devices: vec![DeviceChange::Set {
                device_id: "d-7".into(),
                status: "running",
            }],
            pushes: vec![
                push(
                    PushTarget::Room("user:42".into()),
                    PushEvent::Notification,
                    r#"{"type":"x","n":1.50,"s":"é\u00e9"}"#,
                    false,
                ),
                push(
                    PushTarget::RoomExceptMembersOf {
                        room: "admin".into(),
                        except_members_of: "user:42".into(),
                    },
                    PushEvent::Message,
                    "{}",
                    true,
                ),
                push(
                    PushTarget::Everyone,
                    PushEvent::Notification,
                    "{\"b\":0}",
                    false,
                ),
            ],
        }
    }

    #[test]
    fn every_kind_round_trips_with_its_payload_bytes_unchanged() {
        let records = [
            sample(),
            LogRecord::Pushes {
                origin: "n".into(),
                devices: vec![DeviceChange::Set {
                    device_id: "d".into(),
                    status: "stopped",
                }],
                pushes: vec![push(PushTarget::Everyone, PushEvent::Message, "{}", false)],
            },
            LogRecord::Pushes {
                origin: "n".into(),
                devices: vec![DeviceChange::Removed {
                    device_id: "d".into(),
                }],
                pushes: vec![push(PushTarget::Everyone, PushEvent::Message, "{}", false)],
            },
            LogRecord::Pushes {
                origin: String::new(),
                devices: vec![],
                pushes: vec![push(
                    PushTarget::Room("r".into()),
                    PushEvent::Message,
                    "",
                    false,
                )],
            },
            LogRecord::Mark {
                origin: "node-2/1".into(),
            },
            LogRecord::Fence {
                origin: "node-2/1".into(),
                number: u64::MAX,
            },
            LogRecord::Fence {
                origin: String::new(),
                number: 0,
            },
        ];
        for record in records {
            let bytes = record.encode().unwrap();
            assert_eq!(LogRecord::decode(&bytes), Ok(record));
        }
    }

    #[test]
    fn a_record_of_several_routed_events_carries_their_device_changes_in_order() {
        let changes = vec![
            DeviceChange::Set {
                device_id: "d-1".into(),
                status: "running",
            },
            DeviceChange::Removed {
                device_id: "d-2".into(),
            },
            DeviceChange::Set {
                device_id: "d-1".into(),
                status: "stopped",
            },
        ];
        let record = LogRecord::Pushes {
            origin: "n".into(),
            devices: changes.clone(),
            pushes: vec![push(PushTarget::Everyone, PushEvent::Message, "{}", false)],
        };
        let bytes = record.encode().unwrap();
        // "PGL", version, kind at 0..5, origin "n" at 5..8, then the list tag and its count.
        assert_eq!(&bytes[8..10], &[3, 3]);
        assert_eq!(LogRecord::decode(&bytes), Ok(record));

        let with = |at: usize, byte: u8| {
            let mut changed = bytes.clone();
            changed[at] = byte;
            LogRecord::decode(&changed)
        };
        assert_eq!(with(9, 0), Err(RecordError::DeviceCount(0)));
        assert_eq!(with(9, 1), Err(RecordError::DeviceCount(1)));
        assert_eq!(with(9, 65), Err(RecordError::DeviceCount(65)));
        assert_eq!(with(9, 255), Err(RecordError::DeviceCount(255)));
        // A list inside the list, or no change at all, is no change.
        for tag in [0, 3, 9] {
            assert_eq!(
                with(10, tag),
                Err(RecordError::BadTag {
                    field: "device",
                    tag
                })
            );
        }
        for len in 9..bytes.len() {
            assert_eq!(
                LogRecord::decode(&bytes[..len]),
                Err(RecordError::Truncated),
                "cut at {len}"
            );
        }
        let too_many = LogRecord::Pushes {
            origin: "n".into(),
            devices: vec![changes[1].clone(); MAX_PUSHES + 1],
            pushes: vec![push(PushTarget::Everyone, PushEvent::Message, "{}", false)],
        };
        assert_eq!(
            too_many.encode(),
            Err(RecordError::DeviceCount(MAX_PUSHES + 1))
        );
    }

    fn several() -> LogRecord {
        LogRecord::Several(vec![
            LogRecord::Mark {
                origin: "n1/a".into(),
            },
            fence(),
            LogRecord::Mark {
                origin: "n2/b".into(),
            },
        ])
    }

    #[test]
    fn several_records_round_trip_in_order_and_only_of_the_kinds_that_share() {
        let record = several();
        let bytes = record.encode().unwrap();
        assert_eq!(&bytes[..7], b"PGL\x01\x04\x00\x03");
        assert_eq!(LogRecord::decode(&bytes), Ok(record));
        for len in 3..bytes.len() {
            assert_eq!(
                LogRecord::decode(&bytes[..len]),
                Err(RecordError::Truncated),
                "cut at {len}"
            );
        }
        for (count, err) in [(0u16, 0usize), (1, 1), (1025, 1025), (u16::MAX, 65_535)] {
            let mut wrong = bytes.clone();
            wrong[5..7].copy_from_slice(&count.to_be_bytes());
            assert_eq!(
                LogRecord::decode(&wrong),
                Err(RecordError::SeveralCount(err))
            );
        }
        // An inner length running past the end, an inner record that is no record.
        let mut long = bytes.clone();
        long[7..11].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(LogRecord::decode(&long), Err(RecordError::Truncated));
        let mut broken = bytes.clone();
        broken[11] = b'X';
        assert_eq!(LogRecord::decode(&broken), Err(RecordError::NotARecord));
        // Pushes and several never go inside several, written or read.
        for inner in [sample(), several()] {
            let tag = inner.encode().unwrap()[4];
            let nested = LogRecord::Several(vec![fence(), inner.clone()]);
            let refused = RecordError::BadTag {
                field: "kind in several",
                tag,
            };
            assert_eq!(nested.encode(), Err(refused.clone()));
            let inner = inner.encode().unwrap();
            let fence = fence().encode().unwrap();
            let mut out = start();
            put_several(&mut out, &[fence, inner]).unwrap();
            assert_eq!(LogRecord::decode(&out), Err(refused));
        }
        assert_eq!(
            LogRecord::Several(vec![fence()]).encode(),
            Err(RecordError::SeveralCount(1))
        );
    }

    #[test]
    fn truncated_records_are_refused_at_every_length() {
        let bytes = sample().encode().unwrap();
        for len in 0..bytes.len() {
            let err = LogRecord::decode(&bytes[..len]).unwrap_err();
            let expected = if len < 3 {
                RecordError::NotARecord
            } else {
                RecordError::Truncated
            };
            assert_eq!(err, expected, "cut at {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(LogRecord::decode(&longer), Err(RecordError::Trailing(1)));
    }

    #[test]
    fn malformed_records_are_refused() {
        let good = sample().encode().unwrap();
        let with = |at: usize, byte: u8| {
            let mut bytes = good.clone();
            bytes[at] = byte;
            LogRecord::decode(&bytes)
        };
        assert_eq!(
            LogRecord::decode(b"{\"json\":1}"),
            Err(RecordError::NotARecord)
        );
        assert_eq!(with(0, b'X'), Err(RecordError::NotARecord));
        assert_eq!(with(3, 2), Err(RecordError::UnknownVersion(2)));
        assert_eq!(with(3, 0), Err(RecordError::UnknownVersion(0)));
        assert_eq!(
            with(4, 9),
            Err(RecordError::BadTag {
                field: "kind",
                tag: 9
            })
        );
        // origin "node-1/3f2a" is 11 bytes at 5..18; the device tag follows.
        assert_eq!(
            with(18, 4),
            Err(RecordError::BadTag {
                field: "device",
                tag: 4
            })
        );
        // `3` makes the device id's length (0, then 3) a list count: 0 is no list.
        assert_eq!(with(18, 3), Err(RecordError::DeviceCount(0)));
        assert_eq!(with(7, 0xff), Err(RecordError::NotUtf8("origin")));
        // the device id "d-7" at 19..24, its status at 24, the push count at 25.
        assert_eq!(
            with(24, 0),
            Err(RecordError::BadTag {
                field: "status",
                tag: 0
            })
        );
        assert_eq!(with(25, 0), Err(RecordError::PushCount(0)));
        assert_eq!(with(25, 65), Err(RecordError::PushCount(65)));
        assert_eq!(
            with(26, 7),
            Err(RecordError::BadTag {
                field: "target",
                tag: 7
            })
        );
        let mut bad_payload = sample();
        if let LogRecord::Pushes { pushes, .. } = &mut bad_payload {
            pushes.truncate(1);
            pushes[0].payload = "{\"a\":\"ü\"}".into();
        }
        let mut bytes = bad_payload.encode().unwrap();
        let at = bytes.len() - 4; // inside "ü"
        bytes[at] = 0xc3;
        bytes[at + 1] = 0x28;
        assert_eq!(
            LogRecord::decode(&bytes),
            Err(RecordError::NotUtf8("payload"))
        );
    }

    fn fence() -> LogRecord {
        LogRecord::Fence {
            origin: "node-3/9".into(),
            number: 0x0102_0304_0506_0708,
        }
    }

    #[test]
    fn a_fence_is_its_origin_and_its_big_endian_number() {
        let bytes = fence().encode().unwrap();
        assert_eq!(&bytes[..5], b"PGL\x01\x03");
        assert_eq!(&bytes[5..7], &[0, 8]);
        assert_eq!(&bytes[7..15], b"node-3/9");
        assert_eq!(&bytes[15..], &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn truncated_or_malformed_fences_are_refused() {
        let bytes = fence().encode().unwrap();
        for len in 3..bytes.len() {
            assert_eq!(
                LogRecord::decode(&bytes[..len]),
                Err(RecordError::Truncated),
                "cut at {len}"
            );
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 8]);
        assert_eq!(LogRecord::decode(&longer), Err(RecordError::Trailing(8)));
        let mut bad_origin = bytes.clone();
        bad_origin[7] = 0xff;
        assert_eq!(
            LogRecord::decode(&bad_origin),
            Err(RecordError::NotUtf8("origin"))
        );
        // An origin length running past the end eats the number: truncated, not misread.
        let mut long_origin = bytes.clone();
        long_origin[5..7].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(LogRecord::decode(&long_origin), Err(RecordError::Truncated));
        // A kind after the last one known is refused, as fences are by the nodes before them.
        let mut unknown = bytes;
        unknown[4] = 5;
        assert_eq!(
            LogRecord::decode(&unknown),
            Err(RecordError::BadTag {
                field: "kind",
                tag: 5
            })
        );
        // The longest origin, then a number cut short.
        let hostile = [b"PGL\x01\x03\xff\xff".as_slice(), &[b'a'; 65_535], &[0; 7]].concat();
        assert_eq!(LogRecord::decode(&hostile), Err(RecordError::Truncated));
        let too_long = LogRecord::Fence {
            origin: "o".repeat(70_000),
            number: 1,
        };
        assert_eq!(too_long.encode(), Err(RecordError::TooLong("origin")));
    }

    #[test]
    fn oversized_and_unwritable_records_are_refused() {
        let big = "x".repeat(MAX_RECORD_BYTES);
        let record = LogRecord::Pushes {
            origin: "n".into(),
            devices: vec![],
            pushes: vec![push(PushTarget::Everyone, PushEvent::Message, &big, false)],
        };
        assert!(matches!(record.encode(), Err(RecordError::Oversized(_))));
        assert_eq!(
            LogRecord::decode(&vec![0; MAX_RECORD_BYTES + 1]),
            Err(RecordError::Oversized(MAX_RECORD_BYTES + 1))
        );
        let none = LogRecord::Pushes {
            origin: "n".into(),
            devices: vec![],
            pushes: vec![],
        };
        assert_eq!(none.encode(), Err(RecordError::PushCount(0)));
        let long_room = LogRecord::Pushes {
            origin: "n".into(),
            devices: vec![],
            pushes: vec![push(
                PushTarget::Room("r".repeat(70_000)),
                PushEvent::Message,
                "{}",
                false,
            )],
        };
        assert_eq!(long_room.encode(), Err(RecordError::TooLong("room")));
    }
}
