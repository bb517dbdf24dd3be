//! How long a room's pushes may wait to be written together: a fixed coalescing window, or
//! (the default) one that adapts to the room's own load. Pure code (no actor, no clock of its
//! own); [`RoomState`](crate::room::RoomState) asks it for the window each push, then hands
//! that window to its [`Coalescer`](crate::coalescer::Coalescer).
//!
//! **The signal.** What a push costs a room's actor unbatched is one write per member: its
//! pushes per second times its members is how many writes a second it asks of its worker
//! thread. Each write costs a few microseconds (a session wake-up and a socket write), so a
//! room asking for more than [`AdaptiveLimits::writes_per_sec`] (by default 100,000 a second,
//! about a quarter of a thread) is pushed to faster than its members can be written one by one
//! without crowding out everything else on the thread. The window measures that demand over
//! periods of [`PERIOD`] (a count and a multiplication per push, nothing per member):
//!
//! - over the limit, the window grows: [`START`], then four times longer each period up to
//!   [`AdaptiveLimits::cap`], where a member gets one write per window, whatever the rate; a
//!   burst that uses up a whole period's writes before the period ends grows it at once;
//! - under half the limit for [`CALM`] in a row (idle periods count too), it halves each
//!   period and below [`START`] drops to zero, where every push goes out at once: a gap of a
//!   few periods in a busy room's pushes (a late publisher) does not unbatch it;
//! - in between it stays, so a room near the limit does not flip back and forth.
//!
//! A quiet room (a user's own, an admin room pushed ten times a second) never reaches the limit
//! and adds no latency; a room with 1,000 members on a thread pushed 400 times a second gets
//! the capped window within a few periods and back to zero a few periods after its burst ends.

use std::time::{Duration, Instant};

/// How often the demand is measured (and the window may change).
pub const PERIOD: Duration = Duration::from_millis(20);

/// How long a room's demand must stay under half the limit before its window shrinks.
pub const CALM: Duration = Duration::from_millis(60);

/// The first non-zero window, and the smallest: a shrinking window below it is zero.
pub const START: Duration = Duration::from_millis(5);

/// What the adaptive window adapts to, and how far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveLimits {
    /// The longest window: the most latency batching adds.
    pub cap: Duration,
    /// A room's actor that would write more than this many times a second one push at a time
    /// batches.
    pub writes_per_sec: u64,
}

impl AdaptiveLimits {
    /// The limits of `PUSH_COALESCE_MS=auto`: a 35 ms cap, 100,000 writes a second.
    pub const DEFAULT: AdaptiveLimits = AdaptiveLimits {
        cap: Duration::from_millis(35),
        writes_per_sec: 100_000,
    };
}

/// How a room chooses its coalescing window (`PUSH_COALESCE_MS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoalesceWindow {
    /// Adapts to the room's load (`auto`, the default): zero while the room is quiet.
    Adaptive(AdaptiveLimits),
    /// Always this window (zero: every push goes out at once).
    Fixed(Duration),
}

impl Default for CoalesceWindow {
    fn default() -> Self {
        CoalesceWindow::Adaptive(AdaptiveLimits::DEFAULT)
    }
}

/// A room's adaptive window: its current value and the pushes of the period being measured.
#[derive(Debug)]
pub struct AdaptiveWindow {
    limits: AdaptiveLimits,
    window: Duration,
    /// When the period being measured started (its first push); `None` before any push.
    period_start: Option<Instant>,
    /// Pushes accepted in that period.
    pushes: u64,
    /// How long the demand has been under half the limit, up to the period being measured.
    calm: Duration,
}

impl AdaptiveWindow {
    /// A window of zero that adapts within `limits`.
    pub fn new(limits: AdaptiveLimits) -> Self {
        AdaptiveWindow {
            limits,
            window: Duration::ZERO,
            period_start: None,
            pushes: 0,
            calm: Duration::ZERO,
        }
    }

    /// The current window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// A push to `members` members accepted at `now`: the window it (and what follows it until
    /// the next call) is held by. A push that must go out at once (an alert) is not counted.
    pub fn push(&mut self, members: usize, now: Instant) -> Duration {
        match self.period_start {
            Some(start) if now.duration_since(start) >= PERIOD => {
                self.adapt(members, now.duration_since(start));
                self.period_start = Some(now);
                self.pushes = 1;
            }
            Some(start) => {
                self.pushes += 1;
                // A burst that has used up a whole period's writes already: grow now, not at
                // the period's end, and measure afresh from here.
                if self.writes(members) > self.allowed(PERIOD) {
                    self.adapt(members, now.duration_since(start));
                    self.period_start = Some(now);
                    self.pushes = 0;
                }
            }
            None => {
                self.period_start = Some(now);
                self.pushes = 1;
            }
        }
        self.window
    }

    /// The writes the period's pushes would take one at a time, in millionths.
    fn writes(&self, members: usize) -> u128 {
        u128::from(self.pushes) * members as u128 * 1_000_000
    }

    /// The writes the limit allows in `elapsed`, in millionths.
    fn allowed(&self, elapsed: Duration) -> u128 {
        u128::from(self.limits.writes_per_sec) * elapsed.as_micros()
    }

