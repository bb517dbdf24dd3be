//! What a Server-Sent Events stream writes: each push packet as one event, the opening
//! `retry:`, the heartbeat comment and the `reset` event.
//!
//! A push reaches a stream as the packet every Socket.IO receiver gets,
//! `42["<event>",<payload>]`, or with recovery on `42["<event>",<payload>,"<offset>"]`. Its
//! event is `event: <event>`, `data: <payload>` and `id: <offset>`, the payload written as the
//! packet holds it (sliced out, never re-encoded). A payload is forwarded as its publisher sent
//! it, so it may hold raw line breaks between its tokens: each line becomes its own `data:`
//! line, which the client joins back with `\n` (still the same JSON).

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::value::RawValue;

/// How long a client waits before reconnecting, in milliseconds (the stream's first line).
pub const RETRY_MS: u64 = 2000;

/// The heartbeat: a comment line, which clients ignore.
pub const PING: &[u8] = b": ping\n\n";

/// The stream's opening: how long to wait before reconnecting.
pub fn retry() -> Bytes {
    Bytes::from(format!("retry: {RETRY_MS}\n\n"))
}

/// The event telling a client that asked to resume that the pushes after its last event
/// cannot be given (so it refetches): `event: reset`, with an empty `id:`, so that the client
/// forgets the offset it would otherwise ask for again on its next reconnect.
pub fn reset() -> Bytes {
    Bytes::from_static(
        b"event: reset\nid:\ndata: {\"message\":\"pushes may have been missed: refetch\"}\n\n",
    )
}

/// The event of a push packet; `with_offset`: its last argument is its offset (recovery is
/// on). `None` when the packet is not a push of that shape (never written).
pub fn push_event(packet: &str, with_offset: bool) -> Option<Bytes> {
    let array = packet.strip_prefix("42")?;
    let args: Vec<&RawValue> = serde_json::from_str(array).ok()?;
    let (name, rest) = args.split_first()?;
    let event: String = serde_json::from_str(name.get()).ok()?;
    let (data, id) = if with_offset {
        let (offset, data) = rest.split_last()?;
        let id: String = serde_json::from_str(offset.get()).ok()?;
        (data, Some(id))
    } else {
        (rest, None)
    };
    if !is_one_line(&event) || id.as_deref().is_some_and(|id| !is_one_line(id)) {
        return None;
    }
    // The arguments between the name and the offset, as the packet holds them (one, for a
    // push).
    let data = match (data.first(), data.last()) {
        (Some(first), Some(last)) => {
            &array[place_of(array, first)..place_of(array, last) + last.get().len()]
        }
        _ => "",
    };
    let mut out = BytesMut::with_capacity(data.len() + event.len() + 64);
    out.put_slice(b"event: ");
    out.put_slice(event.as_bytes());
    out.put_u8(b'\n');
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.as_bytes());
        out.put_u8(b'\n');
    }
    for line in lines(data) {
        out.put_slice(b"data: ");
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    Some(out.freeze())
}

/// Where `part` (a slice of `whole`) starts in it.
fn place_of(whole: &str, part: &RawValue) -> usize {
    part.get().as_ptr() as usize - whole.as_ptr() as usize
}

/// Whether `field` fits on one SSE line (no line break, no NUL).
fn is_one_line(field: &str) -> bool {
    !field.contains(['\n', '\r', '\0'])
}

/// The lines of `text`, split at `\r\n`, `\r` or `\n` as an SSE client splits them; one empty
/// line for empty text.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(text)
            }
            Some(i) => {
                let skip = if text[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&text[i + skip..]);
                Some(&text[..i])
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::socketio::encode_push_message;

    fn event(packet: &str, with_offset: bool) -> String {
        let bytes = push_event(packet, with_offset).expect("a push");
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn a_push_is_its_event_its_payload_and_its_offset() {
        let payload = r#"{"type":"quota.updated","data":{"used":1}}"#;
        let packet = encode_push_message("notification", payload, Some("1700000000000-7"));
        assert_eq!(
            event(&packet, true),
            format!("event: notification\nid: 1700000000000-7\ndata: {payload}\n\n")
        );
        let packet = encode_push_message("message", payload, None);
        assert_eq!(
            event(&packet, false),
            format!("event: message\ndata: {payload}\n\n"),
            "recovery off: no id"
        );
    }

    #[test]
    fn the_payload_is_written_byte_for_byte_escapes_and_spaces_included() {
        let payload = "{ \"text\" : \"a\\nb \\\"q\\\" \\u00e9 é\",\"n\":[1, 2] }";
        let packet = encode_push_message("notification", payload, Some("1-2"));
        assert_eq!(
            event(&packet, true),
            format!("event: notification\nid: 1-2\ndata: {payload}\n\n")
        );
    }

    #[test]
    fn raw_line_breaks_between_tokens_become_several_data_lines() {
        let payload = "{\n  \"a\": 1,\r\n  \"b\": \"x\"\r}";
        let packet = encode_push_message("notification", payload, None);
        let text = event(&packet, false);
        assert_eq!(
            text,
            "event: notification\ndata: {\ndata:   \"a\": 1,\ndata:   \"b\": \"x\"\ndata: }\n\n"
        );
        // What an SSE client makes of it: the data lines joined with `\n`, the same JSON.
        let data: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        let joined: serde_json::Value = serde_json::from_str(&data.join("\n")).unwrap();
        assert_eq!(joined, serde_json::json!({"a": 1, "b": "x"}));
    }

    #[test]
    fn what_is_not_a_push_is_not_written() {
        for packet in [
            "",
            "2",
            "43[{}]",
            "42{}",
            "42[]",
            "42[1,{}]",
            "42[\"notification\",{}",
            "42[\"no\\ntification\",{}]",
        ] {
            assert_eq!(push_event(packet, false), None, "{packet:?}");
        }
        assert_eq!(
            push_event(r#"42["notification",{}]"#, true),
            None,
            "no offset"
        );
        assert_eq!(
            push_event(r#"42["notification",{},"1\n2"]"#, true),
            None,
            "an id on two lines"
        );
    }

    #[test]
    fn lines_split_like_an_sse_client() {
        fn split(t: &str) -> Vec<&str> {
            lines(t).collect()
        }
        assert_eq!(split(""), [""]);
        assert_eq!(split("a"), ["a"]);
        assert_eq!(split("a\nb\r\nc\rd"), ["a", "b", "c", "d"]);
        assert_eq!(split("a\n\nb\n"), ["a", "", "b", ""]);
    }

    #[test]
    fn the_fixed_parts() {
        assert_eq!(&retry()[..], b"retry: 2000\n\n");
        assert!(PING.starts_with(b":") && PING.ends_with(b"\n\n"));
        let reset = String::from_utf8(reset().to_vec()).unwrap();
        assert!(reset.starts_with("event: reset\nid:\ndata: {"), "{reset}");
        let data = reset
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap();
        serde_json::from_str::<serde_json::Value>(data).unwrap();
    }
}
