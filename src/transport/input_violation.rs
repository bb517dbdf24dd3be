//! Why a WebSocket's input ended in error, as the reason (and so the close code, RFC 6455
//! §7.4.1) its session closes with: a frame that breaks the protocol (unmasked, a reserved bit
//! or opcode, a fragmented or over-long control frame, a continuation out of place, a bad
//! close payload) earns 1002, a text message that is not UTF-8 1007, a frame over the limit
//! 1009; only a failed read of the socket is a transport error.
//!
//! actix-http's WebSocket codec reports most violations as their own [`ProtocolError`]
//! variants, but two arrive as I/O errors: a frame with a reserved bit set
//! (`ErrorKind::InvalidData`), and the UTF-8 check of a text message, done by the WebSocket
//! context, which also wraps whatever error the input itself ended with. The input notes that
//! one ([`InputFault`]), so an I/O error the input did not note is the UTF-8 check's.

use actix_http::ws::ProtocolError;
use std::io::ErrorKind;

use crate::disconnect::CloseReason;
use crate::transport::upgraded::InputFault;

/// The reason a WebSocket closes for `error`, which ended its input; `fault` is what the
/// input itself noted, if anything.
pub fn close_reason(error: &ProtocolError, fault: Option<InputFault>) -> CloseReason {
    match (fault, error) {
        (Some(InputFault::Oversized), _) | (None, ProtocolError::Overflow) => {
            CloseReason::PayloadTooLarge
        }
        (Some(InputFault::ReadFailed), _) => CloseReason::TransportError,
        (None, ProtocolError::Io(e)) if e.kind() == ErrorKind::InvalidData => {
            CloseReason::ProtocolError
        }
        (None, ProtocolError::Io(_)) => CloseReason::InvalidText,
        (None, _) => CloseReason::ProtocolError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_codec::Decoder;
    use actix_http::ws::Codec;
    use bytes::BytesMut;

    /// What the codec (frames of at most 200 bytes) reports for the raw client bytes `frame`.
    fn decode_error(frame: &[u8]) -> ProtocolError {
        let mut codec = Codec::new().max_size(200);
        let mut buf = BytesMut::from(frame);
        loop {
            match codec.decode(&mut buf) {
                Err(e) => return e,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("{frame:?} decoded without an error"),
            }
        }
    }

    #[test]
    fn each_violation_of_the_framing_is_a_protocol_error() {
        // A masked frame whose first byte is `first` (FIN, RSV bits, opcode).
        let masked = |first: u8, len: u8| {
            let mut f = vec![first, 0x80 | len, 1, 2, 3, 4];
            f.extend(std::iter::repeat_n(b'a', len as usize));
            f
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("unmasked", vec![0x81, 0x01, b'a']),
            ("RSV1", masked(0x80 | 0x40 | 0x1, 1)),
            ("RSV3", masked(0x80 | 0x10 | 0x2, 1)),
            ("reserved data opcode", masked(0x80 | 0x3, 1)),
            ("reserved control opcode", masked(0x80 | 0xb, 1)),
            ("fragmented ping", masked(0x9, 1)),
            ("ping of 126 bytes", {
                let mut f = vec![0x89, 0x80 | 126, 0, 126, 1, 2, 3, 4];
                f.extend([0u8; 126]);
                f
            }),
            ("continuation first", masked(0x80, 1)),
            ("text inside a fragmented message", {
                let mut f = masked(0x1, 1);
                f.extend(masked(0x1, 1));
                f
            }),
            ("close with one byte", masked(0x88, 1)),
        ];
        for (name, frame) in cases {
            let error = decode_error(&frame);
            assert_eq!(
                close_reason(&error, None),
                CloseReason::ProtocolError,
                "{name}: {error:?}"
            );
        }
    }

    #[test]
    fn utf8_oversize_and_read_failures_keep_their_own_reasons() {
        // As the WebSocket context reports a text message that is not UTF-8.
        let utf8 =
            bytestring::ByteString::try_from(bytes::Bytes::from_static(&[0xff])).unwrap_err();
        let not_utf8 = ProtocolError::Io(std::io::Error::other(utf8.to_string()));
        assert_eq!(close_reason(&not_utf8, None), CloseReason::InvalidText);
        let mut over = vec![0x82, 0x80 | 126, 0, 201, 1, 2, 3, 4];
        over.extend([0u8; 201]);
        assert_eq!(
            close_reason(&decode_error(&over), None),
            CloseReason::PayloadTooLarge
        );
        // The input's own errors, wrapped the same way by the context.
        let wrapped = || ProtocolError::Io(std::io::Error::other("payload error"));
        assert_eq!(
            close_reason(&wrapped(), Some(InputFault::Oversized)),
            CloseReason::PayloadTooLarge
        );
        assert_eq!(
            close_reason(&wrapped(), Some(InputFault::ReadFailed)),
            CloseReason::TransportError
        );
        assert_eq!(close_reason(&not_utf8, None).websocket_code(), 1007);
        assert_eq!(CloseReason::ProtocolError.websocket_code(), 1002);
    }
}
