//! The members pushgate adds to a quota event for the admin console, which reads `alertLevel`
//! and `usagePercent` where real publishers send `severity` and a `percentage` object.
//!
//! * `alertLevel` = the published `severity` (its JSON text as published), when the event has
//!   no `alertLevel` and has a `severity`.
//! * `usagePercent` = the highest value of the `percentage` object, when the event has no
//!   `usagePercent` and `percentage` is an object with at least one value that counts as a
//!   percentage (a finite number, or a string holding one, as in the critical rule). A number
//!   is written as published; a string's number is written as its trimmed text when that is a
//!   JSON number (`" 97.5 "` → `97.5`), else as the shortest decimal that reads back as the
//!   same value (`"+5"` → `5.0`). Of equal values, the first in key order wins.
//!
//! Nothing else is added or changed; a member is "absent" when its key is not in the event at
//! all (a published `"alertLevel": null` is present).

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Number, Value};

use super::alert_text::percent_value;
use super::event_body::EventBody;

/// The members to add to `event`, each as `,"name":value` (empty: none).
pub(super) fn console_members(event: &EventBody<'_>) -> String {
    let mut added = String::new();
    if !event.raw.contains_key("alertLevel") {
        if let Some(severity) = event.raw.get("severity") {
            added.push_str(&format!(r#","alertLevel":{}"#, severity.get()));
        }
    }
    if !event.raw.contains_key("usagePercent") {
        if let Some(peak) = event.raw.get("percentage").and_then(|p| peak_percentage(p)) {
            added.push_str(&format!(r#","usagePercent":{peak}"#));
        }
    }
    added
}

/// The highest percentage in a `percentage` object, as JSON number text.
fn peak_percentage(percentage: &RawValue) -> Option<String> {
    let values: BTreeMap<String, &RawValue> = serde_json::from_str(percentage.get()).ok()?;
    let mut peak: Option<(f64, &RawValue, Value)> = None;
    for raw in values.into_values() {
        let Ok(value) = serde_json::from_str::<Value>(raw.get()) else {
            continue;
        };
        if let Some(percent) = percent_value(&value) {
            if peak.as_ref().is_none_or(|(p, _, _)| percent > *p) {
                peak = Some((percent, raw, value));
            }
        }
    }
    let (percent, raw, value) = peak?;
    match value {
        Value::String(text) if serde_json::from_str::<Number>(text.trim()).is_ok() => {
            Some(text.trim().to_owned())
        }
        Value::String(_) => Number::from_f64(percent).map(|n| n.to_string()),
        _ => Some(raw.get().to_owned()),
    }
}
