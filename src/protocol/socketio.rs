//! Socket.IO protocol v5 codec: the packets carried inside Engine.IO `message` packets.
//!
//! Wire format (the Engine.IO `4` prefix is *not* part of it):
//!
//! ```text
//! <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]
//! ```
//!
//! e.g. `0`, `0/admin,{"sid":"..."}`, `2["foo"]`, `212["foo"]`, `3/admin,13["bar"]`,
//! `4{"message":"Not authorized"}`, `51-["baz",{"_placeholder":true,"num":0}]` followed by
//! one binary Engine.IO message per attachment.
//!
//! Decoding follows `socket.io-parser` v4 (`Decoder.decodeString` and `isPayloadValid`),
//! with these documented differences, all stricter, none reachable by a real client:
//! * an empty packet is [`ProtocolError::Empty`] (the reference reads `""` as a CONNECT),
//!   and only `0`..`6` are packet types (the reference's `Number(c)` also takes `" "`);
//! * the attachment count and ack id must be plain ASCII decimal digits (the reference's
//!   `Number()` coercion also accepts `""`, whitespace, `0x..` and exponents);
//! * EVENT, ACK, BINARY_EVENT and BINARY_ACK must carry a payload, as the protocol spec
//!   requires (the reference decoder lets a payload-less event through);
//! * ack ids above 2^53 - 1 are rejected instead of being rounded.
//!
//! As in the reference, an event name may be a JSON **number** as well as a string (see
//! [`Packet::event_name`]), the reserved names in [`RESERVED_EVENTS`] are refused, the
//! attachment count is capped ([`MAX_ATTACHMENTS`], the reference's default), and JSON
//! nesting is bounded (serde_json's recursion limit of 128 makes deeper input an error, never
//! a stack overflow).
//!
//! JSON objects are decoded into `serde_json::Map`, which keeps keys sorted: a decoded and
//! re-encoded object may list its keys in another order than the client sent them.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::Value;

use super::ProtocolError;

/// The largest number of binary attachments one packet may announce (socket.io-parser's
/// default `maxAttachments`). A larger count is [`ProtocolError::TooManyAttachments`].
pub const MAX_ATTACHMENTS: usize = 10;

/// The largest ack id accepted: 2^53 - 1, JavaScript's `Number.MAX_SAFE_INTEGER`.
pub const MAX_ACK_ID: u64 = (1 << 53) - 1;

/// Event names a client may not send (socket.io-parser refuses them when decoding).
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// The Socket.IO packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketKind {
    /// `0`: connect to a namespace (client: optional auth object; server: `{"sid":...}`).
    Connect = 0,
    /// `1`: leave a namespace.
    Disconnect = 1,
    /// `2`: an event, `["name", ...args]`.
    Event = 2,
    /// `3`: the answer to an event that carried an ack id, `[...args]`.
    Ack = 3,
    /// `4`: the server refuses a namespace connection, `{"message":...}`.
    ConnectError = 4,
    /// `5`: an event with binary attachments.
    BinaryEvent = 5,
    /// `6`: an ack with binary attachments.
    BinaryAck = 6,
}

impl PacketKind {
    /// The kind for a type character `'0'`..`'6'`.
    pub fn from_char(c: char) -> Option<PacketKind> {
        Some(match c {
            '0' => PacketKind::Connect,
            '1' => PacketKind::Disconnect,
            '2' => PacketKind::Event,
            '3' => PacketKind::Ack,
            '4' => PacketKind::ConnectError,
            '5' => PacketKind::BinaryEvent,
            '6' => PacketKind::BinaryAck,
            _ => return None,
        })
    }

    /// The type character written on the wire.
    pub fn as_char(self) -> char {
        char::from(b'0' + self as u8)
    }

    /// True for [`PacketKind::BinaryEvent`] and [`PacketKind::BinaryAck`], the kinds that
    /// announce an attachment count.
    pub fn is_binary(self) -> bool {
        matches!(self, PacketKind::BinaryEvent | PacketKind::BinaryAck)
    }
}

/// One Socket.IO packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// The packet type.
    pub kind: PacketKind,
    /// The namespace, `"/"` for the main one (then it is left out on the wire).
    pub nsp: String,
    /// The ack id, if the sender asked for an acknowledgement (or this is an ack).
    pub id: Option<u64>,
    /// The JSON payload; `None` (or `Some(Value::Null)`, which is encoded the same way)
    /// when there is none.
    pub data: Option<Value>,
    /// The number of binary attachments announced by a BINARY_EVENT/BINARY_ACK (0 for the
    /// other kinds).
    pub attachments: usize,
}

impl Packet {
    /// A packet of `kind` for `nsp` with no id, no payload and no attachments.
    pub fn new(kind: PacketKind, nsp: impl Into<String>) -> Packet {
        Packet {
            kind,
            nsp: nsp.into(),
            id: None,
            data: None,
            attachments: 0,
        }
    }

    /// The server's CONNECT answer: `0[<nsp>,]{"sid":"<sid>"}`.
    pub fn connect_ok(nsp: impl Into<String>, sid: &str) -> Packet {
        Packet {
            data: Some(serde_json::json!({ "sid": sid })),
            ..Packet::new(PacketKind::Connect, nsp)
        }
    }

    /// A CONNECT_ERROR: `4[<nsp>,]{"message":"<message>"}` (e.g. `"Invalid namespace"`,
    /// `"unauthorized"`).
    pub fn connect_error(nsp: impl Into<String>, message: &str) -> Packet {
        Packet {
            data: Some(serde_json::json!({ "message": message })),
            ..Packet::new(PacketKind::ConnectError, nsp)
        }
    }

    /// A DISCONNECT for `nsp`: `1[<nsp>,]`.
    pub fn disconnect(nsp: impl Into<String>) -> Packet {
        Packet::new(PacketKind::Disconnect, nsp)
    }

    /// An EVENT whose `data` is `["name", ...args]`, with an optional ack id.
    pub fn event(nsp: impl Into<String>, data: Value, id: Option<u64>) -> Packet {
        Packet {
            id,
            data: Some(data),
            ..Packet::new(PacketKind::Event, nsp)
        }
    }

    /// An ACK answering ack id `id`, whose `data` is the array of arguments.
    pub fn ack(nsp: impl Into<String>, id: u64, data: Value) -> Packet {
        Packet {
            id: Some(id),
            data: Some(data),
            ..Packet::new(PacketKind::Ack, nsp)
        }
    }

    /// Encodes the packet as socket.io-parser's `Encoder` does, without the Engine.IO `4`:
    /// type digit, `<attachments>-` for the binary kinds, `<nsp>,` unless the namespace is
    /// `"/"` (or empty), the ack id, then the JSON payload unless it is absent or `null`.
    ///
    /// For binary packets prefer [`BinaryPacket::encode`], which sets the kind and the
    /// attachment count from the attachments it carries.
    pub fn encode(&self) -> String {
        encode_parts(
            self.kind,
            self.attachments,
            &self.nsp,
            self.id,
            self.data.as_ref(),
        )
    }

    /// The event name of an EVENT/BINARY_EVENT: the first element of the payload.
    ///
    /// socket.io-parser accepts a number as event name, and Node's EventEmitter then
    /// matches it against listeners registered under its decimal string (`emit(1)` reaches
    /// `on("1")`), so a number is returned as that string (JavaScript's `String(n)` for
    /// integers and ordinary decimals; very large or tiny floats are printed without an
    /// exponent). `None` for other kinds or a payload without a name.
    pub fn event_name(&self) -> Option<Cow<'_, str>> {
        if !matches!(self.kind, PacketKind::Event | PacketKind::BinaryEvent) {
            return None;
        }
        match self.data.as_ref()?.as_array()?.first()? {
            Value::String(s) => Some(Cow::Borrowed(s)),
            Value::Number(n) => Some(Cow::Owned(match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => u.to_string(),
                (_, Some(i), _) => i.to_string(),
                (_, _, Some(f)) => f.to_string(),
                _ => n.to_string(),
            })),
            _ => None,
        }
    }

    /// The arguments of the packet: the payload array without the event name for
    /// EVENT/BINARY_EVENT, the whole payload array for ACK/BINARY_ACK, empty otherwise.
    pub fn args(&self) -> &[Value] {
        let Some(array) = self.data.as_ref().and_then(Value::as_array) else {
            return &[];
        };
        match self.kind {
            PacketKind::Event | PacketKind::BinaryEvent => array.get(1..).unwrap_or(&[]),
            PacketKind::Ack | PacketKind::BinaryAck => array,
            _ => &[],
        }
    }
}

