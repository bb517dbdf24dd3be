//! The load generator's WebSocket client (RFC 6455, client side, no extensions), as cheap as
//! the receive path of thousands of clients can be.
//!
//! A client task waits for its socket to be readable, then reads and parses synchronously: the
//! bytes go into the thread's read buffer (allocated once per thread, never zeroed again),
//! every complete frame in it is handed on as a borrowed `&str` without being copied, and only
//! an incomplete frame's bytes are kept by the client until its next read. An idle client
//! holds no buffer at all. (tokio-tungstenite, used before, copied each frame into a message
//! of its own and registered a waker per read: about half of the load generator's user-space
//! CPU in a fan-out, on cores it shares with the server.)
//!
//! Frames out (text, pong, close) are masked with a key from a per-connection xorshift
//! generator: unpredictable enough for a benchmark on loopback, which is all this client is for.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;

use base64::Engine as _;
use bytes::BytesMut;
use pushgate::transport::wire_frames::put_masked_frame;
use sha1::{Digest, Sha1};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The largest message (or frame) accepted from a server.
pub const MAX_MESSAGE: usize = 2 << 20;
/// The largest handshake response accepted.
const MAX_RESPONSE_HEAD: usize = 8 * 1024;
/// Room in the thread's read buffer for each read.
const READ_ROOM: usize = 64 * 1024;
/// RFC 6455 §1.3.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// Why a WebSocket ended or could not start.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// The socket failed.
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The server did not accept the upgrade as RFC 6455 says.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The server sent something that is not a valid frame sequence.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server closed (a close frame or EOF).
    #[error("closed by the server")]
    Closed,
}

/// One frame's header, read from the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// FIN bit.
    pub fin: bool,
    /// Opcode (low 4 bits of the first byte).
    pub opcode: u8,
    /// Where the payload starts.
    pub start: usize,
    /// Payload length.
    pub len: usize,
}

/// The header of the frame at the start of `buf`, or `None` when it is not all there yet.
/// Server frames must not be masked, use no reserved bit, and stay within [`MAX_MESSAGE`].
pub fn parse_head(buf: &[u8]) -> Result<Option<FrameHead>, WsError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(WsError::Protocol(format!("reserved bits set: {b0:#04x}")));
    }
    if b1 & 0x80 != 0 {
        return Err(WsError::Protocol("a masked frame from the server".into()));
    }
    let (len, start) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u16::from_be_bytes([b[0], b[1]]) as u64, 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => (u64::from_be_bytes(b.try_into().expect("8 bytes")), 10),
            None => return Ok(None),
        },
        n => (n as u64, 2),
    };
    if len > MAX_MESSAGE as u64 {
        return Err(WsError::Protocol(format!("a frame of {len} bytes")));
    }
    Ok(Some(FrameHead {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        start,
        len: len as usize,
    }))
}

thread_local! {
    /// Where every client on this thread reads into (see the module doc).
    static READ_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What a read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Bytes were read (and every complete message in them handed on).
    Data,
    /// Nothing to read after all: wait for readiness again.
    WouldBlock,
}

/// A client WebSocket over TCP.
pub struct Ws {
    tcp: TcpStream,
    /// An incomplete frame left over by the last read.
    partial: Vec<u8>,
    /// The text of a fragmented message so far.
    fragments: Option<Vec<u8>>,
    /// Text messages parsed but not taken yet (by [`Ws::next_text`] callers).
    inbox: VecDeque<String>,
    /// Frames to send (pongs, and a text or close frame being sent), already encoded.
    outbox: BytesMut,
    /// The server's close frame arrived.
    closed: bool,
    /// How reading ended, kept while the messages before the end are handed on.
    ended: Option<WsError>,
    mask_state: u32,
}

impl Ws {
    /// A WebSocket over `tcp`, which has been upgraded already.
    fn over(tcp: TcpStream) -> Ws {
        Ws {
            tcp,
            partial: Vec::new(),
            fragments: None,
            inbox: VecDeque::new(),
            outbox: BytesMut::new(),
            closed: false,
            ended: None,
            mask_state: seed(),
        }
    }

