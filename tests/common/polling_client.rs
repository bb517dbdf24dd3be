//! A raw Engine.IO client over HTTP long-polling: one session, its GETs and POSTs.

use std::time::Duration;

use super::{http, send, Answer, RawClient, TestServer};

/// The Engine.IO long-polling record separator.
pub const RS: char = '\x1e';

/// Split a long-polling payload into its packets.
pub fn split_payload(body: &str) -> Vec<String> {
    body.split(RS).map(str::to_owned).collect()
}

/// A raw Engine.IO client over HTTP long-polling: one session, its GETs and POSTs.
pub struct PollingClient {
    /// `http://127.0.0.1:<port><path>?EIO=4&transport=polling&sid=<sid>`.
    pub url: String,
    /// The Engine.IO session id.
    pub sid: String,
    /// The open packet's JSON.
    pub handshake: serde_json::Value,
    /// Packets read by [`PollingClient::next_packet`] but not yet returned.
    pending: std::collections::VecDeque<String>,
}

impl PollingClient {
    /// Open a session at `path` (`/socket.io/`, `/ws/`...) with `extra` query; panics unless
    /// the answer is `200` with an open packet.
    pub async fn open_at(server: &TestServer, path: &str, extra: &str) -> Self {
        let answer = send(http().get(server.polling_url(path, extra)), None).await;
        assert_eq!(answer.status.as_u16(), 200, "handshake: {}", answer.body);
        assert!(
            answer.body.starts_with("0{"),
            "open packet: {}",
            answer.body
        );
        let handshake: serde_json::Value = serde_json::from_str(&answer.body[1..]).unwrap();
        let sid = handshake["sid"].as_str().expect("sid").to_owned();
        PollingClient {
            url: server.polling_url(path, &format!("&sid={sid}")),
            sid,
            handshake,
            pending: Default::default(),
        }
    }

    /// Open a session at `/socket.io/`.
    pub async fn open(server: &TestServer) -> Self {
        Self::open_at(server, "/socket.io/", "").await
    }

    /// One GET (a poll).
    pub async fn get(&self) -> Answer {
        send(http().get(&self.url), None).await
    }

    /// One POST of `body`.
    pub async fn post(&self, body: impl Into<Vec<u8>>) -> Answer {
        send(
            http()
                .post(&self.url)
                .insert_header(("Content-Type", "text/plain;charset=UTF-8")),
            Some(body.into()),
        )
        .await
    }

    /// POST `body`, expecting `200 ok`.
    pub async fn send(&self, body: &str) {
        let answer = self.post(body).await;
        assert_eq!(
            (answer.status.as_u16(), answer.body.as_str()),
            (200, "ok"),
            "POST {body:?}"
        );
    }

    /// A GET is refused with 400 and Engine.IO code 1 (unknown sid): the session is gone.
    pub async fn expect_gone(&self) {
        let a = self.get().await;
        assert_eq!(
            (a.status.as_u16(), a.eio_code()),
            (400, Some(1)),
            "GET: {}",
            a.body
        );
    }

    /// One GET, expecting 200; its packets.
    pub async fn poll(&self) -> Vec<String> {
        let answer = self.get().await;
        assert_eq!(answer.status.as_u16(), 200, "GET: {}", answer.body);
        split_payload(&answer.body)
    }

    /// The next packet that is not a ping (pings are answered with a POST `3` as they come),
    /// polling as needed; `None` once a GET is refused.
    pub async fn next_packet(&mut self) -> Option<String> {
        loop {
            if let Some(p) = self.pending.pop_front() {
                return Some(p);
            }
            let answer = self.get().await;
            if answer.status.as_u16() != 200 {
                return None;
            }
            let packets = split_payload(&answer.body);
            if packets.iter().any(|p| p == "2") {
                self.send("3").await;
            }
            self.pending
                .extend(packets.into_iter().filter(|p| p != "2"));
        }
    }

