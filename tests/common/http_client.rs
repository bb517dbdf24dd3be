//! Plain HTTP for the tests: a client, a whole answer read at once, and a WebSocket handshake
//! sent byte by byte for checking how an upgrade is refused.

use std::time::Duration;

use actix_web::web::Bytes;

use super::TestServer;

/// An HTTP client.
pub fn http() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish()
}

/// What an HTTP request got back.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: awc::http::StatusCode,
    /// The headers.
    pub headers: awc::http::header::HeaderMap,
    /// The body (lossy UTF-8).
    pub body: String,
}

impl Answer {
    /// Read a whole response (up to 16 MiB).
    pub async fn read<S>(mut resp: awc::ClientResponse<S>) -> Self
    where
        S: futures::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
    {
        let body = resp.body().limit(16 << 20).await.expect("read the body");
        Answer {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// The Engine.IO error code of a JSON error body (`{"code": N, "message": "..."}`).
    pub fn eio_code(&self) -> Option<i64> {
        let v: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        assert!(v["message"].is_string(), "error body {}", self.body);
        v["code"].as_i64()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The names of every `Access-Control-*` header.
    pub fn cors_headers(&self) -> Vec<String> {
        self.headers
            .keys()
            .map(|k| k.as_str().to_owned())
            .filter(|k| k.starts_with("access-control-"))
            .collect()
    }
}

/// Send `req` (with `body`, if any) and read the whole answer.
pub async fn send(req: awc::ClientRequest, body: Option<Vec<u8>>) -> Answer {
    let resp = match body {
        Some(b) => req.send_body(b).await,
        None => req.send().await,
    };
    Answer::read(resp.expect("HTTP request")).await
}

/// Send a WebSocket handshake for `path_and_query` as a browser would, with extra headers, on
/// a fresh TCP connection, and read the answer (awc rewrites the `Connection` header of plain
/// requests, so it cannot send one): for checking how an upgrade is refused. A `101` answer
/// is returned with an empty body.
pub async fn ws_handshake(
    server: &TestServer,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Answer {
    use std::io::{Read, Write};
    let mut request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        server.addr
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let addr = server.addr;
    let raw = actix_rt::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        tcp.write_all(request.as_bytes())
            .expect("send the handshake");
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n");
            if let Some(end) = head_end {
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                if head.starts_with("http/1.1 101") || raw.len() >= end + 4 + length {
                    return raw;
                }
            }
            match tcp.read(&mut buf) {
                Ok(0) | Err(_) => return raw,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .unwrap();
    let mut answer = Answer::parse(&raw);
    if answer.status == awc::http::StatusCode::SWITCHING_PROTOCOLS {
        answer.body.clear();
    }
    answer
}

impl Answer {
    /// An HTTP/1.1 answer read off a raw socket: status line, headers, then the rest as the
    /// body.
    pub fn parse(raw: &[u8]) -> Answer {
        let text = String::from_utf8_lossy(raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
        let mut lines = head.lines();
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .expect("a status line");
        let mut map = awc::http::header::HeaderMap::new();
        for line in lines {
            let (k, v) = line.split_once(':').expect("a header line");
            map.append(
                awc::http::header::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                awc::http::header::HeaderValue::from_str(v.trim()).unwrap(),
            );
        }
        Answer {
            status: awc::http::StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: body.to_owned(),
        }
    }
}
