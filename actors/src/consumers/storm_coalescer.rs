//! Storm coalescing (`QUOTA_COALESCE_MS`): which `quota.updated` events go out, and when.
//! Pure code (no actor, no clock of its own); the quota consumer drives it with its clock.
//!
//! Per quota (`userId` + `quotaId`) there is a window `w`: an update that finds its quota quiet
//! (nothing pushed for it in the last `w`) goes out at once and opens a window; the updates
//! that follow within it are held, each replacing the one held before (which is then
//! *superseded*: the later event carries the quota's newer state), and the one still held at
//! the window's end goes out then and opens the next window. A storm of updates for one quota
//! thus costs its receivers one push per window, the latest; a quota updated once in a while
//! gets every update at once.
//!
//! Another event about the same quota (an alert, an exceeded, a renewal) is never held: the
//! caller [`take`](StormCoalescer::take)s the update held for it and pushes that first, so the
//! console gets the quota's state in the order it was published.
//!
//! The windows of quiet quotas are closed lazily: whenever the table has doubled since it was
//! last swept, the windows that ended holding nothing are dropped (amortized constant time per
//! update, memory bounded by twice the quotas updated within one window).
//!
//! At most `max_held` updates are held at a time (their deliveries stay unacked, and the
//! broker's prefetch must not fill with them): an update that would be held for one more quota
//! beyond it goes out at once instead.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::routing::QuotaKey;

/// One quota's window.
#[derive(Debug)]
struct Window<T> {
    /// When it ends.
    ends: Instant,
    /// The latest update received during it, not pushed yet.
    held: Option<T>,
}

/// What became of an offered update.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered<T> {
    /// Push it now (its quota was quiet, or too many updates are held already).
    PushNow(T),
    /// It is held until its window's end; it replaced `superseded`, which will never be pushed.
    Held {
        /// The update it replaced, if one was held.
        superseded: Option<T>,
    },
}

/// The windows of the quotas updated lately, each with the update it holds; see the module doc.
#[derive(Debug)]
pub struct StormCoalescer<T> {
    window: Duration,
    max_held: usize,
    held: usize,
    windows: HashMap<QuotaKey, Window<T>>,
    /// The table's size that triggers the next sweep of ended windows.
    sweep_at: usize,
}

/// The smallest table worth sweeping.
const MIN_SWEEP: usize = 64;

impl<T> StormCoalescer<T> {
    /// Coalescing within `window` (zero: off, every update goes out at once), holding at most
    /// `max_held` updates.
    pub fn new(window: Duration, max_held: usize) -> Self {
        StormCoalescer {
            window,
            max_held,
            held: 0,
            windows: HashMap::new(),
            sweep_at: MIN_SWEEP,
        }
    }

    /// An update for `key` received at `now`.
    pub fn offer(&mut self, key: QuotaKey, update: T, now: Instant) -> Offered<T> {
        if self.window.is_zero() {
            return Offered::PushNow(update);
        }
        let ends = now + self.window;
        match self.windows.get_mut(&key) {
            Some(open) if now < open.ends => {
                if open.held.is_none() {
                    if self.held >= self.max_held {
                        return Offered::PushNow(update);
                    }
                    self.held += 1;
                }
                Offered::Held {
                    superseded: open.held.replace(update),
                }
            }
            _ => {
                // Quiet (or its window is over and nothing is held: `due` was not called yet).
                self.windows.insert(key, Window { ends, held: None });
                if self.windows.len() >= self.sweep_at {
                    self.windows
                        .retain(|_, open| now < open.ends || open.held.is_some());
                    self.sweep_at = (2 * self.windows.len()).max(MIN_SWEEP);
                }
                Offered::PushNow(update)
            }
        }
    }

    /// The update held for `key`, taken out to be pushed now (before another event about the
    /// same quota). The window stays open.
    pub fn take(&mut self, key: &QuotaKey) -> Option<T> {
        let taken = self.windows.get_mut(key)?.held.take();
        self.held -= usize::from(taken.is_some());
        taken
    }

    /// The updates whose window has ended by `now`, to push now in this order (oldest window
    /// first); each opens its quota's next window. Windows ended with nothing held are closed.
    pub fn due(&mut self, now: Instant) -> Vec<T> {
        let mut due: Vec<(Instant, T)> = Vec::new();
        let next_end = now + self.window;
        self.windows.retain(|_, open| {
            if now < open.ends {
                return true;
            }
            match open.held.take() {
                Some(update) => {
                    due.push((open.ends, update));
                    open.ends = next_end;
                    true
                }
                None => false,
            }
        });
        self.held -= due.len();
        due.sort_by_key(|(ends, _)| *ends);
        due.into_iter().map(|(_, update)| update).collect()
    }

    /// When the earliest window holding an update ends.
    pub fn next_due(&self) -> Option<Instant> {
        self.windows
            .values()
            .filter(|open| open.held.is_some())
            .map(|open| open.ends)
            .min()
    }

    /// Every held update (oldest window first), taken out, and every window closed: for a
    /// shutdown (push them now) or a lost channel (their deliveries are redelivered).
    pub fn drain(&mut self) -> Vec<T> {
        let mut held: Vec<(Instant, T)> = self
            .windows
            .drain()
            .filter_map(|(_, open)| open.held.map(|update| (open.ends, update)))
            .collect();
        self.held = 0;
        held.sort_by_key(|(ends, _)| *ends);
        held.into_iter().map(|(_, update)| update).collect()
    }

    /// How many updates are held.
    pub fn held(&self) -> usize {
        self.held
    }

