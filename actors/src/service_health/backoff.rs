//! How long the Consul watcher waits before asking again after a failed query: 500 ms,
//! doubling with each consecutive failure, at most 30 s; a good answer starts it over.

use std::time::Duration;

/// The first delay.
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// Consecutive failures and the delay they earn.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The delay before the next try after one more failure.
    pub fn failed(&mut self) -> Duration {
        let delay = FIRST_DELAY
            .saturating_mul(1u32 << self.failures.min(16))
            .min(MAX_DELAY);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// A query succeeded: the next failure waits [`FIRST_DELAY`] again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_thirty_seconds_and_starts_over_on_success() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..9).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        for _ in 0..100 {
            assert_eq!(b.failed(), MAX_DELAY, "never longer, never overflowing");
        }
        b.succeeded();
        assert_eq!(b.failed(), FIRST_DELAY);
    }
}
