//! Reading a delivery's body: JSON with a nesting limit checked before parsing, kept as the
//! published text (pushes carry it byte for byte) beside the few members the table reads, and
//! the required ids (`userId`, `quotaId`, `deviceId`) with their poison reasons.

use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::PoisonReason;

/// Deepest JSON nesting (objects and arrays) accepted in a body; deeper is poison.
pub const MAX_JSON_DEPTH: usize = 128;

/// The members the table reads (ids, names, levels, usage, timestamps); the others are only
/// passed through as text.
const READ_MEMBERS: [&str; 11] = [
    "userId",
    "quotaId",
    "deviceId",
    "deviceName",
    "alertLevel",
    "severity",
    "usagePercent",
    "percentage",
    "timestamp",
    "startedAt",
    "stoppedAt",
];

/// A delivery's body that is a JSON object.
pub(super) struct EventBody<'a> {
    /// The object as published, byte for byte, without the whitespace around it (so it starts
    /// with `{` and ends with `}`).
    pub text: &'a str,
    /// Every member's value as published; of a duplicated key, the last one (as `JSON.parse`
    /// reads it).
    pub raw: HashMap<String, &'a RawValue>,
    /// The members of [`READ_MEMBERS`] that are present, parsed.
    pub fields: Map<String, Value>,
}

impl<'a> EventBody<'a> {
    /// The object text with `members` (each `,"name":value`) added before its closing `}`.
    pub fn with_members(&self, members: &str) -> String {
        let open = &self.text[..self.text.len() - 1];
        format!("{open}{members}}}")
    }
}

/// Parses `body` as a JSON object, refusing nesting deeper than [`MAX_JSON_DEPTH`] before any
/// recursion.
pub(super) fn parse_object(body: &[u8]) -> Result<EventBody<'_>, PoisonReason> {
    let not_json = |e: &dyn std::fmt::Display| PoisonReason::NotJson(e.to_string());
    if nesting_exceeds(body, MAX_JSON_DEPTH) {
        return Err(PoisonReason::NotJson(format!(
            "nested deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    let body = std::str::from_utf8(body).map_err(|e| not_json(&e))?;
    let value: &RawValue = serde_json::from_str(body).map_err(|e| not_json(&e))?;
    let text = value.get();
    if !text.starts_with('{') {
        return Err(PoisonReason::NotAnObject);
    }
    let raw: HashMap<String, &RawValue> = serde_json::from_str(text).map_err(|e| not_json(&e))?;
    let mut fields = Map::new();
    for name in READ_MEMBERS {
        if let Some(value) = raw.get(name) {
            let value = serde_json::from_str(value.get()).map_err(|e| not_json(&e))?;
            fields.insert(name.to_owned(), value);
        }
    }
    Ok(EventBody { text, raw, fields })
}

/// Whether the brackets of `body` (outside strings) nest deeper than `limit`. Exact for valid
/// JSON; for invalid JSON the answer does not matter, the parser refuses it anyway.
fn nesting_exceeds(body: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A required id in its string form (the room suffix and cache key).
pub(super) fn required_id(
    fields: &Map<String, Value>,
    field: &'static str,
) -> Result<String, PoisonReason> {
    match fields.get(field) {
        None => Err(PoisonReason::MissingField(field)),
        Some(Value::String(s)) if s.is_empty() => Err(PoisonReason::EmptyField(field)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|id| id.to_string())
            .ok_or(PoisonReason::WrongType(field)),
        Some(_) => Err(PoisonReason::WrongType(field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_scan_ignores_brackets_in_strings() {
        assert!(!nesting_exceeds(br#"{"a":"[[[[[[[[[[\"[[[["}"#, 2));
        assert!(nesting_exceeds(br#"{"a":[[1]]}"#, 2));
        assert!(!nesting_exceeds(br#"{"a":[1]}"#, 2));
    }
}
