//! The cluster's kept sessions (`CLUSTER=rabbitmq`): every node's sessions, as the session
//! records of the cluster's log tell them ([`SessionEvent`]), so that a client can be
//! recovered on any node.
//!
//! # What is kept, and for how long
//!
//! - A session `Live` on a node that is alive (this one, or one whose presence heartbeats
//!   arrive) is not kept yet, but it can be claimed: a client that reconnects elsewhere
//!   before its old node noticed the drop is recovered all the same.
//! - A session that `Ended` with `kept` is kept for the window from when it ended (the
//!   record's clock); one that ended by its client's own disconnect is forgotten at once.
//! - A session `Live` on a node that went silent (killed, cut from the broker: its presence
//!   expired after `PING_INTERVAL_MS + PING_TIMEOUT_MS`) is kept for the window from when
//!   this node saw it absent.
//!
//! # Taken once, cluster-wide
//!
//! A session is handed out only through a claim ([`SessionEvent::Taken`]) read back from the
//! log: the first claim of a session in the log's one order takes it, on every node alike
//! (another user's claim takes nothing); later claims find it gone. A node that reads its
//! own claim keeps the outcome for [`SessionRecords::take`]. A claim of a session still live
//! on this node (its client came back elsewhere before the drop was noticed here) tells the
//! supervisor to close it: a session is in one place at a time. Records of a life that was
//! claimed (its old node still writing its rooms or its end) change nothing: after a claim,
//! only the claimer's new life is taken in.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::memory_session_records::EXPIRED_REMEMBERED_AT_LEAST;
use super::offset::LogPosition;
use super::session_records::{Applied, KeptSession, NotKept, SessionRecords};
use crate::cluster::session_log::now_ms;
use crate::cluster::{pid_hash, PidHash, PresenceBoard, SessionEvent};

/// How often at most expiry runs over every record.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// One session as the log tells it.
struct Entry {
    /// The node process it is (or was last) on, and its session id there.
    origin: String,
    life: u64,
    sid: String,
    user_id: String,
    rooms: Vec<String>,
    registered_at: LogPosition,
    /// When it ended, if it did (kept from then).
    ended: Option<Instant>,
}

/// Kept sessions fed by the cluster's log; see the module doc.
pub struct LogSessionRecords {
    own_origin: String,
    window: Duration,
    presence: Arc<PresenceBoard>,
    sessions: HashMap<PidHash, Entry>,
    /// Sessions taken by a claim, until the claimer's new life is read: (origin, life, when).
    claimed: HashMap<PidHash, (String, u64, Instant)>,
    /// Sessions whose window passed, until when they are remembered as expired.
    expired: HashMap<PidHash, Instant>,
    /// Since when each silent node process has been seen absent.
    absent_since: HashMap<String, Instant>,
    /// The outcomes of this process's own claims, read back, until taken.
    won: HashMap<PidHash, (Result<KeptSession, NotKept>, Instant)>,
    last_sweep: Option<Instant>,
}

impl LogSessionRecords {
    /// The records of the node process `own_origin`, keeping sessions for `window`; other
    /// nodes are alive while `presence` hears them.
    pub fn new(own_origin: &str, window: Duration, presence: Arc<PresenceBoard>) -> Self {
        LogSessionRecords {
            own_origin: own_origin.to_owned(),
            window,
            presence,
            sessions: HashMap::new(),
            claimed: HashMap::new(),
            expired: HashMap::new(),
            absent_since: HashMap::new(),
            won: HashMap::new(),
            last_sweep: None,
        }
    }

    /// How many sessions it knows (live or kept).
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether it knows no session.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Until when a session on `origin` that ended at `ended` is kept: `None` while it is
    /// live on a live node.
    fn kept_until(
        &mut self,
        origin: &str,
        ended: Option<Instant>,
        now: Instant,
    ) -> Option<Instant> {
        if let Some(ended) = ended {
            return Some(ended + self.window);
        }
        if origin == self.own_origin || self.presence.is_present(origin, now) {
            return None;
        }
        let since = *self.absent_since.entry(origin.to_owned()).or_insert(now);
        Some(since + self.window)
    }

