//! Refused CONNECTs in the log, summarised (docs/limits.md): at most one line a second for the
//! whole process, however many clients are refused, each line with the count and the last
//! reason since the previous line.
//!
//! A client that sends bad tokens in a loop would otherwise write one log line per attempt
//! (1.2 million lines, 148 MB, in 10 s from one WebSocket). [`RefusalLog`] is the pure part,
//! driven by the caller's clock; [`record`] and [`flush`] use the process-wide instance. The
//! server calls [`flush`] once a second, so the count of a burst's tail is logged even when no
//! refusal follows it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one summary line per this much time.
pub const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// What one log line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Refusals since the previous line (this one included).
    pub count: u64,
    /// The reason of the last of them.
    pub last_reason: String,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.count == 1 {
            write!(f, "connect refused: {}", self.last_reason)
        } else {
            write!(
                f,
                "{} connects refused since the last report (last: {})",
                self.count, self.last_reason
            )
        }
    }
}

/// Counts refusals and says when a summary line is due.
#[derive(Debug, Default)]
pub struct RefusalLog {
    pending: u64,
    last_reason: String,
    logged_at: Option<Instant>,
}

impl RefusalLog {
    /// One refusal at `now`; the summary to log now, if a line is due.
    pub fn record(&mut self, reason: &dyn std::fmt::Display, now: Instant) -> Option<Summary> {
        self.pending += 1;
        self.last_reason.clear();
        use std::fmt::Write;
        let _ = write!(self.last_reason, "{reason}");
        self.due(now)
    }

    /// The summary of what was recorded and not yet logged, if a line is due at `now`.
    pub fn flush(&mut self, now: Instant) -> Option<Summary> {
        self.due(now)
    }

    fn due(&mut self, now: Instant) -> Option<Summary> {
        if self.pending == 0 {
            return None;
        }
        if self
            .logged_at
            .is_some_and(|at| now.saturating_duration_since(at) < LOG_INTERVAL)
        {
            return None;
        }
        self.logged_at = Some(now);
        Some(Summary {
            count: std::mem::take(&mut self.pending),
            last_reason: std::mem::take(&mut self.last_reason),
        })
    }
}

static LOG: Mutex<RefusalLog> = Mutex::new(RefusalLog {
    pending: 0,
    last_reason: String::new(),
    logged_at: None,
});

/// Records one refused CONNECT process-wide, logging a summary line when one is due.
pub fn record(reason: &dyn std::fmt::Display) {
    let summary = LOG
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record(reason, Instant::now());
    if let Some(summary) = summary {
        log::info!("{summary}");
    }
}

/// Logs the refusals recorded since the last line, when a line is due (the server calls this
/// once a second).
pub fn flush() {
    let summary = LOG
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .flush(Instant::now());
    if let Some(summary) = summary {
        log::info!("{summary}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_refusal_is_logged_at_once() {
        let t0 = Instant::now();
        let mut log = RefusalLog::default();
        let line = log.record(&"invalid token", t0).unwrap();
        assert_eq!(line.count, 1);
        assert_eq!(line.to_string(), "connect refused: invalid token");
    }

    #[test]
    fn a_flood_makes_one_line_a_second_with_its_count() {
        let t0 = Instant::now();
        let mut log = RefusalLog::default();
        let mut lines = Vec::new();
        // 100,000 refusals over 2.5 s.
        for i in 0..100_000u64 {
            let at = t0 + Duration::from_micros(i * 25);
            lines.extend(log.record(&format!("reason {i}"), at));
        }
        lines.extend(log.flush(t0 + Duration::from_secs(3)));
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines.iter().map(|l| l.count).sum::<u64>(), 100_000);
        assert_eq!(lines[3].last_reason, "reason 99999");
        assert!(lines[1].to_string().starts_with("40000 connects refused"));
    }

    #[test]
    fn flush_says_nothing_when_nothing_is_pending_or_too_early() {
        let t0 = Instant::now();
        let mut log = RefusalLog::default();
        assert_eq!(log.flush(t0), None);
        log.record(&"a", t0).unwrap();
        log.record(&"b", t0 + Duration::from_millis(10));
        assert_eq!(log.flush(t0 + Duration::from_millis(500)), None);
        let line = log.flush(t0 + Duration::from_millis(1000)).unwrap();
        assert_eq!((line.count, line.last_reason.as_str()), (1, "b"));
        assert_eq!(log.flush(t0 + Duration::from_secs(5)), None);
    }
}