    /// Emit `subscribe` for `user` with ack id 1; asserts the `subscribed` reply and the ack.
    pub async fn subscribe(&mut self, user: &str) {
        self.send(&format!(r#"421["subscribe",{{"userId":"{user}"}}]"#))
            .await;
        let reply = self.next_packet().await.expect("subscribe reply");
        assert!(reply.starts_with("42[\"subscribed\""), "{reply}");
        let ack = self.next_packet().await.expect("subscribe ack");
        assert!(ack.starts_with("431["), "{ack}");
    }

    /// Send a CONNECT to `/` with `auth`; returns the answer (`40{...}` or `44{...}`).
    pub async fn connect(&mut self, auth: Option<&str>) -> String {
        self.send(&format!("40{}", auth.unwrap_or(""))).await;
        self.next_packet().await.expect("connect answer")
    }

    /// Open a session at `path` and connect as `token`, expecting success; returns the client
    /// and the welcome packet.
    pub async fn connected_at(server: &TestServer, path: &str, token: &str) -> (Self, String) {
        let mut c = Self::open_at(server, path, "").await;
        let answer = c.connect(Some(&format!(r#"{{"token":"{token}"}}"#))).await;
        assert!(answer.starts_with("40{\"sid\""), "{answer}");
        let welcome = c.next_packet().await.expect("welcome");
        assert!(welcome.starts_with("42[\"welcome\""), "{welcome}");
        (c, welcome)
    }

    /// Open a session at `/socket.io/` and connect as `token`.
    pub async fn connected(server: &TestServer, token: &str) -> Self {
        Self::connected_at(server, "/socket.io/", token).await.0
    }

    /// The WebSocket URL that upgrades this session: same path, same sid.
    pub fn ws_url(&self) -> String {
        self.url.replacen("http://", "ws://", 1).replacen(
            "transport=polling",
            "transport=websocket",
            1,
        )
    }

    /// Open a WebSocket that claims this session's upgrade, with extra `headers` (an `Origin`,
    /// say); it is not probed yet.
    pub async fn websocket(&self, headers: &[(&str, &str)]) -> RawClient {
        RawClient::connect(&self.ws_url(), headers)
            .await
            .expect("the upgrading WebSocket opens")
    }

    /// Finish the upgrade over `ws` as engine.io-client does when no GET is waiting: the probe
    /// (`2probe`, answered `3probe`), the next GET answered with the noop `6` alone, then `5`.
    /// From then on the session's packets go over `ws`. A ping that falls due meanwhile (a
    /// slow machine can take a whole test ping interval here) is answered, as the client does.
    pub async fn complete_upgrade(&self, ws: &mut RawClient) {
        ws.probe().await;
        loop {
            let packets = self.poll().await;
            if packets == ["2"] {
                self.send("3").await;
                continue;
            }
            assert_eq!(packets, ["6"]);
            break;
        }
        ws.send("5").await;
    }

    /// Upgrade to a WebSocket opened with extra `headers`: [`PollingClient::websocket`], then
    /// [`PollingClient::complete_upgrade`].
    pub async fn upgrade(&self, headers: &[(&str, &str)]) -> RawClient {
        let mut ws = self.websocket(headers).await;
        self.complete_upgrade(&mut ws).await;
        ws
    }

    /// Poll until a ping comes and answer it, so that the next ping is a whole interval away;
    /// returns the other packets read meanwhile.
    pub async fn sync_with_ping(&self) -> Vec<String> {
        let mut other = Vec::new();
        loop {
            let packets = self.poll().await;
            let ping = packets.iter().any(|p| p == "2");
            other.extend(packets.into_iter().filter(|p| p != "2"));
            if ping {
                self.send("3").await;
                return other;
            }
        }
    }

    /// Poll for at least `duration` (GETs are never abandoned, so up to one ping interval
    /// more), answering pings; returns every other packet read meanwhile. A refused GET ends
    /// the wait early (and is reported as `"<status> <body>"`).
    pub async fn idle(&mut self, duration: Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + duration;
        let mut other: Vec<String> = self.pending.drain(..).collect();
        while std::time::Instant::now() < deadline {
            let answer = self.get().await;
            if answer.status.as_u16() != 200 {
                other.push(format!("{} {}", answer.status.as_u16(), answer.body));
                break;
            }
            for p in split_payload(&answer.body) {
                if p == "2" {
                    self.send("3").await;
                } else {
                    other.push(p);
                }
            }
        }
        other
    }
}
