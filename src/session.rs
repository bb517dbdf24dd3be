//! One Socket.IO client's state machine, independent of the transport that carries it.
//!
//! A transport actor (WebSocket or long-polling) owns a [`SocketSession`], feeds it every
//! Engine.IO packet it receives and writes out the [`Outbound`] frames it produces. The session
//! authenticates the CONNECT, registers with the room supervisor, answers the client events with
//! their ACL, and reports why it must close as a [`CloseReason`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;
use base64::Engine as _;
use bytestring::ByteString;
use pushgate_actors::metrics::Metrics;
use pushgate_actors::{
    Deliver, JoinRoom, LeaveRoom, RegisterSession, RoomSupervisor, SessionId, UnregisterSession,
};
use rand::RngCore;
use serde_json::{json, Value};

use crate::acl::{self, Refusal};
use crate::auth::{HandshakeTokens, Identity, JwtVerifier};
use crate::config::EngineConfig;
use crate::protocol::engineio::{self, EioPacket};
use crate::protocol::socketio::{self, Packet, PacketKind};
use crate::protocol::ProtocolError;

/// How sessions behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The push gateway: JWT auth, rooms, the four client events.
    Gateway,
    /// The configuration the official Engine.IO / Socket.IO protocol test suites expect: no
    /// auth, the `/` and `/custom` namespaces, every event echoed back.
    ProtocolTestSuite,
}

/// What every session shares: built once at start.
pub struct SessionContext {
    /// Where sessions register and join rooms.
    pub supervisor: Addr<RoomSupervisor>,
    /// Verifies CONNECT tokens.
    pub verifier: JwtVerifier,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Heartbeat, payload and connect-timeout settings.
    pub engine: EngineConfig,
    /// Gateway or protocol test-suite behaviour.
    pub mode: Mode,
}

/// A frame for the transport to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// An Engine.IO text packet, e.g. `42["welcome",{...}]`.
    Text(ByteString),
    /// An Engine.IO binary message (a Socket.IO attachment).
    Binary(Vec<u8>),
}

/// Why a session ended; the name is the `reason` label of `pushgate_disconnects_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed the transport or sent an Engine.IO close packet.
    ClientClose,
    /// No pong within `pingTimeout` of a ping.
    PingTimeout,
    /// No successful CONNECT within `CONNECT_TIMEOUT_MS`.
    ConnectTimeout,
    /// A malformed packet, or one not allowed in the session's state.
    ProtocolError,
    /// A message over `MAX_PAYLOAD_BYTES`.
    PayloadTooLarge,
    /// The transport failed (reset, broken pipe, WebSocket protocol error).
    TransportError,
    /// pushgate is shutting down.
    ServerShutdown,
}