fn encode_parts(
    kind: PacketKind,
    attachments: usize,
    nsp: &str,
    id: Option<u64>,
    data: Option<&Value>,
) -> String {
    let mut out = Vec::with_capacity(16 + nsp.len());
    out.push(b'0' + kind as u8);
    if kind.is_binary() {
        push_decimal(&mut out, attachments as u64);
        out.push(b'-');
    }
    if !nsp.is_empty() && nsp != "/" {
        out.extend_from_slice(nsp.as_bytes());
        out.push(b',');
    }
    if let Some(id) = id {
        push_decimal(&mut out, id);
    }
    if let Some(data) = data.filter(|d| !d.is_null()) {
        serde_json::to_writer(&mut out, data).expect("serializing a serde_json::Value cannot fail");
    }
    String::from_utf8(out).expect("the encoder writes only UTF-8")
}

fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Decodes one Socket.IO packet from the text of an Engine.IO `message` (without its `4`).
///
/// Rules, in order (as socket.io-parser's `decodeString`):
/// 1. the type digit `0`..`6`;
/// 2. for BINARY_EVENT/BINARY_ACK, the attachment count: decimal digits then `-`, at most
///    [`MAX_ATTACHMENTS`];
/// 3. if the next character is `/`, the namespace: everything up to the next `,` (which is
///    consumed) or to the end of the text; otherwise the namespace is `"/"`;
/// 4. if the next character is a digit, the ack id: all following digits, at most
///    [`MAX_ACK_ID`];
/// 5. anything left is the payload and must be one JSON value (surrounding whitespace
///    allowed, nothing else after it) of the right shape:
///    * CONNECT: an object, or no payload;
///    * DISCONNECT: no payload;
///    * CONNECT_ERROR: an object or a string, or no payload;
///    * EVENT, BINARY_EVENT: a non-empty array whose first element is a string not in
///      [`RESERVED_EVENTS`] or a number (see [`Packet::event_name`]); mandatory;
///    * ACK, BINARY_ACK: an array (possibly empty); mandatory.
///
/// A binary packet with a non-zero attachment count is only a header: give it to
/// [`BinaryReassembly::start`] (or use [`Decoder`]) to collect its attachments.
///
/// # Errors
/// Any [`ProtocolError`] describing the first rule broken. The server should close the
/// connection, as the reference server does on any parser error.
pub fn decode(text: &str) -> Result<Packet, ProtocolError> {
    let bytes = text.as_bytes();
    let first = text.chars().next().ok_or(ProtocolError::Empty)?;
    let kind = PacketKind::from_char(first).ok_or(ProtocolError::UnknownPacketType(first))?;
    let mut pos = 1;

    let mut attachments: usize = 0;
    if kind.is_binary() {
        let start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            // Saturate: any count that long is far above the cap anyway.
            attachments = attachments
                .saturating_mul(10)
                .saturating_add(usize::from(bytes[pos] - b'0'));
            pos += 1;
        }
        if pos == start || bytes.get(pos) != Some(&b'-') {
            return Err(ProtocolError::InvalidAttachmentCount);
        }
        if attachments > MAX_ATTACHMENTS {
            return Err(ProtocolError::TooManyAttachments);
        }
        pos += 1;
    }

    let mut nsp = "/";
    let mut nsp_unterminated = false;
    if bytes.get(pos) == Some(&b'/') {
        match text[pos..].find(',') {
            Some(len) => {
                nsp = &text[pos..pos + len];
                pos += len + 1;
            }
            None => {
                nsp = &text[pos..];
                pos = bytes.len();
                nsp_unterminated = true;
            }
        }
    }

    let mut id = None;
    if bytes.get(pos).is_some_and(u8::is_ascii_digit) {
        let mut n: u64 = 0;
        while let Some(&b) = bytes.get(pos).filter(|b| b.is_ascii_digit()) {
            n = n * 10 + u64::from(b - b'0');
            if n > MAX_ACK_ID {
                return Err(ProtocolError::InvalidAckId);
            }
            pos += 1;
        }
        id = Some(n);
    }

    let rest = &text[pos..];
    let data = if rest.is_empty() {
        None
    } else {
        Some(serde_json::from_str::<Value>(rest).map_err(|_| ProtocolError::InvalidJson)?)
    };
    check_payload(kind, data.as_ref(), nsp_unterminated)?;

    Ok(Packet {
        kind,
        nsp: nsp.to_owned(),
        id,
        data,
        attachments,
    })
}

fn check_payload(
    kind: PacketKind,
    data: Option<&Value>,
    nsp_unterminated: bool,
) -> Result<(), ProtocolError> {
    use ProtocolError::InvalidPayload;
    let required = || {
        if nsp_unterminated {
            // `2/admin["x"]`: the payload was swallowed by the namespace.
            ProtocolError::InvalidNamespace
        } else {
            InvalidPayload("this packet type requires a payload")
        }
    };
    match (kind, data) {
        (PacketKind::Connect, None | Some(Value::Object(_))) => Ok(()),
        (PacketKind::Connect, Some(_)) => Err(InvalidPayload("CONNECT payload must be an object")),
        (PacketKind::Disconnect, None) => Ok(()),
        (PacketKind::Disconnect, Some(_)) => {
            Err(InvalidPayload("DISCONNECT must not carry a payload"))
        }
        (PacketKind::ConnectError, None | Some(Value::Object(_) | Value::String(_))) => Ok(()),
        (PacketKind::ConnectError, Some(_)) => Err(InvalidPayload(
            "CONNECT_ERROR payload must be an object or a string",
        )),
        (PacketKind::Event | PacketKind::BinaryEvent, None) => Err(required()),
        (PacketKind::Event | PacketKind::BinaryEvent, Some(data)) => {
            match data.as_array().and_then(|a| a.first()) {
                Some(Value::Number(_)) => Ok(()),
                Some(Value::String(name)) if RESERVED_EVENTS.contains(&name.as_str()) => {
                    Err(InvalidPayload("reserved event name"))
                }
                Some(Value::String(_)) => Ok(()),
                _ => Err(InvalidPayload(
                    "event payload must be a non-empty array starting with the event name",
                )),
            }
        }
        (PacketKind::Ack | PacketKind::BinaryAck, None) => Err(required()),
        (PacketKind::Ack | PacketKind::BinaryAck, Some(Value::Array(_))) => Ok(()),
        (PacketKind::Ack | PacketKind::BinaryAck, Some(_)) => {
            Err(InvalidPayload("ack payload must be an array"))
        }
    }
}

/// Encodes an EVENT on the main namespace as a complete Engine.IO text message:
/// `42["<event>",<payload_json>]`, in one allocation of exactly the right size.
///
/// `event` is JSON-escaped exactly as `JSON.stringify` does. `payload_json` is inserted
/// verbatim and must already be valid JSON: normally one serialized value (the single
/// argument), but a comma-separated list of values gives several arguments, and an empty
/// string gives none (`42["<event>"]`). This is the broadcast hot path: encode once, send
/// the same text to every socket.
pub fn encode_event_message(event: &str, payload_json: &str) -> String {
    encode_push_message(event, payload_json, None)
}

/// Encodes a push: [`encode_event_message`], plus, when recovery is on, the push's offset as
/// one more, last argument, a JSON string: `42["<event>",<payload_json>,"<offset>"]`. Still
/// one allocation of exactly the right size. This is the room supervisor's
/// `pushgate_actors::EncodePacket`.
pub fn encode_push_message(event: &str, payload_json: &str, offset: Option<&str>) -> String {
    let escaped = json_escaped_len(event);
    let payload = if payload_json.is_empty() {
        0
    } else {
        1 + payload_json.len()
    };
    // `,"<offset>"`
    let offset_len = offset.map_or(0, |o| 3 + json_escaped_len(o));
    let mut out = String::with_capacity(3 + 2 + escaped + payload + offset_len + 1);
    out.push_str("42[\"");
    push_json_escaped(&mut out, event);
    out.push('"');
    if !payload_json.is_empty() {
        out.push(',');
        out.push_str(payload_json);
    }
    if let Some(offset) = offset {
        out.push_str(",\"");
        push_json_escaped(&mut out, offset);
        out.push('"');
    }
    out.push(']');
    debug_assert_eq!(out.len(), out.capacity());
    out
}

/// Encodes an ACK on the main namespace as a complete Engine.IO text message:
/// `43<id>[<payload_json>]`, in one allocation of exactly the right size.
///
/// `payload_json` is inserted verbatim: one serialized value (the single ack argument), a
/// comma-separated list of values, or `""` for an ack without arguments (`43<id>[]`).
pub fn encode_ack_message(id: u64, payload_json: &str) -> String {
    let digits = id.checked_ilog10().unwrap_or(0) as usize + 1;
    let mut out = String::with_capacity(2 + digits + 2 + payload_json.len());
    out.push_str("43");
    write!(out, "{id}").expect("writing to a String cannot fail");
    out.push('[');
    out.push_str(payload_json);
    out.push(']');
    debug_assert_eq!(out.len(), out.capacity());
    out
}

