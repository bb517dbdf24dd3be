//! Wire codec for the two protocol layers pushgate speaks to browsers.
//!
//! * [`engineio`]: Engine.IO protocol v4, the transport layer (packet types `0`..`6`,
//!   long-polling payloads joined by `\x1e`, base64 binary with a `b` prefix, handshake
//!   `open` packet and the HTTP error bodies).
//! * [`socketio`]: Socket.IO protocol v5, carried inside Engine.IO `message` packets
//!   (namespaces, events, acknowledgements, binary attachments).
//!
//! This module is pure: no I/O, no clocks, no global state. Every decoder returns a
//! [`ProtocolError`] for malformed input instead of panicking, and the server is expected to
//! close the offending connection when it gets one (as the JavaScript reference does).

pub mod engineio;
pub mod socketio;

/// Everything that can be wrong with a frame or packet received from a client.
///
/// The server treats every variant the same way (close the connection, as the reference
/// server does on a parser error); the variants exist for logs, metrics and tests.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ProtocolError {
    /// The frame, payload record or packet text was empty.
    #[error("empty packet")]
    Empty,
    /// The first character is not a known packet type for this protocol layer.
    #[error("unknown packet type {0:?}")]
    UnknownPacketType(char),
    /// Bytes that must be text (a long-polling request body) are not valid UTF-8.
    #[error("packet is not valid UTF-8")]
    InvalidText,
    /// A `b`-prefixed Engine.IO packet does not hold valid base64.
    #[error("binary packet is not valid base64")]
    InvalidBase64,
    /// The Socket.IO payload is not valid JSON: a syntax error, trailing characters after the
    /// JSON value, a number out of range, or nesting deeper than serde_json's limit (128).
    #[error("payload is not valid JSON (syntax error, trailing garbage or nested too deeply)")]
    InvalidJson,
    /// The payload is valid JSON but has the wrong shape for the packet type; the text says
    /// what was expected (e.g. "event payload must be a non-empty array").
    #[error("invalid payload: {0}")]
    InvalidPayload(&'static str),
    /// A namespace (`/...`) ran to the end of the packet without the `,` that must separate it
    /// from the ack id or payload of a packet type that needs a payload.
    #[error("namespace is not terminated by ',' before the payload")]
    InvalidNamespace,
    /// The binary attachment count of a BINARY_EVENT/BINARY_ACK packet is missing, is not a
    /// decimal number, or is not followed by `-`.
    #[error("illegal binary attachment count")]
    InvalidAttachmentCount,
    /// The binary attachment count exceeds [`socketio::MAX_ATTACHMENTS`].
    #[error(
        "too many binary attachments (at most {max} per packet)",
        max = socketio::MAX_ATTACHMENTS
    )]
    TooManyAttachments,
    /// The acknowledgement id is larger than 2^53 - 1 (JavaScript's largest safe integer).
    #[error("ack id is larger than 2^53 - 1")]
    InvalidAckId,
    /// A `{"_placeholder":true,"num":N}` object does not refer to one of the attachments
    /// that were received (N missing, not an integer, or out of range).
    #[error("binary placeholder does not refer to a received attachment")]
    InvalidPlaceholder,
    /// A binary frame arrived while no binary packet was waiting for attachments.
    #[error("binary frame received while no binary attachment was expected")]
    UnexpectedBinary,
    /// A text packet arrived while a binary packet was still waiting for attachments.
    #[error("text packet received while binary attachments were still expected")]
    UnexpectedText,
    /// A packet that is not BINARY_EVENT/BINARY_ACK with at least one attachment was given to
    /// the attachment reassembler.
    #[error("packet does not announce binary attachments")]
    NotBinary,
}
