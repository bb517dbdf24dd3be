//! When a quota alert is critical, and the texts of the admin room's `critical` and `error`
//! notifications (the usage peak, its resource, tidy percentages).

use serde_json::{Map, Value};

/// Usage percentage (`usagePercent` or any `percentage` value) from which a quota alert is critical.
pub const CRITICAL_PERCENT: f64 = 95.0;

/// Why a quota alert is critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CriticalBy {
    Usage,
    AlertLevel,
    Severity,
}

/// The highest usage percentage an event reports, and which `percentage` member it came from
/// (`None`: `usagePercent`).
struct PeakUsage<'a> {
    percent: f64,
    resource: Option<&'a str>,
}

/// A finite number, or a string holding one (trimmed); anything else is `None`.
pub(super) fn percent_value(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    number.is_finite().then_some(number)
}

fn peak_usage(event: &Map<String, Value>) -> Option<PeakUsage<'_>> {
    let mut peak = event
        .get("usagePercent")
        .and_then(percent_value)
        .map(|percent| PeakUsage {
            percent,
            resource: None,
        });
    if let Some(Value::Object(percentages)) = event.get("percentage") {
        for (resource, value) in percentages {
            if let Some(percent) = percent_value(value) {
                if peak.as_ref().is_none_or(|p| percent > p.percent) {
                    peak = Some(PeakUsage {
                        percent,
                        resource: Some(resource),
                    });
                }
            }
        }
    }
    peak
}

pub(super) fn critical_level(event: &Map<String, Value>) -> Option<CriticalBy> {
    let is_critical = |field: &str| event.get(field).and_then(Value::as_str) == Some("critical");
    if peak_usage(event).is_some_and(|p| p.percent >= CRITICAL_PERCENT) {
        Some(CriticalBy::Usage)
    } else if is_critical("alertLevel") {
        Some(CriticalBy::AlertLevel)
    } else if is_critical("severity") {
        Some(CriticalBy::Severity)
    } else {
        None
    }
}

/// `97.5`, `97`, `1.5e300`: at most two decimals, no float noise.
fn format_percent(percent: f64) -> String {
    if percent.abs() >= 1e9 {
        format!("{percent:e}")
    } else {
        format!("{}", (percent * 100.0).round() / 100.0)
    }
}

/// `"memory usage at 97%"` / `"usage at 97%"`; the resource name is shortened for the log line.
fn usage_phrase(peak: &PeakUsage<'_>) -> String {
    let percent = format_percent(peak.percent);
    match peak.resource {
        Some(resource) => {
            let mut name: String = resource.chars().take(64).collect();
            if name.len() < resource.len() {
                name.push('…');
            }
            format!("{name} usage at {percent}%")
        }
        None => format!("usage at {percent}%"),
    }
}

pub(super) fn critical_message(
    user_id: &str,
    quota_id: &str,
    event: &Map<String, Value>,
    level: CriticalBy,
) -> String {
    let reason = match level {
        CriticalBy::Usage => "critical",
        CriticalBy::AlertLevel => "alertLevel critical",
        CriticalBy::Severity => "severity critical",
    };
    match peak_usage(event) {
        Some(peak) => format!(
            "User {user_id}: quota {quota_id} {} ({reason})",
            usage_phrase(&peak)
        ),
        None => format!("User {user_id}: quota {quota_id} usage is critical ({reason})"),
    }
}

pub(super) fn exceeded_message(
    user_id: &str,
    quota_id: &str,
    event: &Map<String, Value>,
) -> String {
    match peak_usage(event) {
        Some(peak) => format!(
            "User {user_id}: quota {quota_id} exceeded ({})",
            usage_phrase(&peak)
        ),
        None => format!("User {user_id}: quota {quota_id} exceeded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_percent_is_tidy() {
        assert_eq!(format_percent(97.0), "97");
        assert_eq!(format_percent(97.5), "97.5");
        assert_eq!(format_percent(96.123_456), "96.12");
        assert_eq!(format_percent(1e300), "1e300");
    }
}