    /// The period that just ended lasted `elapsed` and held `self.pushes` pushes.
    fn adapt(&mut self, members: usize, elapsed: Duration) {
        let (writes, allowed) = (self.writes(members), self.allowed(elapsed));
        let start = START.min(self.limits.cap);
        if writes * 2 >= allowed {
            self.calm = Duration::ZERO;
            if writes > allowed {
                self.window = if self.window.is_zero() {
                    start
                } else {
                    (self.window * 4).min(self.limits.cap)
                };
            }
            return;
        }
        let calm_before = self.calm;
        self.calm += elapsed;
        if self.calm < CALM {
            return;
        }
        // Halved once per period that passed calm beyond CALM: a room quiet for a while
        // starts from zero.
        let counted = self.calm - calm_before.max(CALM);
        let periods = (counted.as_micros() / PERIOD.as_micros()).clamp(1, 31) as u32;
        self.window /= 1 << periods;
        if self.window < start {
            self.window = Duration::ZERO;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feed `pushes_per_sec` pushes a second to a room of `members` for `secs` seconds from
    /// `*now`, advancing it; the windows returned, in order.
    fn feed(
        w: &mut AdaptiveWindow,
        members: usize,
        pushes_per_sec: u64,
        secs: f64,
        now: &mut Instant,
    ) -> Vec<Duration> {
        let step = Duration::from_secs(1) / pushes_per_sec as u32;
        let n = (secs * pushes_per_sec as f64) as usize;
        (0..n)
            .map(|_| {
                let window = w.push(members, *now);
                *now += step;
                window
            })
            .collect()
    }

    /// A window with its own limits.
    fn limited(cap: Duration, writes_per_sec: u64) -> AdaptiveWindow {
        AdaptiveWindow::new(AdaptiveLimits {
            cap,
            writes_per_sec,
        })
    }

    #[test]
    fn a_quiet_room_never_batches() {
        let mut w = AdaptiveWindow::new(AdaptiveLimits::DEFAULT);
        let mut now = Instant::now();
        // 2,000 members pushed ten times a second: 20,000 writes a second.
        let windows = feed(&mut w, 2_000, 10, 30.0, &mut now);
        assert!(windows.iter().all(|w| w.is_zero()));
        // A thousand pushes a second to a user's own room of two sessions: 2,000 writes.
        let windows = feed(&mut w, 2, 1_000, 5.0, &mut now);
        assert!(windows.iter().all(|w| w.is_zero()));
    }

    #[test]
    fn a_burst_grows_the_window_up_to_the_cap() {
        let mut w = AdaptiveWindow::new(AdaptiveLimits::DEFAULT);
        let mut now = Instant::now();
        // 1,000 members, 400 pushes a second: 400,000 writes a second.
        let windows = feed(&mut w, 1_000, 400, 2.0, &mut now);
        assert!(
            windows[0].is_zero(),
            "the burst's first push goes out at once"
        );
        assert!(windows.windows(2).all(|p| p[0] <= p[1]), "it only grows");
        assert!(windows.iter().all(|w| *w <= AdaptiveLimits::DEFAULT.cap));
        // Within five periods (5, 20, 35 ms) it is at the cap, and stays there.
        let at_cap = windows
            .iter()
            .position(|w| *w == AdaptiveLimits::DEFAULT.cap)
            .expect("reaches the cap");
        assert!(at_cap <= 5 * 8, "{at_cap} pushes (8 a period)");
    }

    #[test]
    fn the_window_goes_back_to_zero_soon_after_the_burst() {
        let mut w = AdaptiveWindow::new(AdaptiveLimits::DEFAULT);
        let mut now = Instant::now();
        feed(&mut w, 1_000, 400, 1.0, &mut now);
        assert_eq!(w.window(), AdaptiveLimits::DEFAULT.cap);
        // The rate falls to ten pushes a second: the period the burst ended in still counts
        // its pushes, the next ones are calm: zero from the fourth push on.
        let windows = feed(&mut w, 1_000, 10, 1.0, &mut now);
        assert!(
            !windows[1].is_zero(),
            "not at the first calm period: {windows:?}"
        );
        assert!(windows[3..].iter().all(|w| w.is_zero()), "{windows:?}");
        // A burst, then silence: the first push after it finds zero (idle periods count).
        feed(&mut w, 1_000, 400, 1.0, &mut now);
        assert_eq!(w.window(), AdaptiveLimits::DEFAULT.cap);
        now += 300 * MS;
        assert!(w.push(1_000, now).is_zero());
    }

    #[test]
    fn a_short_gap_in_a_busy_room_keeps_the_window() {
        let mut w = AdaptiveWindow::new(AdaptiveLimits::DEFAULT);
        let mut now = Instant::now();
        feed(&mut w, 1_000, 400, 1.0, &mut now);
        // A publisher late by 50 ms (less than CALM), then on schedule again.
        now += 50 * MS;
        let windows = feed(&mut w, 1_000, 400, 0.5, &mut now);
        assert!(windows.iter().all(|w| *w == AdaptiveLimits::DEFAULT.cap));
    }

    #[test]
    fn near_the_limit_the_window_holds_steady() {
        let (mut w, mut now) = (limited(40 * MS, 1_000), Instant::now());
        // 20 members × 100 pushes: 2,000 writes a second, over the limit.
        feed(&mut w, 20, 100, 1.0, &mut now);
        assert_eq!(w.window(), 40 * MS);
        // 20 members × 40 pushes: 800 writes, under the limit but not under half of it.
        let windows = feed(&mut w, 20, 40, 2.0, &mut now);
        assert!(windows.iter().all(|w| *w == 40 * MS), "{windows:?}");
        // 20 members × 20 pushes: 400 writes, under half: it shrinks to zero.
        let windows = feed(&mut w, 20, 20, 1.0, &mut now);
        assert!(windows.last().unwrap().is_zero(), "{windows:?}");
    }

    #[test]
    fn a_cap_below_the_start_is_still_the_cap() {
        let (mut w, mut now) = (limited(2 * MS, 1), Instant::now());
        let windows = feed(&mut w, 10, 100, 1.0, &mut now);
        assert_eq!(windows.iter().max(), Some(&(2 * MS)));
    }
}