/// What `JSON.stringify` escapes in a string: `"`, `\` and the C0 controls.
fn json_escape(b: u8) -> Option<&'static str> {
    Some(match b {
        b'"' => "\\\"",
        b'\\' => "\\\\",
        b'\n' => "\\n",
        b'\r' => "\\r",
        b'\t' => "\\t",
        0x08 => "\\b",
        0x0c => "\\f",
        0x00..=0x1f => "", // \u00XX
        _ => return None,
    })
}

fn json_escaped_len(s: &str) -> usize {
    s.bytes()
        .map(|b| match json_escape(b) {
            None => 1,
            Some("") => 6,
            Some(esc) => esc.len(),
        })
        .sum()
}

fn push_json_escaped(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let Some(esc) = json_escape(b) else { continue };
        // `b` is ASCII, so `i` is a char boundary.
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// The placeholder that stands for attachment `num` in a binary packet's JSON:
/// `{"_placeholder":true,"num":<num>}`.
pub fn placeholder(num: usize) -> Value {
    serde_json::json!({ "_placeholder": true, "num": num })
}

/// If `value` is a placeholder object (`"_placeholder": true`), its `num` when that is a
/// non-negative integer; `Some(None)` for a placeholder with a bad `num`; `None` otherwise.
fn placeholder_num(value: &Value) -> Option<Option<u64>> {
    let object = value.as_object()?;
    if object.get("_placeholder") != Some(&Value::Bool(true)) {
        return None;
    }
    Some(object.get("num").and_then(Value::as_u64))
}

/// Checks that every placeholder in `data` refers to one of `count` attachments, as
/// socket.io-parser's `reconstructPacket` does. Iterative, so no recursion depth limit.
fn check_placeholders(data: &Value, count: usize) -> Result<(), ProtocolError> {
    let mut stack = vec![data];
    while let Some(value) = stack.pop() {
        if let Some(num) = placeholder_num(value) {
            match num {
                Some(n) if n < count as u64 => continue,
                _ => return Err(ProtocolError::InvalidPlaceholder),
            }
        }
        match value {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    Ok(())
}

/// A Socket.IO packet together with its binary attachments.
///
/// The payload keeps its `{"_placeholder":true,"num":N}` objects; attachment `N` is
/// `attachments[N]` (see [`BinaryPacket::resolve`]). Returned by [`BinaryReassembly`] and
/// [`Decoder`] (with no attachments for plain packets), and used to send binary data.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryPacket {
    /// The packet; for a received binary packet `kind` stays BINARY_EVENT/BINARY_ACK and
    /// `attachments` equals `self.attachments.len()`.
    pub packet: Packet,
    /// The attachments, in placeholder order.
    pub attachments: Vec<Vec<u8>>,
}

impl BinaryPacket {
    /// The bytes a placeholder value stands for, or `None` if `value` is not a placeholder
    /// for one of the attachments.
    pub fn resolve(&self, value: &Value) -> Option<&[u8]> {
        let num = usize::try_from(placeholder_num(value)??).ok()?;
        self.attachments.get(num).map(Vec::as_slice)
    }

    /// Encodes the packet for sending: returns the header text (without the Engine.IO `4`)
    /// and the attachments to send after it, in order, each as its own binary Engine.IO
    /// message.
    ///
    /// With at least one attachment an EVENT/ACK is sent as BINARY_EVENT/BINARY_ACK with
    /// the attachment count set from `attachments` (e.g. `51-["x",{"_placeholder":true,
    /// "num":0}]`); with none it is sent as a plain EVENT/ACK, like socket.io-parser does
    /// for data without binary. Other kinds are encoded as they are. The payload must
    /// already contain the placeholders (see [`placeholder`]).
    ///
    /// On WebSocket: a text frame `"4" + header`, then one binary frame per attachment. On
    /// long-polling: the records `"4" + header` then [`super::engineio::encode_binary_for_polling`]
    /// of each attachment, consecutive in the payload (or in following polls).
    pub fn encode(&self) -> (String, &[Vec<u8>]) {
        let n = self.attachments.len();
        let kind = match self.packet.kind {
            PacketKind::Event | PacketKind::BinaryEvent if n > 0 => PacketKind::BinaryEvent,
            PacketKind::Event | PacketKind::BinaryEvent => PacketKind::Event,
            PacketKind::Ack | PacketKind::BinaryAck if n > 0 => PacketKind::BinaryAck,
            PacketKind::Ack | PacketKind::BinaryAck => PacketKind::Ack,
            other => other,
        };
        let attachments = if kind.is_binary() { n } else { 0 };
        let text = encode_parts(
            kind,
            attachments,
            &self.packet.nsp,
            self.packet.id,
            self.packet.data.as_ref(),
        );
        (text, &self.attachments)
    }
}

/// Collects the attachments of one received BINARY_EVENT/BINARY_ACK.
///
/// socket.io-parser's `BinaryReconstructor`: the header packet (from [`decode`]) announces
/// N attachments, and the next N Engine.IO messages of the connection must be binary (a
/// WebSocket binary frame, or a `b<base64>` polling record); the packet is complete after
/// the N-th. When it completes, every placeholder in the payload must refer to a received
/// attachment. A text message arriving before that is a protocol error
/// ([`ProtocolError::UnexpectedText`]), and so is a binary message when no packet is
/// waiting ([`ProtocolError::UnexpectedBinary`]); [`Decoder`] applies both rules.
///
/// Server use (one reassembly at most per connection, across all namespaces):
///
/// ```ignore
/// // (not compiled as a doctest: the crate name changes when these files move;
/// // the same code runs as the unit test `tests::reassembly_doc_example`)
/// use crate::protocol::socketio::{decode, BinaryReassembly, Progress};
///
/// let header = decode(r#"51-["upload",{"_placeholder":true,"num":0}]"#).unwrap();
/// let Progress::NeedMore(pending) = BinaryReassembly::start(header).unwrap() else {
///     unreachable!()
/// };
/// // ... the next Engine.IO message is binary:
/// let Progress::Complete(full) = pending.push(vec![1, 2, 3]).unwrap() else { unreachable!() };
/// assert_eq!(full.resolve(&full.packet.args()[0]), Some(&[1u8, 2, 3][..]));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryReassembly {
    packet: Packet,
    attachments: Vec<Vec<u8>>,
}

/// The state after [`BinaryReassembly::start`] or [`BinaryReassembly::push`].
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// More binary messages are expected; keep this and feed it the next one.
    NeedMore(BinaryReassembly),
    /// The packet is complete.
    Complete(BinaryPacket),
}

impl BinaryReassembly {
    /// Starts collecting the attachments announced by `header`, a decoded
    /// BINARY_EVENT/BINARY_ACK. A header announcing zero attachments is complete at once
    /// (its payload is left untouched, as the reference does).
    ///
    /// # Errors
    /// [`ProtocolError::NotBinary`] if `header` is not a binary kind, and
    /// [`ProtocolError::TooManyAttachments`] if it announces more than [`MAX_ATTACHMENTS`]
    /// (only possible for a hand-built packet).
    pub fn start(header: Packet) -> Result<Progress, ProtocolError> {
        if !header.kind.is_binary() {
            return Err(ProtocolError::NotBinary);
        }
        if header.attachments > MAX_ATTACHMENTS {
            return Err(ProtocolError::TooManyAttachments);
        }
        if header.attachments == 0 {
            return Ok(Progress::Complete(BinaryPacket {
                packet: header,
                attachments: Vec::new(),
            }));
        }
        Ok(Progress::NeedMore(BinaryReassembly {
            attachments: Vec::with_capacity(header.attachments),
            packet: header,
        }))
    }

    /// Adds the next binary message.
    ///
    /// # Errors
    /// [`ProtocolError::InvalidPlaceholder`] when the last attachment arrives and a
    /// placeholder in the payload does not refer to one of them.
    pub fn push(mut self, attachment: Vec<u8>) -> Result<Progress, ProtocolError> {
        self.attachments.push(attachment);
        if self.attachments.len() < self.packet.attachments {
            return Ok(Progress::NeedMore(self));
        }
        if let Some(data) = &self.packet.data {
            check_placeholders(data, self.attachments.len())?;
        }
        Ok(Progress::Complete(BinaryPacket {
            packet: self.packet,
            attachments: self.attachments,
        }))
    }

    /// The number of attachments announced by the header.
    pub fn expected(&self) -> usize {
        self.packet.attachments
    }

    /// The number of attachments received so far.
    pub fn received(&self) -> usize {
        self.attachments.len()
    }

    /// The header packet being completed.
    pub fn header(&self) -> &Packet {
        &self.packet
    }
}

