//! The latency stamp every benchmark push carries, and the clock it is read against.
//!
//! The pusher puts `"t":<µs since the UNIX epoch>,"seq":<n>` into each payload; a client reads
//! both back from the frame it receives without parsing the whole JSON (the receive path is
//! the load generator's hot loop). The clock is the realtime clock, shared by every process on
//! the machine (the load generator may run as several processes); microseconds since 1970 are
//! about 1.7e15, below 2^53, so the value also survives a JavaScript server's `JSON.parse`.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use memchr::memmem::Finder;

/// Microseconds since the UNIX epoch (realtime clock).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The stamp fields as a JSON fragment: `"t":<t>,"seq":<seq>` (to splice into an object).
pub fn fields(t_us: u64, seq: u64) -> String {
    format!("\"t\":{t_us},\"seq\":{seq}")
}

/// A push body for the room and user routes of the HTTP API: `{"type":"bench","t":..,"seq":..}`.
pub fn http_body(t_us: u64, seq: u64) -> String {
    format!("{{\"type\":\"bench\",{}}}", fields(t_us, seq))
}

/// A `quota.updated` event as backends publish it, for `user`, with the stamp.
pub fn quota_event(user: &str, t_us: u64, seq: u64) -> String {
    format!(
        "{{\"userId\":{},\"quotaId\":\"bench-quota\",\"usagePercent\":10,{}}}",
        serde_json::Value::from(user),
        fields(t_us, seq)
    )
}

/// Reads `(t, seq)` back from a received frame (any event whose payload holds both keys, at
/// any depth, in any order). `None` when either is missing.
///
/// This runs once per received push, in the load generator's hot loop: the keys are found
/// with prebuilt vectorised substring finders and the digits read in one tight loop (the
/// first version, comparing at every quote and folding the digits with checked arithmetic,
/// cost ~300 ns per frame, a sixth of the load generator's CPU in a saturated fan-out).
pub fn parse(frame: &str) -> Option<(u64, u64)> {
    static T: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"t\":"));
    static SEQ: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"seq\":"));
    if let Some(stamp) = stamp_at_end(frame.as_bytes()) {
        return Some(stamp);
    }
    Some((number_after(frame, &T)?, number_after(frame, &SEQ)?))
}

/// The fast path, read backwards: a frame whose payload object ends with the stamp, as the
/// room pushes of the fan-out do (`...,"t":<t>,"seq":<seq>}]`). Anything else, or anything
/// unusual about it (whitespace, another number shape), is left to the general search.
fn stamp_at_end(frame: &[u8]) -> Option<(u64, u64)> {
    let rest = frame.strip_suffix(b"}]")?;
    let (rest, seq) = trailing_number(rest)?;
    let rest = rest.strip_suffix(b",\"seq\":")?;
    let (rest, t) = trailing_number(rest)?;
    let rest = rest.strip_suffix(b"\"t\":")?;
    // "t" must start a key.
    matches!(rest.last(), Some(b'{' | b',')).then_some((t, seq))
}

/// The 1 to 19 digits at the end of `text` (as [`unsigned`] reads them), and what is before
/// them.
fn trailing_number(text: &[u8]) -> Option<(&[u8], u64)> {
    let digits = text.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let (rest, number) = text.split_at(text.len() - digits);
    Some((rest, unsigned(number)?))
}

/// The unsigned integer right after the first occurrence of the finder's key that starts a
/// JSON key, i.e. is preceded by `{` or `,` (whitespace allowed). The key starts with `"`.
fn number_after(text: &str, key: &Finder<'static>) -> Option<u64> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(found) = key.find(&bytes[from..]) {
        let at = from + found;
        let starts_key = bytes[..at]
            .iter()
            .rev()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{' || *b == b',');
        if starts_key {
            return unsigned(&bytes[at + key.needle().len()..]);
        }
        // The key starts with a quote, so the next candidate starts after this one's quote.
        from = at + 1;
    }
    None
}