impl CloseReason {
    /// The metrics / log name.
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::ClientClose => "client_close",
            CloseReason::PingTimeout => "ping_timeout",
            CloseReason::ConnectTimeout => "connect_timeout",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::PayloadTooLarge => "payload_too_large",
            CloseReason::TransportError => "transport_error",
            CloseReason::ServerShutdown => "server_shutdown",
        }
    }

    /// The WebSocket close code sent for it.
    pub fn websocket_code(self) -> u16 {
        match self {
            CloseReason::ClientClose | CloseReason::PingTimeout | CloseReason::ConnectTimeout => {
                1000
            }
            CloseReason::ProtocolError => 1002,
            CloseReason::PayloadTooLarge => 1009,
            CloseReason::TransportError => 1011,
            CloseReason::ServerShutdown => 1001,
        }
    }
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// 20 URL-safe characters from 15 random bytes (Engine.IO sids and Socket.IO socket ids).
pub fn random_id() -> String {
    let mut bytes = [0u8; 15];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

enum State {
    /// Engine.IO open, no Socket.IO CONNECT accepted yet.
    Handshake,
    /// Connected to the root namespace (and, in test-suite mode, maybe `/custom`).
    Connected {
        socket_id: String,
        identity: Identity,
        extra_namespaces: Vec<String>,
    },
}

/// A binary packet waiting for its attachments.
struct PendingBinary {
    packet: Packet,
    attachments: Vec<Vec<u8>>,
}

/// One client's Socket.IO session.
pub struct SocketSession {
    ctx: Arc<SessionContext>,
    id: SessionId,
    sid: String,
    tokens: HandshakeTokens,
    state: State,
    recipient: Option<Recipient<Deliver>>,
    pending_binary: Option<PendingBinary>,
    awaiting_pong: bool,
    closed: bool,
}

impl SocketSession {
    /// A new session for a handshake carrying `tokens`.
    pub fn new(ctx: Arc<SessionContext>, tokens: HandshakeTokens) -> Self {
        SocketSession {
            ctx,
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            sid: random_id(),
            tokens,
            state: State::Handshake,
            recipient: None,
            pending_binary: None,
            awaiting_pong: false,
            closed: false,
        }
    }

    /// The process-local id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The Engine.IO session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The shared context.
    pub fn context(&self) -> &Arc<SessionContext> {
        &self.ctx
    }

    /// Whether a CONNECT to the root namespace was accepted.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected { .. })
    }

    /// The Engine.IO open packet for this session.
    pub fn open_packet(&self, upgrades: &[&str]) -> String {
        let e = &self.ctx.engine;
        engineio::encode_open(
            &self.sid,
            upgrades,
            e.ping_interval.as_millis() as u64,
            e.ping_timeout.as_millis() as u64,
            e.max_payload as u64,
        )
    }

    /// Tell the session where its pushes go (the transport actor's address). When it is
    /// already registered, the supervisor is told to send to the new recipient.
    pub fn attach(&mut self, recipient: Recipient<Deliver>) {
        if self.is_connected() {
            self.ctx.supervisor.do_send(pushgate_actors::RebindSession {
                session: self.id,
                recipient: recipient.clone(),
            });
        }
        self.recipient = Some(recipient);
    }

    /// A heartbeat is due: returns the ping to send, or `Err(PingTimeout)` when the previous
    /// ping was never answered.
    pub fn ping(&mut self) -> Result<&'static str, CloseReason> {
        self.awaiting_pong = true;
        Ok(engineio::PING)
    }

    /// `pingTimeout` after a ping: is the pong still missing?
    pub fn pong_overdue(&self) -> bool {
        self.awaiting_pong
    }

    /// Handle one Engine.IO text packet.
    pub fn on_text(&mut self, frame: &str, out: &mut Vec<Outbound>) -> Result<(), CloseReason> {
        match engineio::decode_text(frame).map_err(|e| self.protocol_error(e))? {
            EioPacket::Message(text) => self.on_socket_packet(text, out),
            EioPacket::Binary(data) => self.on_binary(&data, out),
            EioPacket::Pong(_) => {
                self.awaiting_pong = false;
                Ok(())
            }
            EioPacket::Ping(data) => {
                out.push(Outbound::Text(format!("3{data}").into()));
                Ok(())
            }
            EioPacket::Close => Err(CloseReason::ClientClose),
            EioPacket::Upgrade | EioPacket::Noop => Ok(()),
            EioPacket::Open => Err(self.protocol_error(ProtocolError::InvalidPayload(
                "a client may not send an open packet",
            ))),
        }
    }

    /// Handle one Engine.IO binary message (an attachment of the pending binary packet).
    pub fn on_binary(&mut self, data: &[u8], out: &mut Vec<Outbound>) -> Result<(), CloseReason> {
        let Some(pending) = self.pending_binary.as_mut() else {
            return Err(self.protocol_error(ProtocolError::UnexpectedBinary));
        };
        pending.attachments.push(data.to_vec());
        if pending.attachments.len() == pending.packet.attachments {
            let done = self.pending_binary.take().expect("checked above");
            self.on_complete_packet(done.packet, done.attachments, out)?;
        }
        Ok(())
    }

    fn protocol_error(&self, e: ProtocolError) -> CloseReason {
        log::debug!("session {}: protocol error: {e}", self.sid);
        CloseReason::ProtocolError
    }

    fn on_socket_packet(&mut self, text: &str, out: &mut Vec<Outbound>) -> Result<(), CloseReason> {
        if self.pending_binary.is_some() {
            return Err(self.protocol_error(ProtocolError::InvalidPayload(
                "a text packet arrived while binary attachments were expected",
            )));
        }
        let packet = socketio::decode(text).map_err(|e| self.protocol_error(e))?;
        if packet.attachments > 0 {
            self.pending_binary = Some(PendingBinary {
                attachments: Vec::with_capacity(packet.attachments),
                packet,
            });
            return Ok(());
        }
        self.on_complete_packet(packet, Vec::new(), out)
    }

    fn on_complete_packet(
        &mut self,
        packet: Packet,
        attachments: Vec<Vec<u8>>,
        out: &mut Vec<Outbound>,
    ) -> Result<(), CloseReason> {
        match packet.kind {
            PacketKind::Connect => {
                self.on_connect(&packet, out);
                Ok(())
            }
            PacketKind::Disconnect => {
                self.on_namespace_disconnect(&packet.nsp);
                Ok(())
            }
            PacketKind::Event | PacketKind::BinaryEvent => {
                if !self.namespace_connected(&packet.nsp) {
                    return Err(self.protocol_error(ProtocolError::InvalidPayload(
                        "event on a namespace that is not connected",
                    )));
                }
                self.on_event(packet, attachments, out);
                Ok(())
            }
            // The server never asks clients for acks, so any ack is simply dropped.
            PacketKind::Ack | PacketKind::BinaryAck => Ok(()),
            PacketKind::ConnectError => Err(self.protocol_error(ProtocolError::InvalidPayload(
                "a client may not send CONNECT_ERROR",
            ))),
        }
    }

    fn namespace_connected(&self, nsp: &str) -> bool {
        match &self.state {
            State::Connected {
                extra_namespaces, ..
            } => nsp == "/" || extra_namespaces.iter().any(|n| n == nsp),
            State::Handshake => false,
        }
    }

    fn known_namespace(&self, nsp: &str) -> bool {
        nsp == "/" || (self.ctx.mode == Mode::ProtocolTestSuite && nsp == "/custom")
    }

    fn on_connect(&mut self, packet: &Packet, out: &mut Vec<Outbound>) {
        if !self.known_namespace(&packet.nsp) {
            let refusal = Packet {
                kind: PacketKind::ConnectError,
                nsp: packet.nsp.clone(),
                id: None,
                data: Some(json!({"message": "Invalid namespace"})),
                attachments: 0,
            };
            out.push(text_frame(refusal.encode()));
            return;
        }
        if self.namespace_connected(&packet.nsp) {
            return;
        }
        if let State::Connected {
            extra_namespaces,
            socket_id,
            ..
        } = &mut self.state
        {
            // Test-suite mode: a second namespace on the same connection.
            extra_namespaces.push(packet.nsp.clone());
            let ack = Packet {
                kind: PacketKind::Connect,
                nsp: packet.nsp.clone(),
                id: None,
                data: Some(json!({ "sid": socket_id })),
                attachments: 0,
            };
            out.push(text_frame(ack.encode()));
            return;
        }
        let identity = match self.ctx.mode {
            Mode::Gateway => {
                let verified = self
                    .tokens
                    .pick(packet.data.as_ref())
                    .and_then(|t| self.ctx.verifier.verify(t));
                match verified {
                    Ok(identity) => identity,
                    Err(e) => {
                        log::info!("session {}: connect refused: {e}", self.sid);
                        self.ctx.metrics.auth_rejected.inc();
                        let refusal = Packet {
                            kind: PacketKind::ConnectError,
                            nsp: packet.nsp.clone(),
                            id: None,
                            data: Some(json!({"message": "unauthorized"})),
                            attachments: 0,
                        };
                        out.push(text_frame(refusal.encode()));
                        return;
                    }
                }
            }
            Mode::ProtocolTestSuite => Identity {
                user_id: self.sid.clone(),
                username: None,
                is_admin: false,
                tenant_id: None,
            },
        };
        let socket_id = random_id();
        let recipient = self
            .recipient
            .clone()
            .expect("the transport attaches a recipient before feeding packets");
        self.ctx.supervisor.do_send(RegisterSession {
            session: self.id,
            recipient,
        });
        self.ctx.supervisor.do_send(JoinRoom {
            session: self.id,
            room: acl::user_room(&identity.user_id),
        });
        let ack = Packet {
            kind: PacketKind::Connect,
            nsp: packet.nsp.clone(),
            id: None,
            data: Some(json!({ "sid": socket_id })),
            attachments: 0,
        };
        out.push(text_frame(ack.encode()));
        if self.ctx.mode == Mode::Gateway {
            let welcome = json!({
                "message": "Connected to pushgate",
                "clientId": socket_id,
                "userId": identity.user_id,
                "timestamp": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            });
            emit(out, "welcome", &welcome);
        }
        log::debug!(
            "session {}: connected as {} (admin: {})",
            self.sid,
            identity.user_id,
            identity.is_admin
        );
        self.state = State::Connected {
            socket_id,
            identity,
            extra_namespaces: Vec::new(),
        };
    }

    fn on_namespace_disconnect(&mut self, nsp: &str) {
        match &mut self.state {
            State::Connected {
                extra_namespaces, ..
            } if nsp != "/" => extra_namespaces.retain(|n| n != nsp),
            State::Connected { .. } => {
                self.ctx
                    .supervisor
                    .do_send(UnregisterSession { session: self.id });
                self.state = State::Handshake;
            }
            State::Handshake => {}
        }
    }

    fn on_event(&mut self, packet: Packet, attachments: Vec<Vec<u8>>, out: &mut Vec<Outbound>) {
        let Some(Value::Array(mut args)) = packet.data else {
            return; // the codec guarantees a non-empty array
        };
        if self.ctx.mode == Mode::ProtocolTestSuite {
            return echo(packet.nsp, packet.id, args, attachments, out);
        }
        let name = match args.first() {
            Some(Value::String(s)) => s.clone(),
            _ => return,
        };
        let arg = if args.len() > 1 {
            args.swap_remove(1)
        } else {
            Value::Null
        };
        let State::Connected { identity, .. } = &self.state else {
            return;
        };
        let result = match name.as_str() {
            "subscribe" | "unsubscribe" => self.on_subscription(&name, &arg, identity),
            "join_room" | "leave_room" => self.on_room(&name, &arg, identity),
            _ => {
                // Unknown events are ignored, as the old gateway did; an ack still gets an
                // answer so the client's callback does not wait forever.
                if let Some(id) = packet.id {
                    let err = error_payload(
                        &name,
                        &Refusal::BadRequest(format!("unknown event {name:?}")),
                    );
                    out.push(Outbound::Text(
                        socketio::encode_ack_message(id, &err.to_string()).into(),
                    ));
                }
                return;
            }
        };
        let (event, payload) = match result {
            Ok(reply) => reply,
            Err(refusal) => ("error", error_payload(&name, &refusal)),
        };
        emit(out, event, &payload);
        if let Some(id) = packet.id {
            out.push(Outbound::Text(
                socketio::encode_ack_message(id, &payload.to_string()).into(),
            ));
        }
    }

    fn on_subscription(
        &self,
        name: &str,
        arg: &Value,
        who: &Identity,
    ) -> Result<(&'static str, Value), Refusal> {
        let user_id = acl::parse_user_id(arg.get("userId"))?;
        acl::may_subscribe(who, &user_id)?;
        let room = acl::user_room(&user_id);
        if name == "subscribe" {
            self.ctx.supervisor.do_send(JoinRoom {
                session: self.id,
                room: room.clone(),
            });
            Ok((
                "subscribed",
                json!({"userId": user_id, "message": format!("Subscribed to {room}")}),
            ))
        } else {
            self.ctx.supervisor.do_send(LeaveRoom {
                session: self.id,
                room: room.clone(),
            });
            Ok((
                "unsubscribed",
                json!({"userId": user_id, "message": format!("Unsubscribed from {room}")}),
            ))
        }
    }

    fn on_room(
        &self,
        name: &str,
        arg: &Value,
        who: &Identity,
    ) -> Result<(&'static str, Value), Refusal> {
        let room = match arg.get("room") {
            Some(Value::String(room)) => room.clone(),
            _ => return Err(Refusal::BadRequest("room must be a string".into())),
        };
        if name == "join_room" {
            acl::may_join(who, &room)?;
            self.ctx.supervisor.do_send(JoinRoom {
                session: self.id,
                room: room.clone(),
            });
            Ok((
                "room_joined",
                json!({"room": room, "message": format!("Joined room {room}")}),
            ))
        } else {
            acl::may_leave(who, &room)?;
            self.ctx.supervisor.do_send(LeaveRoom {
                session: self.id,
                room: room.clone(),
            });
            Ok((
                "room_left",
                json!({"room": room, "message": format!("Left room {room}")}),
            ))
        }
    }

    /// The session ended: leave every room. Idempotent.
    pub fn close(&mut self, reason: CloseReason) {
        if self.closed {
            return;
        }
        self.closed = true;
        if self.is_connected() {
            self.ctx
                .supervisor
                .do_send(UnregisterSession { session: self.id });
        }
        self.ctx
            .metrics
            .disconnects
            .with_label_values(&[reason.name()])
            .inc();
        log::debug!("session {}: closed ({})", self.sid, reason.name());
    }
}

