//! The WebSocket transport: one actor per connection.
//!
//! A connection either owns its Socket.IO session (opened directly over WebSocket: pushes
//! come straight here) or carries a session that started on long-polling (after the
//! `2probe` / `3probe` / `5` upgrade, the [`PollingSession`] stays the session's actor and
//! this one only moves frames).
//!
//! On pushgate's server (see [`upgraded`](crate::transport::upgraded)) the actor writes its data
//! frames itself, through the connection's [`Wire`], and the room pushes do not even pass
//! through the actor: the connection's task takes them from the session's inbox and writes
//! them (a push's frames are encoded once, by the first receiver on the thread, and the other
//! receivers write the same buffer), so a push wakes no actor. The context
//! (`ws::WebsocketContext`) then carries only control frames (pongs, the close frame), and
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
use pushgate_actors::{Deliver, GoingAway};

use crate::disconnect::CloseReason;
use crate::heartbeat::Beat;
use crate::protocol::engineio;
use crate::session::{Outbound, SocketSession};
use crate::transport::polling::{
    CarriedFrame, CarrierCommand, CarrierGone, CarrierStarted, PollingSession, Probed, Upgraded,
};
use crate::transport::upgraded::{Handover, Wire};
use crate::transport::wire_frames;

/// How long [`SocketSession::take_deferred`] frames wait.
const DEFER: std::time::Duration = std::time::Duration::from_millis(5);

