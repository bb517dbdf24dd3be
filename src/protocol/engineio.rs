//! Engine.IO protocol v4 codec: the transport layer under Socket.IO.
//!
//! An Engine.IO packet is one type digit followed by optional data:
//!
//! | type    | digit | data                                   |
//! |---------|-------|----------------------------------------|
//! | open    | `0`   | handshake JSON (server to client only) |
//! | close   | `1`   |                                        |
//! | ping    | `2`   | optional, `probe` during an upgrade    |
//! | pong    | `3`   | optional, `probe` during an upgrade    |
//! | message | `4`   | the Socket.IO packet text              |
//! | upgrade | `5`   |                                        |
//! | noop    | `6`   |                                        |
//!
//! Transports:
//! * WebSocket: one packet per frame. A text frame is `<digit>[data]`; a binary frame is a
//!   binary `message` as is, with no type prefix ([`decode_binary`]).
//! * HTTP long-polling: a body holds several packets joined by the record separator `\x1e`
//!   ([`split_payload`], [`encode_payload`]); binary messages are written as `b<base64>`
//!   ([`encode_binary_for_polling`]).
//!
//! Behaviour follows the reference `engine.io-parser` (v5, protocol 4) with two deliberate
//! differences: an empty packet is an error rather than an "error packet" value, and base64 is
//! decoded strictly (standard alphabet, padding optional) where Node's `Buffer.from(s,
//! "base64")` silently skips invalid characters.

use std::borrow::Cow;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::Serialize;

use super::ProtocolError;

/// The record separator that joins packets in a long-polling payload.
pub const RECORD_SEPARATOR: char = '\x1e';
/// The `close` packet: asks the other side to close the session.
pub const CLOSE: &str = "1";
/// The `ping` packet the server sends every `pingInterval`.
pub const PING: &str = "2";
/// The `pong` packet (a client answers [`PING`] with it).
pub const PONG: &str = "3";
/// The `ping` packet a client sends on the new WebSocket while upgrading from polling.
pub const PING_PROBE: &str = "2probe";
/// The server's answer to [`PING_PROBE`] during an upgrade.
pub const PONG_PROBE: &str = "3probe";
/// The `upgrade` packet a client sends to complete an upgrade to WebSocket.
pub const UPGRADE: &str = "5";
/// The `noop` packet; the server answers a pending polling `GET` with it during an upgrade.
pub const NOOP: &str = "6";
/// The type prefix of a `message` packet (prepend it to a Socket.IO packet text).
pub const MESSAGE_PREFIX: char = '4';