fn text_frame(socket_packet: String) -> Outbound {
    let mut s = String::with_capacity(socket_packet.len() + 1);
    s.push('4');
    s.push_str(&socket_packet);
    Outbound::Text(s.into())
}

fn emit(out: &mut Vec<Outbound>, event: &str, payload: &Value) {
    out.push(Outbound::Text(
        socketio::encode_event_message(event, &payload.to_string()).into(),
    ));
}

fn error_payload(event: &str, refusal: &Refusal) -> Value {
    json!({"event": event, "code": refusal.code(), "message": refusal.to_string()})
}

/// Test-suite mode: send the event back as it came (an ack when one was asked for).
fn echo(
    nsp: String,
    id: Option<u64>,
    args: Vec<Value>,
    attachments: Vec<Vec<u8>>,
    out: &mut Vec<Outbound>,
) {
    let binary = !attachments.is_empty();
    let (kind, data) = match id {
        Some(_) => (
            if binary {
                PacketKind::BinaryAck
            } else {
                PacketKind::Ack
            },
            Value::Array(args.into_iter().skip(1).collect()),
        ),
        None => (
            if binary {
                PacketKind::BinaryEvent
            } else {
                PacketKind::Event
            },
            Value::Array(args),
        ),
    };
    let packet = Packet {
        kind,
        nsp,
        id,
        data: Some(data),
        attachments: attachments.len(),
    };
    out.push(text_frame(packet.encode()));
    out.extend(attachments.into_iter().map(Outbound::Binary));
}
