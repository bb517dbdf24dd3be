//! The WebSocket transport: one actor per connection, owning its Socket.IO session.
//!
//! This is the only place that uses `actix-web-actors` (deprecated upstream in favour of
//! `actix-ws`, kept because the design card asks for it): switching means rewriting this file.

use actix::prelude::*;
use actix_web::{HttpRequest, HttpResponse};
use actix_web_actors::ws;
use pushgate_actors::Deliver;

use crate::session::{CloseReason, Outbound, SocketSession};

/// A WebSocket connection carrying one Socket.IO session.
pub struct WsTransport {
    session: SocketSession,
    /// A fragmented message being reassembled: (is text, bytes so far).
    fragments: Option<(bool, Vec<u8>)>,
    out: Vec<Outbound>,
    /// Whether to send the Engine.IO open packet on start (not after an upgrade from polling).
    send_open: bool,
}

impl WsTransport {
    /// A fresh Engine.IO session opened directly over WebSocket.
    pub fn new(session: SocketSession) -> Self {
        WsTransport {
            session,
            fragments: None,
            out: Vec::new(),
            send_open: true,
        }
    }

    /// Accept the upgrade and start the actor.
    pub fn start(self, req: &HttpRequest, stream: actix_web::web::Payload) -> HttpResponse {
        // Frames up to maxPayload; the Engine.IO packet type byte is not counted by clients.
        let max = self.session.context().engine.max_payload + 16;
        match ws::WsResponseBuilder::new(self, req, stream)
            .frame_size(max)
            .start()
        {
            Ok(resp) => resp,
            Err(e) => actix_web::ResponseError::error_response(e.as_response_error()),
        }
    }

    fn flush(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        for frame in self.out.drain(..) {
            match frame {
                Outbound::Text(t) => ctx.text(t),
                Outbound::Binary(b) => ctx.binary(b),
            }
        }
    }

    fn shut(&mut self, ctx: &mut ws::WebsocketContext<Self>, reason: CloseReason) {
        self.flush(ctx);
        self.session.close(reason);
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::from(reason.websocket_code()),
            description: Some(reason.name().replace('_', " ")),
        }));
        ctx.stop();
    }

    fn on_result(&mut self, ctx: &mut ws::WebsocketContext<Self>, r: Result<(), CloseReason>) {
        match r {
            Ok(()) => self.flush(ctx),
            Err(reason) => self.shut(ctx, reason),
        }
    }

    fn on_fragment(&mut self, ctx: &mut ws::WebsocketContext<Self>, item: actix_http::ws::Item) {
        let max = self.session.context().engine.max_payload;
        let (first, data, last) = match item {
            actix_http::ws::Item::FirstText(b) => (Some(true), b, false),
            actix_http::ws::Item::FirstBinary(b) => (Some(false), b, false),
            actix_http::ws::Item::Continue(b) => (None, b, false),
            actix_http::ws::Item::Last(b) => (None, b, true),
        };
        match (first, self.fragments.as_mut()) {
            (Some(is_text), None) => self.fragments = Some((is_text, data.to_vec())),
            (None, Some((_, buf))) => buf.extend_from_slice(&data),
            _ => return self.shut(ctx, CloseReason::ProtocolError),
        }
        if self.fragments.as_ref().is_some_and(|(_, b)| b.len() > max) {
            return self.shut(ctx, CloseReason::PayloadTooLarge);
        }
        if last {
            let (is_text, buf) = self.fragments.take().expect("set above");
            let r = if is_text {
                match String::from_utf8(buf) {
                    Ok(text) => self.session.on_text(&text, &mut self.out),
                    Err(_) => Err(CloseReason::ProtocolError),
                }
            } else {
                self.session.on_binary(&buf, &mut self.out)
            };
            self.on_result(ctx, r);
        }
    }
}

impl Actor for WsTransport {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.session.attach(ctx.address().recipient());
        if self.send_open {
            ctx.text(self.session.open_packet(&[]));
        }
        let engine = self.session.context().engine;
        ctx.run_interval(engine.ping_interval, move |act, ctx| {
            ctx.text(act.session.ping());
            ctx.run_later(engine.ping_timeout, |act, ctx| {
                if act.session.pong_overdue() {
                    act.shut(ctx, CloseReason::PingTimeout);
                }
            });
        });
        ctx.run_later(engine.connect_timeout, |act, ctx| {
            if !act.session.is_connected() {
                act.shut(ctx, CloseReason::ConnectTimeout);
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        // Idempotent: a no-op when `shut` already recorded the reason.
        self.session.close(CloseReason::ClientClose);
    }
}

impl Handler<Deliver> for WsTransport {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        ctx.text(msg.frame);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsTransport {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match msg {
            Ok(ws::Message::Text(text)) => {
                let r = self.session.on_text(&text, &mut self.out);
                self.on_result(ctx, r);
            }
            Ok(ws::Message::Binary(data)) => {
                let r = self.session.on_binary(&data, &mut self.out);
                self.on_result(ctx, r);
            }
            Ok(ws::Message::Continuation(item)) => self.on_fragment(ctx, item),
            Ok(ws::Message::Ping(data)) => ctx.pong(&data),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(_)) => self.shut(ctx, CloseReason::ClientClose),
            Err(ws::ProtocolError::Overflow) => self.shut(ctx, CloseReason::PayloadTooLarge),
            Err(e) => {
                log::debug!("session {}: websocket error: {e}", self.session.sid());
                self.shut(ctx, CloseReason::TransportError);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        self.session.close(CloseReason::ClientClose);
        ctx.stop();
    }
}
