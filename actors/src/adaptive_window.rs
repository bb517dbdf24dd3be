//! How long a room's pushes may wait to be written together: a fixed coalescing window, or
//! (the default) one that adapts to the room's own load. Pure code (no actor, no clock of its
//! own); [`RoomState`](crate::room::RoomState) asks it for the window each push, then hands
//! that window to its [`Coalescer`](crate::coalescer::Coalescer).
//!
//! **The signal: are the members keeping up?** A room's delivery hands one shared batch of
//! packets to each member's inbox; the member's transport holds it until it has written it to
//! its socket, then drops it. So when a push comes, the room can count how many of the members
//! it delivered to last are still holding that delivery ([`Backlog`]): when a quarter or more
//! are, its pushes come faster than its members' sockets take them one by one (the thread is
//! busy writing, or the clients read slowly), and batching them saves writes without adding
//! latency that the queue would not add anyway. The room is then *pressed*. When (almost)
//! every member has written the last delivery, a push that goes out at once is written at
//! once: batching would only add latency.
//!
//! The room also measures its demand, pushes times members per second, over periods of
//! [`PERIOD`] (a count and a multiplication per push, nothing per member), which bounds the
//! signal on both sides:
//!
//! - under [`AdaptiveLimits::floor`] writes a second, a room never batches: a backlog there is
//!   some other room's doing (a quiet room, a user's own, adds no latency, whatever happens on
//!   its thread);
//! - over [`AdaptiveLimits::ceiling`] it batches even while its members keep up: that many
//!   writes are more than one thread can afford to spend on one room.
//!
//! **How the window moves.** Pressed, it grows: [`START`], then four times longer, up to
//! [`AdaptiveLimits::cap`] (a member then gets one write per window, whatever the rate), at most
//! one step per window in force, so each step is given the time to take effect. It shrinks:
//!
//! - when the demand falls under half of what it was when the room was last pressed (or under
//!   the floor) for [`CALM`] in a row (idle periods count too): halved each period, and below
//!   [`START`] zero, where every push goes out at once. A gap of a few periods in a busy room's
//!   pushes (a late publisher) does not unbatch it;
//! - when the room has not been pressed for [`LINGER`] at the same demand: halved once, to see
//!   whether the members now keep up with less batching; if they do not, the next push finds
//!   them pressed and the window grows back.
//!
//! A room pushed ten times a second, or a hundred times to a thousand members whose sockets
//! take it, never batches; a room whose members fall behind gets the capped window within a
//! few windows and goes back to zero soon after its burst ends.

use std::time::{Duration, Instant};

/// How often the demand is measured (and the window may shrink).
pub const PERIOD: Duration = Duration::from_millis(20);

/// How long a room's demand must stay low before its window shrinks.
pub const CALM: Duration = Duration::from_millis(60);

/// How long a batching room whose members keep up waits before trying a shorter window.
pub const LINGER: Duration = Duration::from_millis(400);

/// The first non-zero window, and the smallest: a shrinking window below it is zero.
pub const START: Duration = Duration::from_millis(5);

/// What the adaptive window adapts to, and how far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveLimits {
    /// The longest window: the most latency batching adds.
    pub cap: Duration,
    /// Below this many writes a second (pushes × members) a room never batches.
    pub floor: u64,
    /// Above this many writes a second a room batches even while its members keep up.
    pub ceiling: u64,
}

impl AdaptiveLimits {
    /// The limits of `PUSH_COALESCE_MS=auto`: a 35 ms cap, batching considered from 50,000
    /// writes a second (about a tenth of a thread), forced from 1,000,000.
    pub const DEFAULT: AdaptiveLimits = AdaptiveLimits {
        cap: Duration::from_millis(35),
        floor: 50_000,
        ceiling: 1_000_000,
    };
}

/// How a room chooses its coalescing window (`PUSH_COALESCE_MS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoalesceWindow {
    /// Adapts to the room's load (`auto`, the default): zero while its members keep up.
    Adaptive(AdaptiveLimits),
    /// Always this window (zero: every push goes out at once).
    Fixed(Duration),
}

impl Default for CoalesceWindow {
    fn default() -> Self {
        CoalesceWindow::Adaptive(AdaptiveLimits::DEFAULT)
    }
}

