//! One Server-Sent Events stream: an actor registered with the room supervisor like a
//! Socket.IO session, in the rooms such a session of its user is in by itself, writing each
//! push it receives as an event into its [`Outbox`].
//!
//! It starts with `retry:`, then (when its client asked to resume) the pushes it missed or a
//! `reset` event, then live pushes, with a heartbeat comment every `PING_INTERVAL_MS`. It ends
//! (counted in `pushgate_disconnects_total` by reason, like a Socket.IO session) when its
//! client goes away (`client_close`), falls more than [`MAX_UNWRITTEN`] bytes behind
//! (`slow_reader`), its token expires (`token_expired`) or the server shuts down
//! (`server_shutdown`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use pushgate_actors::routing::ADMIN_ROOM;
use pushgate_actors::{
    Deliver, GoingAway, Inbox, RegisterStream, SessionId, StreamStart, UnregisterSession,
};

use super::event;
use super::outbox::{BodyGone, Outbox, OutboxBody};
use crate::acl;
use crate::auth::Identity;
use crate::disconnect::CloseReason;
use crate::session::{next_session_id, SessionContext};
use crate::transport::upgraded::MAX_UNWRITTEN;

/// One client's stream.
pub struct SseStream {
    ctx: Arc<SessionContext>,
    id: SessionId,
    identity: Identity,
    /// The offset the client asked to resume after, until the stream registers.
    resume_after: Option<String>,
    inbox: Inbox,
    outbox: Outbox,
    /// Why it ends, once it does.
    ended: Option<CloseReason>,
}

impl SseStream {
    /// Start the stream of `identity`'s client (resuming after `resume_after`); returns its
    /// response body.
    pub fn open(
        ctx: Arc<SessionContext>,
        identity: Identity,
        resume_after: Option<String>,
    ) -> OutboxBody {
        let outbox = Outbox::new();
        outbox.write(event::retry());
        let mut body = None;
        SseStream::create(|actor_ctx| {
            body = Some(outbox.body(actor_ctx.address().recipient()));
            SseStream {
                ctx,
                id: next_session_id(),
                identity,
                resume_after,
                inbox: Inbox::new(),
                outbox,
                ended: None,
            }
        });
        body.expect("made when the actor was created")
    }

    /// The rooms a Socket.IO session of the same user is in by itself: its user room, and
    /// `admin` for an admin.
    fn rooms(identity: &Identity) -> Vec<String> {
        let mut rooms = vec![acl::user_room(&identity.user_id)];
        if identity.is_admin {
            rooms.push(ADMIN_ROOM.to_owned());
        }
        rooms
    }

    /// How the stream starts, once registered: what it missed (or that it may have missed
    /// something), then its inbox.
    fn start(&mut self, start: StreamStart, ctx: &mut Context<Self>) {
        match start {
            StreamStart::Live => {}
            StreamStart::Resumed { missed } => {
                for packet in &missed {
                    self.write_push(packet);
                }
            }
            StreamStart::HistoryLost => self.outbox.write(event::reset()),
        }
        ctx.add_message_stream(self.inbox.stream());
        self.check_backlog(ctx);
    }

    /// Write one push packet as its event.
    fn write_push(&self, packet: &str) {
        match event::push_event(packet, self.ctx.recovery) {
            Some(event) => self.outbox.write(event),
            None => log::warn!("SSE stream {}: not a push packet, skipped", self.id),
        }
    }

    /// End a client more than [`MAX_UNWRITTEN`] bytes behind.
    fn check_backlog(&mut self, ctx: &mut Context<Self>) {
        let unsent = self.outbox.unsent();
        if unsent > MAX_UNWRITTEN {
            log::info!(
                "ending SSE stream {}: {unsent} bytes not read (slow reader)",
                self.id
            );
            self.end(CloseReason::SlowReader, ctx);
        }
    }

    fn end(&mut self, reason: CloseReason, ctx: &mut Context<Self>) {
        self.ended.get_or_insert(reason);
        ctx.stop();
    }
}

impl Actor for SseStream {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let register = RegisterStream {
            session: self.id,
            inbox: self.inbox.open(),
            going_away: ctx.address().recipient(),
            user_id: self.identity.user_id.clone(),
            rooms: Self::rooms(&self.identity),
            resume_after: self.resume_after.take(),
        };
        // Nothing else runs until it is registered: the missed pushes go first.
        let registered = self.ctx.supervisor.send(register).into_actor(self);
        ctx.wait(registered.map(|answer, act, ctx| match answer {
            Ok(start) => act.start(start, ctx),
            Err(e) => {
                log::warn!("SSE stream {}: the supervisor did not answer: {e}", act.id);
                act.end(CloseReason::ServerShutdown, ctx);
            }
        }));
        ctx.run_interval(self.ctx.engine.ping_interval, |act, ctx| {
            act.outbox.write(event::PING.into());
            act.check_backlog(ctx);
        });
        if let Some(expires_at) = self.identity.expires_at {
            let left = expires_at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            ctx.run_later(left, |act, ctx| act.end(CloseReason::TokenExpired, ctx));
        }
        log::debug!(
            "SSE stream {}: opened for {} (admin: {})",
            self.id,
            self.identity.user_id,
            self.identity.is_admin
        );
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        let reason = self.ended.unwrap_or(CloseReason::ClientClose);
        self.ctx.supervisor.do_send(UnregisterSession {
            session: self.id,
            keep: false,
        });
        self.inbox.end();
        self.outbox.close();
        self.ctx
            .metrics
            .disconnects
            .with_label_values(&[reason.name()])
            .inc();
        log::debug!("SSE stream {}: ended ({})", self.id, reason.name());
    }
}

impl Handler<Deliver> for SseStream {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        for packet in msg.packets.iter() {
            self.write_push(packet);
        }
        self.check_backlog(ctx);
    }
}

impl Handler<GoingAway> for SseStream {
    type Result = ();

    fn handle(&mut self, _msg: GoingAway, ctx: &mut Self::Context) {
        self.end(CloseReason::ServerShutdown, ctx);
    }
}

impl Handler<BodyGone> for SseStream {
    type Result = ();

    fn handle(&mut self, _msg: BodyGone, ctx: &mut Self::Context) {
        self.end(CloseReason::ClientClose, ctx);
    }
}
