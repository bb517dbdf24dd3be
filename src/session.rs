//! One Socket.IO client's state machine, independent of the transport that carries it.
//!
//! A transport actor (WebSocket or long-polling) owns a [`SocketSession`], feeds it every
//! Engine.IO packet it receives and writes out the [`Outbound`] frames it produces. The session
//! authenticates the CONNECT, registers with the room supervisor, answers the client events with
//! their ACL, and reports why it must close as a [`CloseReason`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix::prelude::*;
use base64::Engine as _;
use bytestring::ByteString;
use pushgate_actors::metrics::Metrics;
use pushgate_actors::{
    GoingAway, Inbox, JoinRoom, LeaveRoom, RegisterSession, RoomSupervisor, SessionId,
    UnregisterSession,
};
use rand::RngCore;
use serde_json::{json, Value};

use crate::acl::{self, Refusal};
use crate::auth::{HandshakeTokens, Identity, JwtVerifier};
use crate::config::EngineConfig;
use crate::heartbeat::{Beat, Heartbeat};
use crate::protocol::engineio::{self, EioPacket};
use crate::protocol::socketio::{self, BinaryPacket, Decoder, Packet, PacketKind};
use crate::protocol::ProtocolError;

/// How sessions behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The push gateway: JWT auth, rooms, the four client events.
    Gateway,
    /// What the official Socket.IO protocol test suite expects at `/socket.io/`: no auth, the
    /// `/` and `/custom` namespaces, an `auth` event echoing the CONNECT payload, `message`
    /// answered by `message-back` and `message-with-ack` by an ack.
    ProtocolTestSuite,
    /// What the official Engine.IO protocol test suite expects at `/engine.io/`: every
    /// Engine.IO message echoed back as it came.
    EngineEcho,
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
    /// A malformed packet, or one not allowed in the session's state; a WebSocket frame that
    /// breaks RFC 6455 (unmasked, reserved bits or opcode, a fragmented control frame...).
    ProtocolError,
    /// A WebSocket text message that is not valid UTF-8 (RFC 6455 §8.1).
    InvalidUtf8,
    /// A message over `MAX_PAYLOAD_BYTES`.
    PayloadTooLarge,
    /// The transport failed (reset, broken pipe).
    TransportError,
    /// pushgate is shutting down.
    ServerShutdown,
    /// The client fell more than
    /// [`MAX_UNWRITTEN`](crate::transport::upgraded::MAX_UNWRITTEN) bytes behind the pushes
    /// meant for it (a WebSocket that does not read, a polling client that does not GET).
    SlowReader,
}

