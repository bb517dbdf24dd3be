//! Pushers: stamped pushes at a fixed rate through the HTTP push API (raw HTTP/1.1 keep-alive
//! over a few TCP connections) or published to RabbitMQ (lapin).
//!
//! Push `k` is due at `start + k / rate` (open loop). Each push is stamped when it is really
//! sent; when the pusher falls behind its schedule the run says so (`late`), so a saturated
//! pusher is never mistaken for a fast server. HTTP pushes also time each request from its
//! write to its `2xx` answer (`accept_latency`: in cluster mode the `202` waits for the push to
//! be confirmed in the cluster's log).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::hist::{new_hist, record, summary, Hist};
use crate::stamp;

/// Where push `k` goes, and with which sequence number.
#[derive(Debug, Clone)]
pub enum Route {
    /// Every push to one room (`message` event): seq = k.
    Room(String),
    /// Every push to every client (`POST /api/v1/broadcast`, `notification` event): seq = k.
    Broadcast,
    /// Push k to user `<prefix><k % users>`: seq = k / users.
    Users {
        /// User id prefix.
        prefix: String,
        /// Number of users.
        users: usize,
    },
}

impl Route {
    /// (user index, seq) of push `k`; user index 0 for a room.
    pub fn target(&self, k: u64) -> (usize, u64) {
        match self {
            Route::Room(_) | Route::Broadcast => (0, k),
            Route::Users { users, .. } => ((k % *users as u64) as usize, k / *users as u64),
        }
    }
}

/// How many pushes, how fast.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Pushes per second.
    pub rate: f64,
    /// Total pushes.
    pub total: u64,
}

impl Schedule {
    /// `rate` pushes per second for `secs`.
    pub fn new(rate: f64, secs: f64) -> Self {
        Schedule {
            rate,
            total: (rate * secs).round().max(1.0) as u64,
        }
    }

    fn due(&self, start: Instant, k: u64) -> Instant {
        start + Duration::from_secs_f64(k as f64 / self.rate)
    }
}

/// What the pusher did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushReport {
    /// Pushes sent.
    pub sent: u64,
    /// Pushes the server or broker accepted.
    pub accepted: u64,
    /// Pushes refused or lost on the way to the server (their indices are in `failed_k`).
    pub failed: u64,
    /// `k` of the failed pushes (at most 1000 kept).
    #[serde(skip)]
    pub failed_k: Vec<u64>,
    /// Pushes sent more than 10 ms after they were due.
    pub late: u64,
    /// Largest delay behind schedule, ms.
    pub max_behind_ms: f64,
    /// Seconds from the first to the last send.
    pub secs: f64,
    /// Pushes per second actually sent.
    pub achieved_rate: f64,
    /// When the first push was sent (µs since the epoch).
    #[serde(skip)]
    pub first_us: u64,
    /// One failure, for the log.
    pub first_error: Option<String>,
    /// HTTP pushes only: time from writing a request to reading its `2xx` answer, as
    /// `{count, p50_ms, ...}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_latency: Option<serde_json::Value>,
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    accepted: AtomicU64,
    late: AtomicU64,
    max_behind_us: AtomicU64,
    failed: Mutex<(Vec<u64>, Option<String>)>,
    accept_latency: Mutex<Option<Hist>>,
}

impl Tally {
    fn on_send(&self, due: Instant) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let behind = Instant::now().saturating_duration_since(due);
        if behind > Duration::from_millis(10) {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
        self.max_behind_us
            .fetch_max(behind.as_micros() as u64, Ordering::Relaxed);
    }

    fn on_accept_after(&self, sent: Instant) {
        let us = sent.elapsed().as_micros() as u64;
        let mut h = self
            .accept_latency
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        record(h.get_or_insert_with(new_hist), us);
    }

    fn on_fail(&self, k: u64, why: String) {
        let mut f = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if f.0.len() < 1000 {
            f.0.push(k);
        }
        f.1.get_or_insert(why);
    }

