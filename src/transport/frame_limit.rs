//! The largest WebSocket frame a client may send, enforced as the bytes arrive.
//!
//! actix-http's frame parser checks a frame's length only once the whole frame is buffered, and
//! the WebSocket context buffers whatever the client sends until then: a client announcing a
//! 2^62-byte frame could make the server hold gigabytes. [`FrameLimit`] follows the frame
//! boundaries of the raw byte stream (headers only; payload bytes are skipped, not looked at)
//! and refuses a frame as soon as its header announces more than the limit, before any of its
//! payload is kept. Pure code: no I/O, any split of the stream gives the same answer.

/// A frame header announced more bytes than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a WebSocket frame of {declared} bytes is over the limit of {limit}")]
pub struct FrameTooLarge {
    /// The length the header announced.
    pub declared: u64,
    /// The limit.
    pub limit: u64,
}

/// The longest frame header: 2 bytes, a 64-bit extended length, a 4-byte mask key.
const MAX_HEADER: usize = 2 + 8 + 4;

#[derive(Debug)]
enum State {
    /// Reading a header: the bytes so far.
    Header { bytes: [u8; MAX_HEADER], len: usize },
    /// Skipping a payload: bytes still to come.
    Payload { remaining: u64 },
}

impl State {
    fn header() -> State {
        State::Header {
            bytes: [0; MAX_HEADER],
            len: 0,
        }
    }
}

/// Tracks the frames of one client's byte stream; see the module doc.
#[derive(Debug)]
pub struct FrameLimit {
    limit: u64,
    state: State,
}

impl FrameLimit {
    /// Frames of at most `limit` payload bytes.
    pub fn new(limit: usize) -> FrameLimit {
        FrameLimit {
            limit: limit as u64,
            state: State::header(),
        }
    }

    /// Account for the next bytes of the stream. After an error the stream must be dropped:
    /// the tracker does not recover.
    pub fn check(&mut self, mut data: &[u8]) -> Result<(), FrameTooLarge> {
        while !data.is_empty() {
            match &mut self.state {
                State::Payload { remaining } => {
                    let skipped = (*remaining).min(data.len() as u64);
                    *remaining -= skipped;
                    data = &data[skipped as usize..];
                    if *remaining == 0 {
                        self.state = State::header();
                    }
                }
                State::Header { bytes, len } => {
                    bytes[*len] = data[0];
                    *len += 1;
                    data = &data[1..];
                    let Some(declared) = payload_length(&bytes[..*len]) else {
                        continue;
                    };
                    if declared > self.limit {
                        return Err(FrameTooLarge {
                            declared,
                            limit: self.limit,
                        });
                    }
                    self.state = match declared {
                        0 => State::header(),
                        remaining => State::Payload { remaining },
                    };
                }
            }
        }
        Ok(())
    }
}

/// The payload length a complete header announces, or `None` while the header is incomplete
/// (RFC 6455 §5.2: a 7-bit length, or 126 / 127 followed by a 16- / 64-bit one, then the mask
/// key when the mask bit is set).
fn payload_length(header: &[u8]) -> Option<u64> {
    let second = *header.get(1)?;
    let masked = second & 0x80 != 0;
    let (extended, short) = match second & 0x7f {
        126 => (2, None),
        127 => (8, None),
        n => (0, Some(u64::from(n))),
    };
    let needed = 2 + extended + if masked { 4 } else { 0 };
    if header.len() < needed {
        return None;
    }
    Some(short.unwrap_or_else(|| {
        header[2..2 + extended]
            .iter()
            .fold(0u64, |n, b| (n << 8) | u64::from(*b))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::wire_frames::{put_header, TEXT};
    use bytes::BytesMut;

    /// A client frame (masked) with `len` payload bytes, encoded with the shortest length.
    fn frame(len: usize) -> Vec<u8> {
        let mut f = BytesMut::new();
        put_header(&mut f, TEXT, len, Some([1, 2, 3, 4]));
        f.extend(std::iter::repeat_n(0x5a, len));
        f.to_vec()
    }

    /// Feed `stream` split at every possible point (two pieces) and byte by byte; every way
    /// must give the same answer.
    fn check_all_splits(limit: usize, stream: &[u8]) -> Result<(), FrameTooLarge> {
        let whole = FrameLimit::new(limit).check(stream);
        for cut in 0..=stream.len() {
            let mut l = FrameLimit::new(limit);
            let split = l
                .check(&stream[..cut])
                .and_then(|()| l.check(&stream[cut..]));
            assert_eq!(split, whole, "cut at {cut}");
        }
        let mut l = FrameLimit::new(limit);
        let bytewise = stream.chunks(1).try_for_each(|b| l.check(b));
        assert_eq!(bytewise, whole, "byte by byte");
        whole
    }

    #[test]
    fn frames_up_to_the_limit_pass_in_any_split() {
        let mut stream = Vec::new();
        for len in [0, 1, 125, 126, 300, 65_535, 65_536, 70_000] {
            stream.extend(frame(len));
        }
        assert_eq!(check_all_splits(70_000, &stream), Ok(()));
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_from_its_header_alone() {
        let over = frame(1_001);
        // Header only (2 + 2 + 4 bytes): refused before any payload byte.
        let err = FrameLimit::new(1_000).check(&over[..8]).unwrap_err();
        assert_eq!(
            err,
            FrameTooLarge {
                declared: 1_001,
                limit: 1_000
            }
        );
        assert_eq!(FrameLimit::new(1_001).check(&over), Ok(()));
        // After good frames, in any split.
        let mut stream = frame(10);
        stream.extend(frame(1_000));
        stream.extend(over);
        assert!(check_all_splits(1_000, &stream).is_err());
    }

    #[test]
    fn hostile_lengths_are_refused_without_reading_on() {
        // 2^62 and 2^64 - 1 announced, nothing after the header.
        for declared in [1u64 << 62, u64::MAX] {
            let mut header = vec![0x82, 0x80 | 127];
            header.extend_from_slice(&declared.to_be_bytes());
            header.extend_from_slice(&[9, 9, 9, 9]);
            let err = check_all_splits(1_000_016, &header).unwrap_err();
            assert_eq!(err.declared, declared);
        }
        // An unmasked header (no mask key) is measured the same way.
        let unmasked = [0x81, 127, 0, 0, 0, 0, 0, 0x10, 0, 0];
        assert_eq!(
            check_all_splits(100, &unmasked).unwrap_err().declared,
            1 << 20
        );
    }

    #[test]
    fn control_frames_and_empty_frames_keep_the_boundaries() {
        // ping (empty), close with a reason, pong, then a text frame just over the limit.
        let mut stream = vec![0x89, 0x80, 1, 2, 3, 4];
        stream.extend([0x88, 0x82, 1, 2, 3, 4, 0x03, 0xe8]);
        stream.extend([0x8a, 0x80, 1, 2, 3, 4]);
        stream.extend(frame(126));
        assert_eq!(check_all_splits(126, &stream), Ok(()));
        assert!(check_all_splits(125, &stream).is_err());
    }
}
