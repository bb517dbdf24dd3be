//! A session's clocks: the Engine.IO heartbeat (a ping every `pingInterval`, a pong due within
//! `pingTimeout`), the connect timeout and the token's expiry, driven by one timer.
//!
//! An actix context polls every timer it holds each time it wakes, and a session wakes for
//! every push it is sent; three timers per session (the ping interval, the pong deadline, the
//! connect deadline) were a measurable share of a busy fan-out. [`Heartbeat::beat`] says, at
//! any instant, what is due and when the next thing will be, so a transport keeps a single
//! timer armed for that moment. It is pure: tests give it instants instead of sleeping.
//!
//! The token's expiry is only known once a CONNECT is accepted, when the timer is already armed
//! for a later moment (the next ping); [`Heartbeat::expire_at`] then says whether the timer must
//! also wake once at the expiry.

use std::time::{Duration, Instant};

use crate::config::EngineConfig;

/// How late a heartbeat timer may fire before the pong deadline moves with it.
const PING_JITTER: Duration = Duration::from_millis(50);

/// What the heartbeat timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Write a ping when `ping` is set, then fire again at `next`.
    Wait { ping: bool, next: Instant },
    /// The client missed its pong.
    PingTimeout,
    /// The client sent no CONNECT in time.
    ConnectTimeout,
    /// The token the session connected with has expired.
    TokenExpired,
}

/// One session's heartbeat and connect deadline.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    connect_deadline: Instant,
    opened_at: Instant,
    pings: u32,
    /// When the pong for the last ping is due, while it is missing.
    pong_due: Option<Instant>,
    /// When the connected token expires.
    expires_at: Option<Instant>,
    /// When the timer's chain fires next, as far as this heartbeat knows (the last `next` it
    /// named at or after the previous one).
    armed: Instant,
}

impl Heartbeat {
    /// The clocks of a session opened at `opened_at`.
    pub fn new(engine: &EngineConfig, opened_at: Instant) -> Self {
        let connect_deadline = opened_at + engine.connect_timeout;
        Heartbeat {
            interval: engine.ping_interval,
            timeout: engine.ping_timeout,
            connect_deadline,
            opened_at,
            pings: 0,
            pong_due: None,
            expires_at: None,
            armed: (opened_at + engine.ping_interval).min(connect_deadline),
        }
    }

    /// When the first beat is due (the first ping, or the connect deadline if sooner).
    pub fn first(&self) -> Instant {
        self.next_ping().min(self.connect_deadline)
    }

    /// What is due at `now`; `connected` says whether the session ever had a CONNECT
    /// accepted (then the connect deadline no longer applies). When it answers
    /// `Wait { ping: true, .. }` the ping counts as sent at `now`.
    pub fn beat(&mut self, now: Instant, connected: bool) -> Beat {
        if !connected && now >= self.connect_deadline {
            return Beat::ConnectTimeout;
        }
        if self.pong_deadline_passed(now) {
            return Beat::PingTimeout;
        }
        if self.expires_at.is_some_and(|at| now >= at) {
            return Beat::TokenExpired;
        }
        let ping = now >= self.next_ping();
        if ping {
            self.pings += 1;
            // The pong is due `pingTimeout` after the ping was scheduled, so timer jitter
            // never extends it; a ping sent much later than scheduled (an overloaded server)
            // gives the client its full `pingTimeout` from when it was really sent.
            let scheduled = self.opened_at + self.interval * self.pings;
            let sent = now.checked_sub(PING_JITTER).unwrap_or(now);
            let due = scheduled.max(sent) + self.timeout;
            // A pong still missing for an earlier ping keeps its own deadline.
            self.pong_due = Some(self.pong_due.map_or(due, |earlier| earlier.min(due)));
        }
        let mut next = self.next_ping();
        if let Some(due) = self.pong_due {
            next = next.min(due);
        }
        if !connected {
            next = next.min(self.connect_deadline);
        }
        if let Some(at) = self.expires_at {
            next = next.min(at);
        }
        // A beat before the chain's moment is an extra wake (see `expire_at`): the chain
        // itself still fires when it was armed for.
        if now >= self.armed {
            self.armed = next;
        }
        Beat::Wait { ping, next }
    }