    fn report(self, start: Instant, first_us: u64) -> PushReport {
        let secs = start.elapsed().as_secs_f64();
        let sent = self.sent.into_inner();
        let (failed_k, first_error) = self.failed.into_inner().unwrap_or_else(|p| p.into_inner());
        let accepted = self.accepted.into_inner();
        let accept_latency = self
            .accept_latency
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .map(|h| summary(&h));
        PushReport {
            sent,
            accepted,
            failed: sent - accepted,
            failed_k,
            late: self.late.into_inner(),
            max_behind_ms: self.max_behind_us.into_inner() as f64 / 1000.0,
            secs,
            achieved_rate: if secs > 0.0 { sent as f64 / secs } else { 0.0 },
            first_us,
            first_error,
            accept_latency,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// The push API of one server.
#[derive(Debug, Clone)]
pub struct HttpApi {
    /// Server address.
    pub addr: SocketAddr,
    /// Several servers (the nodes of a cluster): connection j goes to `servers[j % len]`;
    /// empty: every connection goes to `addr`.
    pub servers: Vec<SocketAddr>,
    /// `X-API-Key`.
    pub api_key: String,
}

/// Percent-encode a path segment (room names may hold `:` and `@`).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl HttpApi {
    /// The server of connection `j`.
    fn server(&self, j: usize) -> SocketAddr {
        if self.servers.is_empty() {
            self.addr
        } else {
            self.servers[j % self.servers.len()]
        }
    }

    fn request(&self, route: &Route, k: u64, t_us: u64) -> Vec<u8> {
        let (user, seq) = route.target(k);
        let (path, body) = match route {
            Route::Room(room) => (
                format!("/api/v1/rooms/{}/messages", encode_segment(room)),
                stamp::http_body(t_us, seq),
            ),
            Route::Broadcast => ("/api/v1/broadcast".to_owned(), stamp::http_body(t_us, seq)),
            Route::Users { prefix, .. } => (
                format!(
                    "/api/v1/users/{}/notifications",
                    encode_segment(&format!("{prefix}{user}"))
                ),
                format!(
                    "{{\"type\":\"bench\",\"data\":{{{}}}}}",
                    stamp::fields(t_us, seq)
                ),
            ),
        };
        format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nX-API-Key: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            self.api_key,
            body.len()
        )
        .into_bytes()
    }
}

/// One keep-alive connection to the API.
struct HttpConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Status code and body of a response.
pub fn parse_response(buf: &[u8]) -> Option<(u16, usize, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let len = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    Some((status, head_end, len))
}

impl HttpConn {
    async fn open(addr: SocketAddr) -> std::io::Result<HttpConn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(HttpConn {
            stream,
            buf: Vec::with_capacity(1024),
        })
    }

