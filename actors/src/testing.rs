//! A stand-in session for tests, of this crate and of its users (built for the crate's own
//! tests and with the `test-util` feature, never in a release build): it opens an inbox on its
//! thread, as a real session does, and hands what it receives to a closure of the test's.

use actix::prelude::*;

use crate::inbox::{Inbox, OpenedInbox};
use crate::messages::{Deliver, GoingAway};

/// What a [`ProbeSession`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// One delivery: its packets, in order.
    Packets(Vec<String>),
    /// The server is shutting down ([`GoingAway`]).
    GoingAway,
}

/// A session that records instead of writing to a socket.
pub struct ProbeSession {
    inbox: Inbox,
    record: Box<dyn FnMut(Received)>,
}

impl ProbeSession {
    /// Start one on this thread; returns its address and its opened inbox, to register it
    /// ([`RegisterSession`](crate::RegisterSession)) or add it to a room as a member.
    pub fn start(record: impl FnMut(Received) + 'static) -> (Addr<ProbeSession>, OpenedInbox) {
        let inbox = Inbox::new();
        let opened = inbox.open();
        let probe = ProbeSession {
            inbox,
            record: Box::new(record),
        }
        .start();
        (probe, opened)
    }
}

impl Actor for ProbeSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.add_message_stream(self.inbox.stream());
    }
}

impl Handler<Deliver> for ProbeSession {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _ctx: &mut Self::Context) {
        (self.record)(Received::Packets(
            msg.packets.iter().map(|p| p.to_string()).collect(),
        ));
    }
}

impl Handler<GoingAway> for ProbeSession {
    type Result = ();

    fn handle(&mut self, _msg: GoingAway, _ctx: &mut Self::Context) {
        (self.record)(Received::GoingAway);
    }
}
