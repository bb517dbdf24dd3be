//! Push offsets: the opaque strings every push carries as its last argument when recovery is on.
//!
//! An offset is `<epoch>-<sequence>`: the epoch is this log's creation time (milliseconds since
//! the Unix epoch, in base 36), the sequence counts the pushes appended to it. Offsets increase
//! in the order pushes are delivered, and the epoch makes them unique per process life: an
//! offset a client kept from before a restart names no push of this run, so it is refused as
//! too old instead of being taken for one of ours.

use std::time::{SystemTime, UNIX_EPOCH};

/// A place in the push log: the sequence number of the last push before it (0: before the
/// first push of this run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct LogPosition(pub u64);

/// Makes and reads the offsets of one push log.
#[derive(Debug, Clone)]
pub struct OffsetClock {
    epoch: String,
}

impl OffsetClock {
    /// A clock whose epoch is the current time.
    pub fn now() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        OffsetClock::with_epoch(millis)
    }

    /// A clock with the given epoch (milliseconds since the Unix epoch).
    pub fn with_epoch(millis: u64) -> Self {
        OffsetClock {
            epoch: base36(millis),
        }
    }

    /// The offset of the push at `position`.
    pub fn offset(&self, position: LogPosition) -> String {
        format!("{}-{}", self.epoch, position.0)
    }

    /// The position an offset of this clock names; `None` for anything else (another run's
    /// offset, or not an offset at all).
    pub fn position(&self, offset: &str) -> Option<LogPosition> {
        let (epoch, sequence) = offset.split_once('-')?;
        if epoch != self.epoch || !sequence.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        sequence.parse().ok().map(LogPosition)
    }
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_within_one_epoch_only() {
        let clock = OffsetClock::with_epoch(36 * 36 + 35);
        assert_eq!(clock.offset(LogPosition(7)), "10z-7");
        assert_eq!(clock.position("10z-7"), Some(LogPosition(7)));
        assert_eq!(clock.position("10z-0"), Some(LogPosition(0)));
        let earlier_run = OffsetClock::with_epoch(36 * 36 + 34);
        assert_eq!(earlier_run.position("10z-7"), None);
        for garbage in [
            "",
            "10z",
            "10z-",
            "10z-+7",
            "10z--7",
            "10z-7x",
            "-7",
            "10z-99999999999999999999",
        ] {
            assert_eq!(clock.position(garbage), None, "{garbage:?}");
        }
        assert_eq!(base36(0), "0");
    }
}
