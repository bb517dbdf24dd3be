//! Latency histograms (HdrHistogram, microseconds, 3 significant digits) and their exchange
//! between processes as `(value, count)` pairs.

use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// A latency histogram in microseconds.
pub type Hist = Histogram<u64>;

/// Highest recordable latency: 10 minutes (longer values are clamped).
const HIGH_US: u64 = 600_000_000;

/// An empty histogram, 1 µs .. 10 min, 3 significant digits.
pub fn new_hist() -> Hist {
    Histogram::new_with_bounds(1, HIGH_US, 3).expect("valid histogram bounds")
}

/// Record one value, clamped into range.
pub fn record(h: &mut Hist, us: u64) {
    h.saturating_record(us.clamp(1, HIGH_US));
}

/// The histogram as `(value, count)` pairs of its non-empty buckets.
pub fn to_pairs(h: &Hist) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Add `(value, count)` pairs to `h`.
pub fn add_pairs(h: &mut Hist, pairs: &[(u64, u64)]) {
    for &(v, n) in pairs {
        let _ = h.record_n(v.clamp(1, HIGH_US), n);
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// `{count, p50_ms, p90_ms, p99_ms, p999_ms, max_ms, mean_ms}`.
pub fn summary(h: &Hist) -> Value {
    if h.is_empty() {
        return json!({"count": 0});
    }
    json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p90_ms": ms(h.value_at_quantile(0.90)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
        "mean_ms": h.mean().round() / 1000.0,
    })
}

/// Histograms shared by many tasks: a task uses shard `index % len`, so two worker threads
/// rarely meet on one lock (and tasks record in batches anyway).
pub struct Shards(Vec<Mutex<Hist>>);

impl Shards {
    /// `n` empty shards.
    pub fn new(n: usize) -> Self {
        Shards((0..n.max(1)).map(|_| Mutex::new(new_hist())).collect())
    }

    /// Record a batch of values into shard `index % n`.
    pub fn record_batch(&self, index: usize, values: &[u64]) {
        let mut h = self.0[index % self.0.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for &v in values {
            record(&mut h, v);
        }
    }

    /// All shards added together.
    pub fn merged(&self) -> Hist {
        let mut out = new_hist();
        for s in &self.0 {
            let h = s.lock().unwrap_or_else(|p| p.into_inner());
            let _ = out.add(&*h);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let mut h = new_hist();
        for v in [1, 5, 5, 900, 1_500, 40_000, 2_000_000_000] {
            record(&mut h, v);
        }
        let mut back = new_hist();
        add_pairs(&mut back, &to_pairs(&h));
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert_eq!(summary(&h)["count"], 7);
    }
}