    /// How many windows are open (for the tests of the sweep).
    #[cfg(test)]
    fn windows(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_millis(250);

    fn key(quota: &str) -> QuotaKey {
        QuotaKey {
            user_id: "u1".into(),
            quota_id: quota.into(),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn held(superseded: Option<u32>) -> Offered<u32> {
        Offered::Held { superseded }
    }

    #[test]
    fn the_first_update_goes_out_at_once_and_the_latest_at_the_windows_end() {
        let t0 = Instant::now();
        let mut c = StormCoalescer::new(W, 100);
        assert_eq!(c.offer(key("q"), 1, t0), Offered::PushNow(1));
        assert_eq!(c.next_due(), None, "nothing held");
        assert_eq!(c.offer(key("q"), 2, t0 + ms(10)), held(None));
        assert_eq!(c.offer(key("q"), 3, t0 + ms(20)), held(Some(2)));
        assert_eq!(c.offer(key("q"), 4, t0 + ms(249)), held(Some(3)));
        assert_eq!(c.held(), 1);
        assert_eq!(c.next_due(), Some(t0 + W));
        assert_eq!(c.due(t0 + ms(249)), Vec::<u32>::new());
        assert_eq!(c.due(t0 + ms(260)), vec![4]);
        assert_eq!(c.held(), 0);
        // That push opened the next window: an update right after it is held again.
        assert_eq!(c.offer(key("q"), 5, t0 + ms(300)), held(None));
        assert_eq!(c.next_due(), Some(t0 + ms(260) + W));
        assert_eq!(c.due(t0 + ms(600)), vec![5]);
        // A window ending with nothing held closes: the next update goes out at once.
        assert_eq!(c.due(t0 + ms(900)), Vec::<u32>::new());
        assert_eq!(c.offer(key("q"), 6, t0 + ms(901)), Offered::PushNow(6));
    }

    #[test]
    fn quotas_have_their_own_windows() {
        let t0 = Instant::now();
        let mut c = StormCoalescer::new(W, 100);
        assert_eq!(c.offer(key("a"), 1, t0), Offered::PushNow(1));
        assert_eq!(c.offer(key("b"), 2, t0 + ms(100)), Offered::PushNow(2));
        assert_eq!(c.offer(key("a"), 3, t0 + ms(110)), held(None));
        assert_eq!(c.offer(key("b"), 4, t0 + ms(120)), held(None));
        let other_user = QuotaKey {
            user_id: "u2".into(),
            quota_id: "a".into(),
        };
        assert_eq!(c.offer(other_user, 5, t0 + ms(130)), Offered::PushNow(5));
        assert_eq!(c.due(t0 + ms(300)), vec![3]);
        assert_eq!(c.due(t0 + ms(400)), vec![4]);
    }

    #[test]
    fn an_update_taken_for_another_event_leaves_the_window_open() {
        let t0 = Instant::now();
        let mut c = StormCoalescer::new(W, 100);
        assert_eq!(c.take(&key("q")), None);
        c.offer(key("q"), 1, t0);
        assert_eq!(c.take(&key("q")), None, "pushed already");
        assert_eq!(c.offer(key("q"), 2, t0 + ms(10)), held(None));
        assert_eq!(c.take(&key("q")), Some(2));
        assert_eq!((c.held(), c.next_due()), (0, None));
        assert_eq!(c.offer(key("q"), 3, t0 + ms(20)), held(None));
        assert_eq!(c.due(t0 + W), vec![3]);
    }

    #[test]
    fn beyond_max_held_an_update_for_one_more_quota_goes_out_at_once() {
        let t0 = Instant::now();
        let mut c = StormCoalescer::new(W, 2);
        // Three quotas, their windows ending 1 ms apart.
        for (i, q) in [(0, "a"), (1, "b"), (2, "c")] {
            assert_eq!(c.offer(key(q), i, t0 + ms(i as u64)), Offered::PushNow(i));
        }
        assert_eq!(c.offer(key("a"), 10, t0 + ms(3)), held(None));
        assert_eq!(c.offer(key("b"), 11, t0 + ms(4)), held(None));
        assert_eq!(c.offer(key("c"), 12, t0 + ms(5)), Offered::PushNow(12));
        // A quota already holding one still replaces it.
        assert_eq!(c.offer(key("a"), 13, t0 + ms(6)), held(Some(10)));
        assert_eq!(c.held(), 2);
        // Oldest window first.
        assert_eq!(c.drain(), vec![13, 11]);
        assert_eq!((c.held(), c.next_due()), (0, None));
        assert_eq!(c.offer(key("a"), 14, t0 + ms(7)), Offered::PushNow(14));
    }

    #[test]
    fn the_windows_of_quiet_quotas_are_swept() {
        let t0 = Instant::now();
        let mut c = StormCoalescer::new(W, 100);
        for i in 0..1000u32 {
            let now = t0 + ms(u64::from(i) * 10);
            assert_eq!(c.offer(key(&i.to_string()), i, now), Offered::PushNow(i));
        }
        // 25 quotas are updated within one window: the table stays far below 1000.
        assert!(c.windows() < 2 * MIN_SWEEP, "{} windows", c.windows());
    }

    #[test]
    fn a_zero_window_holds_nothing() {
        let t0 = Instant::now();
        let mut c = StormCoalescer::new(Duration::ZERO, 100);
        for i in 0..3 {
            assert_eq!(c.offer(key("q"), i, t0), Offered::PushNow(i));
        }
        assert_eq!((c.held(), c.next_due()), (0, None));
    }
}