    /// Upgrade `tcp` to a WebSocket: `GET <resource>` with `Host: <host>`, and check the
    /// server's `101` and its `Sec-WebSocket-Accept`.
    pub async fn connect(tcp: TcpStream, host: &str, resource: &str) -> Result<Ws, WsError> {
        let mut ws = Ws::over(tcp);
        let mut key = [0u8; 16];
        for chunk in key.chunks_mut(4) {
            chunk.copy_from_slice(&ws.next_mask());
        }
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        let request = format!(
            "GET {resource} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        ws.tcp.write_all(request.as_bytes()).await?;
        let mut head = Vec::new();
        let end = loop {
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            if head.len() > MAX_RESPONSE_HEAD {
                return Err(WsError::Handshake("response head over 8 KiB".into()));
            }
            ws.tcp.readable().await?;
            let mut chunk = [0u8; 1024];
            match ws.tcp.try_read(&mut chunk) {
                Ok(0) => return Err(WsError::Handshake("closed before answering".into())),
                Ok(n) => head.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
        };
        check_response(&head[..end], &key)?;
        // Frames sent with the 101 (the Engine.IO open packet, typically) are not waiting in
        // the socket any more: parse them now.
        let rest = head.split_off(end + 4);
        let mut early = Vec::new();
        let used = ws.parse(&rest, &mut |t: &str| early.push(t.to_owned()))?;
        ws.inbox.extend(early);
        ws.partial = rest[used..].to_vec();
        Ok(ws)
    }

    /// Wait until there is something to read: messages parsed already (see
    /// [`Ws::next_text`]), an end not reported yet, or bytes in the socket.
    pub async fn readable(&self) -> io::Result<()> {
        if !self.inbox.is_empty() || self.ended.is_some() || self.closed {
            return Ok(());
        }
        self.tcp.readable().await
    }

    /// Hand on every text message waiting in the inbox, then read what the socket has and
    /// hand on every complete text message in it, in order. Pings are answered by
    /// [`Ws::flush`]; a close frame or EOF ends with [`WsError::Closed`] (after the messages
    /// before it).
    pub fn try_read(&mut self, mut on_text: impl FnMut(&str)) -> Result<Read, WsError> {
        for text in self.inbox.drain(..) {
            on_text(&text);
        }
        if let Some(e) = self.ended.take() {
            return Err(e);
        }
        if self.closed {
            return Err(WsError::Closed);
        }
        READ_BUFFER.with_borrow_mut(|buf| {
            let kept = self.partial.len();
            if buf.len() < kept + READ_ROOM {
                buf.resize(kept + READ_ROOM, 0);
            }
            buf[..kept].copy_from_slice(&self.partial);
            self.partial.clear();
            let n = match self.tcp.try_read(&mut buf[kept..]) {
                Ok(0) => return Err(WsError::Closed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.partial.extend_from_slice(&buf[..kept]);
                    return Ok(Read::WouldBlock);
                }
                Err(e) => return Err(e.into()),
            };
            let used = self.parse(&buf[..kept + n], &mut on_text)?;
            self.partial.extend_from_slice(&buf[used..kept + n]);
            if self.partial.len() > MAX_MESSAGE + 14 {
                return Err(WsError::Protocol("a frame over the limit".into()));
            }
            if self.closed {
                return Err(WsError::Closed);
            }
            Ok(Read::Data)
        })
    }

    /// Parse every complete frame at the start of `bytes`; returns how many bytes they took.
    fn parse(&mut self, bytes: &[u8], on_text: &mut impl FnMut(&str)) -> Result<usize, WsError> {
        let mut at = 0;
        while let Some(head) = parse_head(&bytes[at..])? {
            let end = at + head.start + head.len;
            if end > bytes.len() {
                break;
            }
            let payload = &bytes[at + head.start..end];
            at = end;
            match (head.opcode, head.fin, self.fragments.as_mut()) {
                (TEXT, true, None) => on_text(utf8(payload)?),
                (TEXT, false, None) => self.fragments = Some(payload.to_vec()),
                (CONTINUATION, fin, Some(so_far)) => {
                    if so_far.len() + payload.len() > MAX_MESSAGE {
                        return Err(WsError::Protocol("a message over the limit".into()));
                    }
                    so_far.extend_from_slice(payload);
                    if fin {
                        let message = self.fragments.take().expect("fragments");
                        on_text(utf8(&message)?);
                    }
                }
                (PING, true, _) => self.control(PONG, payload),
                (PONG, true, _) => {}
                (CLOSE, true, _) => {
                    self.closed = true;
                    break;
                }
                (BINARY, ..) => {
                    return Err(WsError::Protocol(
                        "a binary frame (Socket.IO text only)".into(),
                    ))
                }
                (opcode, fin, fragmented) => {
                    return Err(WsError::Protocol(format!(
                        "opcode {opcode:#x} (fin {fin}) {} a fragmented message",
                        if fragmented.is_some() {
                            "inside"
                        } else {
                            "outside"
                        }
                    )))
                }
            }
        }
        Ok(at)
    }

    /// The next text message (waiting for one), answering pings on the way.
    pub async fn next_text(&mut self) -> Result<String, WsError> {
        loop {
            if let Some(text) = self.inbox.pop_front() {
                return Ok(text);
            }
            if let Some(e) = self.ended.take() {
                return Err(e);
            }
            if self.closed {
                return Err(WsError::Closed);
            }
            self.tcp.readable().await?;
            let mut got = Vec::new();
            let read = self.try_read(|t| got.push(t.to_owned()));
            self.inbox.extend(got);
            self.flush().await?;
            if let Err(e) = read {
                // Hand on what came before the end first.
                self.ended = Some(e);
            }
        }
    }

    /// Send one text message (a single masked frame).
    pub async fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.control(TEXT, text.as_bytes());
        self.flush().await
    }

    /// Send the control frames (pongs) that reading queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.outbox.is_empty() {
            return Ok(());
        }
        let out = self.outbox.split();
        self.tcp.write_all(&out).await
    }

    /// Send a close frame (1000, normal closure); the socket closes when the client is
    /// dropped.
    pub async fn close(&mut self) -> io::Result<()> {
        self.control(CLOSE, &1000u16.to_be_bytes());
        self.flush().await
    }

    /// Queue one masked frame of `opcode` carrying `payload`.
    fn control(&mut self, opcode: u8, payload: &[u8]) {
        let mask = self.next_mask();
        put_masked_frame(&mut self.outbox, opcode, payload, mask);
    }

    /// The next masking key (xorshift32).
    fn next_mask(&mut self) -> [u8; 4] {
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_state = x;
        x.to_ne_bytes()
    }
}

