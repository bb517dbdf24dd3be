//! Where recovery's state lives: the push log and the kept sessions behind their traits, and
//! the one decision made from them, whether a reconnecting client gets its session back.

use std::time::{Duration, Instant};

use bytestring::ByteString;

use super::memory_push_log::MemoryPushLog;
use super::memory_session_records::MemorySessionRecords;
use super::not_recovered::NotRecovered;
use super::offset::{LogPosition, OffsetClock};
use super::push_log::PushLog;
use super::session_records::{KeptSession, NotKept, SessionRecords};
use crate::messages::Recover;

/// The push log and the kept sessions, as the room supervisor uses them.
pub struct RecoveryStore {
    /// Every push, with its offset, within its bound.
    pub log: Box<dyn PushLog>,
    /// The sessions kept for recovery.
    pub records: Box<dyn SessionRecords>,
}

/// A session given back: what the supervisor registers it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reclaimed {
    /// Its socket id, as before.
    pub sid: String,
    /// The rooms it was in that it may still join, in their kept order.
    pub rooms: Vec<String>,
    /// The pushes it missed, oldest first.
    pub missed: Vec<ByteString>,
}

impl RecoveryStore {
    /// The in-process store: a push log of at most `history_bytes` bytes, sessions kept for
    /// `window`.
    pub fn in_memory(window: Duration, history_bytes: usize) -> Self {
        RecoveryStore {
            log: Box::new(MemoryPushLog::new(history_bytes, OffsetClock::now())),
            records: Box::new(MemorySessionRecords::new(window)),
        }
    }

    /// The cluster's store: the history read from the cluster's log at the positions it gives
    /// (at most `history_bytes` bytes), sessions kept for `window` in this process (the seam
    /// where they move to the broker, so that another node can recover them).
    pub fn cluster(window: Duration, history_bytes: usize) -> Self {
        RecoveryStore {
            log: Box::new(super::PositionedPushLog::new(history_bytes)),
            records: Box::new(MemorySessionRecords::new(window)),
        }
    }

    /// Give `user_id` back the session `recover` names: its record is taken (a second attempt
    /// is `Unknown`), unless it is another user's, which stays kept for its owner. The rooms
    /// come back filtered by `recover.may_join`, and the missed pushes are those after the
    /// client's offset (or, without one, after the session registered) that a member of those
    /// rooms would have received.
    pub fn reclaim(
        &mut self,
        recover: &Recover,
        user_id: &str,
        now: Instant,
    ) -> Result<Reclaimed, NotRecovered> {
        let kept = self
            .records
            .take(&recover.pid, user_id, now)
            .map_err(|e| match e {
                NotKept::Expired => NotRecovered::Expired,
                NotKept::Unknown => NotRecovered::Unknown,
                NotKept::UserMismatch => NotRecovered::UserMismatch,
            })?;
        let from = self.start_of(&kept, recover.offset.as_deref())?;
        let rooms: Vec<String> = kept
            .rooms
            .into_iter()
            .filter(|room| (recover.may_join)(room))
            .collect();
        let is_member = |room: &str| rooms.iter().any(|r| r == room);
        let missed = self
            .log
            .pushes_after(from, &is_member)
            .map_err(|_| NotRecovered::OffsetTooOld)?;
        Ok(Reclaimed {
            sid: kept.sid,
            rooms,
            missed,
        })
    }