/// The unsigned integer at the start of `text` (after whitespace): 1 to 19 digits, which
/// always fit a `u64`.
fn unsigned(text: &[u8]) -> Option<u64> {
    let mut i = text.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let start = i;
    let mut value = 0u64;
    while let Some(d) = text.get(i).filter(|b| b.is_ascii_digit()) {
        if i - start == 19 {
            return None;
        }
        value = value * 10 + u64::from(d - b'0');
        i += 1;
    }
    (i > start).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushgate::protocol::socketio::encode_event_message;

    #[test]
    fn stamp_round_trips_through_every_payload_shape() {
        let t = now_us();
        // HTTP room push, as the server frames it.
        let frame = encode_event_message("message", &http_body(t, 7));
        assert_eq!(parse(&frame), Some((t, 7)));
        // RabbitMQ event, wrapped by the routing table and re-serialized with sorted keys.
        let event: serde_json::Value = serde_json::from_str(&quota_event("u1", t, 9)).unwrap();
        let wrapped = serde_json::json!({"type": "quota.updated", "data": event});
        let frame = encode_event_message("notification", &wrapped.to_string());
        assert_eq!(parse(&frame), Some((t, 9)));
        // A pretty-printed payload (whitespace after separators).
        let pretty = serde_json::to_string_pretty(&wrapped).unwrap();
        assert_eq!(parse(&pretty), Some((t, 9)));
    }

    #[test]
    fn only_whole_keys_match() {
        assert_eq!(parse(r#"{"at":1,"seq":2}"#), None);
        assert_eq!(parse(r#"{"x":"a\"t\":5","t":3,"seq":2}"#), Some((3, 2)));
        assert_eq!(parse(r#"42["welcome",{"message":"hi"}]"#), None);
        assert_eq!(parse(r#"{"t":-1,"seq":2}"#), None);
    }

    #[test]
    fn the_fast_path_agrees_with_the_search_and_steps_aside_for_anything_else() {
        let frames = [
            r#"42["message",{"type":"bench","t":1795832456123456,"seq":7}]"#,
            r#"42["message",{"t":5,"seq":0}]"#,
            r#"42["message",{"x":"a\"t\":5","t":3,"seq":2}]"#,
        ];
        for frame in frames {
            let fast = stamp_at_end(frame.as_bytes());
            assert!(fast.is_some(), "{frame}");
            let t = number_after(frame, &Finder::new(b"\"t\":"));
            let seq = number_after(frame, &Finder::new(b"\"seq\":"));
            assert_eq!(fast, t.zip(seq), "{frame}");
        }
        for other in [
            r#"42["message",{"seq":2,"t":3}]"#,
            r#"42["message",{"t": 3,"seq":2}]"#,
            r#"42["message",{"at":3,"seq":2}]"#,
            r#"42["message",{"t":3,"seq":-2}]"#,
            r#"42["message",{"t":3,"seq":2}"#,
            r#"}]"#,
            "",
        ] {
            assert_eq!(stamp_at_end(other.as_bytes()), None, "{other}");
        }
        // Those still parse through the search where they hold a stamp.
        assert_eq!(parse(r#"42["message",{"seq":2,"t":3}]"#), Some((3, 2)));
        assert_eq!(parse(r#"42["message",{"t": 3,"seq":2}]"#), Some((3, 2)));
    }

    #[test]
    fn numbers_are_1_to_19_digits() {
        assert_eq!(
            parse(r#"{"t": 9999999999999999999,"seq":0}"#),
            Some((9_999_999_999_999_999_999, 0))
        );
        assert_eq!(parse(r#"{"t":10000000000000000000,"seq":0}"#), None);
        assert_eq!(parse(r#"{"t":,"seq":0}"#), None);
        assert_eq!(parse(r#"{"t":12"#), None);
        assert_eq!(parse(r#"{"seq":3,"t":12}"#), Some((12, 3)));
    }

    #[test]
    fn stamp_is_below_two_to_the_53() {
        assert!(now_us() < 1 << 53);
        assert!(now_us() > 1_600_000_000_000_000);
    }
}