impl CloseReason {
    /// The metrics / log name.
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::ClientClose => "client_close",
            CloseReason::PingTimeout => "ping_timeout",
            CloseReason::ConnectTimeout => "connect_timeout",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::InvalidUtf8 => "invalid_utf8",
            CloseReason::PayloadTooLarge => "payload_too_large",
            CloseReason::TransportError => "transport_error",
            CloseReason::ServerShutdown => "server_shutdown",
            CloseReason::SlowReader => "slow_reader",
        }
    }

    /// The WebSocket close code sent for it.
    pub fn websocket_code(self) -> u16 {
        match self {
            CloseReason::ClientClose | CloseReason::PingTimeout | CloseReason::ConnectTimeout => {
                1000
            }
            CloseReason::ProtocolError => 1002,
            CloseReason::InvalidUtf8 => 1007,
            CloseReason::PayloadTooLarge => 1009,
            CloseReason::TransportError => 1011,
            CloseReason::ServerShutdown => 1001,
            CloseReason::SlowReader => 1008,
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

/// The root namespace's connection, once a CONNECT was accepted (gateway mode).
struct Connection {
    identity: Identity,
}

/// One client's Socket.IO session.
pub struct SocketSession {
    ctx: Arc<SessionContext>,
    id: SessionId,
    sid: String,
    tokens: HandshakeTokens,
    /// Connected namespaces (the gateway only ever has `/`).
    namespaces: Vec<String>,
    /// Who the root namespace is connected as; set while registered with the supervisor.
    connection: Option<Connection>,
    /// Where the shutdown notice goes (the actor owning the session).
    going_away: Option<Recipient<GoingAway>>,
    /// Where the rooms on this session's thread put its pushes (opened to them when it
    /// registers).
    inbox: Inbox,
    decoder: Decoder,
    /// Frames to write a moment after the current ones (test-suite mode only, see
    /// [`SocketSession::take_deferred`]).
    deferred: Vec<Outbound>,
    ever_connected: bool,
    heartbeat: Heartbeat,
    closed: bool,
}

impl SocketSession {
    /// A new session for a handshake carrying `tokens`.
    pub fn new(ctx: Arc<SessionContext>, tokens: HandshakeTokens) -> Self {
        let heartbeat = Heartbeat::new(&ctx.engine, Instant::now());
        SocketSession {
            ctx,
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            sid: random_id(),
            tokens,
            namespaces: Vec::new(),
            connection: None,
            going_away: None,
            inbox: Inbox::new(),
            decoder: Decoder::new(),
            deferred: Vec::new(),
            ever_connected: false,
            heartbeat,
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

    /// Whether a CONNECT was ever accepted (the connect timeout no longer applies, even after
    /// the client left its namespaces).
    pub fn is_connected(&self) -> bool {
        self.ever_connected || self.ctx.mode == Mode::EngineEcho
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

    /// The inbox its pushes arrive in while it is registered: the actor owning the session
    /// reads it as a message stream (`ctx.add_message_stream(session.inbox().stream())`).
    pub fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    /// Tell the session where the shutdown notice goes (the actor owning it); called once,
    /// when that actor starts.
    pub fn attach(&mut self, going_away: Recipient<GoingAway>) {
        self.going_away = Some(going_away);
    }

    /// When the session's heartbeat timer first fires (see [`Heartbeat`]).
    pub fn first_beat(&self) -> Instant {
        self.heartbeat.first()
    }

    /// The heartbeat timer fired at `now`: what to do (write [`engineio::PING`] when it says
    /// so) and when it fires next.
    pub fn beat(&mut self, now: Instant) -> Beat {
        let connected = self.is_connected();
        self.heartbeat.beat(now, connected)
    }

    /// Whether the pong for the last ping is missing past its deadline: a request arriving
    /// after it sees the session as timed out even before the timer fires.
    pub fn pong_deadline_passed(&self, now: Instant) -> bool {
        self.heartbeat.pong_deadline_passed(now)
    }

    /// Handle one Engine.IO text packet.
    pub fn on_text(&mut self, frame: &str, out: &mut Vec<Outbound>) -> Result<(), CloseReason> {
        match engineio::decode_text(frame).map_err(|e| self.protocol_error(e))? {
            EioPacket::Message(_) if self.ctx.mode == Mode::EngineEcho => {
                out.push(Outbound::Text(frame.into()));
                Ok(())
            }
            EioPacket::Message(text) => {
                let complete = self
                    .decoder
                    .feed_text(text)
                    .map_err(|e| self.protocol_error(e))?;
                match complete {
                    Some(packet) => self.on_complete_packet(packet, out),
                    None => Ok(()),
                }
            }
            EioPacket::Binary(data) => self.on_binary(&data, out),
            EioPacket::Pong(_) => {
                self.heartbeat.pong();
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
        if self.ctx.mode == Mode::EngineEcho {
            out.push(Outbound::Binary(data.to_vec()));
            return Ok(());
        }
        let complete = self
            .decoder
            .feed_binary(data.to_vec())
            .map_err(|e| self.protocol_error(e))?;
        match complete {
            Some(packet) => self.on_complete_packet(packet, out),
            None => Ok(()),
        }
    }

    fn protocol_error(&self, e: ProtocolError) -> CloseReason {
        log::debug!("session {}: protocol error: {e}", self.sid);
        CloseReason::ProtocolError
    }

    fn on_complete_packet(
        &mut self,
        complete: BinaryPacket,
        out: &mut Vec<Outbound>,
    ) -> Result<(), CloseReason> {
        let packet = &complete.packet;
        match packet.kind {
            PacketKind::Connect => {
                self.on_connect(packet, out);
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
                match self.ctx.mode {
                    Mode::Gateway => self.on_event(packet, out),
                    _ => suite_echo(complete, out),
                }
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
        self.namespaces.iter().any(|n| n == nsp)
    }

    fn known_namespace(&self, nsp: &str) -> bool {
        nsp == "/" || (self.ctx.mode == Mode::ProtocolTestSuite && nsp == "/custom")
    }

    fn on_connect(&mut self, packet: &Packet, out: &mut Vec<Outbound>) {
        if !self.known_namespace(&packet.nsp) {
            let refusal = Packet::connect_error(packet.nsp.clone(), "Invalid namespace");
            out.push(text_frame(refusal.encode()));
            return;
        }
        if self.namespace_connected(&packet.nsp) {
            return;
        }
        if self.ctx.mode != Mode::Gateway {
            // Test-suite mode: accept, then emit `auth` with the CONNECT payload.
            let auth = packet.data.clone().unwrap_or_else(|| json!({}));
            let ack = Packet::connect_ok(packet.nsp.clone(), &random_id());
            out.push(text_frame(ack.encode()));
            let auth = Packet::event(packet.nsp.clone(), json!(["auth", auth]), None);
            self.deferred.push(text_frame(auth.encode()));
            self.namespaces.push(packet.nsp.clone());
            self.ever_connected = true;
            return;
        }
        let verified = self
            .tokens
            .pick(packet.data.as_ref())
            .and_then(|t| self.ctx.verifier.verify(t));
        let identity = match verified {
            Ok(identity) => {
                // The handshake's tokens are not needed any more: free them.
                self.tokens = HandshakeTokens::default();
                identity
            }
            Err(e) => {
                log::info!("session {}: connect refused: {e}", self.sid);
                self.ctx.metrics.auth_rejected.inc();
                let refusal = Packet::connect_error(packet.nsp.clone(), "unauthorized");
                out.push(text_frame(refusal.encode()));
                return;
            }
        };
        let socket_id = random_id();
        let going_away = self
            .going_away
            .clone()
            .expect("the transport attaches a recipient before feeding packets");
        self.ctx.supervisor.do_send(RegisterSession {
            session: self.id,
            inbox: self.inbox.open(),
            going_away,
        });
        self.ctx.supervisor.do_send(JoinRoom {
            session: self.id,
            room: acl::user_room(&identity.user_id),
        });
        out.push(text_frame(
            Packet::connect_ok(packet.nsp.clone(), &socket_id).encode(),
        ));
        let welcome = json!({
            "message": "Connected to pushgate",
            "clientId": socket_id,
            "userId": identity.user_id,
            "timestamp": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        });
        emit(out, "welcome", &welcome);
        log::debug!(
            "session {}: connected as {} (admin: {})",
            self.sid,
            identity.user_id,
            identity.is_admin
        );
        self.namespaces.push(packet.nsp.clone());
        self.ever_connected = true;
        self.connection = Some(Connection { identity });
    }

    /// Leave the supervisor (and so every room, which drop the inbox), if the root namespace
    /// is connected.
    fn unregister(&mut self) {
        if self.connection.take().is_some() {
            self.ctx
                .supervisor
                .do_send(UnregisterSession { session: self.id });
        }
    }

    fn on_namespace_disconnect(&mut self, nsp: &str) {
        self.namespaces.retain(|n| n != nsp);
        if nsp == "/" {
            self.unregister();
        }
    }

    fn on_event(&self, packet: &Packet, out: &mut Vec<Outbound>) {
        let (Some(name), Some(Connection { identity })) =
            (packet.event_name(), self.connection.as_ref())
        else {
            return;
        };
        let arg = packet.args().first().cloned().unwrap_or(Value::Null);
        let result = match name.as_ref() {
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
        let payload = payload.to_string();
        out.push(Outbound::Text(
            socketio::encode_event_message(event, &payload).into(),
        ));
        if let Some(id) = packet.id {
            out.push(Outbound::Text(
                socketio::encode_ack_message(id, &payload).into(),
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

    /// Frames to write in a separate write shortly after the current ones. The protocol test
    /// suite reads the CONNECT answer and the `auth` event with two consecutive one-shot
    /// listeners, so the two must not arrive in one TCP segment; nothing else defers.
    pub fn take_deferred(&mut self) -> Vec<Outbound> {
        std::mem::take(&mut self.deferred)
    }

    /// The session ended: leave every room. Idempotent.
    pub fn close(&mut self, reason: CloseReason) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.unregister();
        self.inbox.end();
        self.ctx
            .metrics
            .disconnects
            .with_label_values(&[reason.name()])
            .inc();
        log::debug!("session {}: closed ({})", self.sid, reason.name());
    }
}

fn text_frame(socket_packet: String) -> Outbound {
    Outbound::Text(engineio::encode_message(&socket_packet).into())
}

fn emit(out: &mut Vec<Outbound>, event: &str, payload: &Value) {
    out.push(Outbound::Text(
        socketio::encode_event_message(event, &payload.to_string()).into(),
    ));
}

fn error_payload(event: &str, refusal: &Refusal) -> Value {
    json!({"event": event, "code": refusal.code(), "message": refusal.to_string()})
}

/// Test-suite mode: `message` is answered with `message-back` carrying the same arguments,
/// `message-with-ack` with an ack carrying them; attachments go back as they came.
fn suite_echo(complete: BinaryPacket, out: &mut Vec<Outbound>) {
    let BinaryPacket {
        packet,
        attachments,
    } = complete;
    let binary = !attachments.is_empty();
    let args = packet.args().to_vec();
    let (kind, id, data) = match (packet.event_name().as_deref(), packet.id) {
        (Some("message"), _) => {
            let mut data = vec![json!("message-back")];
            data.extend(args);
            (PacketKind::Event, None, data)
        }
        (Some("message-with-ack"), Some(id)) => (PacketKind::Ack, Some(id), args),
        _ => return,
    };
    let kind = match (kind, binary) {
        (PacketKind::Event, true) => PacketKind::BinaryEvent,
        (PacketKind::Ack, true) => PacketKind::BinaryAck,
        (kind, _) => kind,
    };
    let reply = Packet {
        kind,
        nsp: packet.nsp.clone(),
        id,
        data: Some(Value::Array(data)),
        attachments: attachments.len(),
    };
    out.push(text_frame(reply.encode()));
    out.extend(attachments.into_iter().map(Outbound::Binary));
}
