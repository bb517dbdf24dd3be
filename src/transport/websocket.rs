//! The WebSocket transport: one actor per connection.
//!
//! A connection either owns its Socket.IO session (opened directly over WebSocket: pushes
//! come straight here) or carries a session that started on long-polling (after the
//! `2probe` / `3probe` / `5` upgrade, the [`PollingSession`] stays the session's actor and
//! this one only moves frames).
//!
//! The connection is handed over by actix-http (see [`upgraded`](crate::transport::upgraded)):
//! the actor writes its data frames itself, through the connection's [`Wire`], and the room
//! pushes do not even pass through the actor: the connection's task takes them from the
//! session's inbox and writes them (a push's frames are encoded once, by the first receiver on
//! the thread, and the other receivers write the same buffer), so a push wakes no actor. The
//! context (`ws::WebsocketContext`) carries only control frames (pongs, the close frame), and
//! reads the input.
//!
//! This is the only place that uses `actix-web-actors` (deprecated upstream in favour of
//! `actix-ws`, kept because the design card asks for it): switching means rewriting this file.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use actix::prelude::*;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use bytes::BytesMut;
use pushgate_actors::{GoingAway, Registration};

use crate::disconnect::CloseReason;
use crate::heartbeat::Beat;
use crate::protocol::engineio;
use crate::session::replay::ReplayAt;
use crate::session::{AdminUiNotice, Outbound, SocketSession};
use crate::transport::heartbeat_timer::{self, HeartbeatTimer};
use crate::transport::input_violation;
use crate::transport::polling::{
    CarriedFrame, CarrierCommand, CarrierGone, CarrierStarted, InputSettled, PollingSession,
    Probed, UpgradeCompleted,
};
use crate::transport::upgraded::{Handover, InputFault, Wire};
use crate::transport::wire_frames;

/// How long [`SocketSession::take_deferred`] frames wait.
const DEFER: std::time::Duration = std::time::Duration::from_millis(5);

/// What the connection is for.
enum Role {
    /// It owns the session.
    Owner(Box<SocketSession>),
    /// It carries a polling session's upgrade; `upgrade_completed` once the client sent `5`.
    Carrier {
        session: Addr<PollingSession>,
        upgrade_completed: bool,
    },
    /// An upgrade of a session that already upgraded (or is upgrading): accepted, then closed
    /// at once, as Engine.IO servers do.
    Refused,
}

/// A received frame.
enum Inbound {
    Text(bytestring::ByteString),
    Binary(Vec<u8>),
}

/// One WebSocket connection.
pub struct WsTransport {
    role: Role,
    max_payload: usize,
    /// A fragmented message being reassembled: (is text, bytes so far).
    fragments: Option<(bool, Vec<u8>)>,
    out: Vec<Outbound>,
    closed: Option<CloseReason>,
    /// Set by the connection's input when it ended in error, to why.
    input_fault: Rc<Cell<Option<InputFault>>>,
    /// Set to have the input read the socket at once (see
    /// [`Input::settle`](crate::transport::upgraded::Input::settle)).
    settle_input: Rc<Cell<bool>>,
    /// The connection's write side (set from its input before the actor starts): every data
    /// frame of the connection goes this way, encoded here or, for room pushes, by the
    /// connection's task (once for all receivers); only control frames go through the context.
    wire: Wire,
}

impl WsTransport {
    /// A fresh Engine.IO session opened directly over WebSocket.
    pub fn owner(session: SocketSession) -> Self {
        let max_payload = session.context().engine.max_payload;
        WsTransport::new(Role::Owner(Box::new(session)), max_payload)
    }

    /// The upgrade of a polling session (whose upgrade this connection has claimed).
    pub fn carrier(session: Addr<PollingSession>, max_payload: usize) -> Self {
        let role = Role::Carrier {
            session,
            upgrade_completed: false,
        };
        WsTransport::new(role, max_payload)
    }

    /// A connection to close right after the handshake (a second upgrade of one session).
    pub fn refused() -> Self {
        WsTransport::new(Role::Refused, 0)
    }