    /// Forget what passed its time (at most once per [`SWEEP_EVERY`]).
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|last| now.saturating_duration_since(last) < SWEEP_EVERY)
        {
            return;
        }
        self.last_sweep = Some(now);
        let presence = self.presence.clone();
        self.absent_since
            .retain(|origin, _| !presence.is_present(origin, now));
        let ends: Vec<(PidHash, String, Option<Instant>)> = self
            .sessions
            .iter()
            .map(|(pid, e)| (*pid, e.origin.clone(), e.ended))
            .collect();
        let remember = self.window.max(EXPIRED_REMEMBERED_AT_LEAST);
        for (pid, origin, ended) in ends {
            if self
                .kept_until(&origin, ended, now)
                .is_some_and(|until| until <= now)
            {
                self.sessions.remove(&pid);
                self.expired.insert(pid, now + remember);
            }
        }
        self.expired.retain(|_, forget_at| *forget_at > now);
        let window = self.window;
        self.claimed
            .retain(|_, (_, _, at)| now.saturating_duration_since(*at) < window);
        self.won
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < EXPIRED_REMEMBERED_AT_LEAST);
    }

    /// Whether a record of `origin`'s `life` of `pid` is about the life the records follow.
    fn follows(&self, pid: &PidHash, origin: &str, life: u64) -> bool {
        match (self.claimed.get(pid), self.sessions.get(pid)) {
            (Some((o, l, _)), _) => o == origin && *l == life,
            (None, Some(e)) => e.origin == origin && e.life == life,
            (None, None) => true,
        }
    }

    /// The outcome of a claim of `pid` by `origin`'s `life` for `user_id`, and the session id
    /// of this process's live session it took, if it took one.
    fn claim(
        &mut self,
        pid: PidHash,
        origin: &str,
        life: u64,
        user_id: &str,
        now: Instant,
    ) -> (Result<KeptSession, NotKept>, Option<u64>) {
        let Some(entry) = self.sessions.get(&pid) else {
            let gone = if self.expired.contains_key(&pid) {
                NotKept::Expired
            } else {
                NotKept::Unknown
            };
            return (Err(gone), None);
        };
        if entry.user_id != user_id {
            return (Err(NotKept::UserMismatch), None);
        }
        let (entry_origin, ended) = (entry.origin.clone(), entry.ended);
        if self
            .kept_until(&entry_origin, ended, now)
            .is_some_and(|until| until <= now)
        {
            self.sessions.remove(&pid);
            self.expired
                .insert(pid, now + self.window.max(EXPIRED_REMEMBERED_AT_LEAST));
            return (Err(NotKept::Expired), None);
        }
        let entry = self.sessions.remove(&pid).expect("just found");
        self.claimed.insert(pid, (origin.to_owned(), life, now));
        let superseded =
            (entry.origin == self.own_origin && entry.ended.is_none()).then_some(entry.life);
        let kept = KeptSession {
            sid: entry.sid,
            // The log knows only its hash; `take` puts back the pid its client gave.
            pid: String::new(),
            user_id: entry.user_id,
            rooms: entry.rooms,
            registered_at: entry.registered_at,
            ended_at: entry.ended.unwrap_or(now),
        };
        (Ok(kept), superseded)
    }
}

/// The instant of the wall-clock time `at_ms`, as this process's clock had it.
fn instant_of(at_ms: u64, now: Instant) -> Instant {
    let ago = Duration::from_millis(now_ms().saturating_sub(at_ms));
    now.checked_sub(ago).unwrap_or(now)
}

impl SessionRecords for LogSessionRecords {
    /// A session of this process kept without the log (the supervisor appends its ends to the
    /// log instead; this keeps one the way a lone node would).
    fn keep(&mut self, session: KeptSession) {
        self.sessions.insert(
            pid_hash(&session.pid),
            Entry {
                origin: self.own_origin.clone(),
                life: 0,
                sid: session.sid,
                user_id: session.user_id,
                rooms: session.rooms,
                registered_at: session.registered_at,
                ended: Some(session.ended_at),
            },
        );
    }

