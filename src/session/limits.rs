//! What one session may cost (docs/limits.md): its client event rate, the rooms it may hold, and
//! how many CONNECTs in a row it may have refused before its connection is closed.
//!
//! Pure bookkeeping, driven by the caller's clock; the session asks before it acts.

use std::collections::HashSet;
use std::time::Instant;

use crate::acl::Refusal;
use crate::client_event_limit::{ClientEventLimit, Verdict};
use crate::config::Limits;

/// Refused CONNECTs in a row after which the connection is closed.
pub const MAX_REFUSED_CONNECTS: u32 = 3;

/// One session's limits and what counts against them.
#[derive(Debug)]
pub struct SessionLimits {
    events: ClientEventLimit,
    per_second: u32,
    max_rooms: usize,
    /// The rooms the root namespace is in (its own `user:` room included): a set, so that a
    /// join costs the same however many rooms the socket holds.
    rooms: HashSet<String>,
    refused_connects: u32,
}

impl SessionLimits {
    /// A session opened at `now` under `limits`.
    pub fn new(limits: &Limits, now: Instant) -> Self {
        SessionLimits {
            events: ClientEventLimit::new(
                limits.client_events_per_s,
                limits.client_events_burst,
                now,
            ),
            per_second: limits.client_events_per_s,
            max_rooms: limits.max_rooms_per_socket,
            rooms: HashSet::new(),
            refused_connects: 0,
        }
    }

    /// One client event received at `now`: handle it, drop it, or end the session.
    pub fn check_event(&mut self, now: Instant) -> Verdict {
        self.events.check(now)
    }

    /// What a dropped event is answered with (when its [`Verdict`] says to answer).
    pub fn rate_limited(&self) -> Refusal {
        Refusal::RateLimited(format!(
            "too many events: at most {} a second",
            self.per_second
        ))
    }

    /// A CONNECT was refused; true when that makes [`MAX_REFUSED_CONNECTS`] in a row (close the
    /// connection).
    pub fn connect_refused(&mut self) -> bool {
        self.refused_connects += 1;
        self.refused_connects >= MAX_REFUSED_CONNECTS
    }

    /// A CONNECT was accepted: the refusals in a row start again from zero.
    pub fn connect_accepted(&mut self) {
        self.refused_connects = 0;
    }

    /// Whether the socket may join `room`: one it holds already always, another while it holds
    /// fewer than `MAX_ROOMS_PER_SOCKET`.
    pub fn may_join(&self, room: &str) -> Result<(), Refusal> {
        if self.rooms.len() < self.max_rooms || self.rooms.contains(room) {
            Ok(())
        } else {
            Err(Refusal::BadRequest(format!(
                "a socket may be in at most {} rooms",
                self.max_rooms
            )))
        }
    }

    /// The socket joined `room`.
    pub fn joined(&mut self, room: String) {
        self.rooms.insert(room);
    }

    /// The socket left `room`.
    pub fn left(&mut self, room: &str) {
        self.rooms.remove(room);
    }

    /// The socket left every room (it left its namespace).
    pub fn left_all(&mut self) {
        self.rooms.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(max_rooms: usize) -> Limits {
        Limits {
            client_events_per_s: 20,
            client_events_burst: 50,
            max_rooms_per_socket: max_rooms,
            max_pending_sessions: 10_000,
            http_body_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn joins_beyond_the_cap_are_refused_but_rooms_held_are_not() {
        let mut session = SessionLimits::new(&limits(3), Instant::now());
        for room in ["user:1", "a", "b"] {
            session.may_join(room).unwrap();
            session.joined(room.into());
        }
        let refused = session.may_join("c").unwrap_err();
        assert_eq!(refused.code(), "bad_request");
        assert!(
            session.may_join("a").is_ok(),
            "a room held may be joined again"
        );
        session.left("a");
        assert!(session.may_join("c").is_ok());
        session.joined("c".into());
        session.left_all();
        assert!(session.may_join("d").is_ok());
    }

    #[test]
    fn the_third_refused_connect_in_a_row_closes() {
        let mut session = SessionLimits::new(&limits(10), Instant::now());
        assert!(!session.connect_refused());
        assert!(!session.connect_refused());
        session.connect_accepted();
        assert!(!session.connect_refused());
        assert!(!session.connect_refused());
        assert!(session.connect_refused());
    }

    #[test]
    fn a_dropped_event_is_told_rate_limited() {
        let now = Instant::now();
        let mut session = SessionLimits::new(&limits(10), now);
        let verdicts: Vec<_> = (0..51).map(|_| session.check_event(now)).collect();
        assert!(verdicts[..50].iter().all(|v| *v == Verdict::Allow));
        assert_eq!(verdicts[50], Verdict::Drop { reply: true });
        assert_eq!(session.rate_limited().code(), "rate_limited");
    }
}
