//! Latency over time: for each 100 ms window of send time, how many stamped pushes arrived and
//! how long the slowest of them took. It tells what a run's tail is: a stall (a few windows
//! whose slowest push waited long while the rest of the run was quick) or a steady queue (the
//! slow pushes spread over the whole run).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Width of a window, µs of send time.
pub const WINDOW_US: u64 = 100_000;

/// How many of the slowest windows a summary lists.
const SLOWEST_LISTED: usize = 5;

/// Per window (send time in µs since the epoch / [`WINDOW_US`]): pushes received and the
/// slowest one's latency, µs.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline(BTreeMap<u64, (u64, u64)>);

impl Timeline {
    /// Count `pushes` pushes sent in `window`, the slowest of them `max_us`.
    pub fn add(&mut self, window: u64, pushes: u64, max_us: u64) {
        let entry = self.0.entry(window).or_default();
        entry.0 += pushes;
        entry.1 = entry.1.max(max_us);
    }

    /// Add every window of `other`.
    pub fn merge(&mut self, other: &Timeline) {
        for (&window, &(pushes, max_us)) in &other.0 {
            self.add(window, pushes, max_us);
        }
    }

    /// The windows, their offsets counted from `first_us` (the first send): how many there
    /// are, how many hold a push at or over `p99_us`, and the slowest few.
    pub fn summary(&self, first_us: u64, p99_us: u64) -> Value {
        let first_window = first_us / WINDOW_US;
        let mut slowest: Vec<(u64, u64, u64)> =
            self.0.iter().map(|(&w, &(n, max))| (w, n, max)).collect();
        slowest.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        slowest.truncate(SLOWEST_LISTED);
        let listed: Vec<Value> = slowest
            .iter()
            .map(|&(w, n, max)| {
                json!({
                    "at_s": (w as f64 - first_window as f64) / (1e6 / WINDOW_US as f64),
                    "pushes": n,
                    "max_ms": max as f64 / 1000.0,
                })
            })
            .collect();
        json!({
            "window_ms": WINDOW_US / 1000,
            "windows": self.0.len(),
            "windows_reaching_p99": self.0.values().filter(|(_, max)| *max >= p99_us).count(),
            "slowest": listed,
        })
    }
}

/// One client's part: the window it is receiving in now, closed windows kept in a list (pushes
/// arrive nearly in send order, so this costs a comparison per push).
#[derive(Debug, Default)]
pub struct Recorder {
    current: Option<(u64, u64, u64)>,
    closed: Vec<(u64, u64, u64)>,
}

impl Recorder {
    /// A push sent at `t_us` took `latency_us`.
    pub fn record(&mut self, t_us: u64, latency_us: u64) {
        let window = t_us / WINDOW_US;
        match &mut self.current {
            Some((w, n, max)) if *w == window => {
                *n += 1;
                *max = (*max).max(latency_us);
            }
            current => {
                if let Some(done) = current.replace((window, 1, latency_us)) {
                    self.closed.push(done);
                }
            }
        }
    }

    /// Everything recorded, added into `timeline`.
    pub fn drain_into(&mut self, timeline: &mut Timeline) {
        for (window, pushes, max_us) in self.closed.drain(..).chain(self.current.take()) {
            timeline.add(window, pushes, max_us);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_pushes_and_keep_the_slowest() {
        let base = 1_700_000_000_000_000u64; // a multiple of the window
        let mut a = Recorder::default();
        a.record(base + 10, 800);
        a.record(base + 99_999, 2_500);
        a.record(base + 100_000, 900); // next window
        a.record(base + 50, 700); // late arrival in the first window again
        let mut b = Recorder::default();
        b.record(base + 250_000, 40_000);
        let mut t = Timeline::default();
        a.drain_into(&mut t);
        b.drain_into(&mut t);
        let w0 = base / WINDOW_US;
        assert_eq!(
            t.0.into_iter().collect::<Vec<_>>(),
            vec![(w0, (3, 2_500)), (w0 + 1, (1, 900)), (w0 + 2, (1, 40_000))]
        );
        assert!(a.closed.is_empty() && a.current.is_none());
    }

    #[test]
    fn summary_lists_the_slowest_windows_from_the_first_send() {
        let mut t = Timeline::default();
        let first = 1_700_000_000_000_000u64;
        let w0 = first / WINDOW_US;
        for i in 0..10 {
            t.add(w0 + i, 50, 1_000 + i);
        }
        t.add(w0 + 32, 50, 24_000); // a stall 3.2 s into the run
        let mut merged = Timeline::default();
        merged.merge(&t);
        merged.merge(&t);
        assert_eq!(merged.0[&(w0 + 32)], (100, 24_000));
        let s = merged.summary(first, 5_000);
        assert_eq!(s["windows"], 11);
        assert_eq!(s["windows_reaching_p99"], 1);
        let slowest = s["slowest"].as_array().unwrap();
        assert_eq!(slowest.len(), 5);
        assert_eq!(slowest[0]["max_ms"], 24.0);
        assert_eq!(slowest[0]["at_s"], 3.2);
        assert_eq!(slowest[0]["pushes"], 100);
        assert_eq!(slowest[1]["max_ms"], 1.009);
        assert_eq!(Timeline::default().summary(first, 1)["windows"], 0);
    }
}