/// A per-connection Socket.IO decoder, socket.io-parser's `Decoder`: feed it every
/// Engine.IO message of one connection in order, and it yields each complete packet.
///
/// Plain packets come out at once with no attachments; binary packets come out after their
/// last attachment. After any error the connection should be closed (the decoder's state
/// is then unspecified).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoder {
    pending: Option<BinaryReassembly>,
}

impl Decoder {
    /// A decoder with no packet in progress.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Feeds a text message (the Engine.IO message body without its `4`).
    ///
    /// # Errors
    /// [`ProtocolError::UnexpectedText`] while attachments are awaited, else any error of
    /// [`decode`].
    pub fn feed_text(&mut self, text: &str) -> Result<Option<BinaryPacket>, ProtocolError> {
        if self.pending.is_some() {
            return Err(ProtocolError::UnexpectedText);
        }
        let packet = decode(text)?;
        if !packet.kind.is_binary() {
            return Ok(Some(BinaryPacket {
                packet,
                attachments: Vec::new(),
            }));
        }
        self.progress(BinaryReassembly::start(packet)?)
    }

    /// Feeds a binary message (a WebSocket binary frame or a decoded `b<base64>` record).
    ///
    /// # Errors
    /// [`ProtocolError::UnexpectedBinary`] when no binary packet awaits attachments, else
    /// any error of [`BinaryReassembly::push`].
    pub fn feed_binary(
        &mut self,
        attachment: Vec<u8>,
    ) -> Result<Option<BinaryPacket>, ProtocolError> {
        let pending = self.pending.take().ok_or(ProtocolError::UnexpectedBinary)?;
        self.progress(pending.push(attachment)?)
    }

    /// True while a binary packet is waiting for attachments.
    pub fn is_reassembling(&self) -> bool {
        self.pending.is_some()
    }

