//! One actor per non-empty room: it holds the room's members and writes each frame it is given
//! to all of them.
//!
//! Rooms are created by the [`RoomSupervisor`](crate::RoomSupervisor) on first join and stop
//! themselves when their last member leaves.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use crate::messages::{AddMember, Deliver, Fanout, RemoveMember, SessionId};
use crate::metrics::Metrics;

/// A room and its members.
pub struct Room {
    name: String,
    members: HashMap<SessionId, Recipient<Deliver>>,
    metrics: Arc<Metrics>,
}

impl Room {
    /// An empty room; the supervisor adds the first member right after starting it.
    pub fn new(name: String, metrics: Arc<Metrics>) -> Self {
        Room {
            name,
            members: HashMap::new(),
            metrics,
        }
    }
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        log::debug!("room {} opened", self.name);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        log::debug!("room {} closed", self.name);
    }
}

impl Handler<AddMember> for Room {
    type Result = ();

    fn handle(&mut self, msg: AddMember, _ctx: &mut Self::Context) {
        // Inserting an existing id replaces its recipient (a session that changed transport).
        self.members.insert(msg.session, msg.recipient);
    }
}

impl Handler<RemoveMember> for Room {
    type Result = ();

    fn handle(&mut self, msg: RemoveMember, ctx: &mut Self::Context) {
        self.members.remove(&msg.session);
        if self.members.is_empty() {
            ctx.stop();
        }
    }
}

impl Handler<Fanout> for Room {
    type Result = ();

    fn handle(&mut self, msg: Fanout, _ctx: &mut Self::Context) {
        for recipient in self.members.values() {
            recipient.do_send(Deliver {
                frame: msg.frame.clone(),
            });
        }
        self.metrics
            .push_fanout_seconds
            .observe(msg.accepted_at.elapsed().as_secs_f64());
    }
}
