//! A latency histogram with fixed log-scale buckets, cheap to record into from many threads
//! at once, and the percentiles read from it.
//!
//! **Buckets.** Latencies are counted in whole microseconds. Below 8 µs every microsecond has
//! its own bucket; from there on each power of two is cut into four equal buckets (8–10, 10–12,
//! 12–14, 14–16 µs, then 16–20, …), so a bucket is at most a quarter of its lower edge wide. The
//! last regular bucket ends at 2^26 µs (about 67 s); anything longer falls in one overflow
//! bucket. A percentile is reported as the upper edge of the bucket it falls in: never below
//! the true value and at most 25 % above it (an overflow percentile reads 2^26 µs).
//!
//! **Recording.** The counters are split into [`SHARDS`] shards; a thread always records into
//! the same one (chosen once per thread), so the worker threads writing one push to thousands
//! of sockets each increment their own counters (no lock, no allocation, no cache line
//! bouncing between threads). Reading sums the shards.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Microseconds below which every microsecond has its own bucket.
const LINEAR: u64 = 8;
/// Buckets per power of two from [`LINEAR`] on.
const PER_OCTAVE: usize = 4;
/// The power of two (in µs) where the regular buckets end and the overflow bucket starts.
const LAST_OCTAVE: u32 = 26;
/// Regular buckets: the linear ones, then four per octave from 2^3 to 2^26 µs.
pub const REGULAR_BUCKETS: usize = LINEAR as usize + (LAST_OCTAVE as usize - 3) * PER_OCTAVE;
/// Every bucket, the overflow one (index [`REGULAR_BUCKETS`]) included.
pub const BUCKETS: usize = REGULAR_BUCKETS + 1;
/// How many counter shards a histogram has (threads beyond it share them).
pub const SHARDS: usize = 8;

/// The bucket a latency of `micros` falls in.
pub fn bucket_of(micros: u64) -> usize {
    if micros < LINEAR {
        return micros as usize;
    }
    let octave = 63 - micros.leading_zeros(); // >= 3
    if octave >= LAST_OCTAVE {
        return REGULAR_BUCKETS;
    }
    let sub = ((micros >> (octave - 2)) & 3) as usize;
    LINEAR as usize + (octave as usize - 3) * PER_OCTAVE + sub
}

/// The upper edge (exclusive) of bucket `i`, in µs; the overflow bucket's lower edge for it.
pub fn upper_edge_micros(i: usize) -> u64 {
    if i < LINEAR as usize {
        return i as u64 + 1;
    }
    if i >= REGULAR_BUCKETS {
        return 1 << LAST_OCTAVE;
    }
    let k = i - LINEAR as usize;
    let octave = (k / PER_OCTAVE) as u32 + 3;
    let sub = (k % PER_OCTAVE) as u64;
    (5 + sub) << (octave - 2)
}

/// One shard's counters: a bucket array per series, then each series' sum of microseconds.
struct Shard {
    counts: Box<[AtomicU64]>,
    sums: Box<[AtomicU64]>,
}

/// Latency histograms for a fixed number of series (one per event and source), sharded by
/// thread.
pub struct LatencyHistograms {
    series: usize,
    shards: Box<[Shard]>,
}

/// The shard of the calling thread.
fn my_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

fn zeros(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl LatencyHistograms {
    /// Empty histograms for `series` series.
    pub fn new(series: usize) -> Self {
        LatencyHistograms {
            series,
            shards: (0..SHARDS)
                .map(|_| Shard {
                    counts: zeros(series * BUCKETS),
                    sums: zeros(series),
                })
                .collect(),
        }
    }

    /// Count one latency in series `s`.
    #[inline]
    pub fn record(&self, s: usize, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let shard = &self.shards[my_shard()];
        shard.counts[s * BUCKETS + bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
        shard.sums[s].fetch_add(micros, Ordering::Relaxed);
    }

    /// Series `s` summed over the shards.
    pub fn snapshot(&self, s: usize) -> LatencySnapshot {
        assert!(s < self.series, "series {s} of {}", self.series);
        let mut counts = [0u64; BUCKETS];
        let mut sum_micros = 0u64;
        for shard in self.shards.iter() {
            let mine = &shard.counts[s * BUCKETS..(s + 1) * BUCKETS];
            for (total, c) in counts.iter_mut().zip(mine) {
                *total += c.load(Ordering::Relaxed);
            }
            sum_micros = sum_micros.wrapping_add(shard.sums[s].load(Ordering::Relaxed));
        }
        LatencySnapshot { counts, sum_micros }
    }
}

/// One series' counts at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Count per bucket (the last one: overflow).
    pub counts: [u64; BUCKETS],
    /// The sum of the recorded latencies, in µs.
    pub sum_micros: u64,
}

impl LatencySnapshot {
    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile (`0 < q <= 1`) in µs: the upper edge of the bucket holding the
    /// `ceil(q * count)`-th smallest latency; `None` when nothing was recorded.
    pub fn percentile_micros(&self, q: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(upper_edge_micros(i));
            }
        }
        unreachable!("the ranks end at the count")
    }

    /// How many latencies were under `micros` µs, counting whole buckets (for a Prometheus
    /// bucket whose bound is a bucket edge).
    pub fn count_below(&self, micros: u64) -> u64 {
        self.counts
            .iter()
            .enumerate()
            .take_while(|&(i, _)| upper_edge_micros(i) <= micros && i < REGULAR_BUCKETS)
            .map(|(_, c)| c)
            .sum()
    }
}

