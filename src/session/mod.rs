//! One Socket.IO client's state machine, independent of the transport that carries it.
//!
//! A transport actor (WebSocket or long-polling) owns a [`SocketSession`], feeds it every
//! Engine.IO packet it receives and writes out the [`Outbound`] packets it produces. The
//! session authenticates the CONNECT, registers with the room supervisor, answers the client
//! events ([`client_request`]) with their ACL and its [`limits`], and reports why it must end
//! as a [`CloseReason`] (the table of reasons is [`crate::disconnect`]). With recovery on, a
//! CONNECT may ask for its kept session back and then waits for the supervisor's answer
//! ([`recovery`]).

mod admin_ui;
mod client_request;
mod context;
pub mod limits;
pub mod protocol_suite;
pub mod recovery;
pub mod replay;
mod service_health;

pub use admin_ui::{AdminUiNotice, Notice, ADMIN_NAMESPACE};
pub use client_request::{Accepted, ClientRequest, Membership};
pub use context::{Mode, SessionContext};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use base64::Engine as _;
use bytestring::ByteString;
use pushgate_actors::{
    GoingAway, Inbox, JoinRoom, LeaveRoom, RegisterSession, Registration, SessionId,
    UnregisterSession,
};
use rand::Rng;
use serde_json::{json, Value};

use crate::acl::{self, Refusal};
use crate::auth::{HandshakeTokens, Identity};
use crate::client_event_limit::Verdict;
use crate::disconnect::CloseReason;
use crate::heartbeat::{Beat, Heartbeat};
use crate::http::pending_sessions::PendingSlot;
use crate::protocol::engineio::{self, EioPacket};
use crate::protocol::socketio::{self, BinaryPacket, Decoder, Packet, PacketKind};
use crate::protocol::ProtocolError;
use crate::refusal_log;
use limits::SessionLimits;
use recovery::{AwaitingRegistration, HeldInput, RegistrationWait};
use replay::{Replay, ReplayAt};

/// An Engine.IO packet for the transport to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// An Engine.IO text packet, e.g. `42["welcome",{...}]`.
    Text(ByteString),
    /// An Engine.IO binary message (a Socket.IO attachment).
    Binary(Vec<u8>),
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// A new process-local session id (Socket.IO sessions and Server-Sent Events streams share
/// them: both register with the room supervisor).
pub fn next_session_id() -> SessionId {
    NEXT_SESSION.fetch_add(1, Ordering::Relaxed)
}

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
    /// Where the admin UI's notices for it go (the actor owning the session).
    notices: Option<Recipient<AdminUiNotice>>,
    /// Its part in the admin UI: as a socket the UI shows, or as the UI's own socket.
    admin_ui: admin_ui::AdminUiPart,
    /// Where the rooms on this session's thread put its pushes (opened to them when it
    /// registers).
    inbox: Inbox,
    decoder: Decoder,
    /// Packets to write a moment after the current ones (test-suite mode only, see
    /// [`SocketSession::take_deferred`]).
    deferred: Vec<Outbound>,
    ever_connected: bool,
    heartbeat: Heartbeat,
    /// A moment the heartbeat timer must also wake at (see [`SocketSession::take_wake`]).
    wake: Option<Instant>,
    /// Its event rate, rooms and refused CONNECTs.
    limits: SessionLimits,
    ended: bool,
    /// A CONNECT asking for recovery, waiting for the supervisor's answer.
    awaiting: Option<AwaitingRegistration>,
    /// What the client sent while its CONNECT waited.
    held: VecDeque<HeldInput>,
    /// A recovered session's missed pushes, until its transport takes them.
    replay: Option<ReplayAt>,
    /// Its place under `MAX_PENDING_SESSIONS` (set by the handshake), until a CONNECT is
    /// accepted.
    pub(crate) pending_slot: Option<PendingSlot>,
}