/// A non-zero seed that differs between connections and runs.
fn seed() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ NEXT.fetch_add(0x9E37_79B9, Ordering::Relaxed)) | 1
}

fn utf8(payload: &[u8]) -> Result<&str, WsError> {
    std::str::from_utf8(payload).map_err(|_| WsError::Protocol("a text frame not in UTF-8".into()))
}

/// Check a handshake response head (status line and headers, without the blank line).
pub fn check_response(head: &[u8], key: &str) -> Result<(), WsError> {
    let head = std::str::from_utf8(head)
        .map_err(|_| WsError::Handshake("response head not in UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(WsError::Handshake(format!("answered {status:.80}")));
    }
    let accept = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|(_, value)| value.trim());
    let expected = base64::engine::general_purpose::STANDARD.encode(
        Sha1::new()
            .chain_update(key)
            .chain_update(ACCEPT_GUID)
            .finalize(),
    );
    match accept {
        Some(accept) if accept == expected => Ok(()),
        Some(accept) => Err(WsError::Handshake(format!(
            "Sec-WebSocket-Accept {accept:.40}, expected {expected}"
        ))),
        None => Err(WsError::Handshake("no Sec-WebSocket-Accept".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushgate::transport::wire_frames::put_header;

    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = BytesMut::new();
        put_header(&mut f, opcode, payload.len(), None);
        if !fin {
            f[0] &= 0x7f;
        }
        f.extend_from_slice(payload);
        f.to_vec()
    }

    #[test]
    fn heads_at_every_length_form_and_incomplete_ones() {
        for len in [0, 1, 125, 126, 65535, 65536, 70_000] {
            let frame = server_frame(true, TEXT, &vec![b'a'; len]);
            let head = parse_head(&frame).unwrap().unwrap();
            assert_eq!((head.fin, head.opcode, head.len), (true, TEXT, len));
            assert_eq!(head.start + len, frame.len());
            for cut in 0..head.start {
                assert_eq!(
                    parse_head(&frame[..cut]).unwrap(),
                    None,
                    "{len} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn hostile_heads_are_refused() {
        // Masked (a server must not mask), reserved bits, and a length over the limit.
        let mut masked = BytesMut::new();
        put_header(&mut masked, TEXT, 3, Some([1, 2, 3, 4]));
        assert!(parse_head(&masked).is_err());
        assert!(parse_head(&[0x80 | 0x40 | TEXT, 0]).is_err());
        let mut huge = vec![0x80 | TEXT, 127];
        huge.extend_from_slice(&(1u64 << 62).to_be_bytes());
        assert!(parse_head(&huge).is_err());
    }

    #[test]
    fn the_accept_header_is_checked() {
        // RFC 6455 §1.3's example.
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                  sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        check_response(ok.as_bytes(), key).unwrap();
        let wrong = ok.replace("s3pP", "AAAA");
        assert!(check_response(wrong.as_bytes(), key).is_err());
        let missing = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket";
        assert!(check_response(missing.as_bytes(), key).is_err());
        let refused = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0";
        assert!(check_response(refused.as_bytes(), key).is_err());
    }

    /// A connected pair: the client `Ws` and the server's side of the socket.
    async fn pair() -> (Ws, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Ws::over(client), server)
    }

    #[tokio::test]
    async fn messages_split_anywhere_arrive_whole_and_in_order() {
        let mut stream = Vec::new();
        stream.extend(server_frame(true, TEXT, b"first"));
        stream.extend(server_frame(false, TEXT, b"frag"));
        stream.extend(server_frame(true, PING, b"p"));
        stream.extend(server_frame(true, CONTINUATION, b"mented"));
        stream.extend(server_frame(true, TEXT, &vec![b'z'; 70_000]));
        stream.extend(server_frame(true, TEXT, "ünïcode".as_bytes()));
        for cut in [1, 2, 3, 7, 11, 4096] {
            let (mut ws, mut server) = pair().await;
            let mut got = Vec::new();
            for piece in stream.chunks(cut) {
                server.write_all(piece).await.unwrap();
                loop {
                    ws.readable().await.unwrap();
                    if ws.try_read(|t| got.push(t.to_owned())).unwrap() == Read::Data {
                        break;
                    }
                }
            }
            assert_eq!(got.len(), 4, "cut {cut}");
            assert_eq!(got[0], "first");
            assert_eq!(got[1], "fragmented");
            assert_eq!(got[2], "z".repeat(70_000));
            assert_eq!(got[3], "ünïcode");
            assert!(ws.partial.is_empty());
            // The ping was answered with a masked pong carrying its payload.
            ws.flush().await.unwrap();
            let mut pong = [0u8; 7];
            tokio::io::AsyncReadExt::read_exact(&mut server, &mut pong)
                .await
                .unwrap();
            assert_eq!(&pong[..2], &[0x80 | PONG, 0x80 | 1]);
            assert_eq!(pong[6] ^ pong[2], b'p');
        }
    }

    #[tokio::test]
    async fn a_close_or_a_bad_frame_ends_the_reading_after_what_came_before() {
        for (ending, expect_closed) in [
            (server_frame(true, CLOSE, &1000u16.to_be_bytes()), true),
            (server_frame(true, BINARY, b"\x01"), false),
            (server_frame(true, TEXT, b"\xff\xfe"), false),
            (server_frame(true, CONTINUATION, b"stray"), false),
        ] {
            let (mut ws, mut server) = pair().await;
            let mut bytes = server_frame(true, TEXT, b"before");
            bytes.extend(ending);
            server.write_all(&bytes).await.unwrap();
            let mut got = Vec::new();
            let end = loop {
                ws.readable().await.unwrap();
                match ws.try_read(|t| got.push(t.to_owned())) {
                    Ok(_) => continue,
                    Err(e) => break e,
                }
            };
            assert_eq!(got, ["before"]);
            assert_eq!(matches!(end, WsError::Closed), expect_closed, "{end}");
        }
        // EOF too.
        let (mut ws, server) = pair().await;
        drop(server);
        ws.readable().await.unwrap();
        assert!(matches!(ws.try_read(|_| {}), Err(WsError::Closed)));
    }

    #[tokio::test]
    async fn next_text_hands_on_messages_read_together_one_by_one() {
        let (mut ws, mut server) = pair().await;
        let mut bytes = server_frame(true, TEXT, b"one");
        bytes.extend(server_frame(true, TEXT, b"two"));
        bytes.extend(server_frame(true, CLOSE, b""));
        server.write_all(&bytes).await.unwrap();
        assert_eq!(ws.next_text().await.unwrap(), "one");
        assert_eq!(ws.next_text().await.unwrap(), "two");
        assert!(matches!(ws.next_text().await, Err(WsError::Closed)));
    }

    #[tokio::test]
    async fn frames_sent_with_the_101_are_not_lost() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                tokio::io::AsyncReadExt::read_exact(&mut tcp, &mut byte)
                    .await
                    .unwrap();
                request.push(byte[0]);
            }
            let request = String::from_utf8(request).unwrap();
            let key = request
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap();
            let accept = base64::engine::general_purpose::STANDARD.encode(
                Sha1::new()
                    .chain_update(key)
                    .chain_update(ACCEPT_GUID)
                    .finalize(),
            );
            let mut answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .into_bytes();
            answer.extend(server_frame(true, TEXT, b"0{\"sid\":\"x\"}"));
            answer.extend(server_frame(false, TEXT, b"4"));
            tcp.write_all(&answer).await.unwrap();
            tcp.write_all(&server_frame(true, CONTINUATION, b"0{}"))
                .await
                .unwrap();
            tcp
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut ws = Ws::connect(tcp, &addr.to_string(), "/socket.io/?EIO=4")
            .await
            .unwrap();
        assert_eq!(ws.next_text().await.unwrap(), r#"0{"sid":"x"}"#);
        assert_eq!(ws.next_text().await.unwrap(), "40{}");
        drop(server.await.unwrap());
        assert!(matches!(ws.next_text().await, Err(WsError::Closed)));
    }
}