    fn progress(&mut self, progress: Progress) -> Result<Option<BinaryPacket>, ProtocolError> {
        match progress {
            Progress::NeedMore(pending) => {
                self.pending = Some(pending);
                Ok(None)
            }
            Progress::Complete(packet) => Ok(Some(packet)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn packet(kind: PacketKind, nsp: &str, id: Option<u64>, data: Option<Value>) -> Packet {
        Packet {
            kind,
            nsp: nsp.to_owned(),
            id,
            data,
            attachments: 0,
        }
    }

    fn binary_packet(
        kind: PacketKind,
        attachments: usize,
        nsp: &str,
        id: Option<u64>,
        data: Value,
    ) -> Packet {
        Packet {
            attachments,
            ..packet(kind, nsp, id, Some(data))
        }
    }

    /// `text` decodes to `expected`, and `expected` encodes back to `text`.
    fn both_ways(text: &str, expected: Packet) {
        assert_eq!(decode(text), Ok(expected.clone()), "decoding {text}");
        assert_eq!(expected.encode(), text, "encoding {expected:?}");
    }

    fn err(text: &str) -> ProtocolError {
        match decode(text) {
            Ok(p) => panic!("{text:?} decoded to {p:?}"),
            Err(e) => e,
        }
    }

    // ---- examples from the Socket.IO protocol README -------------------------------------

    #[test]
    fn readme_connect_examples() {
        both_ways("0", packet(PacketKind::Connect, "/", None, None));
        both_ways(
            r#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#,
            packet(
                PacketKind::Connect,
                "/admin",
                None,
                Some(json!({"sid": "oSO0OpakMV_3jnilAAAA"})),
            ),
        );
        both_ways(
            r#"4{"message":"Not authorized"}"#,
            packet(
                PacketKind::ConnectError,
                "/",
                None,
                Some(json!({"message": "Not authorized"})),
            ),
        );
        assert_eq!(
            Packet::connect_ok("/admin", "oSO0OpakMV_3jnilAAAA").encode(),
            r#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#
        );
        assert_eq!(
            Packet::connect_error("/", "Not authorized").encode(),
            r#"4{"message":"Not authorized"}"#
        );
    }

    #[test]
    fn readme_event_examples() {
        both_ways(
            r#"2["foo"]"#,
            packet(PacketKind::Event, "/", None, Some(json!(["foo"]))),
        );
        both_ways(
            r#"2/admin,["bar"]"#,
            packet(PacketKind::Event, "/admin", None, Some(json!(["bar"]))),
        );
        both_ways(
            r#"51-["baz",{"_placeholder":true,"num":0}]"#,
            binary_packet(
                PacketKind::BinaryEvent,
                1,
                "/",
                None,
                json!(["baz", {"_placeholder": true, "num": 0}]),
            ),
        );
        both_ways(
            r#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            binary_packet(
                PacketKind::BinaryEvent,
                2,
                "/admin",
                None,
                json!(["baz", placeholder(0), placeholder(1)]),
            ),
        );
        assert_eq!(
            Packet::event("/", json!(["foo"]), None).encode(),
            r#"2["foo"]"#
        );
    }

    #[test]
    fn readme_ack_examples() {
        both_ways(
            r#"212["foo"]"#,
            packet(PacketKind::Event, "/", Some(12), Some(json!(["foo"]))),
        );
        both_ways(
            r#"3/admin,13["bar"]"#,
            packet(PacketKind::Ack, "/admin", Some(13), Some(json!(["bar"]))),
        );
        both_ways(
            r#"61-15["bar",{"_placeholder":true,"num":0}]"#,
            binary_packet(
                PacketKind::BinaryAck,
                1,
                "/",
                Some(15),
                json!(["bar", placeholder(0)]),
            ),
        );
        both_ways(
            "3/admin,13[]",
            packet(PacketKind::Ack, "/admin", Some(13), Some(json!([]))),
        );
        assert_eq!(Packet::ack("/", 12, json!([])).encode(), "312[]");
    }

    #[test]
    fn readme_disconnect_examples() {
        both_ways("1", packet(PacketKind::Disconnect, "/", None, None));
        both_ways(
            "1/admin,",
            packet(PacketKind::Disconnect, "/admin", None, None),
        );
        assert_eq!(Packet::disconnect("/admin").encode(), "1/admin,");
    }

    #[test]
    fn readme_sample_session() {
        // Client to server, after stripping the Engine.IO "4".
        assert_eq!(decode("0"), Ok(Packet::new(PacketKind::Connect, "/")));
        assert_eq!(
            decode(r#"2["hello"]"#),
            Ok(packet(PacketKind::Event, "/", None, Some(json!(["hello"]))))
        );
        assert_eq!(
            decode("0/admin,"),
            Ok(Packet::new(PacketKind::Connect, "/admin"))
        );
        assert_eq!(
            decode(r#"2/admin,1["tellme"]"#),
            Ok(packet(
                PacketKind::Event,
                "/admin",
                Some(1),
                Some(json!(["tellme"]))
            ))
        );
        // Server to client.
        assert_eq!(
            format!(
                "4{}",
                Packet::connect_ok("/", "wZX3oN0bSVIhsaknAAAI").encode()
            ),
            r#"40{"sid":"wZX3oN0bSVIhsaknAAAI"}"#
        );
        assert_eq!(
            encode_event_message("hey", r#""Jude""#),
            r#"42["hey","Jude"]"#
        );
        let reply = BinaryPacket {
            packet: packet(
                PacketKind::Ack,
                "/admin",
                Some(1),
                Some(json!([placeholder(0)])),
            ),
            attachments: vec![vec![1, 2, 3]],
        };
        let (header, attachments) = reply.encode();
        assert_eq!(
            format!("4{header}"),
            r#"461-/admin,1[{"_placeholder":true,"num":0}]"#
        );
        assert_eq!(attachments, [vec![1, 2, 3]]);
    }

    // ---- the protocol test suite's exchanges ---------------------------------------------

    #[test]
    fn test_suite_client_packets() {
        assert_eq!(
            decode(r#"0{"token":"123"}"#),
            Ok(packet(
                PacketKind::Connect,
                "/",
                None,
                Some(json!({"token": "123"}))
            ))
        );
        assert_eq!(
            decode("0/custom,"),
            Ok(Packet::new(PacketKind::Connect, "/custom"))
        );
        assert_eq!(
            decode(r#"0/custom,{"token":"abc"}"#),
            Ok(packet(
                PacketKind::Connect,
                "/custom",
                None,
                Some(json!({"token": "abc"}))
            ))
        );
        // A namespace may end the packet without a comma.
        assert_eq!(
            decode("0/random"),
            Ok(Packet::new(PacketKind::Connect, "/random"))
        );
        assert_eq!(decode("1"), Ok(Packet::new(PacketKind::Disconnect, "/")));
        assert_eq!(
            decode("1/custom"),
            Ok(Packet::new(PacketKind::Disconnect, "/custom"))
        );
        assert_eq!(
            decode(r#"2["message",1,"2",{"3":[true]}]"#),
            Ok(packet(
                PacketKind::Event,
                "/",
                None,
                Some(json!(["message", 1, "2", {"3": [true]}]))
            ))
        );
        assert_eq!(
            decode(r#"2456["message-with-ack",1,"2",{"3":[false]}]"#).map(|p| p.id),
            Ok(Some(456))
        );
        assert_eq!(
            decode(
                r#"52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
            ),
            Ok(binary_packet(
                PacketKind::BinaryEvent,
                2,
                "/",
                Some(789),
                json!(["message-with-ack", placeholder(0), placeholder(1)])
            ))
        );
        // The three "close the connection upon invalid format" cases ("4abc", "42{}",
        // "42abc[...]" as Engine.IO messages).
        assert_eq!(err("abc"), ProtocolError::UnknownPacketType('a'));
        assert!(matches!(err("2{}"), ProtocolError::InvalidPayload(_)));
        assert_eq!(
            err(r#"2abc["message-with-ack",1,"2",{"3":[false]}]"#),
            ProtocolError::InvalidJson
        );
    }

    #[test]
    fn test_suite_server_packets() {
        assert_eq!(
            Packet::connect_error("/random", "Invalid namespace").encode(),
            r#"4/random,{"message":"Invalid namespace"}"#
        );
        assert_eq!(
            Packet::connect_error("/", "unauthorized").encode(),
            r#"4{"message":"unauthorized"}"#
        );
        assert_eq!(
            encode_event_message("message-back", r#"1,"2",{"3":[true]}"#),
            r#"42["message-back",1,"2",{"3":[true]}]"#
        );
        assert_eq!(encode_event_message("auth", "{}"), r#"42["auth",{}]"#);
        assert_eq!(
            Packet::event("/custom", json!(["auth", {}]), None).encode(),
            r#"2/custom,["auth",{}]"#
        );
        assert_eq!(
            encode_ack_message(456, r#"1,"2",{"3":[false]}"#),
            r#"43456[1,"2",{"3":[false]}]"#
        );
        let echo = BinaryPacket {
            packet: packet(
                PacketKind::Ack,
                "/",
                Some(789),
                Some(json!([placeholder(0), placeholder(1)])),
            ),
            attachments: vec![vec![1, 2, 3], vec![4, 5, 6]],
        };
        assert_eq!(
            echo.encode().0,
            r#"62-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        );
    }

    // ---- socket.io-parser's own test cases -----------------------------------------------

    #[test]
    fn reference_round_trips() {
        let cases = [
            packet(
                PacketKind::Connect,
                "/woot",
                None,
                Some(json!({"token": "123"})),
            ),
            packet(PacketKind::Disconnect, "/woot", None, None),
            packet(PacketKind::Event, "/", None, Some(json!(["a", 1, {}]))),
            packet(PacketKind::Event, "/", None, Some(json!([1, "a", {}]))),
            packet(
                PacketKind::Event,
                "/test",
                Some(1),
                Some(json!(["a", 1, {}])),
            ),
            packet(PacketKind::Ack, "/", Some(123), Some(json!(["a", 1, {}]))),
            packet(
                PacketKind::ConnectError,
                "/",
                None,
                Some(json!("Unauthorized")),
            ),
            packet(
                PacketKind::ConnectError,
                "/",
                None,
                Some(json!({"message": "Unauthorized"})),
            ),
            binary_packet(
                PacketKind::BinaryEvent,
                1,
                "/cool",
                Some(23),
                json!(["a", {"b": ["c", placeholder(0)]}]),
            ),
            binary_packet(
                PacketKind::BinaryAck,
                1,
                "/back",
                Some(127),
                json!(["a", placeholder(0), {}]),
            ),
        ];
        for p in cases {
            assert_eq!(decode(&p.encode()), Ok(p.clone()), "{}", p.encode());
        }
        assert_eq!(
            packet(PacketKind::Event, "/", None, Some(json!([1, "a", {}]))).encode(),
            r#"2[1,"a",{}]"#
        );
        assert_eq!(
            packet(
                PacketKind::ConnectError,
                "/",
                None,
                Some(json!("Unauthorized"))
            )
            .encode(),
            r#"4"Unauthorized""#
        );
    }

    #[test]
    fn reference_invalid_payloads() {
        for text in [
            r#"0/admin,"invalid""#,
            "0[]",
            "1/admin,{}",
            "2/admin,{}",
            r#"2[{"toString":"foo"}]"#,
            r#"2[true,"foo"]"#,
            r#"2[null,"bar"]"#,
            r#"2["connect"]"#,
            r#"2["disconnect","123"]"#,
        ] {
            assert!(
                matches!(err(text), ProtocolError::InvalidPayload(_)),
                "{text}"
            );
        }
        assert_eq!(err(r#"442["some","data""#), ProtocolError::InvalidJson);
        assert_eq!(err(r#"2/admin,"invalid"#), ProtocolError::InvalidJson);
        for text in ["5", "51", "5a-", "51.23-"] {
            assert_eq!(err(text), ProtocolError::InvalidAttachmentCount, "{text}");
        }
        assert_eq!(err("999"), ProtocolError::UnknownPacketType('9'));
        assert_eq!(
            err(r#"511-["hello",{"_placeholder":true,"num":0}]"#),
            ProtocolError::TooManyAttachments
        );
    }

    // ---- round trips of every packet type -------------------------------------------------

    #[test]
    fn every_kind_round_trips() {
        let kinds = [
            (
                PacketKind::Connect,
                Some(json!({"token": "x", "n": [1, 2.5, null]})),
            ),
            (PacketKind::Connect, None),
            (PacketKind::Disconnect, None),
            (
                PacketKind::Event,
                Some(json!(["e", "a", {"b": [true, false, null]}])),
            ),
            (PacketKind::Event, Some(json!([42]))),
            (PacketKind::Ack, Some(json!([]))),
            (PacketKind::Ack, Some(json!([null, "x"]))),
            (
                PacketKind::ConnectError,
                Some(json!({"message": "no", "data": {"x": 1}})),
            ),
            (PacketKind::ConnectError, Some(json!("plain"))),
            (PacketKind::ConnectError, None),
            (PacketKind::BinaryEvent, Some(json!(["e", placeholder(0)]))),
            (PacketKind::BinaryAck, Some(json!([placeholder(0)]))),
        ];
        for (kind, data) in kinds {
            for nsp in ["/", "/admin", "/a/b", "/é€😀", "/with space", "/"] {
                for id in [None, Some(0), Some(7), Some(MAX_ACK_ID)] {
                    let p = Packet {
                        attachments: usize::from(kind.is_binary()),
                        ..packet(kind, nsp, id, data.clone())
                    };
                    let text = p.encode();
                    assert_eq!(decode(&text), Ok(p), "{text}");
                }
            }
        }
    }

    #[test]
    fn kinds() {
        for (i, c) in ('0'..='6').enumerate() {
            let kind = PacketKind::from_char(c).unwrap();
            assert_eq!(kind as u8 as usize, i);
            assert_eq!(kind.as_char(), c);
            assert_eq!(kind.is_binary(), c == '5' || c == '6');
        }
        assert_eq!(PacketKind::from_char('7'), None);
        assert_eq!(PacketKind::from_char('b'), None);
    }

    #[test]
    fn encoder_details() {
        // A null payload is left out, like JSON.stringify's caller in the reference.
        assert_eq!(
            packet(PacketKind::Connect, "/", None, Some(Value::Null)).encode(),
            "0"
        );
        // An empty namespace is treated as the main one.
        assert_eq!(
            packet(PacketKind::Event, "", None, Some(json!(["a"]))).encode(),
            r#"2["a"]"#
        );
        assert_eq!(
            binary_packet(PacketKind::BinaryEvent, 0, "/", None, json!(["a"])).encode(),
            r#"50-["a"]"#
        );
        assert_eq!(
            packet(PacketKind::Event, "/", Some(u64::MAX), Some(json!(["a"]))).encode(),
            r#"218446744073709551615["a"]"#
        );
        // Keys come out sorted (serde_json's Map).
        assert_eq!(
            packet(
                PacketKind::Connect,
                "/",
                None,
                Some(json!({"b": 1, "a": 2}))
            )
            .encode(),
            r#"0{"a":2,"b":1}"#
        );
        assert_eq!(
            placeholder(3).to_string(),
            r#"{"_placeholder":true,"num":3}"#
        );
    }

    // ---- decoder details -----------------------------------------------------------------

    #[test]
    fn decoder_details() {
        // An id may follow the type directly on any kind, as in the reference.
        assert_eq!(decode("012").map(|p| p.id), Ok(Some(12)));
        // Leading zeros are accepted (`Number("007")`).
        assert_eq!(decode(r#"2007["a"]"#).map(|p| p.id), Ok(Some(7)));
        assert_eq!(decode(r#"2/a,0["a"]"#).map(|p| p.id), Ok(Some(0)));
        assert_eq!(decode(r#"50-["a"]"#).map(|p| p.attachments), Ok(0));
        assert_eq!(decode(r#"510-["a"]"#).map(|p| p.attachments), Ok(10));
        assert_eq!(decode(r#"5010-["a"]"#).map(|p| p.attachments), Ok(10));
        // Whitespace around the JSON value is allowed (JSON.parse allows it).
        assert_eq!(err("\t2[\"a\"]"), ProtocolError::UnknownPacketType('\t'));
        assert_eq!(
            decode("2 [\"a\"] \n"),
            Ok(packet(PacketKind::Event, "/", None, Some(json!(["a"]))))
        );
        // The namespace is everything up to the first comma.
        assert_eq!(
            decode(r#"2/a{b}[c],["x"]"#).map(|p| p.nsp),
            Ok("/a{b}[c]".to_owned())
        );
        assert_eq!(decode("0/,").map(|p| p.nsp), Ok("/".to_owned()));
        assert_eq!(decode("0/").map(|p| p.nsp), Ok("/".to_owned()));
        assert_eq!(decode("0/é€,").map(|p| p.nsp), Ok("/é€".to_owned()));
        // Only a leading '/' starts a namespace.
        assert_eq!(err(r#"2admin,["x"]"#), ProtocolError::InvalidJson);
        assert_eq!(err(r#"2,["x"]"#), ProtocolError::InvalidJson);
        // Number event names are accepted, as in the reference.
        assert!(decode("2[1]").is_ok());
        assert!(decode("2[-1.5e3]").is_ok());
        // Unicode event names.
        assert_eq!(
            decode(r#"2["\u00e9\n",1]"#)
                .unwrap()
                .event_name()
                .as_deref(),
            Some("é\n")
        );
        // Names are matched exactly against the reserved list.
        assert!(decode(r#"2["Connect"]"#).is_ok());
        assert!(decode(r#"2["connect "]"#).is_ok());
        for name in RESERVED_EVENTS {
            let text = format!(r#"2["{name}"]"#);
            assert_eq!(
                err(&text),
                ProtocolError::InvalidPayload("reserved event name")
            );
            let text = format!(r#"51-["{name}",{{"_placeholder":true,"num":0}}]"#);
            assert_eq!(
                err(&text),
                ProtocolError::InvalidPayload("reserved event name")
            );
        }
        // Reserved names are fine as arguments and in acks.
        assert!(decode(r#"2["x","connect"]"#).is_ok());
        assert!(decode(r#"3["connect"]"#).is_ok());
        // Duplicate keys: the last one wins, as with JSON.parse.
        assert_eq!(
            decode(r#"0{"token":"a","token":"b"}"#).unwrap().data,
            Some(json!({"token": "b"}))
        );
    }

    #[test]
    fn event_name_and_args() {
        let p = decode(r#"2["hello",1,{"a":2}]"#).unwrap();
        assert_eq!(p.event_name().as_deref(), Some("hello"));
        assert!(matches!(p.event_name(), Some(Cow::Borrowed(_))));
        assert_eq!(p.args(), &[json!(1), json!({"a": 2})]);
        let p = decode(r#"2["hello"]"#).unwrap();
        assert_eq!(p.args(), &[] as &[Value]);
        let name = |text: &str| decode(text).unwrap().event_name().map(Cow::into_owned);
        assert_eq!(name("2[1]").as_deref(), Some("1"));
        assert_eq!(name("2[-3]").as_deref(), Some("-3"));
        assert_eq!(name("2[1.5]").as_deref(), Some("1.5"));
        assert_eq!(name("2[2.0]").as_deref(), Some("2"));
        assert_eq!(
            name("2[18446744073709551615]").as_deref(),
            Some("18446744073709551615")
        );
        assert_eq!(
            name(r#"51-["bin",{"_placeholder":true,"num":0}]"#).as_deref(),
            Some("bin")
        );
        assert_eq!(decode("3[1]").unwrap().event_name(), None);
        assert_eq!(decode("3[1,2]").unwrap().args(), &[json!(1), json!(2)]);
        assert_eq!(decode("0").unwrap().args(), &[] as &[Value]);
        assert_eq!(decode(r#"0{"a":1}"#).unwrap().event_name(), None);
        // A hand-built packet with a bad payload has no name and no args.
        assert_eq!(
            packet(PacketKind::Event, "/", None, None).event_name(),
            None
        );
        assert_eq!(
            packet(PacketKind::Event, "/", None, Some(json!({}))).args(),
            &[] as &[Value]
        );
        assert_eq!(
            packet(PacketKind::Event, "/", None, Some(json!([true]))).event_name(),
            None
        );
    }

    // ---- hostile inputs ------------------------------------------------------------------

    #[test]
    fn empty_and_unknown_types() {
        assert_eq!(err(""), ProtocolError::Empty);
        assert_eq!(err("7"), ProtocolError::UnknownPacketType('7'));
        assert_eq!(err("9[]"), ProtocolError::UnknownPacketType('9'));
        assert_eq!(err(" 0"), ProtocolError::UnknownPacketType(' '));
        assert_eq!(err("-1"), ProtocolError::UnknownPacketType('-'));
        assert_eq!(err("€"), ProtocolError::UnknownPacketType('€'));
        assert_eq!(err("\u{0}"), ProtocolError::UnknownPacketType('\u{0}'));
        assert_eq!(
            err("42[\"x\"]"),
            ProtocolError::InvalidPayload("CONNECT_ERROR payload must be an object or a string")
        );
    }

    #[test]
    fn bad_attachment_counts() {
        for text in [
            "5", "6", "5-", "6-[]", "5x-", "5 1-", "5-1-", "51", "5+1-", "50x1-", "5١-",
        ] {
            assert_eq!(err(text), ProtocolError::InvalidAttachmentCount, "{text}");
        }
        for text in [
            "511-",
            "511-[\"a\"]",
            "699-[]",
            "518446744073709551616-[\"a\"]",
        ] {
            assert_eq!(err(text), ProtocolError::TooManyAttachments, "{text}");
        }
        let huge = format!("5{}-[\"a\"]", "9".repeat(1 << 20));
        assert_eq!(err(&huge), ProtocolError::TooManyAttachments);
        let endless = format!("5{}", "1".repeat(1 << 20));
        assert_eq!(err(&endless), ProtocolError::InvalidAttachmentCount);
    }

    #[test]
    fn ack_id_overflow() {
        assert_eq!(
            decode(&format!(r#"2{MAX_ACK_ID}["a"]"#)).map(|p| p.id),
            Ok(Some(MAX_ACK_ID))
        );
        assert_eq!(
            err(&format!(r#"2{}["a"]"#, MAX_ACK_ID + 1)),
            ProtocolError::InvalidAckId
        );
        assert_eq!(
            err(r#"3/a,18446744073709551616[]"#),
            ProtocolError::InvalidAckId
        );
        assert_eq!(
            err(r#"399999999999999999999999999999[]"#),
            ProtocolError::InvalidAckId
        );
        let long = format!("3{}[]", "1".repeat(1 << 20));
        assert_eq!(err(&long), ProtocolError::InvalidAckId);
        // Leading zeros never overflow.
        let zeros = format!("3{}1[]", "0".repeat(1 << 20));
        assert_eq!(decode(&zeros).map(|p| p.id), Ok(Some(1)));
        // An id not followed by a payload on an ack.
        assert!(matches!(err("312"), ProtocolError::InvalidPayload(_)));
        assert_eq!(err("212x"), ProtocolError::InvalidJson);
    }

    #[test]
    fn namespace_without_comma() {
        // The payload is swallowed by the namespace, which the reference would accept as a
        // payload-less event on namespace `/admin["a"]`.
        assert_eq!(err(r#"2/admin["a"]"#), ProtocolError::InvalidNamespace);
        assert_eq!(err(r#"3/admin12[]"#), ProtocolError::InvalidNamespace);
        assert_eq!(err("51-/admin"), ProtocolError::InvalidNamespace);
        assert_eq!(err("2/admin"), ProtocolError::InvalidNamespace);
        assert!(matches!(err("2/admin,"), ProtocolError::InvalidPayload(_)));
        assert!(matches!(err("2"), ProtocolError::InvalidPayload(_)));
        assert!(matches!(err("3"), ProtocolError::InvalidPayload(_)));
        assert!(matches!(err("51-"), ProtocolError::InvalidPayload(_)));
        assert!(matches!(err("61-"), ProtocolError::InvalidPayload(_)));
        // For kinds whose payload is optional the whole rest is the namespace.
        assert_eq!(
            decode(r#"0/admin{"token":"x"}"#).map(|p| p.nsp),
            Ok(r#"/admin{"token":"x"}"#.to_owned())
        );
    }

    #[test]
    fn garbage_after_json() {
        for text in [
            r#"2["a"]x"#,
            r#"2["a"]]"#,
            r#"2["a"],["b"]"#,
            r#"2["a"]["b"]"#,
            "0{}{}",
            "0{} x",
            "3[]\u{0}",
            r#"2["a"]\x1e42["b"]"#,
            "2[\"a\"]\u{1e}42[\"b\"]",
            "2[",
            "2[\"a\",]",
            "2['a']",
            "0{a:1}",
            "2[\"\\ud800\"]",
            "2[1e400]",
            "2[NaN]",
            "2 ",
            "0 ",
        ] {
            assert_eq!(err(text), ProtocolError::InvalidJson, "{text:?}");
        }
    }

    #[test]
    fn wrong_payload_shapes() {
        let shape = |text: &str| matches!(err(text), ProtocolError::InvalidPayload(_));
        for text in [
            "0[]", "0\"x\"", "0-1", "0null", "0true", "1{}", "1[]", "1null", "1\"x\"", "2{}",
            "2\"x\"", "21", "2null", "2[]", "2[[]]", "2[{}]", "2[null]", "2[true]", "3{}",
            "3\"x\"", "3null", "31", "4[]", "4-1", "4null", "4true",
        ] {
            assert!(shape(text), "{text}");
        }
        for text in [
            "51-{}",
            "51-[]",
            "51-[{\"_placeholder\":true,\"num\":0}]",
            "61-{}",
        ] {
            assert!(shape(text), "{text}");
        }
        // The error message says what was expected.
        assert_eq!(
            err("2{}").to_string(),
            "invalid payload: event payload must be a non-empty array starting with the event name"
        );
        assert_eq!(
            err("3{}").to_string(),
            "invalid payload: ack payload must be an array"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        for depth in [129, 1_000, 1 << 20] {
            let text = format!("2[\"a\",{}{}]", "[".repeat(depth), "]".repeat(depth));
            assert_eq!(err(&text), ProtocolError::InvalidJson, "depth {depth}");
            let text = format!("0{}", "{\"a\":".repeat(depth));
            assert_eq!(err(&text), ProtocolError::InvalidJson, "depth {depth}");
        }
        let unclosed = format!("2{}", "[".repeat(1 << 20));
        assert_eq!(err(&unclosed), ProtocolError::InvalidJson);
        // Within the limit it decodes and re-encodes.
        let depth = 100;
        let text = format!("2[\"a\",{}{}]", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(decode(&text).unwrap().encode(), text);
    }

    #[test]
    fn one_megabyte_inputs() {
        let big = "x".repeat(1 << 20);
        let text = format!(r#"2["big","{big}"]"#);
        let p = decode(&text).unwrap();
        assert_eq!(p.args(), &[json!(big)]);
        assert_eq!(p.encode(), text);

        let text = format!(r#"2/{big},["a"]"#);
        assert_eq!(decode(&text).map(|p| p.nsp.len()), Ok((1 << 20) + 1));

        let many = format!("3[{}0]", "0,".repeat(1 << 19));
        assert_eq!(decode(&many).map(|p| p.args().len()), Ok((1 << 19) + 1));

        let text = format!("2[\"{}\"]", "\\u00e9".repeat(1 << 18));
        assert_eq!(
            decode(&text)
                .unwrap()
                .event_name()
                .map(|n| n.chars().count()),
            Some(1 << 18)
        );

        for junk in [
            "a".repeat(1 << 20),
            "2".repeat(1 << 20),
            "/".repeat(1 << 20),
            ",".repeat(1 << 20),
        ] {
            assert!(decode(&junk).is_err());
        }
        let commas = format!("2/{}", ",".repeat(1 << 20));
        assert_eq!(err(&commas), ProtocolError::InvalidJson);
    }

    // ---- hot-path encoders ---------------------------------------------------------------

    #[test]
    fn event_message_matches_packet_encoder() {
        let names = [
            "hello",
            "",
            "with \"quotes\" and \\ backslash",
            "ctl \u{0}\u{1}\u{8}\u{9}\u{a}\u{b}\u{c}\u{d}\u{1e}\u{1f}\u{7f}",
            "unicode é€😀 \u{2028}\u{2029}",
            "</script>",
            "notification",
        ];
        for name in names {
            for payload in [
                r#"{"data":{"x":1},"type":"quota.updated"}"#,
                "1",
                "null",
                "[]",
            ] {
                let fast = encode_event_message(name, payload);
                let data: Value =
                    serde_json::from_str(&format!("[{},{payload}]", json!(name))).unwrap();
                let slow = Packet::event("/", data, None).encode();
                assert_eq!(fast, format!("4{slow}"));
                assert_eq!(fast.capacity(), fast.len());
                let decoded = decode(&fast[1..]).unwrap();
                assert_eq!(decoded.event_name().as_deref(), Some(name));
            }
            let bare = encode_event_message(name, "");
            assert_eq!(bare, format!("42[{}]", json!(name)));
            assert_eq!(bare.capacity(), bare.len());
        }
        // Escaping is byte-identical to serde_json (and so to JSON.stringify).
        let all_ascii: String = (0u8..=127).map(char::from).collect();
        let msg = encode_event_message(&all_ascii, "");
        assert_eq!(
            msg,
            format!("42[{}]", serde_json::to_string(&all_ascii).unwrap())
        );
        assert!(msg.contains(r#"\u0000"#) && msg.contains(r#"\u001f"#) && msg.contains(r#"\b"#));
        assert!(!msg.contains('\u{1e}'));
    }

    #[test]
    fn a_push_carries_its_offset_as_the_last_argument() {
        let msg = encode_push_message("notification", r#"{"n":1}"#, Some("lq3x-17"));
        assert_eq!(msg, r#"42["notification",{"n":1},"lq3x-17"]"#);
        assert_eq!(msg.capacity(), msg.len());
        let args = decode(&msg[1..]).unwrap().args().to_vec();
        assert_eq!(args, [json!({"n":1}), json!("lq3x-17")]);
        // Without a payload the offset is the only argument; it is escaped like any string.
        let msg = encode_push_message("message", "", Some("a\"b"));
        assert_eq!(msg, r#"42["message","a\"b"]"#);
        assert_eq!(msg.capacity(), msg.len());
        // Recovery off: exactly the event message.
        assert_eq!(
            encode_push_message("notification", "1", None),
            encode_event_message("notification", "1")
        );
    }

    #[test]
    fn ack_message() {
        for id in [0, 1, 9, 10, 99, 100, 12345, MAX_ACK_ID, u64::MAX] {
            for payload in ["", "1", r#"{"ok":true}"#, r#"1,"2""#] {
                let fast = encode_ack_message(id, payload);
                assert_eq!(fast, format!("43{id}[{payload}]"));
                assert_eq!(fast.capacity(), fast.len());
                if id <= MAX_ACK_ID {
                    let p = decode(&fast[1..]).unwrap();
                    assert_eq!((p.kind, p.id), (PacketKind::Ack, Some(id)));
                }
            }
        }
        assert_eq!(encode_ack_message(12, "[]"), "4312[[]]");
    }

    #[test]
    fn one_megabyte_hot_path() {
        let payload = format!("\"{}\"", "y".repeat(1 << 20));
        let msg = encode_event_message("notification", &payload);
        assert_eq!(msg.len(), msg.capacity());
        assert_eq!(
            decode(&msg[1..]).unwrap().args()[0].as_str().map(str::len),
            Some(1 << 20)
        );
        let name = "\u{1}".repeat(1 << 20);
        let msg = encode_event_message(&name, "");
        assert_eq!(msg.len(), 6 + 6 * (1 << 20));
        assert_eq!(msg.len(), msg.capacity());
    }

    // ---- binary attachments --------------------------------------------------------------

    fn complete(progress: Progress) -> BinaryPacket {
        match progress {
            Progress::Complete(p) => p,
            Progress::NeedMore(r) => panic!("still waiting: {r:?}"),
        }
    }

    fn pending(progress: Progress) -> BinaryReassembly {
        match progress {
            Progress::NeedMore(r) => r,
            Progress::Complete(p) => panic!("complete too early: {p:?}"),
        }
    }

    #[test]
    fn reassembly_doc_example() {
        let header = decode(r#"51-["upload",{"_placeholder":true,"num":0}]"#).unwrap();
        let Progress::NeedMore(waiting) = BinaryReassembly::start(header).unwrap() else {
            unreachable!()
        };
        let Progress::Complete(full) = waiting.push(vec![1, 2, 3]).unwrap() else {
            unreachable!()
        };
        assert_eq!(full.resolve(&full.packet.args()[0]), Some(&[1u8, 2, 3][..]));
    }

    #[test]
    fn reassembles_readme_example() {
        let header = decode(
            r#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        )
        .unwrap();
        let r = pending(BinaryReassembly::start(header.clone()).unwrap());
        assert_eq!((r.expected(), r.received()), (2, 0));
        assert_eq!(r.header(), &header);
        let r = pending(r.push(vec![1, 2]).unwrap());
        assert_eq!((r.expected(), r.received()), (2, 1));
        let full = complete(r.push(vec![3, 4]).unwrap());
        assert_eq!(full.packet, header);
        assert_eq!(full.attachments, [vec![1, 2], vec![3, 4]]);
        assert_eq!(full.packet.event_name().as_deref(), Some("baz"));
        let args = full.packet.args();
        assert_eq!(full.resolve(&args[0]), Some(&[1u8, 2][..]));
        assert_eq!(full.resolve(&args[1]), Some(&[3u8, 4][..]));
        assert_eq!(full.resolve(&json!("baz")), None);
        assert_eq!(full.resolve(&placeholder(2)), None);
        assert_eq!(
            full.resolve(&json!({"_placeholder": false, "num": 0})),
            None
        );

        // And back: the same header and attachments.
        let (text, frames) = full.encode();
        assert_eq!(
            text,
            r#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        );
        assert_eq!(frames, [vec![1, 2], vec![3, 4]]);
    }

    #[test]
    fn zero_attachments_complete_at_once() {
        let header = decode(r#"50-["a",{"_placeholder":true,"num":5}]"#).unwrap();
        let full = complete(BinaryReassembly::start(header.clone()).unwrap());
        assert_eq!(full.packet, header);
        assert!(full.attachments.is_empty());
    }

    #[test]
    fn placeholders_are_checked() {
        let bad = [
            r#"51-["a",{"_placeholder":true,"num":1}]"#,
            r#"51-["a",{"_placeholder":true,"num":"splice"}]"#,
            r#"51-["a",{"_placeholder":true,"num":-1}]"#,
            r#"51-["a",{"_placeholder":true,"num":0.5}]"#,
            r#"51-["a",{"_placeholder":true}]"#,
            r#"51-["a",{"x":[{"_placeholder":true,"num":3}]}]"#,
            r#"61-[{"_placeholder":true,"num":1e30}]"#,
        ];
        for text in bad {
            let r = pending(BinaryReassembly::start(decode(text).unwrap()).unwrap());
            assert_eq!(
                r.push(vec![0]),
                Err(ProtocolError::InvalidPlaceholder),
                "{text}"
            );
        }
        let good = [
            r#"51-["a",{"_placeholder":true,"num":0}]"#,
            r#"51-["a",{"_placeholder":"true","num":9}]"#,
            r#"51-["a",{"_placeholder":false,"num":9}]"#,
            r#"51-["a"]"#,
            r#"51-["a",{"x":{"y":[{"_placeholder":true,"num":0,"extra":1}]}}]"#,
            r#"61-[]"#,
        ];
        for text in good {
            let r = pending(BinaryReassembly::start(decode(text).unwrap()).unwrap());
            assert!(
                matches!(r.push(vec![0]), Ok(Progress::Complete(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn reassembly_rejects_non_binary_headers() {
        for text in ["0", "1", r#"2["a"]"#, "3[]", "4\"x\""] {
            assert_eq!(
                BinaryReassembly::start(decode(text).unwrap()),
                Err(ProtocolError::NotBinary)
            );
        }
        let forged = Packet {
            attachments: MAX_ATTACHMENTS + 1,
            ..Packet::new(PacketKind::BinaryEvent, "/")
        };
        assert_eq!(
            BinaryReassembly::start(forged),
            Err(ProtocolError::TooManyAttachments)
        );
    }

    #[test]
    fn decoder_state_machine() {
        let mut d = Decoder::new();
        assert_eq!(d.feed_binary(vec![1]), Err(ProtocolError::UnexpectedBinary));

        let mut d = Decoder::new();
        let plain = d.feed_text(r#"2["hello"]"#).unwrap().unwrap();
        assert_eq!(plain.packet.event_name().as_deref(), Some("hello"));
        assert!(plain.attachments.is_empty());
        assert!(!d.is_reassembling());

        assert_eq!(
            d.feed_text(r#"52-["m",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#),
            Ok(None)
        );
        assert!(d.is_reassembling());
        assert_eq!(d.feed_binary(vec![1, 2, 3]), Ok(None));
        assert_eq!(
            d.feed_text(r#"2["hello"]"#),
            Err(ProtocolError::UnexpectedText)
        );

        let mut d = Decoder::new();
        d.feed_text(
            r#"452-789["m",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#[1..]
                .as_ref(),
        )
        .unwrap();
        assert_eq!(d.feed_binary(vec![1, 2, 3]), Ok(None));
        let full = d.feed_binary(vec![4, 5, 6]).unwrap().unwrap();
        assert_eq!(full.packet.id, Some(789));
        assert_eq!(full.attachments, [vec![1, 2, 3], vec![4, 5, 6]]);
        assert!(!d.is_reassembling());
        // Ready for the next packet.
        assert_eq!(d.feed_binary(vec![7]), Err(ProtocolError::UnexpectedBinary));
        assert!(d.feed_text("3[]").unwrap().is_some());

        // Zero attachments: complete at once, nothing pending.
        let mut d = Decoder::new();
        assert!(d.feed_text(r#"50-["a"]"#).unwrap().is_some());
        assert!(!d.is_reassembling());

        // Decode errors pass through.
        assert_eq!(d.feed_text(""), Err(ProtocolError::Empty));
        assert_eq!(
            d.feed_text("511-[\"a\"]"),
            Err(ProtocolError::TooManyAttachments)
        );
    }

    #[test]
    fn binary_encoder() {
        let event = BinaryPacket {
            packet: Packet::event("/", json!(["x", placeholder(0)]), None),
            attachments: vec![vec![9; 4]],
        };
        let (text, frames) = event.encode();
        assert_eq!(text, r#"51-["x",{"_placeholder":true,"num":0}]"#);
        assert_eq!(frames, [vec![9; 4]]);

        // Already-binary kinds get their count from the attachments.
        let event = BinaryPacket {
            packet: binary_packet(
                PacketKind::BinaryEvent,
                7,
                "/a",
                Some(3),
                json!(["x", placeholder(0), placeholder(1)]),
            ),
            attachments: vec![vec![], vec![0]],
        };
        assert_eq!(
            event.encode().0,
            r#"52-/a,3["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        );

        // No attachments: a plain event / ack.
        let plain = BinaryPacket {
            packet: binary_packet(PacketKind::BinaryEvent, 1, "/", None, json!(["x"])),
            attachments: vec![],
        };
        assert_eq!(plain.encode().0, r#"2["x"]"#);
        let plain = BinaryPacket {
            packet: Packet::ack("/", 4, json!([])),
            attachments: vec![],
        };
        assert_eq!(plain.encode().0, "34[]");

        // Other kinds are left alone.
        let other = BinaryPacket {
            packet: Packet::connect_ok("/", "s"),
            attachments: vec![vec![1]],
        };
        assert_eq!(other.encode().0, r#"0{"sid":"s"}"#);

        // Full round trip through the decoder, up to MAX_ATTACHMENTS.
        let data: Vec<Value> = std::iter::once(json!("many"))
            .chain((0..MAX_ATTACHMENTS).map(placeholder))
            .collect();
        let sent = BinaryPacket {
            packet: Packet::event("/ns", Value::Array(data), Some(5)),
            attachments: (0..MAX_ATTACHMENTS).map(|i| vec![i as u8; i]).collect(),
        };
        let (text, frames) = sent.encode();
        let mut d = Decoder::new();
        assert_eq!(d.feed_text(&text), Ok(None));
        let mut last = None;
        for frame in frames {
            last = d.feed_binary(frame.clone()).unwrap();
        }
        let got = last.unwrap();
        assert_eq!(got.attachments, sent.attachments);
        assert_eq!(got.packet.kind, PacketKind::BinaryEvent);
        assert_eq!(got.packet.attachments, MAX_ATTACHMENTS);
        assert_eq!(got.packet.data, sent.packet.data);
    }

    #[test]
    fn error_display() {
        assert_eq!(
            ProtocolError::TooManyAttachments.to_string(),
            "too many binary attachments (at most 10 per packet)"
        );
        assert_eq!(
            ProtocolError::InvalidAckId.to_string(),
            "ack id is larger than 2^53 - 1"
        );
        assert_eq!(
            ProtocolError::InvalidPayload("x").to_string(),
            "invalid payload: x"
        );
    }
}
