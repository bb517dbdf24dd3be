//! One client of the `recover` scenario: it connects (admin token, its user room joined by the
//! server, one shared room joined with `join_room`), keeps the `pid` of its CONNECT reply and
//! the offset of the last push (a push's last argument), records every stamped push in a
//! [`Ledger`] per target, drops its TCP connection when told to (no Socket.IO `41`: the server
//! sees the transport close), and reconnects when told to with CONNECT auth
//! `{"token", "pid", "offset"}`, as socket.io-client does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::client::{tcp_connect, ClientError, Endpoint, Ws};
use crate::ledger::Ledger;
use crate::stamp;
use crate::ws::WsError;

/// Where the run is; clients act on each change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Connected and receiving.
    Live,
    /// Drop the connection now.
    Cut,
    /// Reconnect now.
    Reconnect,
    /// The run is over: close and report.
    Stop,
}

/// What every client shares.
pub struct ClientShared {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// Handshakes in flight at once.
    pub permits: Semaphore,
    /// Time limit of one handshake.
    pub connect_timeout: Duration,
    /// Pushes received by all clients, duplicates included (for the drain).
    pub received: AtomicU64,
}

/// Who one client is.
pub struct Identity {
    /// Index in the run (also picks the source address).
    pub index: usize,
    /// The JWT.
    pub token: String,
    /// The shared room it joins.
    pub room: String,
}

/// The ids a CONNECT reply carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionIds {
    /// Socket id.
    pub sid: String,
    /// Private session id (`None`: recovery is off on the server).
    pub pid: Option<String>,
}

/// What one client did over the run.
#[derive(Debug, Default)]
pub struct ClientRun {
    /// Pushes to its user room (`notification`).
    pub user: Ledger,
    /// Pushes to its shared room (`message`).
    pub room: Ledger,
    /// Pushes received between the reconnect's CONNECT reply and its `welcome`: the replay.
    pub replayed: u64,
    /// The first connect succeeded.
    pub connected: bool,
    /// The reconnect's CONNECT reply had the same socket id and `pid` as the first.
    pub same_ids: bool,
    /// The reconnect's `welcome` said `recovered: true` (`None`: no reconnect).
    pub recovered: Option<bool>,
    /// From the reconnect's TCP connect to its `welcome`, µs.
    pub reconnect_us: Option<u64>,
    /// When the reconnect's `welcome` arrived.
    pub welcomed_at: Option<Instant>,
    /// Pushes received (user, room) by the cut, and by the reconnect's `welcome`: where the
    /// ledgers' live, replayed and live-again receipts begin and end.
    pub marks: [(usize, usize); 2],
    /// Pushes whose offset came before the previous push's (read as `<anything>-<number>`,
    /// pushgate's form; 0 for other forms): the client then resumes from too early or too late.
    pub offsets_backwards: u64,
    /// Of those, the ones before the cut: live pushes only, no replay involved.
    pub offsets_backwards_before_cut: u64,
    /// Of those, the ones by the reconnect's `welcome` (before the cut, or in the replay).
    pub offsets_backwards_by_welcome: u64,
    /// How it went wrong, if it did (kind).
    pub error: Option<&'static str>,
    /// The first error's detail.
    pub detail: Option<String>,
}

impl ClientRun {
    fn fail(&mut self, e: ClientError) {
        self.error.get_or_insert(e.0);
        self.detail.get_or_insert(e.1);
    }
}

/// The offset of a push: its last argument, a string after the payload object
/// (`42["message",{..},"<offset>"]`).
pub fn offset_of(frame: &str) -> Option<&str> {
    let rest = frame.strip_suffix("\"]")?;
    let start = rest.rfind('"')?;
    // Our pushes' payloads are objects: the offset is a string right after one.
    rest[..start]
        .ends_with("},")
        .then(|| &rest[start + 1..])
        .filter(|o| !o.is_empty() && !o.contains('\\'))
}

/// The number after the last `-` of an offset, when it has one (pushgate's `<epoch>-<seq>`).
fn offset_number(offset: &str) -> Option<u64> {
    offset.rsplit_once('-')?.1.parse().ok()
}

