//! Server-to-client WebSocket frames encoded by pushgate itself (RFC 6455 §5.2): final,
//! unmasked text or binary frames.
//!
//! A push reaches every member of a room with the same frames, and a server's frames are not
//! masked, so their bytes are the same for every receiver: [`text_frames`] encodes a delivery
//! once (see `pushgate_actors::Packets::encoded`) and each upgraded connection writes that
//! shared buffer as it is, where the WebSocket context would copy and frame every message for
//! every receiver. Pure code; the tests hold it to actix-http's own encoder.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

/// Opcode of a text frame.
pub const TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub const BINARY: u8 = 0x2;

/// The size of a frame carrying `len` payload bytes.
pub fn frame_len(len: usize) -> usize {
    let header = match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    header + len
}

/// Append one final, unmasked frame of `opcode` carrying `payload`.
pub fn put_frame(dst: &mut BytesMut, opcode: u8, payload: &[u8]) {
    dst.reserve(frame_len(payload.len()));
    put_header(dst, opcode, payload.len(), None);
    dst.put_slice(payload);
}

/// Append the header of a final frame of `opcode` announcing `len` payload bytes, in the
/// shortest length form, with the masking key `mask` when there is one (a client's frames are
/// masked, a server's are not; the tests use it to play the client).
pub fn put_header(dst: &mut BytesMut, opcode: u8, len: usize, mask: Option<[u8; 4]>) {
    dst.put_u8(0x80 | opcode);
    let masked = if mask.is_some() { 0x80 } else { 0 };
    match len {
        0..=125 => dst.put_u8(masked | len as u8),
        126..=0xFFFF => {
            dst.put_u8(masked | 126);
            dst.put_u16(len as u16);
        }
        _ => {
            dst.put_u8(masked | 127);
            dst.put_u64(len as u64);
        }
    }
    if let Some(mask) = mask {
        dst.put_slice(&mask);
    }
}

/// Append one final client frame of `opcode` carrying `payload`, masked with `mask` (RFC 6455
/// §5.3: what a client sends; the tests and the load generator play the client).
pub fn put_masked_frame(dst: &mut BytesMut, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    dst.reserve(frame_len(payload.len()) + mask.len());
    put_header(dst, opcode, payload.len(), Some(mask));
    let start = dst.len();
    dst.extend_from_slice(payload);
    // Four bytes at a time (a byte-wise iterator costs ~13 instructions a byte).
    let key = u32::from_ne_bytes(mask);
    let mut words = dst[start..].chunks_exact_mut(4);
    for word in &mut words {
        let masked = u32::from_ne_bytes([word[0], word[1], word[2], word[3]]) ^ key;
        word.copy_from_slice(&masked.to_ne_bytes());
    }
    for (b, m) in words.into_remainder().iter_mut().zip(mask) {
        *b ^= m;
    }
}

/// Every frame as a text frame, in order, in one buffer.
pub fn text_frames(frames: &[ByteString]) -> Bytes {
    let mut dst = BytesMut::with_capacity(frames.iter().map(|f| frame_len(f.len())).sum());
    for frame in frames {
        put_frame(&mut dst, TEXT, frame.as_bytes());
    }
    dst.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_codec::Encoder;
    use actix_http::ws::{Codec, Message};

    /// What actix-http's server-side codec writes for `msg`.
    fn reference(msg: Message) -> Vec<u8> {
        let mut dst = BytesMut::new();
        Codec::new()
            .max_size(usize::MAX)
            .encode(msg, &mut dst)
            .unwrap();
        dst.to_vec()
    }

    const SIZES: [usize; 9] = [0, 1, 125, 126, 127, 65_535, 65_536, 65_537, 200_000];

    #[test]
    fn frames_are_what_actix_http_writes_at_every_length_boundary() {
        for len in SIZES {
            let text = "x".repeat(len);
            let mut ours = BytesMut::new();
            put_frame(&mut ours, TEXT, text.as_bytes());
            assert_eq!(
                &ours[..],
                reference(Message::Text(text.clone().into())),
                "{len}"
            );
            assert_eq!(ours.len(), frame_len(len), "{len}");
            let mut ours = BytesMut::new();
            put_frame(&mut ours, BINARY, text.as_bytes());
            assert_eq!(&ours[..], reference(Message::Binary(text.into())), "{len}");
        }
    }

    #[test]
    fn masked_frames_are_what_actix_http_reads_from_a_client() {
        use actix_codec::Decoder;
        for len in SIZES {
            let mask = [0x12, 0x34, 0x56, 0x78];
            // Every byte a different distance from the mask's start, lengths on both sides of
            // a whole number of mask words.
            let text: String = (0..len)
                .map(|i| char::from(b'a' + (i % 23) as u8))
                .collect();
            let mut frame = BytesMut::new();
            put_masked_frame(&mut frame, TEXT, text.as_bytes(), mask);
            let decoded = Codec::new()
                .max_size(usize::MAX)
                .decode(&mut frame)
                .unwrap();
            let Some(actix_http::ws::Frame::Text(got)) = decoded else {
                panic!("{len}: {decoded:?}");
            };
            assert_eq!(&got[..], text.as_bytes(), "{len}");
            assert!(frame.is_empty(), "{len}: the whole frame was read");
        }
    }

    #[test]
    fn a_delivery_is_its_frames_back_to_back_in_one_exact_buffer() {
        let frames: Vec<ByteString> = ["42[\"notification\",{}]", "", "é", &"y".repeat(300)]
            .into_iter()
            .map(ByteString::from)
            .collect();
        let encoded = text_frames(&frames);
        let expected: Vec<u8> = frames
            .iter()
            .flat_map(|f| reference(Message::Text(f.clone())))
            .collect();
        assert_eq!(&encoded[..], &expected[..]);
        assert!(text_frames(&[]).is_empty());
    }
}
