//! Why a session ends: the one table of disconnect reasons.
//!
//! Every way a session can end is one [`CloseReason`], and everything that depends on the
//! reason is read from its row of [`CloseReason::row`]: the `reason` label it is counted under in
//! `pushgate_disconnects_total`, the WebSocket close code the server sends, what a waiting
//! long-polling GET is answered with, and whether socket.io-client then reconnects.
//!
//! | reason | metric label | WebSocket close | polling GET | client reconnects |
//! |---|---|---|---|---|
//! | [`ClientClose`](CloseReason::ClientClose) | `client_close` | 1000 | `6` (noop) | no, when it called `disconnect()`; yes, when its transport dropped |
//! | [`PingTimeout`](CloseReason::PingTimeout) | `ping_timeout` | 1000 | `1` (close) | yes |
//! | [`ConnectTimeout`](CloseReason::ConnectTimeout) | `connect_timeout` | 1000 | `1` (close) | yes |
//! | [`ProtocolError`](CloseReason::ProtocolError) | `protocol_error` | 1002 | `1` (close) | yes |
//! | [`InvalidText`](CloseReason::InvalidText) | `invalid_text` | 1007 | `1` (close) | yes |
//! | [`PayloadTooLarge`](CloseReason::PayloadTooLarge) | `payload_too_large` | 1009 | `1` (close) | yes |
//! | [`TransportError`](CloseReason::TransportError) | `transport_error` | 1011 | `1` (close) | yes |
//! | [`ServerShutdown`](CloseReason::ServerShutdown) | `server_shutdown` | 1001 | `1` (close) | yes |
//! | [`SlowReader`](CloseReason::SlowReader) | `slow_reader` | 1008 | `1` (close) | yes |
//! | [`RateLimited`](CloseReason::RateLimited) | `rate_limited` | 1008 | `1` (close) | yes |
//! | [`TokenExpired`](CloseReason::TokenExpired) | `token_expired` | 1008 | `1` (close) | yes, with the auth it then holds |
//! | [`ConnectRefused`](CloseReason::ConnectRefused) | `connect_refused` | 1008 | `1` (close) | no: it gave up at the first refusal |
//! | [`AdminUi`](CloseReason::AdminUi) | `admin_ui` | 1000 | `1` (close) | no: it was sent a Socket.IO DISCONNECT first |
//!
//! socket.io-client reconnects after any close of its transport, unless the server sent a
//! Socket.IO DISCONNECT packet or the client disconnected itself. pushgate sends a Socket.IO
//! DISCONNECT only when an operator disconnects the socket from the admin UI (`admin_ui`), so
//! every other reason but the client's own `disconnect()` is followed by a reconnect (with the
//! client's backoff). The one exception is a refused CONNECT: the client
//! sees `connect_error` and stops by itself (it closes its own transport unless the
//! application calls `connect()` again), so a connection closed after three refusals in a row
//! belongs to a client that does not behave like socket.io-client.
//!
//! Every reason in the table keeps the session for connection-state recovery (when recovery
//! is on): none of them is the client's own disconnect, which is a Socket.IO DISCONNECT
//! (`41`, socket.io-client's `socket.disconnect()`) and ends the namespace, not the session,
//! with nothing kept. A `client_close` is a transport that closed without it (a dropped
//! network, a closed tab), recoverable like a close by the server.
//!
//! Words, as the session and HTTP code use them: a session *ends* (once, for one reason); its
//! transport *closes* (a WebSocket close frame, an Engine.IO close packet `1`); an actor
//! *stops*.

/// Why a session ended (one row of the table above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed the transport or sent an Engine.IO close packet.
    ClientClose,
    /// No pong within `pingTimeout` of a ping.
    PingTimeout,
    /// No successful CONNECT within `CONNECT_TIMEOUT_MS`.
    ConnectTimeout,
    /// A malformed packet, or one not allowed in the session's state; a WebSocket frame that
    /// breaks RFC 6455 (unmasked, reserved bits or opcode, a fragmented control frame...).
    ProtocolError,
    /// A WebSocket text message that is not valid UTF-8 (RFC 6455 §8.1).
    InvalidText,
    /// A message over `MAX_PAYLOAD_BYTES`.
    PayloadTooLarge,
    /// The transport failed (reset, broken pipe).
    TransportError,
    /// pushgate is shutting down.
    ServerShutdown,
    /// The client fell more than
    /// [`MAX_UNWRITTEN`](crate::transport::upgraded::MAX_UNWRITTEN) bytes behind the pushes
    /// meant for it (a WebSocket that does not read, a polling client that does not GET).
    SlowReader,
    /// The client stayed over its client event rate for
    /// [`SUSTAINED_EXCESS`](crate::client_event_limit::SUSTAINED_EXCESS).
    RateLimited,
    /// The token the root namespace connected with passed its `exp`.
    TokenExpired,
    /// Three CONNECTs in a row on one connection were refused.
    ConnectRefused,
    /// An operator disconnected the socket from the Socket.IO Admin UI.
    AdminUi,
}