/// The JSON object after a packet's type prefix (e.g. the `40` CONNECT reply).
fn object_after(frame: &str, prefix: &str) -> Option<Value> {
    serde_json::from_str(frame.strip_prefix(prefix)?).ok()
}

/// The payload of a `welcome` event (socket.io's own server appends an offset to it too).
fn welcome_of(frame: &str) -> Option<Value> {
    frame.strip_prefix("42[\"welcome\",")?;
    let mut args: Vec<Value> = serde_json::from_str(&frame[2..]).ok()?;
    (args.len() >= 2).then(|| args.swap_remove(1))
}

/// The CONNECT auth object: the token, and the session to recover if there is one.
pub fn connect_auth(token: &str, resume: Option<(&str, &str)>) -> String {
    let auth = match resume {
        Some((pid, offset)) => json!({ "token": token, "pid": pid, "offset": offset }),
        None => json!({ "token": token }),
    };
    format!("40{auth}")
}

/// The state a client keeps between its connections.
struct Client<'a> {
    shared: &'a ClientShared,
    id: &'a Identity,
    run: ClientRun,
    offset: Option<String>,
}

impl Client<'_> {
    /// Record one text message; `Ok(true)` for an Engine.IO ping, `Err` when the server ends
    /// the session.
    fn on_text(&mut self, text: &str) -> Result<bool, ClientError> {
        if text == "2" {
            return Ok(true);
        }
        let ledger = if text.starts_with("42[\"message\"") {
            &mut self.run.room
        } else if text.starts_with("42[\"notification\"") {
            &mut self.run.user
        } else if text.starts_with('1') || text.starts_with("41") {
            return Err(ClientError(
                "server_closed",
                text.chars().take(80).collect(),
            ));
        } else {
            return Ok(false);
        };
        if let Some((_, seq)) = stamp::parse(text) {
            ledger.record(seq);
        }
        if let Some(offset) = offset_of(text) {
            let previous = self.offset.as_deref().and_then(offset_number);
            if offset_number(offset) < previous {
                self.run.offsets_backwards += 1;
            }
            self.offset = Some(offset.to_owned());
        }
        Ok(false)
    }

    /// TCP, WebSocket, Engine.IO open, CONNECT (resuming `resume`), the join when `join`, then
    /// everything until `welcome` (pushes on the way are recorded, and counted as replayed
    /// when `replay`). The ids of the CONNECT reply, whether `welcome` said recovered, and
    /// the socket.
    async fn handshake(
        &mut self,
        resume: Option<&SessionIds>,
        join: bool,
    ) -> Result<(Ws, SessionIds, bool), ClientError> {
        let ep = &self.shared.endpoint;
        let tcp = tcp_connect(ep, self.id.index).await?;
        let mut ws = Ws::connect(tcp, &ep.server(self.id.index).to_string(), &ep.resource())
            .await
            .map_err(|e| ClientError("ws_handshake", e.to_string()))?;
        let open = self.next(&mut ws).await?;
        if !open.starts_with('0') {
            return Err(ClientError(
                "protocol",
                format!("expected open: {open:.60}"),
            ));
        }
        let resume_auth = match (resume, &self.offset) {
            (Some(SessionIds { pid: Some(pid), .. }), Some(offset)) => {
                Some((pid.as_str(), offset.as_str()))
            }
            _ => None,
        };
        ws.send_text(&connect_auth(&self.id.token, resume_auth))
            .await
            .map_err(|e| ClientError("send", e.to_string()))?;
        // socket.io's own server sends a recovered session's missed pushes before the CONNECT
        // reply (socket.io-client buffers them until it is connected); pushgate after it.
        let reply = loop {
            let frame = self.next(&mut ws).await?;
            if frame.starts_with("40") || frame.starts_with("44") {
                break frame;
            }
            self.on_handshake_push(&frame, resume.is_some())?;
        };
        let Some(ids) = object_after(&reply, "40") else {
            return Err(ClientError("refused", reply.chars().take(80).collect()));
        };
        let ids = SessionIds {
            sid: ids["sid"].as_str().unwrap_or_default().to_owned(),
            pid: ids["pid"].as_str().map(str::to_owned),
        };
        let mut replied = !join;
        if join {
            let emit = format!("420[\"join_room\",{}]", json!({ "room": self.id.room }));
            ws.send_text(&emit)
                .await
                .map_err(|e| ClientError("send", e.to_string()))?;
        }
        let mut welcome = None;
        while welcome.is_none() || !replied {
            let frame = self.next(&mut ws).await?;
            if let Some(w) = welcome_of(&frame) {
                welcome = Some(w["recovered"] == true);
            } else if frame.starts_with("430[") {
                replied = true;
            } else if frame.starts_with("42[\"error\"") {
                return Err(ClientError("join_refused", frame));
            } else if !frame.starts_with("42[\"room_joined\"") {
                self.on_handshake_push(&frame, resume.is_some())?;
            }
        }
        Ok((ws, ids, welcome.unwrap_or(false)))
    }

    /// Record a push received during a handshake (a replayed one when `replay`).
    fn on_handshake_push(&mut self, frame: &str, replay: bool) -> Result<(), ClientError> {
        let before = self.received();
        self.on_text(frame)?;
        let got = (self.received() - before) as u64;
        self.shared.received.fetch_add(got, Ordering::Relaxed);
        if replay {
            self.run.replayed += got;
        }
        Ok(())
    }

    /// The next text message, answering pings.
    async fn next(&mut self, ws: &mut Ws) -> Result<String, ClientError> {
        loop {
            match ws.next_text().await {
                Ok(t) if t == "2" => ws
                    .send_text("3")
                    .await
                    .map_err(|e| ClientError("send", e.to_string()))?,
                Ok(t) => return Ok(t),
                Err(WsError::Closed) => return Err(ClientError("closed", "in handshake".into())),
                Err(e) => return Err(ClientError("ws_read", e.to_string())),
            }
        }
    }

    /// A handshake under the shared permit and time limit.
    async fn connect(
        &mut self,
        resume: Option<&SessionIds>,
        join: bool,
    ) -> Result<(Ws, SessionIds, bool, u64), ClientError> {
        let Ok(_permit) = self.shared.permits.acquire().await else {
            return Err(ClientError("closed", "permits closed".into()));
        };
        let started = Instant::now();
        let limit = self.shared.connect_timeout;
        match tokio::time::timeout(limit, self.handshake(resume, join)).await {
            Ok(r) => r.map(|(ws, ids, rec)| (ws, ids, rec, started.elapsed().as_micros() as u64)),
            Err(_) => Err(ClientError(
                "timeout",
                format!("no answer within {limit:?}"),
            )),
        }
    }

    /// Receive until the phase reaches `until`.
    async fn receive(
        &mut self,
        ws: &mut Ws,
        phase: &mut watch::Receiver<Phase>,
        until: Phase,
    ) -> Result<(), ClientError> {
        let reached = phase.wait_for(|p| *p >= until);
        tokio::pin!(reached);
        loop {
            let ready = tokio::select! {
                biased;
                _ = &mut reached => return Ok(()),
                ready = ws.readable() => ready,
            };
            ready.map_err(|e| ClientError("ws_error", e.to_string()))?;
            let (before, mut pinged, mut ended) = (self.received(), false, None);
            let read = ws.try_read(|text| match self.on_text(text) {
                Ok(ping) => pinged |= ping,
                Err(e) => {
                    ended.get_or_insert(e);
                }
            });
            let got = (self.received() - before) as u64;
            self.shared.received.fetch_add(got, Ordering::Relaxed);
            if let Some(e) = ended {
                return Err(e);
            }
            match read {
                Ok(_) => {}
                Err(WsError::Closed) => return Err(ClientError("closed", "by the server".into())),
                Err(e) => return Err(ClientError("ws_error", e.to_string())),
            }
            if pinged {
                ws.send_text("3")
                    .await
                    .map_err(|e| ClientError("send", e.to_string()))?;
            }
            ws.flush()
                .await
                .map_err(|e| ClientError("send", e.to_string()))?;
        }
    }

    fn received(&self) -> usize {
        self.run.room.len() + self.run.user.len()
    }
}

