//! The timestamps pushgate puts in pushes: an event's own (verbatim), else the time pushgate
//! received it, in RFC 3339.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// The first of `fields` that is a non-empty string, verbatim; else `received_at` in RFC 3339.
pub(super) fn event_timestamp(
    event: &Map<String, Value>,
    fields: &[&str],
    received_at: SystemTime,
) -> String {
    fields
        .iter()
        .find_map(|field| match event.get(*field) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| rfc3339_millis(received_at))
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-27T21:15:12.123Z`. Times before 1970 or after
/// year 9999 (which humantime cannot format) are clamped, so this never panics.
pub(super) fn rfc3339_millis(time: SystemTime) -> String {
    const LAST_FORMATTABLE: Duration = Duration::from_millis(253_402_300_799_999);
    let since_epoch = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .min(LAST_FORMATTABLE);
    humantime::format_rfc3339_millis(UNIX_EPOCH + since_epoch).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-27T21:15:12.123Z
    fn received() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_814_112_123)
    }

    #[test]
    fn receive_time_formatting_never_panics() {
        assert_eq!(rfc3339_millis(received()), "2026-11-27T21:15:12.123Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH - Duration::from_secs(10)),
            "1970-01-01T00:00:00.000Z"
        );
        let far = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert_eq!(rfc3339_millis(far), "9999-12-31T23:59:59.999Z");
    }
}