/// Strict-but-tolerant base64: standard alphabet, padding optional, non-zero trailing bits
/// accepted (clients always send canonical padded base64; this only avoids pedantry).
const BASE64_DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// One decoded Engine.IO packet, borrowing from the text or bytes it was decoded from where it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EioPacket<'a> {
    /// `0`: handshake (only ever sent by the server; any data is ignored when decoding).
    Open,
    /// `1`: close the session.
    Close,
    /// `2`: ping, with its data (`"probe"` during an upgrade, `""` when none).
    Ping(&'a str),
    /// `3`: pong, with its data (`"probe"` during an upgrade, `""` when none).
    Pong(&'a str),
    /// `4`: a text message, i.e. one Socket.IO packet text (`""` when none).
    Message(&'a str),
    /// A binary message: a WebSocket binary frame (borrowed) or a `b<base64>` polling
    /// record (decoded, owned).
    Binary(Cow<'a, [u8]>),
    /// `5`: the client completes an upgrade to WebSocket.
    Upgrade,
    /// `6`: no-op.
    Noop,
}

impl EioPacket<'_> {
    /// Encodes the packet as text: a WebSocket text frame or one long-polling record.
    ///
    /// [`EioPacket::Binary`] becomes the polling form `b<base64>`; on WebSocket send the
    /// bytes as a binary frame instead. [`EioPacket::Open`] encodes as a bare `0`; use
    /// [`encode_open`] for a real handshake.
    pub fn to_text(&self) -> String {
        match self {
            EioPacket::Open => "0".to_owned(),
            EioPacket::Close => CLOSE.to_owned(),
            EioPacket::Ping(data) => prefixed('2', data),
            EioPacket::Pong(data) => prefixed('3', data),
            EioPacket::Message(data) => prefixed(MESSAGE_PREFIX, data),
            EioPacket::Binary(bytes) => encode_binary_for_polling(bytes),
            EioPacket::Upgrade => UPGRADE.to_owned(),
            EioPacket::Noop => NOOP.to_owned(),
        }
    }
}

fn prefixed(prefix: char, data: &str) -> String {
    let mut out = String::with_capacity(1 + data.len());
    out.push(prefix);
    out.push_str(data);
    out
}

/// Decodes one packet given as text: a WebSocket text frame, or one record of a
/// long-polling payload (see [`split_payload`]).
///
/// A leading `b` means a base64-encoded binary message (the polling form; it is accepted on
/// WebSocket too). Data after the type digit of `open`, `close`, `upgrade` and `noop` is
/// ignored, as the reference server does.
///
/// # Errors
/// [`ProtocolError::Empty`] for `""`, [`ProtocolError::UnknownPacketType`] for any first
/// character other than `0`..`6` and `b`, [`ProtocolError::InvalidBase64`] for a bad `b`
/// record.
pub fn decode_text(text: &str) -> Result<EioPacket<'_>, ProtocolError> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or(ProtocolError::Empty)?;
    let data = chars.as_str();
    Ok(match kind {
        '0' => EioPacket::Open,
        '1' => EioPacket::Close,
        '2' => EioPacket::Ping(data),
        '3' => EioPacket::Pong(data),
        '4' => EioPacket::Message(data),
        '5' => EioPacket::Upgrade,
        '6' => EioPacket::Noop,
        'b' => EioPacket::Binary(Cow::Owned(
            BASE64_DECODER
                .decode(data)
                .map_err(|_| ProtocolError::InvalidBase64)?,
        )),
        other => return Err(ProtocolError::UnknownPacketType(other)),
    })
}

/// Decodes a WebSocket binary frame: always a binary `message`, bytes as they are.
pub fn decode_binary(frame: &[u8]) -> EioPacket<'_> {
    EioPacket::Binary(Cow::Borrowed(frame))
}

/// Checks that a long-polling request body is UTF-8 (Engine.IO v4 polling bodies are always
/// text; binary travels as `b<base64>`), so it can be given to [`split_payload`].
///
/// # Errors
/// [`ProtocolError::InvalidText`] when it is not.
pub fn payload_str(body: &[u8]) -> Result<&str, ProtocolError> {
    std::str::from_utf8(body).map_err(|_| ProtocolError::InvalidText)
}

/// Splits a long-polling payload into its packets (split on `\x1e`).
///
/// Like the reference, an empty body yields one empty record (which [`decode_text`] rejects)
/// and empty records between separators are kept. The reference stops at the first packet
/// that fails to decode; callers should do the same (and close the session).
pub fn split_payload(body: &str) -> impl Iterator<Item = &str> {
    body.split(RECORD_SEPARATOR)
}

/// Joins already-encoded text packets into one long-polling payload (separated by `\x1e`).
///
/// Packets must not contain `\x1e` themselves (JSON never does: it escapes control
/// characters). Binary messages must be given in their `b<base64>` form
/// ([`encode_binary_for_polling`]).
pub fn encode_payload<I: IntoIterator<Item = S>, S: AsRef<str>>(packets: I) -> String {
    let mut out = String::new();
    for (i, packet) in packets.into_iter().enumerate() {
        if i > 0 {
            out.push(RECORD_SEPARATOR);
        }
        out.push_str(packet.as_ref());
    }
    out
}

/// Encodes a binary message for long-polling: `b` followed by standard, padded base64.
pub fn encode_binary_for_polling(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(1 + bytes.len().div_ceil(3) * 4);
    out.push('b');
    STANDARD.encode_string(bytes, &mut out);
    out
}

/// Encodes a text `message` packet: `4` followed by `text` (usually a Socket.IO packet from
/// [`super::socketio::Packet::encode`]).
pub fn encode_message(text: &str) -> String {
    prefixed(MESSAGE_PREFIX, text)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Handshake<'a> {
    sid: &'a str,
    upgrades: &'a [&'a str],
    ping_interval: u64,
    ping_timeout: u64,
    max_payload: u64,
}