/// How far a room's members are behind its last delivery, when the next push comes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Members the last delivery went to.
    pub recipients: usize,
    /// Of those, how many have not written it to their socket yet.
    pub unserved: usize,
}

impl Backlog {
    /// Whether a quarter or more of the recipients are still behind.
    pub fn pressed(&self) -> bool {
        self.recipients > 0 && self.unserved * 4 >= self.recipients
    }
}

/// A room's adaptive window: its current value, and what it is measured from.
#[derive(Debug)]
pub struct AdaptiveWindow {
    limits: AdaptiveLimits,
    window: Duration,
    /// When the period being measured started (its first push); `None` before any push.
    period_start: Option<Instant>,
    /// Pushes accepted in that period.
    pushes: u64,
    /// The demand of the last period measured, in writes a second.
    demand: u64,
    /// The demand when the room was last pressed.
    pressed_demand: u64,
    /// When the room was last pressed (or a shorter window last tried).
    last_pressed: Option<Instant>,
    /// When the window last grew.
    last_growth: Option<Instant>,
    /// How long the demand has been low, up to the period being measured.
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
            demand: 0,
            pressed_demand: 0,
            last_pressed: None,
            last_growth: None,
            calm: Duration::ZERO,
        }
    }

    /// The current window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// A push to `members` members accepted at `now`, when the members are `backlog` behind
    /// the last delivery: the window it (and what follows it until the next call) is held by.
    /// A push that must go out at once (an alert) is not counted.
    pub fn push(&mut self, members: usize, backlog: Backlog, now: Instant) -> Duration {
        match self.period_start {
            Some(start) if now.duration_since(start) >= PERIOD => {
                let elapsed = now.duration_since(start);
                let writes = self.pushes.saturating_mul(members as u64);
                self.demand = rate(writes, elapsed);
                self.period_ended(writes, elapsed, now);
                self.period_start = Some(now);
                self.pushes = 1;
            }
            Some(_) => self.pushes += 1,
            None => {
                self.period_start = Some(now);
                self.pushes = 1;
            }
        }
        let pressed = self.demand >= self.limits.ceiling
            || (self.demand >= self.limits.floor && backlog.pressed());
        if pressed {
            self.pressed(now);
        }
        self.window
    }

    /// The members fell behind (or the demand is over the ceiling): grow, one step per window.
    fn pressed(&mut self, now: Instant) {
        self.pressed_demand = self.demand;
        self.last_pressed = Some(now);
        self.calm = Duration::ZERO;
        let settled = self
            .last_growth
            .is_none_or(|at| now.duration_since(at) >= self.window.max(START));
        if settled && self.window < self.limits.cap {
            self.window = if self.window.is_zero() {
                START.min(self.limits.cap)
            } else {
                (self.window * 4).min(self.limits.cap)
            };
            self.last_growth = Some(now);
        }
    }

    /// A period of `elapsed` that asked for `writes` ended at `now` (its demand is in
    /// `self.demand`).
    fn period_ended(&mut self, writes: u64, elapsed: Duration, now: Instant) {
        if self.window.is_zero() {
            self.calm = Duration::ZERO;
            return;
        }
        let low =
            self.demand < self.limits.floor || self.demand.saturating_mul(2) < self.pressed_demand;
        if low {
            // Calm is the part of the period its writes would not have filled at the pressed
            // demand: a gap in a busy room's pushes, or a lower rate, not the time the pushes
            // that came took.
            let busy_micros =
                u128::from(writes) * 1_000_000 / u128::from(self.pressed_demand.max(1));
            let busy = Duration::from_micros(u64::try_from(busy_micros).unwrap_or(u64::MAX));
            let calm_before = self.calm;
            self.calm += elapsed.saturating_sub(busy);
            if self.calm >= CALM {
                // Halved once per period that passed calm beyond CALM: a room quiet for a
                // while starts from zero.
                let counted = self.calm - calm_before.max(CALM);
                let periods = (counted.as_micros() / PERIOD.as_micros()).clamp(1, 31) as u32;
                self.shrink(1 << periods);
            }
            return;
        }
        self.calm = Duration::ZERO;
        if self
            .last_pressed
            .is_some_and(|at| now.duration_since(at) >= LINGER)
        {
            self.shrink(2);
            self.last_pressed = Some(now);
        }
    }

    /// Divide the window by `by`; under [`START`] it is zero.
    fn shrink(&mut self, by: u32) {
        self.window /= by;
        if self.window < START.min(self.limits.cap) {
            self.window = Duration::ZERO;
        }
    }
}

