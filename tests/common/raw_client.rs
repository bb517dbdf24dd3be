//! A raw Engine.IO client over a real WebSocket: frames in and out, the handshake, pings.

use std::time::Duration;

use actix_web::web::Bytes;
use awc::ws;
use futures::{SinkExt, StreamExt};

use super::TestServer;

/// A raw Engine.IO client over WebSocket.
pub struct RawClient {
    framed: actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
}

/// What a raw client read.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// A close frame with its code.
    Close(Option<u16>),
}

impl RawClient {
    /// Open a WebSocket to `url` with extra headers.
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<Self, String> {
        let mut req = awc::Client::new().ws(url).max_frame_size(4 * 1024 * 1024);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        match req.connect().await {
            Ok((_resp, framed)) => Ok(RawClient { framed }),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Send a text frame.
    pub async fn send(&mut self, text: &str) {
        self.framed
            .send(ws::Message::Text(text.to_owned().into()))
            .await
            .expect("send text");
    }

    /// Send a binary frame.
    pub async fn send_binary(&mut self, data: Vec<u8>) {
        self.framed
            .send(ws::Message::Binary(Bytes::from(data)))
            .await
            .expect("send binary");
    }

    /// The next frame (answering WebSocket pings), or None on end/timeout.
    pub async fn next(&mut self, timeout: Duration) -> Option<Frame> {
        loop {
            let item = actix_rt::time::timeout(timeout, self.framed.next())
                .await
                .ok()??;
            match item.ok()? {
                ws::Frame::Text(b) => {
                    return Some(Frame::Text(String::from_utf8(b.to_vec()).expect("utf8")))
                }
                ws::Frame::Binary(b) => return Some(Frame::Binary(b.to_vec())),
                ws::Frame::Close(reason) => {
                    return Some(Frame::Close(reason.map(|r| u16::from(r.code))))
                }
                ws::Frame::Ping(p) => {
                    let _ = self.framed.send(ws::Message::Pong(p)).await;
                }
                _ => {}
            }
        }
    }

    /// The next text frame that is not an Engine.IO ping (pings are answered).
    pub async fn next_text(&mut self) -> Option<String> {
        loop {
            match self.next(Duration::from_secs(5)).await? {
                Frame::Text(t) if t == "2" => self.send("3").await,
                Frame::Text(t) => return Some(t),
                _ => return None,
            }
        }
    }

    /// Open a session and connect to `/` with `auth` (the CONNECT payload); returns the
    /// CONNECT answer (`40{...}` or `44{...}`).
    pub async fn handshake(&mut self, auth: Option<&str>) -> String {
        let open = self.next_text().await.expect("open packet");
        assert!(open.starts_with("0{"), "open packet, got {open}");
        self.send(&format!("40{}", auth.unwrap_or(""))).await;
        self.next_text().await.expect("connect answer")
    }

    /// Connect as `token`, expecting success; consumes the welcome event.
    pub async fn connected(server: &TestServer, token: &str) -> Self {
        let mut c = RawClient::connect(&server.ws_url(""), &[]).await.unwrap();
        let answer = c
            .handshake(Some(&format!(r#"{{"token":"{token}"}}"#)))
            .await;
        assert!(answer.starts_with("40{\"sid\""), "{answer}");
        let welcome = c.next_text().await.unwrap();
        assert!(welcome.starts_with("42[\"welcome\""), "{welcome}");
        c
    }

    /// Answer pings for `duration`; returns any other frames read meanwhile.
    pub async fn idle(&mut self, duration: std::time::Duration) -> Vec<Frame> {
        let deadline = std::time::Instant::now() + duration;
        let mut other = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.next(left).await {
                Some(Frame::Text(t)) if t == "2" => self.send("3").await,
                Some(f) => other.push(f),
                None => break,
            }
        }
        other
    }

    /// Read frames until the server's close, which must carry `code`; pings before it are
    /// read and left unanswered, anything else fails the test.
    pub async fn expect_close(&mut self, code: u16) {
        loop {
            match self.next(Duration::from_secs(2)).await {
                Some(Frame::Text(t)) if t == "2" => {}
                Some(Frame::Close(got)) => {
                    assert_eq!(got, Some(code));
                    return;
                }
                other => panic!("expected a close with {code}, got {other:?}"),
            }
        }
    }

    /// The next text frame that is not an Engine.IO ping (pings are answered), within 2 s;
    /// anything else fails the test.
    pub async fn expect_text(&mut self) -> String {
        loop {
            match self.next(Duration::from_secs(2)).await {
                Some(Frame::Text(t)) if t == "2" => self.send("3").await,
                Some(Frame::Text(t)) => return t,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame, within `timeout`, must be a close (with any code).
    pub async fn expect_closed(&mut self, timeout: Duration) {
        match self.next(timeout).await {
            Some(Frame::Close(_)) => {}
            other => panic!("the WebSocket got {other:?} instead of a close"),
        }
    }

    /// Send the upgrade probe `2probe` and expect `3probe` back within 1 s.
    pub async fn probe(&mut self) {
        self.send("2probe").await;
        assert_eq!(
            self.next(Duration::from_secs(1)).await,
            Some(Frame::Text("3probe".into()))
        );
    }

    /// Send a raw close frame.
    pub async fn close(&mut self) {
        let _ = self.framed.send(ws::Message::Close(None)).await;
    }

    /// The next event of the Admin UI's `/admin` namespace, as its JSON array (Engine.IO pings
    /// answered on the way).
    pub async fn next_admin_event(&mut self) -> serde_json::Value {
        let text = loop {
            // Longer than the stats' period: the next one always comes within it.
            match self.next(Duration::from_secs(5)).await {
                Some(Frame::Text(t)) if t == "2" => self.send("3").await,
                Some(Frame::Text(t)) => break t,
                other => panic!("expected an /admin event, got {other:?}"),
            }
        };
        let array = text
            .strip_prefix("42/admin,")
            .unwrap_or_else(|| panic!("an /admin event, got {text}"));
        serde_json::from_str(array).expect("JSON")
    }
}