impl SocketSession {
    /// A new session for a handshake carrying `tokens`.
    pub fn new(ctx: Arc<SessionContext>, tokens: HandshakeTokens) -> Self {
        let now = Instant::now();
        let heartbeat = Heartbeat::new(&ctx.engine, now);
        let limits = SessionLimits::new(&ctx.limits, now);
        SocketSession {
            ctx,
            id: next_session_id(),
            sid: random_id(),
            tokens,
            namespaces: Vec::new(),
            connection: None,
            going_away: None,
            notices: None,
            admin_ui: admin_ui::AdminUiPart::default(),
            inbox: Inbox::new(),
            decoder: Decoder::new(),
            deferred: Vec::new(),
            ever_connected: false,
            heartbeat,
            wake: None,
            limits,
            ended: false,
            awaiting: None,
            held: VecDeque::new(),
            replay: None,
            pending_slot: None,
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

    /// Tell the session where the shutdown notice and the admin UI's notices go (the actor
    /// owning it); called once, when that actor starts.
    pub fn attach(&mut self, going_away: Recipient<GoingAway>, notices: Recipient<AdminUiNotice>) {
        self.going_away = Some(going_away);
        self.notices = Some(notices);
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

    /// A moment the heartbeat timer must wake at once, besides its chain (the expiry of a token
    /// just connected with, when it comes before the next beat): the transport takes it after
    /// each packet it feeds and arms `heartbeat_timer::wake_once` for it.
    pub fn take_wake(&mut self) -> Option<Instant> {
        self.wake.take()
    }

    /// Whether the pong for the last ping is missing past its deadline: a request arriving
    /// after it sees the session as timed out even before the timer fires.
    pub fn pong_deadline_passed(&self, now: Instant) -> bool {
        self.heartbeat.pong_deadline_passed(now)
    }

    /// The supervisor's answer a CONNECT asking for recovery waits for, once (then nothing):
    /// the transport awaits it without handling anything else of the session (actix's
    /// `ctx.wait`), hands it to [`SocketSession::on_registration`], and only then reads the
    /// inbox (again).
    pub fn take_registration(&mut self) -> Option<RegistrationWait> {
        self.awaiting.as_mut().and_then(|a| a.answer.take())
    }

    /// The supervisor answered the waiting CONNECT: write its reply, `welcome`, then handle
    /// what the client sent meanwhile. A recovered session's missed pushes go between the
    /// reply and `welcome`: the transport takes them right after this
    /// ([`SocketSession::take_replay`]) and writes them a slice at a time.
    pub fn on_registration(
        &mut self,
        answer: Result<Registration, actix::MailboxError>,
        out: &mut Vec<Outbound>,
    ) -> Result<(), CloseReason> {
        let Some(awaiting) = self.awaiting.take() else {
            return Ok(());
        };
        let Some(Connection { identity }) = &self.connection else {
            return Ok(()); // it ended meanwhile
        };
        let identity = identity.clone();
        match answer.map_err(|_| CloseReason::ServerShutdown)? {
            Registration::Recovered { sid, rooms, missed } => {
                self.announce_to_admin_ui(&sid, rooms.clone());
                for room in rooms {
                    self.limits.joined(room);
                }
                let pid = Some(awaiting.asked_pid.as_str());
                self.connected(out, &awaiting.nsp, &sid, pid, Some(missed));
            }
            Registration::Fresh { .. } => {
                self.announce_to_admin_ui(&awaiting.socket_id, Vec::new());
                self.join_own_room(&identity);
                let (sid, pid) = (&awaiting.socket_id, Some(awaiting.pid.as_str()));
                self.connected(out, &awaiting.nsp, sid, pid, None);
            }
        }
        while self.awaiting.is_none() {
            match self.held.pop_front() {
                Some(HeldInput::Text(t)) => self.on_text(&t, out)?,
                Some(HeldInput::Binary(b)) => self.on_binary(&b, out)?,
                None => break,
            }
        }
        Ok(())
    }

    /// A recovered session's missed pushes, once, right after
    /// [`SocketSession::on_registration`] (then nothing): the transport writes the packets it
    /// was given before [`ReplayAt::at`], then the replay in slices, then the rest, and
    /// everything after (its inbox included) behind the replay.
    pub fn take_replay(&mut self) -> Option<ReplayAt> {
        self.replay.take()
    }

    /// Handle one Engine.IO text packet.
    pub fn on_text(&mut self, packet: &str, out: &mut Vec<Outbound>) -> Result<(), CloseReason> {
        if self.awaiting.is_some() {
            self.held.push_back(HeldInput::Text(packet.to_owned()));
            return Ok(());
        }
        match engineio::decode_text(packet).map_err(|e| self.protocol_error(e))? {
            EioPacket::Message(_) if self.ctx.mode == Mode::EngineEcho => {
                out.push(Outbound::Text(packet.into()));
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
        if self.awaiting.is_some() {
            self.held.push_back(HeldInput::Binary(data.to_vec()));
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
            PacketKind::Connect => self.on_connect(packet, out),
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
                    Mode::Gateway if packet.nsp == ADMIN_NAMESPACE => self.on_admin_event(packet),
                    Mode::Gateway => self.on_event(packet, out),
                    _ => {
                        protocol_suite::echo(complete, out);
                        Ok(())
                    }
                }
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
        nsp == "/"
            || (nsp == ADMIN_NAMESPACE && self.ctx.admin_ui.is_some())
            || (self.ctx.mode == Mode::ProtocolTestSuite && nsp == protocol_suite::CUSTOM_NAMESPACE)
    }

    /// A CONNECT: accepted, or refused with a CONNECT_ERROR; the third refusal in a row
    /// closes the connection.
    fn on_connect(&mut self, packet: &Packet, out: &mut Vec<Outbound>) -> Result<(), CloseReason> {
        if !self.known_namespace(&packet.nsp) {
            let refusal = Packet::connect_error(packet.nsp.clone(), "Invalid namespace");
            out.push(socket_packet(refusal.encode()));
            return Ok(());
        }
        if self.namespace_connected(&packet.nsp) {
            return Ok(());
        }
        if packet.nsp == ADMIN_NAMESPACE {
            return self.on_admin_connect(packet, out);
        }
        if self.ctx.mode != Mode::Gateway {
            protocol_suite::accept_connect(packet, out, &mut self.deferred);
            self.namespaces.push(packet.nsp.clone());
            self.ever_connected = true;
            self.pending_slot = None;
            return Ok(());
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
                refusal_log::record(&e);
                self.ctx.metrics.auth_rejected.inc();
                let refusal = Packet::connect_error(packet.nsp.clone(), "unauthorized");
                out.push(socket_packet(refusal.encode()));
                if self.limits.connect_refused() {
                    return Err(CloseReason::ConnectRefused);
                }
                return Ok(());
            }
        };
        self.limits.connect_accepted();
        let socket_id = random_id();
        let pid = self.ctx.recovery.then(recovery::new_pid);
        let recover = pid
            .as_ref()
            .and_then(|_| recovery::requested(packet.data.as_ref(), &identity));
        let asked_pid = recover.as_ref().map(|r| r.pid.clone());
        let going_away = self
            .going_away
            .clone()
            .expect("the transport attaches a recipient before feeding packets");
        let register = RegisterSession {
            session: self.id,
            inbox: self.inbox.open(),
            going_away,
            sid: socket_id.clone(),
            pid: pid.clone(),
            user_id: identity.user_id.clone(),
            recover,
        };
        self.wake = self
            .heartbeat
            .expire_at(identity.expires_at.map(instant_of));
        self.namespaces.push(packet.nsp.clone());
        self.ever_connected = true;
        self.pending_slot = None;
        match (asked_pid, pid) {
            (Some(asked_pid), Some(pid)) => {
                let answer = self.ctx.supervisor.send(register);
                self.awaiting = Some(AwaitingRegistration {
                    nsp: packet.nsp.clone(),
                    socket_id,
                    pid,
                    asked_pid,
                    answer: Some(Box::pin(answer)),
                });
                self.connection = Some(Connection { identity });
            }
            (_, pid) => {
                self.ctx.supervisor.do_send(register);
                self.announce_to_admin_ui(&socket_id, Vec::new());
                self.join_own_room(&identity);
                self.connection = Some(Connection { identity });
                self.connected(out, &packet.nsp, &socket_id, pid.as_deref(), None);
            }
        }
        Ok(())
    }

    /// Join the session's own `user:<sub>` room.
    fn join_own_room(&mut self, identity: &Identity) {
        let own_room = acl::user_room(&identity.user_id);
        self.limits.joined(own_room.clone());
        self.ctx.supervisor.do_send(JoinRoom {
            session: self.id,
            room: own_room,
        });
    }

    /// The CONNECT is accepted as `socket_id`: write its reply (with the `pid` when recovery
    /// is on), then `welcome`; the pushes it missed when it was recovered (`missed` is `None`
    /// for a new session) go between the two, as the replay the transport takes.
    fn connected(
        &mut self,
        out: &mut Vec<Outbound>,
        nsp: &str,
        socket_id: &str,
        pid: Option<&str>,
        missed: Option<Vec<ByteString>>,
    ) {
        let mut reply = Packet::connect_ok(nsp, socket_id).encode();
        if let Some(pid) = pid {
            // `{"sid":...,"pid":...}`, in that order.
            reply.pop(); // its closing brace
            reply.push_str(",\"pid\":");
            reply.push_str(&Value::from(pid).to_string());
            reply.push('}');
        }
        out.push(socket_packet(reply));
        let recovered = missed.is_some();
        if let Some(missed) = missed.filter(|m| !m.is_empty()) {
            self.replay = Some(ReplayAt {
                at: out.len(),
                replay: Replay::new(missed),
            });
        }
        let Some(Connection { identity }) = &self.connection else {
            return;
        };
        let mut welcome = json!({
            "message": "Connected to pushgate",
            "clientId": socket_id,
            "userId": identity.user_id,
            "timestamp": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        });
        if self.ctx.recovery {
            welcome["recovered"] = Value::from(recovered);
        }
        emit(out, "welcome", &welcome);
        log::debug!(
            "session {}: connected as {} (admin: {}, recovered: {recovered})",
            self.sid,
            identity.user_id,
            identity.is_admin
        );
    }

    /// Leave the supervisor (and so every room, which drop the inbox), if the root namespace
    /// is connected; `keep` it for recovery (every end but the client's own disconnect).
    fn unregister(&mut self, keep: bool) {
        if self.connection.take().is_some() {
            self.awaiting = None;
            self.held.clear();
            self.ctx.supervisor.do_send(UnregisterSession {
                session: self.id,
                keep,
            });
            self.limits.left_all();
            self.heartbeat.expire_at(None);
        }
    }

    fn on_namespace_disconnect(&mut self, nsp: &str) {
        self.namespaces.retain(|n| n != nsp);
        if nsp == ADMIN_NAMESPACE {
            self.stop_watching();
        }
        if nsp == "/" {
            self.forget_admin_ui_socket("client namespace disconnect");
            // The client's own disconnect: nothing is kept for recovery.
            self.unregister(false);
        }
    }

    /// A client event in the root namespace: one of the four [`ClientRequest`]s, answered
    /// with its reply event (or `error`) and, when the client passed a callback, the same
    /// payload through the ack. Every event takes a token of the client's rate: over it, the
    /// event is dropped (told `rate_limited` at most once a second), and a client that stays
    /// over it is disconnected.
    fn on_event(&mut self, packet: &Packet, out: &mut Vec<Outbound>) -> Result<(), CloseReason> {
        let (Some(name), Some(Connection { identity })) =
            (packet.event_name(), self.connection.as_ref())
        else {
            return Ok(());
        };
        match self.limits.check_event(Instant::now()) {
            Verdict::Allow => {}
            Verdict::Drop { reply: false } => return Ok(()),
            Verdict::Drop { reply: true } => {
                let payload = error_payload(&name, &self.limits.rate_limited()).to_string();
                reply(out, "error", &payload, packet.id);
                return Ok(());
            }
            Verdict::Disconnect => return Err(CloseReason::RateLimited),
        }
        let arg = packet.args().first().cloned().unwrap_or(Value::Null);
        let Some(request) = ClientRequest::parse(&name, &arg) else {
            // Unknown events are ignored, as the old gateway did; an ack still gets an answer
            // so the client's callback does not wait forever.
            if let Some(id) = packet.id {
                let err = error_payload(
                    &name,
                    &Refusal::BadRequest(format!("unknown event {name:?}")),
                );
                out.push(Outbound::Text(
                    socketio::encode_ack_message(id, &err.to_string()).into(),
                ));
            }
            return Ok(());
        };
        let accepted = request
            .and_then(|r| r.authorize(identity))
            .and_then(|accepted| match accepted.membership {
                Membership::Join => match self.limits.may_join(&accepted.room) {
                    Ok(()) => Ok(accepted),
                    Err(refusal) => {
                        self.ctx.metrics.room_joins_refused.inc();
                        Err(refusal)
                    }
                },
                Membership::Leave => Ok(accepted),
            });
        let mut snapshot = None;
        let (event, payload) = match accepted {
            Ok(accepted) => {
                self.apply(&accepted);
                snapshot = service_health::snapshot_on_admin_join(&self.ctx, &accepted);
                (accepted.reply_event, accepted.reply)
            }
            Err(refusal) => ("error", error_payload(&name, &refusal)),
        };
        reply(out, event, &payload.to_string(), packet.id);
        out.extend(snapshot);
        Ok(())
    }

    /// Join or leave the accepted request's room.
    fn apply(&mut self, accepted: &Accepted) {
        let room = accepted.room.clone();
        match accepted.membership {
            Membership::Join => self.join(room),
            Membership::Leave => self.leave(room),
        }
    }

    /// Join `room` (checked already).
    fn join(&mut self, room: String) {
        self.limits.joined(room.clone());
        let session = self.id;
        self.ctx.supervisor.do_send(JoinRoom { session, room });
    }

    /// Leave `room`.
    fn leave(&mut self, room: String) {
        self.limits.left(&room);
        let session = self.id;
        self.ctx.supervisor.do_send(LeaveRoom { session, room });
    }

    /// Packets to write in a separate write shortly after the current ones. The protocol test
    /// suite reads the CONNECT answer and the `auth` event with two consecutive one-shot
    /// listeners, so the two must not arrive in one TCP segment; nothing else defers.
    pub fn take_deferred(&mut self) -> Vec<Outbound> {
        std::mem::take(&mut self.deferred)
    }

    /// The session ends for `reason`: leave every room, count it. Idempotent.
    pub fn end(&mut self, reason: CloseReason) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.leave_admin_ui(reason.name());
        // Whatever the reason, the client did not leave by itself: kept for recovery (see
        // `crate::disconnect`).
        self.unregister(true);
        self.inbox.end();
        self.ctx
            .metrics
            .disconnects
            .with_label_values(&[reason.name()])
            .inc();
        log::debug!("session {}: ended ({})", self.sid, reason.name());
    }
}

/// A Socket.IO packet wrapped in an Engine.IO message packet.
fn socket_packet(socket_packet: String) -> Outbound {
    Outbound::Text(engineio::encode_message(&socket_packet).into())
}

fn emit(out: &mut Vec<Outbound>, event: &str, payload: &Value) {
    out.push(Outbound::Text(
        socketio::encode_event_message(event, &payload.to_string()).into(),
    ));
}

/// A client event's answer: the reply `event` and, when the client asked for an ack (`ack`),
/// the same payload through it.
fn reply(out: &mut Vec<Outbound>, event: &str, payload: &str, ack: Option<u64>) {
    out.push(Outbound::Text(
        socketio::encode_event_message(event, payload).into(),
    ));
    if let Some(id) = ack {
        out.push(Outbound::Text(
            socketio::encode_ack_message(id, payload).into(),
        ));
    }
}

/// The [`Instant`] a wall-clock time falls at (now, when it has passed).
fn instant_of(at: SystemTime) -> Instant {
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + left
}

fn error_payload(event: &str, refusal: &Refusal) -> Value {
    json!({"event": event, "code": refusal.code(), "message": refusal.to_string()})
}
