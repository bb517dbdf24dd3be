//! Session records of the cluster's log: what every node must know of every session so that
//! a client can be recovered on any node, even after the node it was on was killed.
//!
//! A session is named by a hash of its private id ([`PidHash`], SHA-256 cut to 128 bits): the
//! log never holds a `pid`, and nothing in it lets one forge a `pid` that matches. Each
//! record also names the session's *life*: the node process that appended it (the record's
//! origin) and that process's session id, so that a stale record of a life that was already
//! recovered elsewhere changes nothing.
//!
//! - [`SessionEvent::Live`]: the session registered, or its rooms changed (the whole state,
//!   each time).
//! - [`SessionEvent::Ended`]: it ended on its node; `kept` unless the client disconnected
//!   itself (`41`), with the wall-clock time it ended, from which its window runs on every
//!   node.
//! - [`SessionEvent::Taken`]: a node claims the session for a client reconnecting to it.
//!   The first claim in the log's one order wins, on every node alike; the claiming node
//!   recovers the client only once it read its own claim back.
//!
//! # Wire format (inside a version 1 record of kind `2`, after the origin)
//!
//! Event tag (`0` live, `1` ended, `2` taken), life (`u64`), pid hash (16 bytes); then for
//! live: sid, user (strings), room count (`u16`, at most [`MAX_ROOMS`]) and each room
//! (string), the registration position (`u64`); for ended: kept (`0`/`1`), the time it ended
//! (`u64` milliseconds since the Unix epoch); for taken: the user (string) the claim is for.

use sha2::{Digest, Sha256};

use super::record::{put_str, Reader, RecordError};

/// The most rooms one session record holds.
pub const MAX_ROOMS: usize = 4096;

/// The log's name for a session: a hash of its `pid`.
pub type PidHash = [u8; 16];

/// The hash the log knows a `pid` by.
pub fn pid_hash(pid: &str) -> PidHash {
    let digest = Sha256::digest(pid.as_bytes());
    let mut hash = [0; 16];
    hash.copy_from_slice(&digest[..16]);
    hash
}

/// What happened to a session; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// It is connected to the record's origin, in `rooms`.
    Live {
        /// Its session id in the origin process.
        life: u64,
        /// Its `pid`'s hash.
        pid: PidHash,
        /// Its socket id.
        sid: String,
        /// The `sub` it authenticated as.
        user_id: String,
        /// The rooms it is in.
        rooms: Vec<String>,
        /// The recovery history's position when it registered.
        registered_at: u64,
    },
    /// It ended on the record's origin.
    Ended {
        /// Its session id in the origin process.
        life: u64,
        /// Its `pid`'s hash.
        pid: PidHash,
        /// Kept for recovery (every end but the client's own disconnect).
        kept: bool,
        /// When it ended, in milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// The record's origin claims it for a reconnecting client.
    Taken {
        /// The claiming process's session id for the client.
        life: u64,
        /// The claimed `pid`'s hash.
        pid: PidHash,
        /// The `sub` the reconnecting client authenticated as (another user's claim takes
        /// nothing).
        user_id: String,
    },
}

impl SessionEvent {
    /// The `pid` hash it is about.
    pub fn pid(&self) -> &PidHash {
        match self {
            SessionEvent::Live { pid, .. }
            | SessionEvent::Ended { pid, .. }
            | SessionEvent::Taken { pid, .. } => pid,
        }
    }

    /// The session id, in the record's origin, of the life it is about.
    pub fn life(&self) -> u64 {
        match self {
            SessionEvent::Live { life, .. }
            | SessionEvent::Ended { life, .. }
            | SessionEvent::Taken { life, .. } => *life,
        }
    }

    /// Write it after a record's origin.
    pub(super) fn encode(&self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        out.push(match self {
            SessionEvent::Live { .. } => 0,
            SessionEvent::Ended { .. } => 1,
            SessionEvent::Taken { .. } => 2,
        });
        out.extend_from_slice(&self.life().to_be_bytes());
        out.extend_from_slice(self.pid());
        match self {
            SessionEvent::Live {
                sid,
                user_id,
                rooms,
                registered_at,
                ..
            } => {
                put_str(out, sid, "sid")?;
                put_str(out, user_id, "user")?;
                if rooms.len() > MAX_ROOMS {
                    return Err(RecordError::RoomCount(rooms.len()));
                }
                out.extend_from_slice(&(rooms.len() as u16).to_be_bytes());
                for room in rooms {
                    put_str(out, room, "room")?;
                }
                out.extend_from_slice(&registered_at.to_be_bytes());
            }
            SessionEvent::Ended { kept, at_ms, .. } => {
                out.push(u8::from(*kept));
                out.extend_from_slice(&at_ms.to_be_bytes());
            }
            SessionEvent::Taken { user_id, .. } => put_str(out, user_id, "user")?,
        }
        Ok(())
    }