    /// Only a claim of this process read back from the log hands out a session: the outcome
    /// it had when read. Without one, `Unknown`.
    fn take(&mut self, pid: &str, _user_id: &str, now: Instant) -> Result<KeptSession, NotKept> {
        self.sweep(now);
        match self.won.remove(&pid_hash(pid)) {
            Some((Ok(mut kept), _)) => {
                kept.pid = pid.to_owned();
                Ok(kept)
            }
            Some((Err(e), _)) => Err(e),
            None => Err(NotKept::Unknown),
        }
    }

    fn any_kept(&mut self, now: Instant) -> bool {
        self.sweep(now);
        !self.sessions.is_empty()
    }

    fn apply(&mut self, origin: &str, event: SessionEvent, now: Instant) -> Applied {
        self.sweep(now);
        let mut applied = Applied::default();
        match event {
            SessionEvent::Live {
                life,
                pid,
                sid,
                user_id,
                rooms,
                registered_at,
            } => {
                if self.follows(&pid, origin, life) {
                    self.claimed.remove(&pid);
                    self.expired.remove(&pid);
                    let entry = Entry {
                        origin: origin.to_owned(),
                        life,
                        sid,
                        user_id,
                        rooms,
                        registered_at: LogPosition(registered_at),
                        ended: None,
                    };
                    self.sessions.insert(pid, entry);
                }
            }
            SessionEvent::Ended {
                life,
                pid,
                kept,
                at_ms,
            } => {
                let ours = self
                    .sessions
                    .get(&pid)
                    .is_some_and(|e| e.origin == origin && e.life == life);
                if ours && kept {
                    let entry = self.sessions.get_mut(&pid).expect("just found");
                    entry.ended = Some(instant_of(at_ms, now));
                } else if ours {
                    self.sessions.remove(&pid);
                }
            }
            SessionEvent::Taken { life, pid, user_id } => {
                let (outcome, superseded) = self.claim(pid, origin, life, &user_id, now);
                applied.superseded = superseded;
                if origin == self.own_origin {
                    self.won.insert(pid, (outcome, now));
                    applied.claim_read_back = Some(life);
                }
            }
        }
        applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::NodeFigures;

    const WINDOW: Duration = Duration::from_secs(120);
    const EXPIRY: Duration = Duration::from_secs(45);

    fn live(life: u64, pid: &str, user: &str, rooms: &[&str]) -> SessionEvent {
        SessionEvent::Live {
            life,
            pid: pid_hash(pid),
            sid: format!("sid-{pid}"),
            user_id: user.into(),
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
            registered_at: 512,
        }
    }

    fn taken(life: u64, pid: &str, user: &str) -> SessionEvent {
        SessionEvent::Taken {
            life,
            pid: pid_hash(pid),
            user_id: user.into(),
        }
    }

    fn ended(life: u64, pid: &str, kept: bool) -> SessionEvent {
        SessionEvent::Ended {
            life,
            pid: pid_hash(pid),
            kept,
            at_ms: now_ms(),
        }
    }

    /// Node "me/1"'s records, with node "a/1" heard at `t0`.
    fn records(t0: Instant) -> (LogSessionRecords, Arc<PresenceBoard>) {
        let presence = Arc::new(PresenceBoard::new("me/1", EXPIRY));
        presence.record(
            NodeFigures {
                node_id: "a".into(),
                origin: "a/1".into(),
                ..NodeFigures::default()
            },
            t0,
        );
        (
            LogSessionRecords::new("me/1", WINDOW, presence.clone()),
            presence,
        )
    }

    #[test]
    fn a_session_of_another_node_is_taken_by_the_first_claim_only() {
        let t0 = Instant::now();
        let (mut records, _) = records(t0);
        let nothing = Applied::default();
        assert_eq!(
            records.apply("a/1", live(3, "p", "u", &["user:u"]), t0),
            nothing
        );
        assert_eq!(
            records.apply("a/1", live(3, "p", "u", &["user:u", "r"]), t0),
            nothing
        );
        // Another node claims first; then this node's claim finds it gone.
        assert_eq!(records.apply("b/1", taken(8, "p", "u"), t0), nothing);
        assert_eq!(
            records
                .apply("me/1", taken(9, "p", "u"), t0)
                .claim_read_back,
            Some(9)
        );
        assert_eq!(records.take("p", "u", t0), Err(NotKept::Unknown));
        // The claimer's new life is taken in; the old life's late records change nothing.
        records.apply("a/1", ended(3, "p", true), t0);
        records.apply("b/1", live(8, "p", "u", &["user:u", "r"]), t0);
        records.apply("a/1", live(3, "p", "u", &[]), t0);
        records.apply("a/1", ended(3, "p", false), t0);
        assert_eq!(records.len(), 1);
        assert_eq!(
            records.apply("me/1", taken(10, "p", "u"), t0),
            Applied {
                claim_read_back: Some(10),
                superseded: None
            }
        );
        let kept = records.take("p", "u", t0).expect("taken from b/1");
        assert_eq!(kept.pid, "p");
        assert_eq!(kept.sid, "sid-p");
        assert_eq!(kept.rooms, ["user:u", "r"]);
        assert_eq!(kept.registered_at, LogPosition(512));
        assert_eq!(records.take("p", "u", t0), Err(NotKept::Unknown), "once");
    }

    #[test]
    fn a_claim_of_a_session_live_here_closes_it_here() {
        let t0 = Instant::now();
        let (mut records, _) = records(t0);
        records.apply("me/1", live(4, "p", "u", &[]), t0);
        assert_eq!(
            records.apply("b/1", taken(1, "p", "u"), t0),
            Applied {
                claim_read_back: None,
                superseded: Some(4)
            }
        );
        // Its end, when it closes, changes nothing: b/1's life is the session now.
        records.apply("me/1", ended(4, "p", true), t0);
        records.apply("b/1", live(1, "p", "u", &[]), t0);
        records.apply("b/1", taken(2, "p", "u"), t0);
        assert_eq!(records.len(), 0, "b/1's claim took b/1's session");
    }

    #[test]
    fn another_users_claim_takes_nothing_and_a_41_is_forgotten() {
        let t0 = Instant::now();
        let (mut records, _) = records(t0);
        records.apply("a/1", live(1, "p", "u", &[]), t0);
        records.apply("me/1", taken(2, "p", "intruder"), t0);
        assert_eq!(
            records.take("p", "intruder", t0),
            Err(NotKept::UserMismatch)
        );
        assert_eq!(records.len(), 1, "still kept for its owner");
        records.apply("a/1", ended(1, "p", false), t0);
        records.apply("me/1", taken(3, "p", "u"), t0);
        assert_eq!(records.take("p", "u", t0), Err(NotKept::Unknown));
        assert!(records.is_empty());
    }

    #[test]
    fn a_silent_nodes_sessions_are_kept_for_the_window_from_its_absence() {
        let t0 = Instant::now();
        let (mut records, presence) = records(t0);
        records.apply("a/1", live(1, "p", "u", &[]), t0);
        records.apply("a/1", live(2, "q", "u", &[]), t0);
        // a/1 goes silent: absent once its figures are older than the expiry.
        let gone = t0 + EXPIRY + Duration::from_secs(1);
        assert!(!presence.is_present("a/1", gone));
        assert!(records.any_kept(gone));
        records.apply("me/1", taken(5, "p", "u"), gone);
        assert!(records.take("p", "u", gone).is_ok());
        let late = gone + WINDOW;
        records.apply("me/1", taken(6, "q", "u"), late);
        assert_eq!(records.take("q", "u", late), Err(NotKept::Expired));
        assert!(!records.any_kept(late));
    }

    #[test]
    fn a_kept_end_runs_its_window_from_when_it_ended() {
        let t0 = Instant::now();
        let (mut records, _) = records(t0);
        records.apply("a/1", live(1, "p", "u", &[]), t0);
        records.apply("a/1", ended(1, "p", true), t0);
        records.apply(
            "me/1",
            taken(2, "p", "u"),
            t0 + WINDOW + Duration::from_secs(2),
        );
        assert_eq!(
            records.take("p", "u", t0 + WINDOW + Duration::from_secs(2)),
            Err(NotKept::Expired)
        );
    }
}