/// The Prometheus bucket bounds, in µs: every power of two up to the overflow bucket (each a
/// bucket edge, so their counts are exact).
pub fn prometheus_bounds_micros() -> impl Iterator<Item = u64> {
    (0..=LAST_OCTAVE).map(|k| 1u64 << k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn every_bucket_holds_the_values_between_its_edges() {
        let mut lower = 0;
        for i in 0..REGULAR_BUCKETS {
            let upper = upper_edge_micros(i);
            assert!(upper > lower, "bucket {i}");
            assert_eq!(bucket_of(lower), i, "lower edge of {i}");
            assert_eq!(bucket_of(upper - 1), i, "just under the upper edge of {i}");
            if lower >= LINEAR {
                assert!(
                    (upper - lower) * 4 <= lower,
                    "bucket {i} is at most 25% wide"
                );
            }
            lower = upper;
        }
        assert_eq!(lower, 1 << LAST_OCTAVE);
        assert_eq!(bucket_of(lower), REGULAR_BUCKETS, "overflow");
        assert_eq!(bucket_of(u64::MAX), REGULAR_BUCKETS);
    }

    #[test]
    fn percentiles_of_known_samples() {
        let h = LatencyHistograms::new(2);
        // 100 samples: 1..=100 ms.
        for ms in 1..=100u64 {
            h.record(1, us(ms * 1000));
        }
        let s = h.snapshot(1);
        assert_eq!(s.count(), 100);
        assert_eq!(s.sum_micros, 5050 * 1000);
        for (q, truth) in [(0.5, 50_000u64), (0.9, 90_000), (0.99, 99_000)] {
            let p = s.percentile_micros(q).unwrap();
            assert!(p > truth && p * 4 <= truth * 5, "p{q}: {p} for {truth}");
        }
        // The other series is untouched.
        assert_eq!(h.snapshot(0).count(), 0);
    }

    #[test]
    fn small_latencies_are_exact_and_percentiles_are_ordered() {
        let h = LatencyHistograms::new(1);
        for n in [0, 1, 1, 2, 3, 3, 3, 7, 7, 7] {
            h.record(0, us(n));
        }
        let s = h.snapshot(0);
        assert_eq!(
            s.percentile_micros(0.5),
            Some(4),
            "5th of 10 is 3 µs: edge 4"
        );
        assert_eq!(s.percentile_micros(0.9), Some(8));
        assert_eq!(s.percentile_micros(0.1), Some(1));
        assert_eq!(s.count_below(4), 7);
        assert_eq!(s.count_below(1 << LAST_OCTAVE), 10);
    }

    #[test]
    fn an_empty_histogram_has_no_percentiles() {
        let s = LatencyHistograms::new(1).snapshot(0);
        assert_eq!(s.count(), 0);
        assert_eq!(s.percentile_micros(0.5), None);
        assert_eq!(s.count_below(1000), 0);
    }

    #[test]
    fn the_overflow_bucket_takes_everything_too_long() {
        let h = LatencyHistograms::new(1);
        h.record(0, us(10));
        h.record(0, Duration::from_secs(100));
        h.record(0, Duration::from_secs(3600 * 24 * 365));
        let s = h.snapshot(0);
        assert_eq!(s.counts[REGULAR_BUCKETS], 2);
        assert_eq!(s.percentile_micros(0.99), Some(1 << LAST_OCTAVE));
        assert_eq!(
            s.count_below(1 << LAST_OCTAVE),
            1,
            "not in any Prometheus bucket"
        );
    }

    #[test]
    fn records_from_many_threads_are_all_counted() {
        let h = std::sync::Arc::new(LatencyHistograms::new(1));
        let threads: Vec<_> = (0..SHARDS + 3)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for n in 0..1000 {
                        h.record(0, us(n));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(h.snapshot(0).count(), 1000 * (SHARDS as u64 + 3));
    }
}