    /// Read one written by [`SessionEvent::encode`].
    pub(super) fn decode(r: &mut Reader<'_>) -> Result<SessionEvent, RecordError> {
        let tag = r.u8()?;
        let life = r.u64()?;
        let pid: PidHash = r.take(16)?.try_into().expect("16 bytes");
        Ok(match tag {
            0 => {
                let sid = r.string("sid")?;
                let user_id = r.string("user")?;
                let count = usize::from(u16::from_be_bytes(
                    r.take(2)?.try_into().expect("two bytes"),
                ));
                if count > MAX_ROOMS {
                    return Err(RecordError::RoomCount(count));
                }
                let rooms = (0..count)
                    .map(|_| r.string("room"))
                    .collect::<Result<_, _>>()?;
                SessionEvent::Live {
                    life,
                    pid,
                    sid,
                    user_id,
                    rooms,
                    registered_at: r.u64()?,
                }
            }
            1 => {
                let kept = match r.u8()? {
                    0 => false,
                    1 => true,
                    tag => return Err(RecordError::BadTag { field: "kept", tag }),
                };
                SessionEvent::Ended {
                    life,
                    pid,
                    kept,
                    at_ms: r.u64()?,
                }
            }
            2 => SessionEvent::Taken {
                life,
                pid,
                user_id: r.string("user")?,
            },
            tag => {
                return Err(RecordError::BadTag {
                    field: "session event",
                    tag,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::LogRecord;

    fn records() -> Vec<LogRecord> {
        let pid = pid_hash("a-private-id");
        let events = [
            SessionEvent::Live {
                life: 7,
                pid,
                sid: "sid-1".into(),
                user_id: "42".into(),
                rooms: vec!["user:42".into(), "admin".into()],
                registered_at: 1 << 40,
            },
            SessionEvent::Live {
                life: 0,
                pid,
                sid: String::new(),
                user_id: String::new(),
                rooms: vec![],
                registered_at: 0,
            },
            SessionEvent::Ended {
                life: u64::MAX,
                pid,
                kept: true,
                at_ms: 1_700_000_000_000,
            },
            SessionEvent::Ended {
                life: 1,
                pid,
                kept: false,
                at_ms: 0,
            },
            SessionEvent::Taken {
                life: 9,
                pid,
                user_id: "42".into(),
            },
        ];
        events
            .into_iter()
            .map(|event| LogRecord::Session {
                origin: "n1/ab".into(),
                event,
            })
            .collect()
    }

    #[test]
    fn the_pid_is_never_in_the_record_only_its_hash() {
        assert_ne!(pid_hash("a"), pid_hash("b"));
        assert_eq!(pid_hash("a"), pid_hash("a"));
        for record in records() {
            let bytes = record.encode().unwrap();
            assert!(!bytes.windows(12).any(|w| w == b"a-private-id"));
            assert_eq!(LogRecord::decode(&bytes), Ok(record));
        }
    }

    #[test]
    fn truncated_or_malformed_session_records_are_refused() {
        for record in records() {
            let bytes = record.encode().unwrap();
            for len in 3..bytes.len() {
                assert_eq!(
                    LogRecord::decode(&bytes[..len]),
                    Err(RecordError::Truncated),
                    "{record:?} cut at {len}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(1);
            assert_eq!(LogRecord::decode(&longer), Err(RecordError::Trailing(1)));
        }
        // "PGL", version, kind, origin "n1/ab" (2 + 5 bytes): the event tag is at 12.
        let live = records()[0].encode().unwrap();
        let mut bad = live.clone();
        bad[12] = 3;
        assert_eq!(
            LogRecord::decode(&bad),
            Err(RecordError::BadTag {
                field: "session event",
                tag: 3
            })
        );
        // tag, life (8), pid (16): the sid's length at 37, its bytes from 39.
        let mut bad = live.clone();
        bad[39] = 0xff;
        assert_eq!(LogRecord::decode(&bad), Err(RecordError::NotUtf8("sid")));
        let ended = records()[2].encode().unwrap();
        let mut bad = ended.clone();
        bad[37] = 2;
        assert_eq!(
            LogRecord::decode(&bad),
            Err(RecordError::BadTag {
                field: "kept",
                tag: 2
            })
        );
    }

    #[test]
    fn too_many_rooms_are_refused_both_ways() {
        let record = LogRecord::Session {
            origin: "n".into(),
            event: SessionEvent::Live {
                life: 1,
                pid: pid_hash("p"),
                sid: "s".into(),
                user_id: "u".into(),
                rooms: vec!["r".into(); MAX_ROOMS + 1],
                registered_at: 0,
            },
        };
        assert_eq!(record.encode(), Err(RecordError::RoomCount(MAX_ROOMS + 1)));
        // "PGL", version, kind, origin "n1/ab" (7 bytes); tag, life, pid, empty sid and
        // user: the room count follows.
        let mut bytes = records()[1].encode().unwrap();
        let at = 5 + 7 + 1 + 8 + 16 + 2 + 2;
        bytes[at..at + 2].copy_from_slice(&(MAX_ROOMS as u16 + 1).to_be_bytes());
        assert_eq!(
            LogRecord::decode(&bytes),
            Err(RecordError::RoomCount(MAX_ROOMS + 1))
        );
    }
}