    /// Where a kept session's missed pushes start: after the client's offset, never before
    /// the session registered (earlier pushes were another life's, delivered then).
    fn start_of(
        &self,
        kept: &KeptSession,
        offset: Option<&str>,
    ) -> Result<LogPosition, NotRecovered> {
        match offset {
            None => Ok(kept.registered_at),
            Some(offset) => self
                .log
                .position(offset)
                .map(|p| p.max(kept.registered_at))
                .ok_or(NotRecovered::OffsetTooOld),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::PushTarget;

    const WINDOW: Duration = Duration::from_secs(60);

    fn recover(pid: &str, offset: Option<&str>) -> Recover {
        Recover {
            pid: pid.into(),
            offset: offset.map(str::to_owned),
            may_join: Box::new(|room| room != "admin"),
        }
    }

    /// A store holding pushes `0` to `user:a`, `1` to `admin`, `2` to everyone, and the
    /// session `p` of user `a`, registered before them, in `user:a` and `admin`.
    fn kept_store() -> (RecoveryStore, Vec<String>, Instant) {
        let mut store = RecoveryStore::in_memory(WINDOW, 1 << 20);
        let registered_at = store.log.head();
        let targets = [
            PushTarget::Room("user:a".into()),
            PushTarget::Room("admin".into()),
            PushTarget::Everyone,
        ];
        let mut offsets = Vec::new();
        for (i, target) in targets.into_iter().enumerate() {
            store.log.append(target, &mut |offset| {
                offsets.push(offset.to_owned());
                i.to_string()
            });
        }
        let now = Instant::now();
        store.records.keep(KeptSession {
            sid: "s".into(),
            pid: "p".into(),
            user_id: "a".into(),
            rooms: vec!["user:a".into(), "admin".into()],
            registered_at,
            ended_at: now,
        });
        (store, offsets, now)
    }

    #[test]
    fn reclaiming_gives_back_the_allowed_rooms_and_what_they_missed() {
        let (mut store, offsets, now) = kept_store();
        let reclaimed = store.reclaim(&recover("p", Some(&offsets[0])), "a", now);
        assert_eq!(
            reclaimed,
            Ok(Reclaimed {
                sid: "s".into(),
                rooms: vec!["user:a".into()],
                missed: vec!["2".into()],
            }),
            "no longer admin: the admin push is not replayed"
        );
        assert_eq!(
            store.reclaim(&recover("p", Some(&offsets[0])), "a", now),
            Err(NotRecovered::Unknown),
            "consumed"
        );
    }

    #[test]
    fn without_an_offset_recovery_starts_where_the_session_registered() {
        let (mut store, _, now) = kept_store();
        let reclaimed = store.reclaim(&recover("p", None), "a", now).unwrap();
        assert_eq!(reclaimed.missed, ["0", "2"]);
    }

    #[test]
    fn every_failure_is_told_apart() {
        let (mut store, offsets, now) = kept_store();
        assert_eq!(
            store.reclaim(&recover("p", None), "b", now),
            Err(NotRecovered::UserMismatch)
        );
        assert_eq!(
            store.reclaim(&recover("p", Some("0-1")), "a", now),
            Err(NotRecovered::OffsetTooOld),
            "another run's offset"
        );
        assert_eq!(
            store.reclaim(&recover("p", Some(&offsets[1])), "a", now),
            Err(NotRecovered::Unknown),
            "a failed recovery consumed it"
        );
        let (mut store, _, now) = kept_store();
        assert_eq!(
            store.reclaim(&recover("p", None), "a", now + WINDOW),
            Err(NotRecovered::Expired)
        );
        let (mut store, _, now) = kept_store();
        assert_eq!(
            store.reclaim(&recover("q", None), "a", now),
            Err(NotRecovered::Unknown)
        );
    }

    #[test]
    fn an_evicted_start_is_too_old() {
        let mut store = RecoveryStore::in_memory(WINDOW, 200);
        let registered_at = store.log.head();
        for _ in 0..3 {
            store
                .log
                .append(PushTarget::Everyone, &mut |_| "x".repeat(50));
        }
        let now = Instant::now();
        store.records.keep(KeptSession {
            sid: "s".into(),
            pid: "p".into(),
            user_id: "a".into(),
            rooms: vec![],
            registered_at,
            ended_at: now,
        });
        assert_eq!(
            store.reclaim(&recover("p", None), "a", now),
            Err(NotRecovered::OffsetTooOld)
        );
    }
}
