//! One Server-Sent Events stream: an actor registered with the room supervisor like a
//! Socket.IO session, in the rooms such a session of its user is in by itself, writing each
//! push it receives as an event into its [`Outbox`].
//!
//! It starts with `retry:`, then (when its client asked to resume) the pushes it missed or a
//! `reset` event, then live pushes. The missed pushes go out a slice of
//! [`REPLAY_SLICE_BYTES`](crate::session::replay::REPLAY_SLICE_BYTES) at a time, the next once
//! the response body took the last (a resume may be far longer than the slow-reader bound);
//! live pushes that come meanwhile wait behind them. Then live pushes, with a heartbeat comment every `PING_INTERVAL_MS`. It ends
//! (counted in `pushgate_disconnects_total` by reason, like a Socket.IO session) when its
//! client goes away (`client_close`), falls more than [`MAX_UNWRITTEN`] bytes behind
//! (`slow_reader`), its token expires (`token_expired`) or the server shuts down
//! (`server_shutdown`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use bytestring::ByteString;
use pushgate_actors::routing::ADMIN_ROOM;
use pushgate_actors::{
    Deliver, GoingAway, Inbox, RegisterStream, SessionId, StreamStart, UnregisterSession,
};

use super::event;
use super::outbox::{BodyGone, Outbox, OutboxBody, OutboxTaken};
use crate::acl;
use crate::auth::Identity;
use crate::disconnect::CloseReason;
use crate::session::replay::Replay;
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
    /// The missed pushes not written yet, while it resumes.
    replay: Option<Replay>,
    /// The live pushes that came while it resumes, and their bytes.
    held: (Vec<ByteString>, usize),
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
            let addr = actor_ctx.address();
            body = Some(outbox.body(addr.clone().recipient(), addr.recipient()));
            SseStream {
                ctx,
                id: next_session_id(),
                identity,
                resume_after,
                inbox: Inbox::new(),
                outbox,
                replay: None,
                held: (Vec::new(), 0),
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
                self.replay = Some(Replay::new(missed));
                self.write_replay();
            }
            StreamStart::HistoryLost => self.outbox.write(event::reset()),
        }
        ctx.add_message_stream(self.inbox.stream());
        self.check_backlog(ctx);
    }

    /// Write the next slices of the replay until one is queued for the body (which tells
    /// when it took it: [`OutboxTaken`]); once the replay is done, the live pushes held
    /// meanwhile.
    fn write_replay(&mut self) {
        while let Some(replay) = &mut self.replay {
            let slice = replay.next_slice();
            let done = replay.is_done();
            for packet in &slice {
                self.write_push(packet);
            }
            if done {
                self.replay = None;
                let (held, _) = std::mem::take(&mut self.held);
                for packet in &held {
                    self.write_push(packet);
                }
            } else if self.outbox.tell_when_taken() {
                return;
            }
        }
    }

    /// Write one push packet as its event.
    fn write_push(&self, packet: &str) {
        match event::push_event(packet, self.ctx.recovery) {
            Some(event) => self.outbox.write(event),
            None => log::warn!("SSE stream {}: not a push packet, skipped", self.id),
        }
    }

    /// End a client more than [`MAX_UNWRITTEN`] bytes behind (written and not taken, or held
    /// behind its replay).
    fn check_backlog(&mut self, ctx: &mut Context<Self>) {
        let unsent = self.outbox.unsent() + self.held.1;
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
        if self.replay.is_some() {
            for packet in msg.packets.iter() {
                self.held.1 += packet.len();
                self.held.0.push(packet.clone());
            }
        } else {
            for packet in msg.packets.iter() {
                self.write_push(packet);
            }
        }
        self.check_backlog(ctx);
    }
}

impl Handler<OutboxTaken> for SseStream {
    type Result = ();

    fn handle(&mut self, _msg: OutboxTaken, ctx: &mut Self::Context) {
        self.write_replay();
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