/// One client's whole run: connect (reporting the outcome on `connected`), receive, cut,
/// reconnect, receive until the run stops.
pub async fn run(
    shared: Arc<ClientShared>,
    id: Identity,
    connected: tokio::sync::mpsc::UnboundedSender<bool>,
    mut phase: watch::Receiver<Phase>,
) -> ClientRun {
    let mut client = Client {
        shared: &shared,
        id: &id,
        run: ClientRun::default(),
        offset: None,
    };
    let first = client.connect(None, true).await;
    let _ = connected.send(first.is_ok());
    drop(connected);
    let (mut ws, ids) = match first {
        Ok((ws, ids, _, _)) => (ws, ids),
        Err(e) => {
            client.run.fail(e);
            return client.run;
        }
    };
    client.run.connected = true;
    if let Err(e) = client.receive(&mut ws, &mut phase, Phase::Cut).await {
        client.run.fail(e);
    }
    // The cut: the socket closes with no close frame and no `41`.
    drop(ws);
    client.run.marks[0] = (client.run.user.len(), client.run.room.len());
    client.run.offsets_backwards_before_cut = client.run.offsets_backwards;
    let _ = phase.wait_for(|p| *p >= Phase::Reconnect).await;
    let (mut ws, again, recovered, us) = match client.connect(Some(&ids), false).await {
        Ok(r) => r,
        Err(e) => {
            client.run.fail(e);
            return client.run;
        }
    };
    client.run.same_ids = again == ids;
    client.run.recovered = Some(recovered);
    client.run.reconnect_us = Some(us);
    client.run.welcomed_at = Some(Instant::now());
    client.run.marks[1] = (client.run.user.len(), client.run.room.len());
    client.run.offsets_backwards_by_welcome = client.run.offsets_backwards;
    match client.receive(&mut ws, &mut phase, Phase::Stop).await {
        Ok(()) => {
            let _ = ws.close().await;
        }
        Err(e) => client.run.fail(e),
    }
    client.run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_the_last_string_argument() {
        let frame = r#"42["message",{"type":"bench","t":5,"seq":2},"lz0a1b-17"]"#;
        assert_eq!(offset_of(frame), Some("lz0a1b-17"));
        assert_eq!(stamp::parse(frame), Some((5, 2)));
        // Recovery off: no offset.
        assert_eq!(offset_of(r#"42["message",{"t":5,"seq":2}]"#), None);
        assert_eq!(offset_of(r#"42["message","text"]"#), None);
        assert_eq!(offset_of(r#"42["x",{"a":"b"},""]"#), None);
        assert_eq!(offset_of(r#"42["x",{"a":"b","c":"d"}]"#), None);
        assert_eq!(offset_number("lz0a1b-17"), Some(17));
        assert_eq!(offset_number("opaque"), None);
    }

    #[test]
    fn ids_and_welcome_are_read() {
        let ids = object_after(r#"40{"sid":"s1","pid":"p1"}"#, "40").unwrap();
        assert_eq!(
            (ids["sid"].as_str(), ids["pid"].as_str()),
            (Some("s1"), Some("p1"))
        );
        let w = welcome_of(r#"42["welcome",{"clientId":"s1","recovered":true}]"#).unwrap();
        assert_eq!(w["recovered"], true);
        assert!(welcome_of(r#"42["message",{"recovered":true}]"#).is_none());
        let w = welcome_of(r#"42["welcome",{"recovered":false},"Q99mnz3"]"#).unwrap();
        assert_eq!(w["recovered"], false);
    }

    #[test]
    fn the_reconnect_carries_pid_and_offset() {
        assert_eq!(connect_auth("t", None), r#"40{"token":"t"}"#);
        let auth = connect_auth("t", Some(("p1", "o-9")));
        let v: Value = serde_json::from_str(&auth[2..]).unwrap();
        assert_eq!(v, json!({"token": "t", "pid": "p1", "offset": "o-9"}));
    }
}