    fn new(role: Role, max_payload: usize) -> Self {
        WsTransport {
            role,
            max_payload,
            fragments: None,
            out: Vec::new(),
            closed: None,
            input_fault: Rc::default(),
            settle_input: Rc::default(),
            wire: Wire::default(),
        }
    }

    /// Accept the upgrade: the actor starts once actix-http has handed the connection over to
    /// the upgrade service (see [`upgraded`](crate::transport::upgraded)), which writes the
    /// 101 this answers with, then the actor's frames, without the HTTP/1 dispatcher and its
    /// buffers.
    pub fn start(self, req: &HttpRequest) -> HttpResponse {
        // A message of at most maxPayload bytes, its Engine.IO type byte included, as the
        // reference server's (its `ws` maxPayload is the whole message), as a fragmented
        // message below and as a polling POST.
        let max = self.max_payload;
        let Some(handover) = req.extensions().get::<Handover>().cloned() else {
            // Every upgrade request reaches the application through the upgrade service.
            log::error!("a WebSocket upgrade that did not come through the upgrade service");
            return HttpResponse::InternalServerError().finish();
        };
        match ws::handshake(req) {
            Ok(mut resp) => {
                handover.accept(Box::new(move |mut input| {
                    input.limit_frames(max);
                    let mut actor = self;
                    actor.input_fault = input.fault();
                    actor.settle_input = input.settle();
                    actor.wire = input.wire();
                    let codec = actix_http::ws::Codec::new().max_size(max);
                    Box::pin(ws::WebsocketContext::with_codec(actor, input, codec))
                }));
                resp.finish()
            }
            Err(e) => actix_web::ResponseError::error_response(&e),
        }
    }