/// What the connection is for.
enum Role {
    /// It owns the session.
    Owner(Box<SocketSession>),
    /// It carries a polling session's upgrade; `upgraded` once the client sent `5`.
    Carrier {
        session: Addr<PollingSession>,
        upgraded: bool,
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
    /// Set by the connection's input when a frame header announced more than the limit.
    oversized_input: Rc<Cell<bool>>,
    /// The connection's write side when it was handed over by actix-http: every data frame
    /// of the connection then goes this way, encoded here (pushes once for all receivers),
    /// and only control frames through the context.
    wire: Option<Wire>,
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
            upgraded: false,
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
            oversized_input: Rc::default(),
            wire: None,
        }
    }

    /// Accept the upgrade and start the actor.
    ///
    /// On pushgate's server the connection was handed over by actix-http (see
    /// [`upgraded`](crate::transport::upgraded)): the actor's frames go to the socket without
    /// the HTTP/1 dispatcher and its buffers, and the answer is the bare 101. Elsewhere (a
    /// server without that upgrade service) the frames are streamed as the 101's body.
    pub fn start(self, req: &HttpRequest, stream: actix_web::web::Payload) -> HttpResponse {
        // A message of at most maxPayload bytes, its Engine.IO type byte included, as the
        // reference server's (its `ws` maxPayload is the whole message), as a fragmented
        // message below and as a polling POST.
        let max = self.max_payload;
        let handover = req.extensions().get::<Handover>().cloned();
        if let Some(handover) = handover {
            return match ws::handshake(req) {
                Ok(mut resp) => {
                    handover.accept(Box::new(move |mut input| {
                        input.limit_frames(max);
                        let mut actor = self;
                        actor.oversized_input = input.oversized();
                        actor.wire = Some(input.wire());
                        let codec = actix_http::ws::Codec::new().max_size(max);
                        Box::pin(ws::WebsocketContext::with_codec(actor, input, codec))
                    }));
                    resp.finish()
                }
                Err(e) => actix_web::ResponseError::error_response(&e),
            };
        }
        match ws::WsResponseBuilder::new(self, req, stream)
            .frame_size(max)
            .start()
        {
            Ok(resp) => resp,
            Err(e) => actix_web::ResponseError::error_response(e.as_response_error()),
        }
    }

    fn shut(&mut self, ctx: &mut ws::WebsocketContext<Self>, reason: CloseReason) {
        if let Some(wire) = &self.wire {
            wire.stop_inbox(); // no push after the close frame
        }
        write(ctx, self.wire.as_ref(), self.out.drain(..));
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
                upgraded: true,
            } => {
                session.do_send(match frame {
                    Inbound::Text(t) => CarriedFrame::Text(t),
                    Inbound::Binary(b) => CarriedFrame::Binary(b),
                });
                Ok(())
            }
            Role::Carrier { session, upgraded } => match frame {
                Inbound::Text(t) if &*t == engineio::PING_PROBE => {
                    self.out.push(Outbound::Text(engineio::PONG_PROBE.into()));
                    session.do_send(Probed);
                    Ok(())
                }
                Inbound::Text(t) if &*t == engineio::UPGRADE => {
                    *upgraded = true;
                    session.do_send(Upgraded {
                        carrier: ctx.address().recipient(),
                    });
                    Ok(())
                }
                _ => Err(CloseReason::ProtocolError),
            },
            Role::Refused => Err(CloseReason::ProtocolError),
        };
        match r {
            Ok(()) => write(ctx, self.wire.as_ref(), self.out.drain(..)),
            Err(reason) => return self.shut(ctx, reason),
        }
        if let Role::Owner(session) = &mut self.role {
            let later = session.take_deferred();
            if !later.is_empty() {
                ctx.run_later(DEFER, move |act, ctx| write(ctx, act.wire.as_ref(), later));
            }
        }
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
                    Err(_) => return self.shut(ctx, CloseReason::ProtocolError),
                }
            } else {
                Inbound::Binary(buf)
            };
            self.on_frame(ctx, frame);
        }
    }

    /// Arm the session's one heartbeat timer for `at` (see [`Heartbeat`](crate::heartbeat)).
    fn beat_at(ctx: &mut ws::WebsocketContext<Self>, at: Instant) {
        ctx.run_later(at.saturating_duration_since(Instant::now()), |act, ctx| {
            let Role::Owner(session) = &mut act.role else {
                return;
            };
            match session.beat(Instant::now()) {
                Beat::Wait { ping, next } => {
                    if ping {
                        let ping = Outbound::Text(engineio::PING.into());
                        write(ctx, act.wire.as_ref(), [ping]);
                    }
                    Self::beat_at(ctx, next);
                }
                Beat::PingTimeout => act.shut(ctx, CloseReason::PingTimeout),
                Beat::ConnectTimeout => act.shut(ctx, CloseReason::ConnectTimeout),
            }
        });
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
        match &self.wire {
            // The connection writes the room pushes itself, without running this actor.
            Some(wire) => wire.read_inbox(session.inbox().clone()),
            None => ctx.add_message_stream(session.inbox().stream()),
        }
        let open = Outbound::Text(session.open_packet(&[]).into());
        write(ctx, self.wire.as_ref(), [open]);
        let first = session.first_beat();
        Self::beat_at(ctx, first);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(wire) = &self.wire {
            wire.stop_inbox();
        }
        let fell_behind = self.wire.as_ref().is_some_and(Wire::fell_behind);
        let reason = self.closed.unwrap_or(if fell_behind {
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

impl Handler<Deliver> for WsTransport {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        match &self.wire {
            // Encoded by the first receiver on this thread, written as it is by the others.
            Some(wire) => wire.push(msg.packets.encoded(wire_frames::text_frames)),
            // Frames handed to the context in one handler go out in one socket write.
            None => {
                for frame in msg.packets.iter() {
                    ctx.text(frame.clone());
                }
            }
        }
    }
}

impl Handler<GoingAway> for WsTransport {
    type Result = ();

    fn handle(&mut self, _msg: GoingAway, ctx: &mut Self::Context) {
        self.shut(ctx, CloseReason::ServerShutdown);
    }
}

impl Handler<CarrierCommand> for WsTransport {
    type Result = ();

    fn handle(&mut self, msg: CarrierCommand, ctx: &mut Self::Context) {
        match msg {
            CarrierCommand::Write(frames) => write(ctx, self.wire.as_ref(), frames),
            CarrierCommand::Close(reason) => self.shut(ctx, reason),
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
            Err(ws::ProtocolError::Overflow) => self.shut(ctx, CloseReason::PayloadTooLarge),
            Err(_) if self.oversized_input.get() => self.shut(ctx, CloseReason::PayloadTooLarge),
            Err(e) => {
                log::debug!("websocket error: {e}");
                self.shut(ctx, CloseReason::TransportError);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Write data frames: through the connection's `wire` when it has one, else through the
/// context (which encodes them). One connection always takes the same way, so its frames
/// keep their order.
fn write(
    ctx: &mut ws::WebsocketContext<WsTransport>,
    wire: Option<&Wire>,
    frames: impl IntoIterator<Item = Outbound>,
) {
    let Some(wire) = wire else {
        for frame in frames {
            match frame {
                Outbound::Text(t) => ctx.text(t),
                Outbound::Binary(b) => ctx.binary(b),
            }
        }
        return;
    };
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
