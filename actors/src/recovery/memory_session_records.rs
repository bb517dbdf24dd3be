//! The in-process store of kept sessions: a map by `pid` with expiry.
//!
//! A record lives for the window after its session ended. When it expires its pid is
//! remembered for one more window (at least [`EXPIRED_REMEMBERED_AT_LEAST`]), so that a late
//! recovery counts as `expired` rather than `unknown`; after that it is forgotten. Expiry is checked on every call, oldest first, so
//! memory is bounded by the sessions that ended in the last two windows.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::session_records::{KeptSession, NotKept, SessionRecords};

/// The shortest time an expired session's pid is remembered as expired.
pub const EXPIRED_REMEMBERED_AT_LEAST: Duration = Duration::from_secs(60);

/// Kept sessions of this process.
pub struct MemorySessionRecords {
    window: Duration,
    kept: HashMap<String, KeptSession>,
    /// Pids of sessions whose window passed, until when they are remembered as expired.
    expired: HashMap<String, Instant>,
    /// (when it expires, pid), in the order the sessions were kept: `ended_at` is the time of
    /// `keep`, so this is also expiry order.
    kept_queue: VecDeque<(Instant, String)>,
    expired_queue: VecDeque<(Instant, String)>,
}

impl MemorySessionRecords {
    /// An empty store keeping sessions for `window`.
    pub fn new(window: Duration) -> Self {
        MemorySessionRecords {
            window,
            kept: HashMap::new(),
            expired: HashMap::new(),
            kept_queue: VecDeque::new(),
            expired_queue: VecDeque::new(),
        }
    }

    /// How many sessions are kept, and how many pids are remembered as expired.
    pub fn len(&self) -> (usize, usize) {
        (self.kept.len(), self.expired.len())
    }

    /// Move the records whose window passed by `now` to the expired ones, and forget the
    /// expired ones remembered long enough.
    fn expire(&mut self, now: Instant) {
        while let Some((until, _)) = self.kept_queue.front() {
            if *until > now {
                break;
            }
            let (until, pid) = self.kept_queue.pop_front().expect("front exists");
            // A record taken, or replaced by a later keep, has no live entry with this expiry.
            if self
                .kept
                .get(&pid)
                .is_some_and(|s| s.ended_at + self.window == until)
            {
                self.kept.remove(&pid);
                let forget_at = until + self.window.max(EXPIRED_REMEMBERED_AT_LEAST);
                self.expired.insert(pid.clone(), forget_at);
                self.expired_queue.push_back((forget_at, pid));
            }
        }
        while let Some((until, _)) = self.expired_queue.front() {
            if *until > now {
                break;
            }
            let (until, pid) = self.expired_queue.pop_front().expect("front exists");
            if self.expired.get(&pid) == Some(&until) {
                self.expired.remove(&pid);
            }
        }
    }
}

impl SessionRecords for MemorySessionRecords {
    fn keep(&mut self, session: KeptSession) {
        self.expire(session.ended_at);
        self.expired.remove(&session.pid);
        self.kept_queue
            .push_back((session.ended_at + self.window, session.pid.clone()));
        self.kept.insert(session.pid.clone(), session);
    }

    fn take(&mut self, pid: &str, user_id: &str, now: Instant) -> Result<KeptSession, NotKept> {
        self.expire(now);
        match self.kept.get(pid) {
            Some(kept) if kept.user_id != user_id => Err(NotKept::UserMismatch),
            Some(_) => Ok(self.kept.remove(pid).expect("just found")),
            None if self.expired.contains_key(pid) => Err(NotKept::Expired),
            None => Err(NotKept::Unknown),
        }
    }

    fn any_kept(&mut self, now: Instant) -> bool {
        self.expire(now);
        !self.kept.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::LogPosition;

    const WINDOW: Duration = Duration::from_secs(120);

    fn session(pid: &str, user: &str, ended_at: Instant) -> KeptSession {
        KeptSession {
            sid: format!("sid-{pid}"),
            pid: pid.into(),
            user_id: user.into(),
            rooms: vec![format!("user:{user}"), "admin".into()],
            registered_at: LogPosition(3),
            ended_at,
        }
    }

    #[test]
    fn a_kept_session_is_handed_out_once_to_its_owner() {
        let t0 = Instant::now();
        let mut records = MemorySessionRecords::new(WINDOW);
        assert!(!records.any_kept(t0));
        records.keep(session("p1", "a", t0));
        assert!(records.any_kept(t0));
        assert_eq!(records.take("p1", "b", t0), Err(NotKept::UserMismatch));
        assert_eq!(records.take("nope", "a", t0), Err(NotKept::Unknown));
        let later = t0 + WINDOW - Duration::from_millis(1);
        assert_eq!(records.take("p1", "a", later), Ok(session("p1", "a", t0)));
        assert_eq!(
            records.take("p1", "a", later),
            Err(NotKept::Unknown),
            "consumed"
        );
        assert!(!records.any_kept(later));
    }

    #[test]
    fn expired_sessions_are_told_apart_for_a_window_then_forgotten() {
        let t0 = Instant::now();
        let mut records = MemorySessionRecords::new(WINDOW);
        records.keep(session("p1", "a", t0));
        records.keep(session("p2", "a", t0 + Duration::from_secs(60)));
        let t1 = t0 + WINDOW;
        assert_eq!(records.take("p1", "a", t1), Err(NotKept::Expired));
        assert_eq!(records.take("p1", "b", t1), Err(NotKept::Expired));
        assert_eq!(records.len(), (1, 1));
        assert!(records.take("p2", "a", t1).is_ok());
        let t2 = t1 + WINDOW;
        assert_eq!(records.take("p1", "a", t2), Err(NotKept::Unknown));
        assert_eq!(records.len(), (0, 0), "memory is bounded");
    }

    #[test]
    fn keeping_a_pid_again_replaces_the_record_and_its_expiry() {
        let t0 = Instant::now();
        let mut records = MemorySessionRecords::new(WINDOW);
        records.keep(session("p1", "a", t0));
        assert!(records.take("p1", "a", t0).is_ok());
        let t1 = t0 + Duration::from_secs(100);
        records.keep(session("p1", "a", t1));
        // The first keep's expiry passes; the second record is still kept.
        let t2 = t0 + WINDOW;
        assert!(records.any_kept(t2));
        assert_eq!(records.take("p1", "a", t2).map(|s| s.ended_at), Ok(t1));
        assert_eq!(records.len(), (0, 0));
    }
}