    fn shut(&mut self, ctx: &mut ws::WebsocketContext<Self>, reason: CloseReason) {
        self.wire.stop_inbox(); // no push after the close frame
        write(&self.wire, self.out.drain(..));
        self.closed = Some(reason);
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::from(reason.websocket_code()),
            description: Some(reason.name().replace('_', " ")),
        }));
        ctx.stop();
    }

    fn on_frame(&mut self, ctx: &mut ws::WebsocketContext<Self>, frame: Inbound) {
        let r = match &mut self.role {
            Role::Owner(session) => match frame {
                Inbound::Text(t) => session.on_text(&t, &mut self.out),
                Inbound::Binary(b) => session.on_binary(&b, &mut self.out),
            },
            Role::Carrier {
                session,
                upgrade_completed: true,
            } => {
                session.do_send(match frame {
                    Inbound::Text(t) => CarriedFrame::Text(t),
                    Inbound::Binary(b) => CarriedFrame::Binary(b),
                });
                Ok(())
            }
            Role::Carrier {
                session,
                upgrade_completed,
            } => match frame {
                Inbound::Text(t) if &*t == engineio::PING_PROBE => {
                    self.out.push(Outbound::Text(engineio::PONG_PROBE.into()));
                    session.do_send(Probed);
                    Ok(())
                }
                Inbound::Text(t) if &*t == engineio::UPGRADE => {
                    *upgrade_completed = true;
                    session.do_send(UpgradeCompleted {
                        carrier: ctx.address().recipient(),
                    });
                    Ok(())
                }
                _ => Err(CloseReason::ProtocolError),
            },
            Role::Refused => Err(CloseReason::ProtocolError),
        };
        self.after_input(ctx, r);
    }

    /// Write what handling the client's input produced (or close for `r`'s reason), and do
    /// what the session asks next: deferred frames, a wake-up, a wait for its registration.
    fn after_input(&mut self, ctx: &mut ws::WebsocketContext<Self>, r: Result<(), CloseReason>) {
        match r {
            Ok(()) => write(&self.wire, self.out.drain(..)),
            Err(reason) => return self.shut(ctx, reason),
        }
        if let Role::Owner(session) = &mut self.role {
            let later = session.take_deferred();
            if !later.is_empty() {
                ctx.run_later(DEFER, move |act, _| write(&act.wire, later));
            }
            if let Some(at) = session.take_wake() {
                heartbeat_timer::wake_once::<Self>(ctx, at);
            }
            if let Some(answer) = session.take_registration() {
                // Nothing else of the session is handled, and no push is written, until the
                // answer's CONNECT reply (and the pushes it missed) are.
                self.wire.stop_inbox();
                let answer = answer.into_actor(self);
                ctx.wait(answer.map(|answer, act, ctx| act.on_registration(ctx, answer)));
            }
        }
    }

    /// The supervisor answered a CONNECT asking for recovery: its reply, then the pushes.
    fn on_registration(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        answer: Result<Registration, MailboxError>,
    ) {
        let Role::Owner(session) = &mut self.role else {
            return;
        };
        let r = session.on_registration(answer, &mut self.out);
        if let Some(ReplayAt { at, replay }) = session.take_replay() {
            // The CONNECT reply, then the missed pushes a slice at a time; `welcome` and all
            // that follows wait behind them.
            let after = self.out.split_off(at);
            write(&self.wire, self.out.drain(..));
            self.wire.replay(replay);
            self.out = after;
        }
        let metrics = session.context().metrics.clone();
        self.wire.read_inbox(session.inbox().clone(), metrics);
        self.after_input(ctx, r);
    }

    fn on_fragment(&mut self, ctx: &mut ws::WebsocketContext<Self>, item: actix_http::ws::Item) {
        use actix_http::ws::Item;
        let (first, data, last) = match item {
            Item::FirstText(b) => (Some(true), b, false),
            Item::FirstBinary(b) => (Some(false), b, false),
            Item::Continue(b) => (None, b, false),
            Item::Last(b) => (None, b, true),
        };
        match (first, self.fragments.as_mut()) {
            (Some(is_text), None) => self.fragments = Some((is_text, data.to_vec())),
            (None, Some((_, buf))) => buf.extend_from_slice(&data),
            _ => return self.shut(ctx, CloseReason::ProtocolError),
        }
        if self
            .fragments
            .as_ref()
            .is_some_and(|(_, b)| b.len() > self.max_payload)
        {
            return self.shut(ctx, CloseReason::PayloadTooLarge);
        }
        if last {
            let (is_text, buf) = self.fragments.take().expect("set above");
            let frame = if is_text {
                match String::from_utf8(buf) {
                    Ok(text) => Inbound::Text(text.into()),
                    Err(_) => return self.shut(ctx, CloseReason::InvalidText),
                }
            } else {
                Inbound::Binary(buf)
            };
            self.on_frame(ctx, frame);
        }
    }
}

impl Actor for WsTransport {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let session = match &mut self.role {
            Role::Owner(session) => session,
            Role::Refused => return self.shut(ctx, CloseReason::ProtocolError),
            Role::Carrier { session, .. } => {
                // Its session keeps the timers, and closes it if it ends before the upgrade;
                // one that has ended already cannot be told, so a failed send closes it here.
                let started = CarrierStarted {
                    carrier: ctx.address().recipient(),
                };
                let reply = session.send(started).into_actor(self);
                ctx.spawn(reply.map(|sent, act, ctx| {
                    if sent.is_err() {
                        act.shut(ctx, CloseReason::TransportError);
                    }
                }));
                return;
            }
        };
        session.attach(ctx.address().recipient(), ctx.address().recipient());
        // The connection writes the room pushes itself, without running this actor.
        let metrics = session.context().metrics.clone();
        self.wire.read_inbox(session.inbox().clone(), metrics);
        let open = Outbound::Text(session.open_packet(&[]).into());
        write(&self.wire, [open]);
        let first = session.first_beat();
        heartbeat_timer::arm::<Self>(ctx, first);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.wire.stop_inbox();
        let reason = self.closed.unwrap_or(if self.wire.fell_behind() {
            CloseReason::SlowReader
        } else {
            CloseReason::ClientClose
        });
        match &mut self.role {
            Role::Owner(session) => session.end(reason),
            Role::Carrier { session, .. } => session.do_send(CarrierGone { reason }),
            Role::Refused => {}
        }
    }
}

