//! Fuzz target: the WebSocket frame size check on arbitrary byte streams. However the stream is
//! split into reads, the answer is the same, and a stream it accepts whole is accepted read by
//! read.
//!
//! Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run frame_limit`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pushgate::transport::frame_limit::FrameLimit;

fuzz_target!(|data: &[u8]| {
    // Two bytes of limit, two bytes of cut point, then the stream.
    if data.len() < 4 {
        return;
    }
    let limit = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let stream = &data[4..];
    let cut = usize::from(u16::from_le_bytes([data[2], data[3]])) % (stream.len() + 1);

    let whole = FrameLimit::new(limit).check(stream);
    let mut split = FrameLimit::new(limit);
    let two_reads = split
        .check(&stream[..cut])
        .and_then(|()| split.check(&stream[cut..]));
    assert_eq!(two_reads, whole);
    let mut bytewise = FrameLimit::new(limit);
    assert_eq!(stream.chunks(1).try_for_each(|b| bytewise.check(b)), whole);
    if let Err(e) = whole {
        assert!(e.declared > e.limit);
        assert_eq!(e.limit, limit as u64);
    }
});
