//! The per-connection rate limit on client events (docs/limits.md): a token bucket of
//! `CLIENT_EVENTS_BURST` tokens refilled at `CLIENT_EVENTS_PER_S` a second.
//!
//! Pure code, driven by the caller's clock so that it is tested without sleeping. A session asks
//! [`ClientEventLimit::check`] once per client event (`subscribe`, `join_room`, ...) and gets a
//! [`Verdict`]:
//!
//! - [`Verdict::Allow`]: handle the event.
//! - [`Verdict::Drop`]: drop it; when `reply` is true, answer it with `error`
//!   `{"code":"rate_limited"}` (at most one such reply a second, so that a flood of events
//!   cannot make the server write a flood of errors).
//! - [`Verdict::Disconnect`]: the client has been over its rate for [`SUSTAINED_EXCESS`]; end
//!   the session (reason `rate_limited`).
//!
//! "Over its rate for 10 s" means a run of dropped events with no quiet second between two of
//! them, whose first drop is 10 s old: a client that bursts now and then, or that slows down
//! when told, is never disconnected.

use std::time::{Duration, Instant};

/// How long a client may stay over its rate before it is disconnected.
pub const SUSTAINED_EXCESS: Duration = Duration::from_secs(10);

/// A second without a dropped event ends a run of excess.
pub const EXCESS_GAP: Duration = Duration::from_secs(1);

/// At most one `rate_limited` error reply per this much time.
pub const REPLY_INTERVAL: Duration = Duration::from_secs(1);

/// What to do with one client event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate: handle it.
    Allow,
    /// Over the rate: drop it, and answer `rate_limited` when `reply` is true.
    Drop {
        /// Whether this drop gets the (once a second) `error` reply.
        reply: bool,
    },
    /// Over the rate for [`SUSTAINED_EXCESS`]: end the session.
    Disconnect,
}

/// One connection's bucket and excess tracking.
#[derive(Debug, Clone)]
pub struct ClientEventLimit {
    per_second: f64,
    burst: f64,
    tokens: f64,
    refilled_at: Instant,
    /// First drop of the current run of excess.
    excess_since: Option<Instant>,
    last_drop: Option<Instant>,
    last_reply: Option<Instant>,
}

impl ClientEventLimit {
    /// A full bucket of `burst` tokens refilled at `per_second`. `per_second == 0` means no
    /// limit at all (every event is allowed).
    pub fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        ClientEventLimit {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            refilled_at: now,
            excess_since: None,
            last_drop: None,
            last_reply: None,
        }
    }

    /// Takes a token for one event received at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        if self.per_second == 0.0 {
            return Verdict::Allow;
        }
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        let run_goes_on = self
            .last_drop
            .is_some_and(|last| now.saturating_duration_since(last) < EXCESS_GAP);
        let since = match self.excess_since {
            Some(since) if run_goes_on => since,
            _ => now,
        };
        self.excess_since = Some(since);
        self.last_drop = Some(now);
        if now.saturating_duration_since(since) >= SUSTAINED_EXCESS {
            return Verdict::Disconnect;
        }
        let reply = self
            .last_reply
            .is_none_or(|last| now.saturating_duration_since(last) >= REPLY_INTERVAL);
        if reply {
            self.last_reply = Some(now);
        }
        Verdict::Drop { reply }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_full_bucket_allows_the_burst_then_drops() {
        let t0 = Instant::now();
        let mut limit = ClientEventLimit::new(20, 50, t0);
        for i in 0..50 {
            assert_eq!(limit.check(t0), Verdict::Allow, "event {i} of the burst");
        }
        assert_eq!(limit.check(t0), Verdict::Drop { reply: true });
        assert_eq!(limit.check(t0), Verdict::Drop { reply: false });
    }

    #[test]
    fn tokens_come_back_at_the_rate_and_never_past_the_burst() {
        let t0 = Instant::now();
        let mut limit = ClientEventLimit::new(20, 50, t0);
        for _ in 0..50 {
            limit.check(t0);
        }
        // 50 ms at 20/s is one token.
        assert_eq!(limit.check(t0 + ms(50)), Verdict::Allow);
        assert!(matches!(limit.check(t0 + ms(50)), Verdict::Drop { .. }));
        // An hour idle refills to the burst, not to 72,000.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..50 {
            assert_eq!(limit.check(later), Verdict::Allow);
        }
        assert!(matches!(limit.check(later), Verdict::Drop { .. }));
    }

    #[test]
    fn a_client_at_its_rate_is_never_dropped() {
        let t0 = Instant::now();
        let mut limit = ClientEventLimit::new(20, 1, t0);
        for i in 0..2_000u64 {
            assert_eq!(limit.check(t0 + ms(50 * i)), Verdict::Allow, "event {i}");
        }
    }

    #[test]
    fn error_replies_come_at_most_once_a_second() {
        let t0 = Instant::now();
        let mut limit = ClientEventLimit::new(1, 1, t0);
        limit.check(t0);
        let replies = (0..100u64)
            .filter(|i| limit.check(t0 + ms(1 + i * 10)) == Verdict::Drop { reply: true })
            .count();
        // 100 drops over ~1 s, with a token coming back at 1 s: one or two replies, not 100.
        assert!((1..=2).contains(&replies), "{replies} replies");
    }

    #[test]
    fn sustained_excess_disconnects_after_ten_seconds() {
        let t0 = Instant::now();
        let mut limit = ClientEventLimit::new(20, 50, t0);
        // 100 events a second, five times the rate.
        let mut verdicts = Vec::new();
        for i in 0..1_200u64 {
            let at = t0 + ms(i * 10);
            let verdict = limit.check(at);
            verdicts.push((at - t0, verdict));
            if verdict == Verdict::Disconnect {
                break;
            }
        }
        let (at, last) = *verdicts.last().unwrap();
        assert_eq!(last, Verdict::Disconnect);
        // The first drop comes once the burst is spent (~0.6 s), the disconnect 10 s later.
        assert!(
            at >= SUSTAINED_EXCESS && at < SUSTAINED_EXCESS + ms(1_000),
            "{at:?}"
        );
    }

    #[test]
    fn bursts_with_quiet_seconds_between_are_never_disconnected() {
        let t0 = Instant::now();
        let mut limit = ClientEventLimit::new(1, 5, t0);
        // Every 2 s, 10 events at once: half dropped each time, for a minute.
        for round in 0..30u64 {
            let at = t0 + Duration::from_secs(round * 2);
            for _ in 0..10 {
                assert_ne!(limit.check(at), Verdict::Disconnect, "round {round}");
            }
        }
    }

    #[test]
    fn zero_per_second_means_no_limit() {
        let t0 = Instant::now();
        let mut limit = ClientEventLimit::new(0, 0, t0);
        for _ in 0..100_000 {
            assert_eq!(limit.check(t0), Verdict::Allow);
        }
    }
}