/// `count` events in `elapsed`, per second.
fn rate(count: u64, elapsed: Duration) -> u64 {
    let micros = elapsed.as_micros().max(1);
    u64::try_from(u128::from(count) * 1_000_000 / micros).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    const BEHIND: Backlog = Backlog {
        recipients: 100,
        unserved: 50,
    };
    const KEEPING_UP: Backlog = Backlog {
        recipients: 100,
        unserved: 3,
    };

    /// Feed `pushes_per_sec` pushes a second to a room of `members` for `secs` seconds from
    /// `*now`, advancing it, the members `backlog` behind at each; the windows returned.
    fn feed(
        w: &mut AdaptiveWindow,
        members: usize,
        pushes_per_sec: u64,
        secs: f64,
        backlog: Backlog,
        now: &mut Instant,
    ) -> Vec<Duration> {
        let step = Duration::from_secs(1) / pushes_per_sec as u32;
        let n = (secs * pushes_per_sec as f64) as usize;
        (0..n)
            .map(|_| {
                let window = w.push(members, backlog, *now);
                *now += step;
                window
            })
            .collect()
    }

    fn default_window() -> AdaptiveWindow {
        AdaptiveWindow::new(AdaptiveLimits::DEFAULT)
    }

    const CAP: Duration = AdaptiveLimits::DEFAULT.cap;

    #[test]
    fn the_backlog_is_pressed_from_a_quarter_of_the_recipients() {
        let backlog = |recipients, unserved| Backlog {
            recipients,
            unserved,
        };
        assert!(!Backlog::default().pressed(), "no delivery yet");
        assert!(!backlog(1_000, 249).pressed());
        assert!(backlog(1_000, 250).pressed());
        assert!(backlog(1, 1).pressed());
        assert!(!backlog(1, 0).pressed());
    }

    #[test]
    fn a_quiet_room_never_batches_even_behind() {
        let (mut w, mut now) = (default_window(), Instant::now());
        // 2,000 members pushed ten times a second: 20,000 writes a second, under the floor.
        let windows = feed(&mut w, 2_000, 10, 30.0, BEHIND, &mut now);
        assert!(windows.iter().all(|w| w.is_zero()));
        // A thousand pushes a second to a user's own room of two sessions: 2,000 writes.
        let windows = feed(&mut w, 2, 1_000, 5.0, BEHIND, &mut now);
        assert!(windows.iter().all(|w| w.is_zero()));
    }

    #[test]
    fn a_busy_room_whose_members_keep_up_never_batches() {
        let (mut w, mut now) = (default_window(), Instant::now());
        // 1,000 members, 400 pushes a second: 400,000 writes, written as they come.
        let windows = feed(&mut w, 1_000, 400, 5.0, KEEPING_UP, &mut now);
        assert!(windows.iter().all(|w| w.is_zero()));
    }

    #[test]
    fn members_falling_behind_grow_the_window_a_step_per_window_up_to_the_cap() {
        let (mut w, mut now) = (default_window(), Instant::now());
        let windows = feed(&mut w, 1_000, 400, 2.0, BEHIND, &mut now);
        assert!(
            windows[..8].iter().all(|w| w.is_zero()),
            "not before the first period measured the demand: {windows:?}"
        );
        assert!(windows.windows(2).all(|p| p[0] <= p[1]), "it only grows");
        let steps: Vec<Duration> = windows.iter().fold(Vec::new(), |mut steps, w| {
            if steps.last() != Some(w) {
                steps.push(*w);
            }
            steps
        });
        assert_eq!(steps, [Duration::ZERO, 5 * MS, 20 * MS, CAP]);
        // 5 ms, then 20 ms later the cap: 2.5 ms between pushes.
        let first = windows.iter().position(|w| *w == 5 * MS).unwrap();
        let at_cap = windows.iter().position(|w| *w == CAP).unwrap();
        assert_eq!(at_cap - first, 2 + 8, "{windows:?}");
    }

    #[test]
    fn over_the_ceiling_a_room_batches_even_while_its_members_keep_up() {
        let (mut w, mut now) = (default_window(), Instant::now());
        // 5,000 members, 400 pushes a second: 2,000,000 writes.
        let windows = feed(&mut w, 5_000, 400, 1.0, KEEPING_UP, &mut now);
        assert_eq!(*windows.last().unwrap(), CAP);
    }

    #[test]
    fn the_window_goes_back_to_zero_soon_after_the_burst() {
        let (mut w, mut now) = (default_window(), Instant::now());
        feed(&mut w, 1_000, 400, 1.0, BEHIND, &mut now);
        assert_eq!(w.window(), CAP);
        // Ten pushes a second: 10,000 writes, under the floor. The period the burst ended in
        // still counts its pushes; the next are calm, and long: zero from the third on.
        let windows = feed(&mut w, 1_000, 10, 1.0, KEEPING_UP, &mut now);
        assert!(!windows[0].is_zero(), "{windows:?}");
        assert!(windows[2..].iter().all(|w| w.is_zero()), "{windows:?}");
        // A burst, then silence: the first push after it finds zero (idle periods count).
        feed(&mut w, 1_000, 400, 1.0, BEHIND, &mut now);
        assert_eq!(w.window(), CAP);
        now += 300 * MS;
        assert!(w.push(1_000, KEEPING_UP, now).is_zero());
    }

    #[test]
    fn half_the_demand_shrinks_the_window_after_calm() {
        let (mut w, mut now) = (default_window(), Instant::now());
        feed(&mut w, 1_000, 400, 1.0, BEHIND, &mut now);
        // 100 pushes a second: 100,000 writes, over the floor but a quarter of the demand the
        // room was pressed at.
        let windows = feed(&mut w, 1_000, 100, 0.5, KEEPING_UP, &mut now);
        assert!(windows.last().unwrap().is_zero(), "{windows:?}");
        assert!(windows[..4].iter().all(|w| !w.is_zero()), "not at once");
    }

    #[test]
    fn a_short_gap_in_a_busy_room_keeps_the_window() {
        let (mut w, mut now) = (default_window(), Instant::now());
        feed(&mut w, 1_000, 400, 1.0, BEHIND, &mut now);
        // A publisher late by 50 ms (less than CALM), then on schedule again.
        now += 50 * MS;
        let windows = feed(&mut w, 1_000, 400, 0.3, KEEPING_UP, &mut now);
        assert!(windows.iter().all(|w| *w == CAP), "{windows:?}");
    }

    #[test]
    fn members_keeping_up_at_the_same_demand_try_a_shorter_window_and_grow_back() {
        let (mut w, mut now) = (default_window(), Instant::now());
        feed(&mut w, 1_000, 400, 1.0, BEHIND, &mut now);
        // The window keeps them up: after LINGER it is halved.
        let windows = feed(&mut w, 1_000, 400, 0.5, KEEPING_UP, &mut now);
        assert!(windows[..150].iter().all(|w| *w == CAP), "{windows:?}");
        assert_eq!(*windows.last().unwrap(), CAP / 2);
        // Behind again with the shorter window: back to the cap.
        let windows = feed(&mut w, 1_000, 400, 0.1, BEHIND, &mut now);
        assert_eq!(*windows.last().unwrap(), CAP);
        // Keeping up for long: halved every LINGER, down to zero.
        let windows = feed(&mut w, 1_000, 400, 2.0, KEEPING_UP, &mut now);
        assert!(windows.last().unwrap().is_zero(), "{windows:?}");
    }

    #[test]
    fn a_cap_below_the_start_is_still_the_cap() {
        let limits = AdaptiveLimits {
            cap: 2 * MS,
            floor: 1,
            ceiling: u64::MAX,
        };
        let (mut w, mut now) = (AdaptiveWindow::new(limits), Instant::now());
        let windows = feed(&mut w, 10, 100, 1.0, BEHIND, &mut now);
        assert_eq!(windows.iter().max(), Some(&(2 * MS)));
    }

    #[test]
    fn the_demand_does_not_overflow() {
        let (mut w, mut now) = (default_window(), Instant::now());
        for _ in 0..3 {
            w.push(usize::MAX / 2, KEEPING_UP, now);
            now += PERIOD;
        }
        assert!(!w.window().is_zero(), "over the ceiling");
    }
}
