//! Reading a delivery's body: JSON with a nesting limit checked before parsing, and the
//! required ids (`userId`, `quotaId`, `deviceId`) with their poison reasons.

use serde_json::{Map, Value};

use super::PoisonReason;

/// Deepest JSON nesting (objects and arrays) accepted in a body; deeper is poison.
pub const MAX_JSON_DEPTH: usize = 128;

/// Parses `body` as JSON, refusing nesting deeper than [`MAX_JSON_DEPTH`] before any recursion.
pub(super) fn parse_object(body: &[u8]) -> Result<Value, PoisonReason> {
    if nesting_exceeds(body, MAX_JSON_DEPTH) {
        return Err(PoisonReason::NotJson(format!(
            "nested deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    serde_json::from_slice(body).map_err(|e| PoisonReason::NotJson(e.to_string()))
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