/// Encodes the handshake `open` packet: `0{"sid":...,"upgrades":[...],"pingInterval":...,
/// "pingTimeout":...,"maxPayload":...}` with the keys in exactly that order, as engine.io
/// sends it. `upgrades` is `["websocket"]` on a polling handshake and `[]` on WebSocket.
pub fn encode_open(
    sid: &str,
    upgrades: &[&str],
    ping_interval_ms: u64,
    ping_timeout_ms: u64,
    max_payload: u64,
) -> String {
    let handshake = Handshake {
        sid,
        upgrades,
        ping_interval: ping_interval_ms,
        ping_timeout: ping_timeout_ms,
        max_payload,
    };
    let mut out = vec![b'0'];
    serde_json::to_writer(&mut out, &handshake).expect("serializing the handshake cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// The Engine.IO HTTP error responses, with engine.io's codes and messages.
///
/// The server answers a bad long-polling or handshake request with [`EioError::http_status`]
/// and the body [`EioError::json`] (`Content-Type: application/json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EioError {
    /// Unknown or missing `transport` query parameter.
    TransportUnknown = 0,
    /// Unknown `sid`.
    UnknownSid = 1,
    /// Handshake request with a method other than `GET`.
    BadHandshakeMethod = 2,
    /// Anything else wrong with the request (e.g. transport mismatch, concurrent polls).
    BadRequest = 3,
    /// Refused by the server's request check.
    Forbidden = 4,
    /// `EIO` query parameter missing or not `4`.
    UnsupportedProtocolVersion = 5,
}

impl EioError {
    /// The numeric code sent in the JSON body.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The message engine.io sends for this code.
    pub fn message(self) -> &'static str {
        match self {
            EioError::TransportUnknown => "Transport unknown",
            EioError::UnknownSid => "Session ID unknown",
            EioError::BadHandshakeMethod => "Bad handshake method",
            EioError::BadRequest => "Bad request",
            EioError::Forbidden => "Forbidden",
            EioError::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    /// The HTTP status engine.io uses: 403 for [`EioError::Forbidden`], 400 for the rest.
    pub fn http_status(self) -> u16 {
        match self {
            EioError::Forbidden => 403,
            _ => 400,
        }
    }

    /// The response body: `{"code":N,"message":"..."}`.
    pub fn json(self) -> String {
        // The messages contain no characters that need JSON escaping.
        format!(
            r#"{{"code":{},"message":"{}"}}"#,
            self.code(),
            self.message()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(bytes: &[u8]) -> EioPacket<'static> {
        EioPacket::Binary(Cow::Owned(bytes.to_vec()))
    }

    #[test]
    fn decodes_every_packet_type() {
        assert_eq!(decode_text("0"), Ok(EioPacket::Open));
        assert_eq!(decode_text("1"), Ok(EioPacket::Close));
        assert_eq!(decode_text("2"), Ok(EioPacket::Ping("")));
        assert_eq!(decode_text("3"), Ok(EioPacket::Pong("")));
        assert_eq!(decode_text("4"), Ok(EioPacket::Message("")));
        assert_eq!(decode_text("5"), Ok(EioPacket::Upgrade));
        assert_eq!(decode_text("6"), Ok(EioPacket::Noop));
        assert_eq!(decode_text("b"), Ok(binary(b"")));
    }

    #[test]
    fn decodes_data() {
        assert_eq!(decode_text("2probe"), Ok(EioPacket::Ping("probe")));
        assert_eq!(decode_text("3probe"), Ok(EioPacket::Pong("probe")));
        assert_eq!(decode_text("4hello"), Ok(EioPacket::Message("hello")));
        assert_eq!(
            decode_text("42[\"a\",\"é€😀\"]"),
            Ok(EioPacket::Message("2[\"a\",\"é€😀\"]"))
        );
        // Data on packet types that carry none is ignored.
        assert_eq!(decode_text("1whatever"), Ok(EioPacket::Close));
        assert_eq!(decode_text("5x"), Ok(EioPacket::Upgrade));
        assert_eq!(decode_text("6x"), Ok(EioPacket::Noop));
    }

    #[test]
    fn message_borrows_from_frame() {
        let frame = String::from("4abc");
        match decode_text(&frame).unwrap() {
            EioPacket::Message(m) => assert_eq!(m.as_ptr(), frame[1..].as_ptr()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn round_trips_every_packet_type() {
        let packets = [
            EioPacket::Close,
            EioPacket::Ping(""),
            EioPacket::Ping("probe"),
            EioPacket::Pong(""),
            EioPacket::Pong("probe"),
            EioPacket::Message(""),
            EioPacket::Message("2[\"hello\",1]"),
            EioPacket::Upgrade,
            EioPacket::Noop,
            binary(&[]),
            binary(&[1, 2, 3, 4]),
            binary(&[0, 255, 254, 10, 30]),
            EioPacket::Open,
        ];
        for packet in packets {
            let text = packet.to_text();
            assert_eq!(decode_text(&text).unwrap(), packet, "{text}");
        }
    }

    #[test]
    fn fixed_packets() {
        assert_eq!(decode_text(CLOSE), Ok(EioPacket::Close));
        assert_eq!(decode_text(PING), Ok(EioPacket::Ping("")));
        assert_eq!(decode_text(PONG), Ok(EioPacket::Pong("")));
        assert_eq!(decode_text(PING_PROBE), Ok(EioPacket::Ping("probe")));
        assert_eq!(decode_text(PONG_PROBE), Ok(EioPacket::Pong("probe")));
        assert_eq!(decode_text(UPGRADE), Ok(EioPacket::Upgrade));
        assert_eq!(decode_text(NOOP), Ok(EioPacket::Noop));
        assert_eq!(encode_message("0"), "40");
        assert_eq!(encode_message(""), "4");
    }

    #[test]
    fn rejects_empty_and_unknown_types() {
        assert_eq!(decode_text(""), Err(ProtocolError::Empty));
        assert_eq!(decode_text("7"), Err(ProtocolError::UnknownPacketType('7')));
        assert_eq!(
            decode_text("9x"),
            Err(ProtocolError::UnknownPacketType('9'))
        );
        assert_eq!(decode_text("a"), Err(ProtocolError::UnknownPacketType('a')));
        assert_eq!(decode_text("B"), Err(ProtocolError::UnknownPacketType('B')));
        assert_eq!(
            decode_text(" 4"),
            Err(ProtocolError::UnknownPacketType(' '))
        );
        assert_eq!(
            decode_text("é4"),
            Err(ProtocolError::UnknownPacketType('é'))
        );
        assert_eq!(
            decode_text("\u{1e}"),
            Err(ProtocolError::UnknownPacketType('\u{1e}'))
        );
    }

    #[test]
    fn base64() {
        // Example from the Engine.IO README.
        assert_eq!(decode_text("bAQIDBA=="), Ok(binary(&[1, 2, 3, 4])));
        assert_eq!(encode_binary_for_polling(&[1, 2, 3, 4]), "bAQIDBA==");
        // Padding is optional.
        assert_eq!(decode_text("bAQIDBA"), Ok(binary(&[1, 2, 3, 4])));
        assert_eq!(encode_binary_for_polling(&[]), "b");
        assert_eq!(encode_binary_for_polling(&[0xfb, 0xff]), "b+/8=");
        for bad in [
            "b!!!!",
            "bAQIDBA===",
            "bA",
            "b-_8=",
            "bAQ ID",
            "bAQIDBA==\n",
            "bé",
        ] {
            assert_eq!(decode_text(bad), Err(ProtocolError::InvalidBase64), "{bad}");
        }
    }

    #[test]
    fn base64_round_trip_all_lengths() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        for len in 0..bytes.len() {
            let text = encode_binary_for_polling(&bytes[..len]);
            assert_eq!(text.len(), 1 + len.div_ceil(3) * 4);
            assert_eq!(decode_text(&text), Ok(binary(&bytes[..len])));
        }
    }

    #[test]
    fn binary_frames_borrow() {
        let frame = [1u8, 2, 3];
        match decode_binary(&frame) {
            EioPacket::Binary(Cow::Borrowed(b)) => assert_eq!(b, &frame),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(decode_binary(&[]), binary(&[]));
    }

    #[test]
    fn payload_examples_from_readme() {
        let body = "4hello\x1e2\x1e4world";
        let packets: Vec<_> = split_payload(body).map(decode_text).collect();
        assert_eq!(
            packets,
            vec![
                Ok(EioPacket::Message("hello")),
                Ok(EioPacket::Ping("")),
                Ok(EioPacket::Message("world")),
            ]
        );
        assert_eq!(encode_payload(["4hello", "2", "4world"]), body);

        let body = "4hello\x1ebAQIDBA==";
        let packets: Vec<_> = split_payload(body).map(decode_text).collect();
        assert_eq!(
            packets,
            vec![Ok(EioPacket::Message("hello")), Ok(binary(&[1, 2, 3, 4]))]
        );
        assert_eq!(
            encode_payload(vec![
                "4hello".to_owned(),
                encode_binary_for_polling(&[1, 2, 3, 4])
            ]),
            body
        );

        // From the Socket.IO README's sample session.
        let body = "42[\"hello\"]\x1e42[\"world\"]";
        let packets: Vec<_> = split_payload(body).collect();
        assert_eq!(packets, ["42[\"hello\"]", "42[\"world\"]"]);
    }

    #[test]
    fn payload_edge_cases() {
        assert_eq!(split_payload("").collect::<Vec<_>>(), [""]);
        assert_eq!(split_payload("4a").collect::<Vec<_>>(), ["4a"]);
        assert_eq!(split_payload("\x1e").collect::<Vec<_>>(), ["", ""]);
        assert_eq!(
            split_payload("2\x1e\x1e3").collect::<Vec<_>>(),
            ["2", "", "3"]
        );
        assert_eq!(
            decode_text(split_payload("").next().unwrap()),
            Err(ProtocolError::Empty)
        );
        assert_eq!(encode_payload(Vec::<String>::new()), "");
        assert_eq!(encode_payload(["6"]), "6");
        assert_eq!(encode_payload(["", ""]), "\x1e");
    }

    #[test]
    fn payload_str_checks_utf8() {
        assert_eq!(payload_str(b"4hello"), Ok("4hello"));
        assert_eq!(
            payload_str(&[b'4', 0xff, 0xfe]),
            Err(ProtocolError::InvalidText)
        );
        assert_eq!(payload_str(&[b'4', 0xc3]), Err(ProtocolError::InvalidText));
    }

    #[test]
    fn open_packet() {
        // The example from the Engine.IO README / the Socket.IO sample session.
        assert_eq!(
            encode_open(
                "lv_VI97HAXpY6yYWAAAC",
                &["websocket"],
                25000,
                5000,
                1_000_000
            ),
            r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000,"maxPayload":1000000}"#
        );
        assert_eq!(
            encode_open("abc", &[], 25000, 20000, 1_000_000),
            r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
        // A sid is server-generated, but escaping still has to be right.
        let open = encode_open("a\"b\\c", &["websocket"], 1, 2, 3);
        let v: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
        assert_eq!(v["sid"], "a\"b\\c");
        assert_eq!(decode_text(&open), Ok(EioPacket::Open));
    }

    #[test]
    fn error_bodies_match_engine_io() {
        let all = [
            (EioError::TransportUnknown, 0, "Transport unknown"),
            (EioError::UnknownSid, 1, "Session ID unknown"),
            (EioError::BadHandshakeMethod, 2, "Bad handshake method"),
            (EioError::BadRequest, 3, "Bad request"),
            (EioError::Forbidden, 4, "Forbidden"),
            (
                EioError::UnsupportedProtocolVersion,
                5,
                "Unsupported protocol version",
            ),
        ];
        for (err, code, message) in all {
            assert_eq!(err.code(), code);
            assert_eq!(err.message(), message);
            let expected = serde_json::json!({ "code": code, "message": message });
            assert_eq!(err.json(), expected.to_string());
            assert_eq!(err.http_status(), if code == 4 { 403 } else { 400 });
        }
        assert_eq!(
            EioError::UnknownSid.json(),
            r#"{"code":1,"message":"Session ID unknown"}"#
        );
    }

    #[test]
    fn large_inputs() {
        let big = "x".repeat(1 << 20);
        let frame = format!("4{big}");
        assert_eq!(decode_text(&frame), Ok(EioPacket::Message(&big)));

        let bytes: Vec<u8> = (0..(1usize << 20)).map(|i| (i * 7) as u8).collect();
        let text = encode_binary_for_polling(&bytes);
        assert_eq!(decode_text(&text), Ok(binary(&bytes)));

        let body = encode_payload(std::iter::repeat_n("2", 1 << 19));
        assert_eq!(body.len(), (1 << 20) - 1);
        assert!(split_payload(&body).all(|p| decode_text(p) == Ok(EioPacket::Ping(""))));

        let junk = "\u{1e}".repeat(1 << 20);
        assert_eq!(split_payload(&junk).count(), (1 << 20) + 1);
    }

    #[test]
    fn error_messages_are_readable() {
        assert_eq!(ProtocolError::Empty.to_string(), "empty packet");
        assert_eq!(
            ProtocolError::UnknownPacketType('9').to_string(),
            "unknown packet type '9'"
        );
        assert_eq!(
            ProtocolError::InvalidBase64.to_string(),
            "binary packet is not valid base64"
        );
    }
}
