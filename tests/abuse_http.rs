//! Contract §7 against the `pushgate` binary run as a child process (so that its memory can be
//! read from `/proc`), over raw TCP on loopback: clients that pipeline thousands of requests
//! and never read their answers cost the server a small, fixed amount each while an ordinary
//! client beside them keeps getting its pushes in time, and an API POST that names
//! `Upgrade: websocket` is handled as the POST it is.
//!
//! The child is the harness's [`ServerProcess`](common::ServerProcess): isolated from the
//! machine, its log drained by a thread (a full pipe would stall it).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{ServerProcess, API_KEY, SECRET};
use pushgate::auth::{mint, TokenClaims};
use pushgate::config::JwtConfig;
use pushgate::transport::wire_frames::put_masked_frame;

/// The child's tokens, signed with the harness's secret.
fn token(sub: &str) -> String {
    let jwt = JwtConfig {
        secret: SECRET.into(),
        old_secret: None,
        issuer: Some("cloudphone-platform".into()),
        audience: Some("cloudphone-users".into()),
    };
    mint(
        SECRET,
        &TokenClaims::new(&jwt, sub, false, Duration::from_secs(3600)),
    )
}

/// A connected Socket.IO client over a raw WebSocket: it answers pings and passes every
/// other text frame on, with the time it arrived, from a thread of its own.
struct Listener {
    frames: mpsc::Receiver<(Instant, String)>,
}

impl Listener {
    fn connect(server: &ServerProcess, user: &str) -> Listener {
        let mut tcp = TcpStream::connect(server.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        tcp.set_nodelay(true).unwrap();
        write!(
            tcp,
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {}\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            server.addr
        )
        .unwrap();
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            fill(&mut tcp, &mut buf).expect("the handshake's answer");
        };
        assert!(buf.starts_with(b"HTTP/1.1 101"), "{buf:?}");
        buf.drain(..head_end);
        let (tx, frames) = mpsc::channel();
        let mut writer = tcp.try_clone().unwrap();
        let connect = format!(r#"40{{"token":"{}"}}"#, token(user));
        std::thread::spawn(move || {
            while let Some(text) = next_text(&mut tcp, &mut buf) {
                let reply = match text.as_str() {
                    "2" => "3",
                    t if t.starts_with("0{") => connect.as_str(),
                    _ => {
                        let _ = tx.send((Instant::now(), text));
                        continue;
                    }
                };
                if writer.write_all(&client_frame(reply.as_bytes())).is_err() {
                    return;
                }
            }
        });
        let listener = Listener { frames };
        let connected = listener.next().expect("the CONNECT's answer").1;
        assert!(connected.starts_with("40{\"sid\""), "{connected}");
        let welcome = listener.next().expect("welcome").1;
        assert!(welcome.starts_with("42[\"welcome\""), "{welcome}");
        listener
    }

    /// The next text frame (not a ping), waiting at most 30 s.
    fn next(&self) -> Option<(Instant, String)> {
        // Generous: this bounds a hang, it measures nothing (the latency is printed).
        self.frames.recv_timeout(Duration::from_secs(30)).ok()
    }
}

/// Read more of `tcp` into `buf`; `None` on EOF, error or timeout.
fn fill(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    match tcp.read(&mut chunk) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

/// The next server text frame from `tcp` (`buf` holds what was read already); `None` at the
/// end of the connection or at any other frame.
fn next_text(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if buf.len() >= 2 {
            let (len, start) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                127 if buf.len() >= 10 => (
                    u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                126 | 127 => (usize::MAX, 0),
                n => (n as usize, 2),
            };
            if len != usize::MAX && buf.len() >= start + len {
                let opcode = buf[0] & 0x0f;
                let payload = buf[start..start + len].to_vec();
                buf.drain(..start + len);
                return (opcode == 1).then(|| String::from_utf8(payload).unwrap());
            }
        }
        fill(tcp, buf)?;
    }
}

/// A masked client text frame.
fn client_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = BytesMut::new();
    put_masked_frame(&mut f, 1, payload, [0x12, 0x34, 0x56, 0x78]);
    f.to_vec()
}

/// Send `request` (head and body, in writes split at `split`, `pause` apart) on a fresh
/// connection; returns the answer's status and body, read to the end of the connection or of
/// its `Content-Length`.
fn http_request(addr: SocketAddr, request: &[u8], split: usize, pause: Duration) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(&request[..split]).unwrap();
    std::thread::sleep(pause);
    tcp.write_all(&request[split..]).unwrap();
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|n| n.trim().parse::<usize>().unwrap());
            if length.is_some_and(|n| buf.len() >= end + 4 + n) {
                let status = head[9..12].parse().unwrap();
                let body = String::from_utf8_lossy(&buf[end + 4..]).into_owned();
                return (status, body);
            }
        }
        fill(&mut tcp, &mut buf).expect("a whole answer");
    }
}

