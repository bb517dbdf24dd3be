//! One Socket.IO client over WebSocket, as cheap as it can be: a TCP socket bound to one of
//! several loopback source addresses, the WebSocket handshake ([`crate::ws`]), the
//! Engine.IO open packet, a Socket.IO CONNECT with the JWT in the auth object, then an optional
//! `subscribe` / `join_room` emitted right after the CONNECT answer (a client that emits right
//! after `connect` must always have its event handled), and the welcome and reply it expects.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::{TcpSocket, TcpStream};

pub use crate::ws::Ws;
use crate::ws::WsError;

/// Where clients connect, and from where.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    /// Server address (loopback).
    pub addr: SocketAddr,
    /// Several servers (the nodes of a cluster): client `index` connects to
    /// `servers[index % len]`; empty: every client connects to `addr`.
    #[serde(default)]
    pub servers: Vec<SocketAddr>,
    /// Socket.IO path, e.g. `/socket.io/`.
    pub path: String,
    /// Client sockets are bound to 127.0.0.1 ..= 127.0.0.<sources>, by client index.
    pub sources: u8,
}

impl Endpoint {
    /// The Engine.IO endpoint's WebSocket resource (path and query).
    pub fn resource(&self) -> String {
        format!("{}?EIO=4&transport=websocket", self.path)
    }

    /// The server client `index` connects to (round-robin over `servers`).
    pub fn server(&self, index: usize) -> SocketAddr {
        if self.servers.is_empty() {
            self.addr
        } else {
            self.servers[index % self.servers.len()]
        }
    }

    /// Source address for client `index`.
    pub fn source(&self, index: usize) -> IpAddr {
        let k = self.sources.max(1) as usize;
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (index % k) as u8))
    }
}

/// What a client asks for right after its CONNECT is accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Join {
    /// Nothing: wait for `welcome` only.
    Nothing,
    /// `subscribe {"userId": <own sub>}` (the admin console does this on connect).
    Subscribe,
    /// `join_room {"room": <room>}` (needs an admin token for any room but `user:<own id>`).
    Room(String),
}