impl HeartbeatTimer for WsTransport {
    fn beat(&mut self, now: Instant) -> Option<Beat> {
        match &mut self.role {
            Role::Owner(session) => Some(session.beat(now)),
            // A carried session's clock is kept by its polling session.
            Role::Carrier { .. } | Role::Refused => None,
        }
    }

    fn ping(&mut self, _ctx: &mut Self::Context) {
        // Ahead of a replay's rest: the client answers it in time, however long its replay.
        let mut buf = BytesMut::new();
        wire_frames::put_frame(&mut buf, wire_frames::TEXT, engineio::PING.as_bytes());
        self.wire.push_ahead(buf.freeze());
    }

    fn timed_out(&mut self, ctx: &mut Self::Context, reason: CloseReason) {
        self.shut(ctx, reason);
    }
}

impl Handler<GoingAway> for WsTransport {
    type Result = ();

    fn handle(&mut self, _msg: GoingAway, ctx: &mut Self::Context) {
        self.shut(ctx, CloseReason::ServerShutdown);
    }
}

impl Handler<AdminUiNotice> for WsTransport {
    type Result = ();

    fn handle(&mut self, msg: AdminUiNotice, ctx: &mut Self::Context) {
        if let Role::Owner(session) = &mut self.role {
            let r = session.on_admin_ui_notice(msg.notice, &mut self.out);
            self.after_input(ctx, r);
        }
    }
}

impl Handler<CarrierCommand> for WsTransport {
    type Result = ();

    fn handle(&mut self, msg: CarrierCommand, ctx: &mut Self::Context) {
        match msg {
            CarrierCommand::Write(frames) => write(&self.wire, frames),
            CarrierCommand::Pushes(frames) => self.wire.push_delivery(&frames),
            CarrierCommand::Replay(replay) => self.wire.replay(replay),
            CarrierCommand::Close(reason) => self.shut(ctx, reason),
            CarrierCommand::SettleInput => {
                // The input reads the socket when the context polls it next, which it does
                // in this same turn, before the futures spawned here: the answer goes out
                // after the frames read are handled (their messages sent to the session) and
                // what they were answered with (a `3probe`) is written to the socket.
                self.settle_input.set(true);
                ctx.spawn(actix::fut::ready(()).map(|(), act: &mut Self, _| {
                    if let Role::Carrier { session, .. } = &act.role {
                        let session = session.clone();
                        act.wire.when_written(move || session.do_send(InputSettled));
                    }
                }));
            }
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsTransport {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match msg {
            Ok(ws::Message::Text(text)) => self.on_frame(ctx, Inbound::Text(text)),
            Ok(ws::Message::Binary(data)) => self.on_frame(ctx, Inbound::Binary(data.to_vec())),
            Ok(ws::Message::Continuation(item)) => self.on_fragment(ctx, item),
            Ok(ws::Message::Ping(data)) => ctx.pong(&data),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(_)) => self.shut(ctx, CloseReason::ClientClose),
            Err(e) => {
                let reason = input_violation::close_reason(&e, self.input_fault.get());
                log::debug!("closing a websocket ({}): {e}", reason.name());
                self.shut(ctx, reason);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Write data frames to the connection's `wire`, encoded in one buffer.
fn write(wire: &Wire, frames: impl IntoIterator<Item = Outbound>) {
    let mut buf = BytesMut::new();
    for frame in frames {
        match frame {
            Outbound::Text(t) => wire_frames::put_frame(&mut buf, wire_frames::TEXT, t.as_bytes()),
            Outbound::Binary(b) => wire_frames::put_frame(&mut buf, wire_frames::BINARY, &b),
        }
    }
    wire.push(buf.freeze());
}

/// Whether `req` is a valid WebSocket upgrade request.
pub fn is_handshake(req: &HttpRequest) -> bool {
    ws::handshake(req).is_ok()
}
