//! A Server-Sent Events client over a plain TCP connection: the request as written, the
//! answer's head, then the chunked body read as it comes and parsed as an SSE client does
//! (comments, `retry:`, events with their `event`, joined `data` lines and `id`).
//!
//! A thread reads the socket, so that the test's own thread (where the server's actors run)
//! never blocks; what it reads is taken with [`SseClient::next`].

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::time::{Duration, Instant};

/// One thing an SSE stream carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A comment line (`: <text>`), without its colon and space.
    Comment(String),
    /// A `retry:` field, in milliseconds.
    Retry(u64),
    /// A dispatched event.
    Event(SseEvent),
    /// The body ended (the server closed the stream).
    End,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// Its `event:` (`message` when it had none).
    pub event: String,
    /// Its `data:` lines joined with `\n`.
    pub data: String,
    /// Its `data:` lines as sent.
    pub data_lines: usize,
    /// Its `id:`, when it had one (possibly empty).
    pub id: Option<String>,
}

impl SseEvent {
    /// The data as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("JSON data")
    }
}

/// An open stream.
pub struct SseClient {
    /// The answer's status.
    pub status: u16,
    /// The answer's head lines after the status, lowercased names: `name: value`.
    pub headers: Vec<(String, String)>,
    items: Receiver<SseItem>,
    socket: TcpStream,
}

impl SseClient {
    /// `GET path_and_query` with extra headers; reads the answer's head (on a blocking
    /// thread: the server may need the test's thread to answer).
    pub async fn open(addr: SocketAddr, path_and_query: &str, headers: &[(&str, &str)]) -> Self {
        let path_and_query = path_and_query.to_owned();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        actix_rt::task::spawn_blocking(move || Self::open_blocking(addr, &path_and_query, &headers))
            .await
            .expect("the stream's head")
    }

    fn open_blocking(addr: SocketAddr, path_and_query: &str, headers: &[(String, String)]) -> Self {
        let mut socket = TcpStream::connect(addr).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut request = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n"
        );
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        socket.write_all(request.as_bytes()).expect("send");
        let mut reader = BufReader::new(socket.try_clone().unwrap());
        let mut status_line = String::new();
        reader.read_line(&mut status_line).expect("status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status");
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("a header line");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').expect("name: value");
            head.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        let chunked = head
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let (sender, items) = channel();
        std::thread::spawn(move || {
            let mut parser = Parser::default();
            let mut body = ChunkedBody {
                reader,
                chunked,
                left: 0,
            };
            let mut buf = [0u8; 16 * 1024];
            loop {
                match body.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        for item in parser.feed(&buf[..n]) {
                            if sender.send(item).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            let _ = sender.send(SseItem::End);
        });
        SseClient {
            status,
            headers: head,
            items,
            socket,
        }
    }

    /// A head value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next item within `timeout`; `None` when none came.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseItem> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.items.try_recv() {
                Ok(item) => return Some(item),
                Err(TryRecvError::Disconnected) => return Some(SseItem::End),
                Err(TryRecvError::Empty) if Instant::now() >= deadline => return None,
                Err(TryRecvError::Empty) => {
                    actix_rt::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// The next event within `timeout`, skipping comments and `retry:`; `None` when the stream
    /// ended or none came.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await? {
                SseItem::Event(event) => return Some(event),
                SseItem::End => return None,
                _ => {}
            }
        }
    }

    /// Whether no event comes within `wait` (comments aside).
    pub async fn no_event_within(&mut self, wait: Duration) -> bool {
        self.next_event(wait).await.is_none()
    }

    /// Close the connection.
    pub fn close(self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

/// An HTTP/1.1 body, chunked or read to its end.
struct ChunkedBody {
    reader: BufReader<TcpStream>,
    chunked: bool,
    /// Bytes left in the current chunk.
    left: usize,
}

impl Read for ChunkedBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.chunked {
            return self.reader.read(buf);
        }
        if self.left == 0 {
            let mut size = String::new();
            if self.reader.read_line(&mut size)? == 0 {
                return Ok(0);
            }
            if size.trim().is_empty() {
                // The CRLF after the previous chunk.
                size.clear();
                self.reader.read_line(&mut size)?;
            }
            self.left = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if self.left == 0 {
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left);
        let n = self.reader.read(&mut buf[..want])?;
        self.left -= n;
        Ok(n)
    }
}

/// The SSE parser (the spec's "interpret the event stream"): lines end at CRLF, LF or CR.
#[derive(Default)]
struct Parser {
    pending: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
    id: Option<String>,
}

impl Parser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<SseItem> {
        self.pending.extend_from_slice(bytes);
        let mut items = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n' || b == b'\r') {
            // A CR at the very end may be the first half of a CRLF: wait for more.
            if self.pending[end] == b'\r' && end + 1 == self.pending.len() {
                break;
            }
            let skip = if self.pending[end] == b'\r' && self.pending.get(end + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line = String::from_utf8(self.pending[..end].to_vec()).expect("UTF-8");
            self.pending.drain(..end + skip);
            items.extend(self.line(&line));
        }
        items
    }

    fn line(&mut self, line: &str) -> Option<SseItem> {
        if line.is_empty() {
            if self.data.is_empty() {
                self.event = None;
                self.id = None;
                return None;
            }
            let data = std::mem::take(&mut self.data);
            return Some(SseItem::Event(SseEvent {
                event: self.event.take().unwrap_or_else(|| "message".into()),
                data_lines: data.len(),
                data: data.join("\n"),
                id: self.id.take(),
            }));
        }
        if let Some(comment) = line.strip_prefix(':') {
            return Some(SseItem::Comment(comment.trim_start().to_owned()));
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            "id" => self.id = Some(value.to_owned()),
            "retry" => return value.parse().ok().map(SseItem::Retry),
            _ => {}
        }
        None
    }
}