/// Why a client could not connect (the label is what results count by).
#[derive(Debug)]
pub struct ClientError(pub &'static str, pub String);

impl ClientError {
    fn new(kind: &'static str, detail: impl ToString) -> Self {
        ClientError(kind, detail.to_string())
    }
}

/// Linux `IP_BIND_ADDRESS_NO_PORT`: bind picks the address only, `connect` the port, so the
/// port is chosen per 4-tuple (and TIME_WAIT ports are reused on loopback) instead of one
/// ephemeral port per bound socket.
const IP_BIND_ADDRESS_NO_PORT: libc::c_int = 24;

/// The TCP connection of client `index`: to its server of `ep`, from its source address.
pub async fn tcp_connect(ep: &Endpoint, index: usize) -> Result<TcpStream, ClientError> {
    let src = ep.source(index);
    let socket = TcpSocket::new_v4().map_err(|e| ClientError::new("socket", e))?;
    let one: libc::c_int = 1;
    // SAFETY: a valid fd and a c_int option value of the right size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            IP_BIND_ADDRESS_NO_PORT,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    socket
        .bind(SocketAddr::new(src, 0))
        .map_err(|e| ClientError::new("bind", e))?;
    let stream = socket
        .connect(ep.server(index))
        .await
        .map_err(|e| ClientError::new("tcp_connect", e))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Next text message, answering Engine.IO pings on the way.
async fn next_text(ws: &mut Ws) -> Result<String, ClientError> {
    loop {
        match ws.next_text().await {
            Ok(t) if t == "2" => send(ws, "3").await?,
            Ok(t) => return Ok(t),
            Err(WsError::Closed) => {
                return Err(ClientError::new("closed", "closed during handshake"))
            }
            Err(e) => return Err(ClientError::new("ws_read", e)),
        }
    }
}

/// Send one text message; a failure counts as a `send` error.
async fn send(ws: &mut Ws, text: &str) -> Result<(), ClientError> {
    ws.send_text(text)
        .await
        .map_err(|e| ClientError::new("send", e))
}

/// Connect client `index` as `user` with `token`, do what `join` says, and return the socket
/// once the server has answered everything (welcome, and the join reply with its ack).
pub async fn connect(
    ep: &Endpoint,
    index: usize,
    token: &str,
    user: &str,
    join: &Join,
) -> Result<Ws, ClientError> {
    let stream = tcp_connect(ep, index).await?;
    let mut ws = Ws::connect(stream, &ep.server(index).to_string(), &ep.resource())
        .await
        .map_err(|e| ClientError::new("ws_handshake", e))?;
    let open = next_text(&mut ws).await?;
    if !open.starts_with('0') {
        return Err(ClientError::new(
            "protocol",
            format!("expected open, got {open:.60}"),
        ));
    }
    let token = serde_json::to_string(token).expect("a string serializes");
    let connect = format!(r#"40{{"token":{token}}}"#);
    send(&mut ws, &connect).await?;
    // The CONNECT answer comes first; emit the join at once, before the welcome is read.
    let answer = next_text(&mut ws).await?;
    if answer.starts_with("44") {
        return Err(ClientError::new("refused", answer));
    }
    if !answer.starts_with("40") {
        return Err(ClientError::new(
            "protocol",
            format!("expected 40, got {answer:.60}"),
        ));
    }
    let (reply, emit) = match join {
        Join::Nothing => (None, None),
        Join::Subscribe => (
            Some("subscribed"),
            Some(format!(
                "420[\"subscribe\",{}]",
                serde_json::json!({ "userId": user })
            )),
        ),
        Join::Room(room) => (
            Some("room_joined"),
            Some(format!(
                "420[\"join_room\",{}]",
                serde_json::json!({ "room": room })
            )),
        ),
    };
    if let Some(emit) = emit {
        send(&mut ws, &emit).await?;
    }
    let reply = reply.map(|r| format!("42[\"{r}\""));
    let (mut welcomed, mut replied, mut acked) = (false, reply.is_none(), reply.is_none());
    while !(welcomed && replied && acked) {
        let frame = next_text(&mut ws).await?;
        if frame.starts_with("42[\"welcome\"") {
            welcomed = true;
        } else if frame.starts_with("42[\"error\"") {
            return Err(ClientError::new("join_refused", frame));
        } else if reply
            .as_ref()
            .is_some_and(|r| frame.starts_with(r.as_str()))
        {
            replied = true;
        } else if frame.starts_with("430[") {
            acked = true;
        }
    }
    Ok(ws)
}

/// Connect with a time limit.
pub async fn connect_within(
    limit: Duration,
    ep: &Endpoint,
    index: usize,
    token: &str,
    user: &str,
    join: &Join,
) -> Result<Ws, ClientError> {
    match tokio::time::timeout(limit, connect(ep, index, token, user, join)).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::new(
            "timeout",
            format!("no answer within {limit:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_cycle_over_loopback_addresses() {
        let mut ep = Endpoint {
            addr: "127.0.0.1:30006".parse().unwrap(),
            servers: Vec::new(),
            path: "/socket.io/".into(),
            sources: 4,
        };
        let got: Vec<String> = (0..6).map(|i| ep.source(i).to_string()).collect();
        assert_eq!(
            got,
            [
                "127.0.0.1",
                "127.0.0.2",
                "127.0.0.3",
                "127.0.0.4",
                "127.0.0.1",
                "127.0.0.2"
            ]
        );
        assert_eq!(ep.resource(), "/socket.io/?EIO=4&transport=websocket");
        assert_eq!(ep.server(5), ep.addr);
        ep.servers = vec![
            "127.0.0.1:29101".parse().unwrap(),
            "127.0.0.1:29102".parse().unwrap(),
            "127.0.0.1:29103".parse().unwrap(),
        ];
        let ports: Vec<u16> = (0..5).map(|i| ep.server(i).port()).collect();
        assert_eq!(ports, [29101, 29102, 29103, 29101, 29102]);
    }
}