/// What a long-polling session answers its waiting GET with when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollingAnswer {
    /// An Engine.IO noop (`6`): the client closed, and a GET it sent just before its close
    /// is still answered (not refused as an unknown sid).
    Noop,
    /// An Engine.IO close packet (`1`).
    Close,
}

/// Whether socket.io-client reconnects after a session ends for a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    /// It reconnects (the server closed the transport; no Socket.IO DISCONNECT was sent).
    Yes,
    /// Only when the transport dropped; not after the client's own `disconnect()`.
    UnlessClientDisconnected,
    /// It does not: socket.io-client stops at a CONNECT_ERROR or a Socket.IO DISCONNECT.
    No,
}

/// One row of the disconnect table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnect {
    /// The `reason` label of `pushgate_disconnects_total`, also used in logs.
    pub label: &'static str,
    /// The WebSocket close code sent.
    pub websocket_code: u16,
    /// What a waiting long-polling GET is answered with.
    pub polling: PollingAnswer,
    /// Whether the client reconnects.
    pub reconnect: Reconnect,
}

impl CloseReason {
    /// Every reason, in the table's order.
    pub const ALL: [CloseReason; 13] = [
        CloseReason::ClientClose,
        CloseReason::PingTimeout,
        CloseReason::ConnectTimeout,
        CloseReason::ProtocolError,
        CloseReason::InvalidText,
        CloseReason::PayloadTooLarge,
        CloseReason::TransportError,
        CloseReason::ServerShutdown,
        CloseReason::SlowReader,
        CloseReason::RateLimited,
        CloseReason::TokenExpired,
        CloseReason::ConnectRefused,
        CloseReason::AdminUi,
    ];

    /// The reason's row of the table.
    pub const fn row(self) -> Disconnect {
        use PollingAnswer::{Close, Noop};
        use Reconnect::{No, UnlessClientDisconnected, Yes};
        let (label, websocket_code, polling, reconnect) = match self {
            CloseReason::ClientClose => ("client_close", 1000, Noop, UnlessClientDisconnected),
            CloseReason::PingTimeout => ("ping_timeout", 1000, Close, Yes),
            CloseReason::ConnectTimeout => ("connect_timeout", 1000, Close, Yes),
            CloseReason::ProtocolError => ("protocol_error", 1002, Close, Yes),
            CloseReason::InvalidText => ("invalid_text", 1007, Close, Yes),
            CloseReason::PayloadTooLarge => ("payload_too_large", 1009, Close, Yes),
            CloseReason::TransportError => ("transport_error", 1011, Close, Yes),
            CloseReason::ServerShutdown => ("server_shutdown", 1001, Close, Yes),
            CloseReason::SlowReader => ("slow_reader", 1008, Close, Yes),
            CloseReason::RateLimited => ("rate_limited", 1008, Close, Yes),
            CloseReason::TokenExpired => ("token_expired", 1008, Close, Yes),
            CloseReason::ConnectRefused => ("connect_refused", 1008, Close, No),
            CloseReason::AdminUi => ("admin_ui", 1000, Close, No),
        };
        Disconnect {
            label,
            websocket_code,
            polling,
            reconnect,
        }
    }

    /// The metrics / log name.
    pub fn name(self) -> &'static str {
        self.row().label
    }

    /// The WebSocket close code sent for it.
    pub fn websocket_code(self) -> u16 {
        self.row().websocket_code
    }

    /// What a waiting long-polling GET is answered with.
    pub fn polling_answer(self) -> PollingAnswer {
        self.row().polling
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_snake_case() {
        let mut labels: Vec<_> = CloseReason::ALL.iter().map(|r| r.name()).collect();
        assert!(labels
            .iter()
            .all(|l| l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), CloseReason::ALL.len());
    }

    #[test]
    fn only_the_clients_own_close_is_answered_with_a_noop() {
        for reason in CloseReason::ALL {
            let noop = reason.polling_answer() == PollingAnswer::Noop;
            assert_eq!(noop, reason == CloseReason::ClientClose, "{reason:?}");
        }
    }

    #[test]
    fn only_a_client_refused_three_times_or_disconnected_by_an_operator_does_not_reconnect() {
        for reason in CloseReason::ALL {
            let gave_up = reason.row().reconnect == Reconnect::No;
            let expected = matches!(reason, CloseReason::ConnectRefused | CloseReason::AdminUi);
            assert_eq!(gave_up, expected, "{reason:?}");
        }
    }

    #[test]
    fn websocket_codes_follow_rfc_6455() {
        assert_eq!(CloseReason::ServerShutdown.websocket_code(), 1001);
        assert_eq!(CloseReason::PayloadTooLarge.websocket_code(), 1009);
        assert!(CloseReason::ALL
            .iter()
            .all(|r| (1000..=1011).contains(&r.websocket_code())));
    }
}