/// An API push of `body` to `user`, with `extra` headers.
fn push_request(addr: SocketAddr, user: &str, body: &str, extra: &str) -> Vec<u8> {
    format!(
        "POST /api/v1/users/{user}/notifications HTTP/1.1\r\nHost: {addr}\r\n\
         X-API-Key: {API_KEY}\r\nContent-Type: application/json\r\n{extra}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Headers that make actix-http take a request for a WebSocket upgrade.
const UPGRADE_HEADERS: &str = "Connection: Upgrade\r\nUpgrade: websocket\r\n\
     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[test]
fn an_api_post_naming_upgrade_is_handled_as_a_post() {
    let server = ServerProcess::start(&[]);
    let listener = Listener::connect(&server, "7");
    // The body with the head in one write, and after it in a second one.
    for (n, pause) in [Duration::ZERO, Duration::from_millis(300)]
        .into_iter()
        .enumerate()
    {
        let body = format!(r#"{{"n":{n}}}"#);
        let request = push_request(server.addr, "7", &body, UPGRADE_HEADERS);
        let split = request.len() - body.len();
        let (status, answer) = http_request(server.addr, &request, split, pause);
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer, r#"{"clients":1}"#);
        let (_, push) = listener.next().expect("the push");
        assert_eq!(push, format!(r#"42["notification",{body}]"#));
    }
    // A body over the limit (1 MiB by default) is refused as any. (One byte over it: the
    // server reads no more than that, and a close with unread bytes would reset the
    // connection before its answer is read here.)
    let big = format!(r#"{{"x":"{}"}}"#, "y".repeat(1_048_577 - 8));
    assert_eq!(big.len(), 1_048_577);
    let request = push_request(server.addr, "7", &big, UPGRADE_HEADERS);
    let (status, _) = http_request(server.addr, &request, request.len(), Duration::ZERO);
    assert_eq!(status, 413);
}

/// Pipelined requests one attacking connection writes, and never reads the answers of.
const PIPELINED: usize = 5_000;
/// Attacking connections.
const ATTACKERS: usize = 50;

#[test]
fn clients_that_pipeline_and_never_read_cost_a_fixed_amount_each() {
    let server = ServerProcess::start(&[]);
    let listener = Listener::connect(&server, "8");
    let before = server.memory_kib("VmRSS") * 1024;
    let stop = Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|i| {
            let path = if i % 2 == 0 { "/metrics" } else { "/health" };
            let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
            let all = request.repeat(PIPELINED).into_bytes();
            let (addr, stop) = (server.addr, stop.clone());
            std::thread::spawn(move || {
                let mut tcp = TcpStream::connect(addr).unwrap();
                tcp.set_write_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let mut written = 0;
                // Write all of it, as fast as the server takes it; never read.
                while written < all.len() && !stop.load(Ordering::Relaxed) {
                    match tcp.write(&all[written..]) {
                        Ok(n) => written += n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break,
                    }
                }
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                tcp
            })
        })
        .collect();
    // Meanwhile, pushes to the ordinary client, one every 50 ms for 4 s, each on a connection
    // of its own.
    let mut latencies = Vec::new();
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let body = format!(r#"{{"seq":{n}}}"#);
        let sent = Instant::now();
        let request = push_request(server.addr, "8", &body, "");
        let (status, answer) = http_request(server.addr, &request, request.len(), Duration::ZERO);
        assert_eq!(status, 202, "{answer}");
        let (arrived, push) = listener.next().expect("every push arrives");
        assert_eq!(push, format!(r#"42["notification",{body}]"#));
        latencies.push(arrived - sent);
        n += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let peak = server.memory_kib("VmHWM") * 1024;
    stop.store(true, Ordering::Relaxed);
    let connections: Vec<TcpStream> = attackers.into_iter().map(|t| t.join().unwrap()).collect();
    drop(connections);
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let growth = peak.saturating_sub(before);
    println!(
        "{n} pushes beside {ATTACKERS} attackers: p99 {p99:?}, max {:?}; RSS {} MB before, \
         peak {} MB (+{} MB)",
        latencies.last().unwrap(),
        before >> 20,
        peak >> 20,
        growth >> 20
    );
    // Unbounded, 50 such clients cost well over 600 MB; bounded, a few hundred KiB each.
    assert!(
        growth < 100 << 20,
        "RSS grew by {} MB for {ATTACKERS} clients that do not read",
        growth >> 20
    );
}