    /// Send one request, read its response: the status code.
    async fn call(&mut self, request: &[u8]) -> std::io::Result<u16> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        loop {
            if let Some((status, head, len)) = parse_response(&self.buf) {
                if self.buf.len() >= head + len {
                    self.buf.drain(..head + len);
                    return Ok(status);
                }
            }
            let mut chunk = [0u8; 2048];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Push on `conns` keep-alive connections, sharing one schedule.
pub async fn push_http(api: HttpApi, route: Route, schedule: Schedule, conns: usize) -> PushReport {
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let first_us = stamp::now_us();
    let tasks: Vec<_> = (0..conns.max(1))
        .map(|j| {
            let (api, route, tally, next) =
                (api.clone(), route.clone(), tally.clone(), next.clone());
            let server = api.server(j);
            tokio::spawn(async move {
                let mut conn: Option<HttpConn> = None;
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= schedule.total {
                        break;
                    }
                    let due = schedule.due(start, k);
                    tokio::time::sleep_until(due.into()).await;
                    if conn.is_none() {
                        match HttpConn::open(server).await {
                            Ok(c) => conn = Some(c),
                            Err(e) => {
                                tally.sent.fetch_add(1, Ordering::Relaxed);
                                tally.on_fail(k, format!("connect: {e}"));
                                continue;
                            }
                        }
                    }
                    let c = conn.as_mut().expect("opened above");
                    let request = api.request(&route, k, stamp::now_us());
                    tally.on_send(due);
                    let sent = Instant::now();
                    match c.call(&request).await {
                        Ok(status) if (200..300).contains(&status) => {
                            tally.on_accept_after(sent);
                            tally.accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(status) => tally.on_fail(k, format!("HTTP {status}")),
                        Err(e) => {
                            tally.on_fail(k, format!("HTTP: {e}"));
                            conn = None;
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    Arc::try_unwrap(tally)
        .unwrap_or_default()
        .report(start, first_us)
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ

/// The broker and exchange publishers use.
#[derive(Debug, Clone)]
pub struct Amqp {
    /// `amqp://...`
    pub url: String,
    /// Topic exchange.
    pub exchange: String,
    /// Persistent messages (delivery mode 2), as the real publishers send.
    pub persistent: bool,
}

/// At most this many publishes go out together (a publisher far behind its schedule catches
/// up in batches of this size).
const MAX_PUBLISH_BATCH: usize = 64;

/// Publish `quota.updated` events: to `user:<prefix><k % users>` for [`Route::Users`], or to
/// a user nobody is connected as for [`Route::Room`] (the server copies `quota.updated` to the
/// `admin` room as `message`, so admins in that room all receive it).
pub async fn push_amqp(amqp: Amqp, route: Route, schedule: Schedule) -> PushReport {
    let tally = Tally::default();
    let connection = match Connection::connect(&amqp.url, ConnectionProperties::default()).await {
        Ok(c) => c,
        Err(e) => {
            tally.on_fail(0, format!("amqp connect: {e}"));
            return tally.report(Instant::now(), stamp::now_us());
        }
    };
    let channel = match connection.create_channel().await {
        Ok(c) => c,
        Err(e) => {
            tally.on_fail(0, format!("amqp channel: {e}"));
            return tally.report(Instant::now(), stamp::now_us());
        }
    };
    let declared = channel
        .exchange_declare(
            amqp.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    if let Err(e) = declared {
        tally.on_fail(0, format!("exchange declare: {e}"));
        return tally.report(Instant::now(), stamp::now_us());
    }
    let properties = if amqp.persistent {
        BasicProperties::default().with_delivery_mode(2)
    } else {
        BasicProperties::default()
    };
    // Each publish of a batch borrows these (its future must not own the channel).
    let (channel, exchange, properties) = (&channel, &amqp.exchange, &properties);
    let start = Instant::now();
    let first_us = stamp::now_us();
    let mut k = 0;
    while k < schedule.total {
        tokio::time::sleep_until(schedule.due(start, k).into()).await;
        // Every publish due by now goes out in one go: lapin queues each one's frames when it
        // is first polled (in this order), and the I/O thread writes them together. Awaiting
        // each write before the next publish cost this process ~45 µs of CPU per event in
        // thread hand-offs, on the cores the servers share.
        let now = Instant::now();
        let mut batch = Vec::new();
        while k < schedule.total && batch.len() < MAX_PUBLISH_BATCH {
            let due = schedule.due(start, k);
            if due > now && !batch.is_empty() {
                break;
            }
            let (user, seq) = route.target(k);
            let user = match &route {
                Route::Room(_) | Route::Broadcast => "bench-nobody".to_owned(),
                Route::Users { prefix, .. } => format!("{prefix}{user}"),
            };
            let body = stamp::quota_event(&user, stamp::now_us(), seq);
            tally.on_send(due);
            batch.push(async move {
                let published = channel
                    .basic_publish(
                        exchange.as_str().into(),
                        "quota.updated".into(),
                        BasicPublishOptions::default(),
                        body.as_bytes(),
                        properties.clone(),
                    )
                    .await;
                (k, published)
            });
            k += 1;
        }
        for (k, published) in futures::future::join_all(batch).await {
            match published {
                Ok(_) => {
                    tally.accepted.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tally.on_fail(k, format!("publish: {e}")),
            }
        }
    }
    let report = tally.report(start, first_us);
    let _ = connection.close(200, "bye".into()).await;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_requests() {
        let users = Route::Users {
            prefix: "u".into(),
            users: 3,
        };
        assert_eq!(users.target(7), (1, 2));
        assert_eq!(Route::Room("r".into()).target(7), (0, 7));
        let mut api = HttpApi {
            addr: "127.0.0.1:9".parse().unwrap(),
            servers: Vec::new(),
            api_key: "k".into(),
        };
        let req = String::from_utf8(api.request(&Route::Room("user:1".into()), 4, 99)).unwrap();
        assert!(req.starts_with("POST /api/v1/rooms/user%3A1/messages HTTP/1.1\r\n"));
        let body = req.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(stamp::parse(body), Some((99, 4)));
        assert!(req.contains(&format!("Content-Length: {}\r\n", body.len())));
        let req = String::from_utf8(api.request(&Route::Broadcast, 3, 98)).unwrap();
        assert!(req.starts_with("POST /api/v1/broadcast HTTP/1.1\r\n"));
        assert_eq!(
            stamp::parse(req.split("\r\n\r\n").nth(1).unwrap()),
            Some((98, 3))
        );
        assert_eq!(Route::Broadcast.target(5), (0, 5));
        assert_eq!(api.server(3), api.addr);
        api.servers = vec![
            "127.0.0.1:7".parse().unwrap(),
            "127.0.0.1:8".parse().unwrap(),
        ];
        assert_eq!((api.server(2).port(), api.server(3).port()), (7, 8));
    }

    #[test]
    fn parses_responses() {
        let r = b"HTTP/1.1 202 Accepted\r\ncontent-length: 13\r\n\r\n{\"clients\":2}";
        assert_eq!(parse_response(r), Some((202, 45, 13)));
        assert_eq!(parse_response(b"HTTP/1.1 202 Acc"), None);
        assert_eq!(Schedule::new(100.0, 2.5).total, 250);
    }
}
