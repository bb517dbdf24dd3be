//! The IO path of upgraded connections (src/transport/upgraded/), over raw TCP: upgrade
//! requests the application answers itself, bytes sent together with the handshake, frames
//! that span many reads beside other connections' reads, a frame header announcing more than
//! the limit, a client that half-closes, a client that never reads
//! and one that falls too far behind, and pushes racing the close of their session.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use pushgate::transport::upgraded::MAX_UNWRITTEN;
use pushgate::transport::wire_frames::put_masked_frame;
use serde_json::Value;

/// The handshake request for `path_and_query`.
fn handshake_request(addr: SocketAddr, path_and_query: &str) -> Vec<u8> {
    format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .into_bytes()
}

/// A masked client frame (FIN set) with `opcode` and `payload`.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = BytesMut::new();
    put_masked_frame(&mut f, opcode, payload, [0x12, 0x34, 0x56, 0x78]);
    f.to_vec()
}

/// A blocking raw WebSocket client: run it inside `spawn_blocking` (the server shares the
/// test's runtime).
struct Raw {
    tcp: TcpStream,
    buf: Vec<u8>,
}

/// A frame from the server: (opcode, payload).
type ServerFrame = (u8, Vec<u8>);

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        Raw {
            tcp,
            buf: Vec::new(),
        }
    }

    /// Send `bytes`; false when the connection is gone.
    fn send(&mut self, bytes: &[u8]) -> bool {
        self.tcp.write_all(bytes).is_ok()
    }

    /// Read more; false on EOF or error (timeouts included).
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.tcp.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The answer's head (status line and headers) and body, up to `content-length`.
    fn answer(&mut self) -> (String, String) {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let length = head
                    .to_ascii_lowercase()
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").map(str::to_owned))
                    .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                if self.buf.len() >= end + 4 + length {
                    let body =
                        String::from_utf8_lossy(&self.buf[end + 4..end + 4 + length]).into_owned();
                    self.buf.drain(..end + 4 + length);
                    return (head, body);
                }
            }
            assert!(self.fill(), "connection ended before a full answer");
        }
    }

    /// The next server frame, or None on EOF / timeout.
    fn frame(&mut self) -> Option<ServerFrame> {
        loop {
            if self.buf.len() >= 2 {
                let opcode = self.buf[0] & 0x0f;
                assert_eq!(self.buf[1] & 0x80, 0, "server frames are not masked");
                let (len, start) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => (
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.buf.len() >= start + len {
                    let payload = self.buf[start..start + len].to_vec();
                    self.buf.drain(..start + len);
                    return Some((opcode, payload));
                }
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// The next text frame that is not an Engine.IO ping (answered).
    fn text(&mut self) -> Option<String> {
        loop {
            let (opcode, payload) = self.frame()?;
            if opcode != 1 {
                return None;
            }
            let text = String::from_utf8(payload).unwrap();
            if text == "2" {
                self.send(&client_frame(1, b"3"));
                continue;
            }
            return Some(text);
        }
    }

    /// Whether the server ends the connection (EOF or reset) within `limit`, skipping frames.
    fn ends_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        self.tcp
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        while Instant::now() < deadline {
            let mut chunk = [0u8; 8192];
            match self.tcp.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// Run `f` on a blocking thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    actix_rt::task::spawn_blocking(f).await.unwrap()
}

#[actix_web::test]
async fn upgrade_requests_elsewhere_get_the_applications_answer_then_close() {
    let srv = start();
    let addr = srv.addr;
    let (head, body, ended) = blocking(move || {
        let mut c = Raw::connect(addr);
        assert!(c.send(&handshake_request(addr, "/no/such/place")));
        let (head, body) = c.answer();
        (head, body, c.ends_within(Duration::from_secs(2)))
    })
    .await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "not_found");
    assert_eq!(v["message"], "no route for /no/such/place");
    assert!(ended, "the connection stays open after the answer");

    // A route that exists answers as it would without the upgrade headers.
    let (head, body) = blocking(move || {
        let mut c = Raw::connect(addr);
        assert!(c.send(&handshake_request(addr, "/health")));
        c.answer()
    })
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let plain = send(http().get(srv.url("/health")), None).await;
    assert_eq!(body, plain.body);
}

#[actix_web::test]
async fn the_101_answer_and_the_open_packet_arrive_in_one_segment() {
    let srv = start();
    let addr = srv.addr;
    let first_read = blocking(move || {
        let mut c = Raw::connect(addr);
        assert!(c.send(&handshake_request(
            addr,
            "/socket.io/?EIO=4&transport=websocket"
        )));
        assert!(c.fill());
        let first_read = c.buf.clone();
        let (head, _) = c.answer();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        (first_read, c.text())
    })
    .await;
    // One write for both: the client wakes once for its handshake, not twice.
    let (bytes, open) = first_read;
    let open = open.expect("the open packet");
    assert!(open.starts_with("0{\"sid\""), "{open}");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.starts_with("HTTP/1.1 101") && text.contains("0{\"sid\""),
        "the first read holds the answer and the open packet: {text}"
    );
}

#[actix_web::test]
async fn frames_sent_with_the_handshake_are_not_lost() {
    let srv = start();
    let addr = srv.addr;
    let token = srv.token("5", false);
    let (open, answer, welcome) = blocking(move || {
        let mut c = Raw::connect(addr);
        // The handshake, the CONNECT and a subscribe, in one write.
        let mut bytes = handshake_request(addr, "/socket.io/?EIO=4&transport=websocket");
        bytes.extend(client_frame(
            1,
            format!(r#"40{{"token":"{token}"}}"#).as_bytes(),
        ));
        bytes.extend(client_frame(1, br#"421["subscribe",{"userId":"5"}]"#));
        assert!(c.send(&bytes));
        let (head, _) = c.answer();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let open = c.text().unwrap();
        let answer = c.text().unwrap();
        let welcome = c.text().unwrap();
        let subscribed = c.text().unwrap();
        assert!(subscribed.starts_with("42[\"subscribed\""), "{subscribed}");
        (open, answer, welcome)
    })
    .await;
    assert!(open.starts_with("0{"), "{open}");
    assert!(answer.starts_with("40{\"sid\""), "{answer}");
    assert!(welcome.starts_with("42[\"welcome\""), "{welcome}");
}

/// A connected raw client of `user:<user>` (blocking: call inside [`blocking`]).
fn raw_connected(addr: SocketAddr, token: &str) -> Raw {
    let mut c = Raw::connect(addr);
    assert!(c.send(&handshake_request(
        addr,
        "/socket.io/?EIO=4&transport=websocket"
    )));
    c.answer();
    assert!(c.text().unwrap().starts_with("0{"));
    assert!(c.send(&client_frame(
        1,
        format!(r#"40{{"token":"{token}"}}"#).as_bytes()
    )));
    assert!(c.text().unwrap().starts_with("40{"));
    assert!(c.text().unwrap().starts_with("42[\"welcome\""));
    c
}

#[actix_web::test]
async fn a_frame_header_over_the_limit_is_refused_before_its_payload() {
    let srv = start();
    let addr = srv.addr;
    let token = srv.token("4", false);
    for declared in [1u64 << 62, 1_000_000 + 1] {
        let token = token.clone();
        let (close, ended) = blocking(move || {
            let mut c = raw_connected(addr, &token);
            // A text frame header announcing `declared` bytes, and a few of them only: the
            // server must not wait for (and buffer) the rest.
            let mut header = vec![0x81, 0x80 | 127];
            header.extend_from_slice(&declared.to_be_bytes());
            header.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
            assert!(c.send(&header));
            let close = std::iter::from_fn(|| c.frame()).find(|(opcode, _)| *opcode != 1);
            (close, c.ends_within(Duration::from_secs(2)))
        })
        .await;
        let (opcode, payload) = close.expect("a close frame");
        assert_eq!(opcode, 8);
        assert_eq!(
            u16::from_be_bytes([payload[0], payload[1]]),
            1009,
            "{declared}"
        );
        assert_eq!(&payload[2..], b"payload too large");
        assert!(ended);
        srv.wait_for_connections(0).await;
    }
}

#[actix_web::test]
async fn a_client_that_half_closes_is_gone() {
    let srv = start();
    let addr = srv.addr;
    let token = srv.token("6", false);
    let mut c = blocking(move || raw_connected(addr, &token)).await;
    srv.wait_for_connections(1).await;
    let ended = blocking(move || {
        c.tcp.shutdown(Shutdown::Write).unwrap();
        c.ends_within(Duration::from_secs(2))
    })
    .await;
    assert!(ended, "the server keeps a half-closed connection");
    srv.wait_for_connections(0).await;
}

#[actix_web::test]
async fn a_client_that_reads_nothing_holds_up_nobody_and_is_closed_by_the_heartbeat() {
    let srv = std::rc::Rc::new(start());
    let addr = srv.addr;
    let token = srv.token("8", false);
    // From the welcome on it reads nothing (so it sees no ping and answers none).
    let stuck = blocking(move || raw_connected(addr, &token)).await;
    let token = srv.token("8", false);
    let mut reader = RawClient::connected(&srv, &token).await;
    srv.wait_for_connections(2).await;
    // Far more than the socket buffers hold: the stuck client's writes block. The reader reads
    // (and answers its pings) while the pushes go out.
    let pushes = 60;
    let pusher = srv.clone();
    let pushing = actix_rt::spawn(async move {
        let big = format!(r#"{{"blob":"{}"}}"#, "z".repeat(100_000));
        for _ in 0..pushes {
            pusher.push_to_user("8", &big).await;
        }
    });
    let mut received = 0;
    while received < pushes {
        match reader.next(Duration::from_secs(5)).await {
            Some(Frame::Text(t)) if t == "2" => reader.send("3").await,
            Some(Frame::Text(t)) => {
                assert!(t.starts_with("42[\"notification\""), "{}", &t[..40]);
                received += 1;
            }
            other => panic!("the reading client lost its connection: {other:?}"),
        }
    }
    pushing.await.unwrap();
    let health = send(http().get(srv.url("/health")), None).await;
    assert_eq!(health.status.as_u16(), 200);
    // Its heartbeat (300 ms + 200 ms here) ends its session although its socket stays open;
    // the reader, answering its pings meanwhile, stays.
    assert_eq!(reader.idle(Duration::from_millis(1_000)).await, vec![]);
    assert_eq!(srv.connections().await, 1);
    drop(stuck);
}

/// A server whose heartbeats are too slow to interfere, and one raw client of `user:<user>`.
async fn one_client_without_heartbeats(user: &str) -> (TestServer, Raw) {
    let mut config = config();
    config.engine.ping_interval = Duration::from_secs(60);
    config.engine.ping_timeout = Duration::from_secs(60);
    let srv = start_with(config);
    let addr = srv.addr;
    let token = srv.token(user, false);
    let client = blocking(move || raw_connected(addr, &token)).await;
    srv.wait_for_connections(1).await;
    (srv, client)
}

#[actix_web::test]
async fn a_client_that_falls_far_behind_is_dropped_as_a_slow_reader() {
    // Only the backlog can end this session.
    let (srv, mut stuck) = one_client_without_heartbeats("5").await;
    srv.push_until_the_slow_reader_is_dropped("5", MAX_UNWRITTEN)
        .await;
    srv.wait_for_connections(0).await;
    srv.assert_disconnects("slow_reader", 1).await;
    // The client finds its connection ended once it reads what the kernel still held.
    assert!(blocking(move || stuck.ends_within(Duration::from_secs(10))).await);
    let health = send(http().get(srv.url("/health")), None).await;
    assert_eq!(health.status.as_u16(), 200);
}

#[actix_web::test]
async fn a_client_that_reads_late_gets_every_push_whole_and_in_order() {
    let (srv, mut late) = one_client_without_heartbeats("6").await;
    // ~2 MB of pushes while the client reads nothing, framed by pushgate itself, at lengths on
    // both sides of the frame header's boundaries (125 / 126 bytes, 64 KiB); then the client
    // reads: every push arrives whole, in order.
    let lengths = [40, 125, 126, 127, 1_000, 20_000, 65_535, 65_536, 70_000];
    let head = r#"42["notification","#;
    let expected: Vec<String> = (0..90)
        .map(|i| {
            let start = format!(r#"{head}{{"seq":{i},"pad":""#);
            let pad = lengths[i % lengths.len()] - start.len() - r#""}]"#.len();
            format!(r#"{start}{}"}}]"#, "p".repeat(pad))
        })
        .collect();
    assert!(expected.iter().map(String::len).sum::<usize>() < MAX_UNWRITTEN);
    for frame in &expected {
        let payload = &frame[head.len()..frame.len() - 1];
        assert_eq!(srv.push_to_user("6", payload).await, 1);
    }
    let count = expected.len();
    let got = blocking(move || {
        (0..count)
            .map(|_| late.text().expect("a push"))
            .collect::<Vec<_>>()
    })
    .await;
    for (i, (got, expected)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(got.len(), lengths[i % lengths.len()]);
        assert!(got == expected, "push {i} arrived whole and in order");
    }
}

#[actix_web::test]
async fn frames_that_span_many_reads_arrive_whole_beside_other_connections() {
    let srv = start();
    let addr = srv.addr;
    let users = ["21", "22", "23", "24"];
    let tokens: Vec<String> = users.iter().map(|u| srv.token(u, false)).collect();
    let answers = blocking(move || {
        let mut clients: Vec<Raw> = tokens.iter().map(|t| raw_connected(addr, t)).collect();
        // Each client's subscribe carries 64 KiB of JSON whitespace, so that its frame reaches
        // the server over many reads, interleaved with the other clients' reads (the worker's
        // connections read into one buffer).
        let frames: Vec<Vec<u8>> = users
            .iter()
            .map(|u| {
                let padded = format!(
                    r#"421["subscribe",{}{{"userId":"{u}"}}]"#,
                    " ".repeat(64 * 1024)
                );
                client_frame(1, padded.as_bytes())
            })
            .collect();
        let pieces: Vec<Vec<&[u8]>> = frames.iter().map(|f| f.chunks(1500).collect()).collect();
        for k in 0..pieces[0].len() {
            for (c, p) in clients.iter_mut().zip(&pieces) {
                assert!(c.send(p[k]));
            }
            if k % 8 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        clients
            .iter_mut()
            .map(|c| (c.text().unwrap(), c.text().unwrap()))
            .collect::<Vec<_>>()
    })
    .await;
    for (user, (first, second)) in users.iter().zip(answers) {
        let mut got = [first, second];
        got.sort();
        assert_eq!(
            got[0],
            format!(
                r#"42["subscribed",{{"message":"Subscribed to user:{user}","userId":"{user}"}}]"#
            )
        );
        assert!(got[1].starts_with("431["), "{}", got[1]);
    }
}

#[actix_web::test]
async fn pushes_racing_a_close_never_follow_the_close_frame() {
    let srv = std::rc::Rc::new(start());
    let addr = srv.addr;
    let token = srv.token("31", false);
    let mut c = blocking(move || raw_connected(addr, &token)).await;
    srv.wait_for_connections(1).await;
    // Pushes keep coming while the server closes the session (here for a frame over the
    // limit); the connection writes them straight from the session's inbox, and must stop
    // before the close frame.
    let stop = std::rc::Rc::new(std::cell::Cell::new(false));
    let (pusher, stopped) = (srv.clone(), stop.clone());
    let pushing = actix_rt::spawn(async move {
        let mut seq = 0u64;
        while !stopped.get() {
            pusher
                .push_to_user("31", &format!(r#"{{"seq":{seq}}}"#))
                .await;
            seq += 1;
        }
    });
    let frames = blocking(move || {
        // Some pushes first, so that the close falls into the stream of them.
        for _ in 0..20 {
            let push = c.text().expect("a push");
            assert!(push.starts_with("42[\"notification\""), "{push}");
        }
        let mut header = vec![0x81, 0x80 | 127];
        header.extend_from_slice(&(1u64 << 40).to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        assert!(c.send(&header));
        std::iter::from_fn(|| c.frame()).collect::<Vec<_>>()
    })
    .await;
    stop.set(true);
    pushing.await.unwrap();
    let (last, before) = frames.split_last().expect("frames up to the close");
    assert_eq!(last.0, 8, "the close frame comes last");
    assert_eq!(u16::from_be_bytes([last.1[0], last.1[1]]), 1009);
    for (opcode, payload) in before {
        assert_eq!(*opcode, 1, "only pushes (and pings) before it");
        let text = std::str::from_utf8(payload).unwrap();
        assert!(
            text == "2" || text.starts_with("42[\"notification\""),
            "{text}"
        );
    }
    srv.wait_for_connections(0).await;
}

/// A masked client frame whose first byte is `first` (FIN, RSV bits, opcode), as is.
fn raw_client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = client_frame(first & 0x0f, payload);
    f[0] = first;
    f
}

/// What a connected client gets for `bytes`: the close frame's code, and whether the
/// connection then ends.
async fn close_for(srv: &TestServer, user: &str, bytes: Vec<u8>) -> (Option<u16>, bool) {
    let addr = srv.addr;
    let token = srv.token(user, false);
    blocking(move || {
        let mut c = raw_connected(addr, &token);
        assert!(c.send(&bytes));
        let close = std::iter::from_fn(|| c.frame()).find(|(opcode, _)| *opcode != 1);
        let code = close.map(|(opcode, payload)| {
            assert_eq!(opcode, 8, "a close frame");
            u16::from_be_bytes([payload[0], payload[1]])
        });
        (code, c.ends_within(Duration::from_secs(2)))
    })
    .await
}

#[actix_web::test]
async fn websocket_protocol_violations_close_with_1002_and_invalid_text_with_1007() {
    let srv = start();
    let mut unmasked = vec![0x81, 2];
    unmasked.extend_from_slice(b"40");
    let mut text_then_text = raw_client_frame(0x01, b"4");
    text_then_text.extend(raw_client_frame(0x81, b"0"));
    let violations: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked frame", unmasked),
        ("RSV1 set", raw_client_frame(0x80 | 0x40 | 0x1, b"3")),
        ("RSV2 set", raw_client_frame(0x80 | 0x20 | 0x2, b"3")),
        ("reserved data opcode", raw_client_frame(0x80 | 0x3, b"3")),
        ("reserved control opcode", raw_client_frame(0x80 | 0xc, b"")),
        ("fragmented ping", raw_client_frame(0x09, b"x")),
        (
            "control frame over 125 bytes",
            raw_client_frame(0x89, &[b'x'; 126]),
        ),
        (
            "continuation with nothing to continue",
            raw_client_frame(0x80, b"3"),
        ),
        ("a new message inside a fragmented one", text_then_text),
        (
            "close frame with a one-byte payload",
            raw_client_frame(0x88, b"x"),
        ),
    ];
    let count = violations.len();
    for (name, bytes) in violations {
        let (code, ended) = close_for(&srv, "41", bytes).await;
        assert_eq!(code, Some(1002), "{name}");
        assert!(ended, "{name}: the connection ends");
    }
    let mut fragmented = raw_client_frame(0x01, b"4");
    fragmented.extend(raw_client_frame(0x80, &[0xc3]));
    let not_utf8: Vec<(&str, Vec<u8>)> = vec![
        ("a text frame", raw_client_frame(0x81, &[b'4', 0xff, 0xfe])),
        ("a fragmented text message", fragmented),
    ];
    for (name, bytes) in not_utf8 {
        let (code, ended) = close_for(&srv, "41", bytes).await;
        assert_eq!(code, Some(1007), "{name}");
        assert!(ended, "{name}: the connection ends");
    }
    srv.wait_for_connections(0).await;
    let metrics = send(http().get(srv.url("/metrics")), None).await.body;
    for line in [
        format!(r#"pushgate_disconnects_total{{reason="protocol_error"}} {count}"#),
        r#"pushgate_disconnects_total{reason="invalid_text"} 2"#.to_owned(),
    ] {
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    // An invalid UTF-8 sequence in a binary frame is just bytes (an Engine.IO binary packet
    // the session refuses outside an attachment, as a malformed packet).
    let (code, _) = close_for(&srv, "41", raw_client_frame(0x82, &[0xff])).await;
    assert_ne!(code, Some(1007));
}

/// A plain HTTP/1.1 GET of `path_and_query` on a fresh connection: (status, body).
fn raw_get(addr: SocketAddr, path_and_query: &str) -> (u16, String) {
    let mut c = Raw::connect(addr);
    assert!(c.send(
        format!("GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
            .as_bytes()
    ));
    let (head, body) = c.answer();
    (head[9..12].parse().unwrap(), body)
}

#[actix_web::test]
async fn a_get_sent_after_the_upgrade_packet_is_answered_as_after_the_upgrade() {
    let srv = start();
    let addr = srv.addr;
    // As the official Engine.IO suite does: `2probe` and `5` over the WebSocket, then at once
    // a GET on another connection, which may be served by another thread than the
    // WebSocket's. It must always get the answer after the upgrade (400), never a noop.
    let answers = blocking(move || {
        (0..30)
            .map(|_| {
                let (status, open) = raw_get(addr, "/socket.io/?EIO=4&transport=polling");
                assert_eq!(status, 200, "{open}");
                let v: Value = serde_json::from_str(&open[1..]).unwrap();
                let sid = v["sid"].as_str().unwrap().to_owned();
                let mut ws = Raw::connect(addr);
                assert!(ws.send(&handshake_request(
                    addr,
                    &format!("/socket.io/?EIO=4&transport=websocket&sid={sid}")
                )));
                let (head, _) = ws.answer();
                assert!(head.starts_with("HTTP/1.1 101"), "{head}");
                let mut frames = client_frame(1, b"2probe");
                frames.extend(client_frame(1, b"5"));
                assert!(ws.send(&frames));
                let answer = raw_get(
                    addr,
                    &format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
                );
                assert_eq!(ws.text().as_deref(), Some("3probe"));
                // The session goes on over the WebSocket.
                assert!(ws.send(&client_frame(1, b"41")));
                answer
            })
            .collect::<Vec<_>>()
    })
    .await;
    for (status, body) in answers {
        assert_eq!(status, 400, "{body}");
    }
}