    /// The connected token expires at `at` (`None`: it does not, or the session left its
    /// namespace). Returns the moment the timer must wake once besides its chain, when the
    /// expiry comes before the chain's next beat.
    pub fn expire_at(&mut self, at: Option<Instant>) -> Option<Instant> {
        self.expires_at = at;
        at.filter(|&at| at < self.armed)
    }

    /// The client answered the last ping.
    pub fn pong(&mut self) {
        self.pong_due = None;
    }

    /// Whether the pong for the last ping is missing past its deadline: a request arriving
    /// after it sees the session as timed out even before the timer fires.
    pub fn pong_deadline_passed(&self, now: Instant) -> bool {
        self.pong_due.is_some_and(|due| now >= due)
    }

    fn next_ping(&self) -> Instant {
        self.opened_at + self.interval * (self.pings + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// pingInterval 25 s, pingTimeout 20 s, connect timeout 45 s (the defaults).
    fn heartbeat(t0: Instant) -> Heartbeat {
        let engine = EngineConfig {
            ping_interval: 25_000 * MS,
            ping_timeout: 20_000 * MS,
            max_payload: 1_000_000,
            connect_timeout: 45_000 * MS,
        };
        Heartbeat::new(&engine, t0)
    }

    #[test]
    fn a_connected_client_that_answers_is_pinged_every_interval_and_never_closed() {
        let t0 = Instant::now();
        let mut hb = heartbeat(t0);
        assert_eq!(hb.first(), t0 + 25_000 * MS);
        let mut at = hb.first();
        for n in 1..=4u32 {
            // The ping, then a wake-up at its pong deadline (before the next ping).
            assert_eq!(
                hb.beat(at, true),
                Beat::Wait {
                    ping: true,
                    next: t0 + 25_000 * MS * n + 20_000 * MS
                }
            );
            hb.pong();
            at = t0 + 25_000 * MS * n + 20_000 * MS;
            assert_eq!(
                hb.beat(at, true),
                Beat::Wait {
                    ping: false,
                    next: t0 + 25_000 * MS * (n + 1)
                }
            );
            at = t0 + 25_000 * MS * (n + 1);
        }
    }

    #[test]
    fn a_missing_pong_times_out_at_its_deadline_and_not_before() {
        let t0 = Instant::now();
        let mut hb = heartbeat(t0);
        let Beat::Wait { ping: true, next } = hb.beat(t0 + 25_000 * MS, true) else {
            panic!("expected a ping");
        };
        assert_eq!(next, t0 + 45_000 * MS);
        assert!(!hb.pong_deadline_passed(next - MS));
        assert_eq!(hb.beat(next - MS, true), Beat::Wait { ping: false, next });
        assert!(hb.pong_deadline_passed(next));
        assert_eq!(hb.beat(next, true), Beat::PingTimeout);
    }

    #[test]
    fn a_late_timer_gives_the_client_its_full_ping_timeout_from_the_real_ping() {
        let t0 = Instant::now();
        let mut hb = heartbeat(t0);
        // The timer fires 10 s late (an overloaded server): the pong is due 20 s after the
        // ping really went out, less the tolerated jitter.
        let late = t0 + 35_000 * MS;
        assert!(matches!(hb.beat(late, true), Beat::Wait { ping: true, .. }));
        let due = late - PING_JITTER + 20_000 * MS;
        assert!(!hb.pong_deadline_passed(due - MS));
        assert!(hb.pong_deadline_passed(due));
        // The next ping (at 50 s) comes before that deadline and does not move it.
        assert_eq!(
            hb.beat(t0 + 50_000 * MS, true),
            Beat::Wait {
                ping: true,
                next: due
            }
        );
        assert_eq!(hb.beat(due, true), Beat::PingTimeout);
        // A little late (within the jitter): the deadline stays on schedule.
        let mut hb = heartbeat(t0);
        let Beat::Wait { ping: true, next } = hb.beat(t0 + 25_010 * MS, true) else {
            panic!("expected a ping");
        };
        assert_eq!(next, t0 + 45_000 * MS);
    }

    #[test]
    fn the_connect_deadline_applies_until_a_connect() {
        let t0 = Instant::now();
        let mut hb = heartbeat(t0);
        // Not connected: the pong deadline (45 s) and the connect deadline coincide.
        assert!(matches!(
            hb.beat(t0 + 25_000 * MS, false),
            Beat::Wait { ping: true, .. }
        ));
        hb.pong();
        assert_eq!(hb.beat(t0 + 45_000 * MS, false), Beat::ConnectTimeout);
        // Connected before the deadline: it no longer matters.
        let mut hb = heartbeat(t0);
        assert!(matches!(
            hb.beat(t0 + 25_000 * MS, true),
            Beat::Wait { ping: true, .. }
        ));
        hb.pong();
        assert_eq!(
            hb.beat(t0 + 45_000 * MS, true),
            Beat::Wait {
                ping: false,
                next: t0 + 50_000 * MS
            }
        );
    }

    #[test]
    fn an_expiring_token_ends_the_session_at_its_expiry() {
        let t0 = Instant::now();
        let mut hb = heartbeat(t0);
        // Connected at 1 s with a token expiring at 3 s: the timer (armed for the first ping
        // at 25 s) must wake once at 3 s.
        assert_eq!(hb.expire_at(Some(t0 + 3_000 * MS)), Some(t0 + 3_000 * MS));
        assert_eq!(
            hb.beat(t0 + 2_999 * MS, true),
            Beat::Wait {
                ping: false,
                next: t0 + 3_000 * MS
            }
        );
        assert_eq!(hb.beat(t0 + 3_000 * MS, true), Beat::TokenExpired);
        // A token expiring after the next beat needs no extra wake: the chain reaches it.
        let mut hb = heartbeat(t0);
        assert_eq!(hb.expire_at(Some(t0 + 60_000 * MS)), None);
        assert!(matches!(
            hb.beat(t0 + 25_000 * MS, true),
            Beat::Wait { ping: true, .. }
        ));
        hb.pong();
        assert_eq!(
            hb.beat(t0 + 50_000 * MS, true),
            Beat::Wait {
                ping: true,
                next: t0 + 60_000 * MS
            }
        );
        hb.pong();
        assert_eq!(hb.beat(t0 + 60_000 * MS, true), Beat::TokenExpired);
        // Leaving the namespace forgets the expiry.
        let mut hb = heartbeat(t0);
        hb.expire_at(Some(t0 + 3_000 * MS));
        assert_eq!(hb.expire_at(None), None);
        assert!(matches!(
            hb.beat(t0 + 3_000 * MS, true),
            Beat::Wait { ping: false, .. }
        ));
    }

    #[test]
    fn an_extra_wake_does_not_move_the_chains_moment() {
        let t0 = Instant::now();
        let mut hb = heartbeat(t0);
        hb.expire_at(Some(t0 + 3_000 * MS));
        // Reconnected with a later token before the extra wake at 3 s fired: that wake finds
        // nothing due, and a third token expiring at 10 s still needs its own wake, since the
        // chain's next beat is the first ping at 25 s.
        hb.expire_at(Some(t0 + 20_000 * MS));
        assert!(matches!(
            hb.beat(t0 + 3_000 * MS, true),
            Beat::Wait { ping: false, .. }
        ));
        assert_eq!(hb.expire_at(Some(t0 + 10_000 * MS)), Some(t0 + 10_000 * MS));
    }

    #[test]
    fn a_short_connect_timeout_wakes_the_timer_before_the_first_ping() {
        let t0 = Instant::now();
        let engine = EngineConfig {
            ping_interval: 300 * MS,
            ping_timeout: 200 * MS,
            max_payload: 1_000_000,
            connect_timeout: 100 * MS,
        };
        let mut hb = Heartbeat::new(&engine, t0);
        assert_eq!(hb.first(), t0 + 100 * MS);
        assert_eq!(hb.beat(t0 + 100 * MS, false), Beat::ConnectTimeout);
        // A connected session woken at that moment waits for its first ping.
        assert_eq!(
            hb.beat(t0 + 100 * MS, true),
            Beat::Wait {
                ping: false,
                next: t0 + 300 * MS
            }
        );
    }
}
