//! The one timer that drives a session's [`Heartbeat`](crate::heartbeat::Heartbeat) in the
//! actor carrying it, the same for both transports: armed for the moment the heartbeat names,
//! it writes a ping when one is due and ends the session when the client missed its pong or
//! its CONNECT, or when its token expired.

use std::time::Instant;

use actix::{Actor, AsyncContext};

use crate::disconnect::CloseReason;
use crate::heartbeat::Beat;

/// A transport actor that keeps a session's heartbeat.
pub trait HeartbeatTimer: Actor
where
    Self::Context: AsyncContext<Self>,
{
    /// What the session's heartbeat says at `now` (see `SocketSession::beat`); `None` when
    /// this actor keeps no session's clock.
    fn beat(&mut self, now: Instant) -> Option<Beat>;

    /// Write an Engine.IO ping to the client.
    fn ping(&mut self, ctx: &mut Self::Context);

    /// End the session for `reason` (the client missed its pong or its CONNECT, or its token
    /// expired).
    fn timed_out(&mut self, ctx: &mut Self::Context, reason: CloseReason);
}

/// Arm the actor's heartbeat timer for `at`; each time it fires it arms itself again for the
/// next moment the heartbeat names.
pub fn arm<A>(ctx: &mut A::Context, at: Instant)
where
    A: HeartbeatTimer,
    A::Context: AsyncContext<A>,
{
    ctx.run_later(at.saturating_duration_since(Instant::now()), |act, ctx| {
        if let Some(next) = fire(act, ctx) {
            arm::<A>(ctx, next);
        }
    });
}

/// Wake the heartbeat once at `at`, besides its armed chain: for a deadline that came sooner
/// than the chain's next moment (a token expiring, see `SocketSession::take_wake`).
pub fn wake_once<A>(ctx: &mut A::Context, at: Instant)
where
    A: HeartbeatTimer,
    A::Context: AsyncContext<A>,
{
    ctx.run_later(at.saturating_duration_since(Instant::now()), |act, ctx| {
        fire(act, ctx);
    });
}

/// Do what the heartbeat says now; the next moment it names, unless the session ended.
fn fire<A>(act: &mut A, ctx: &mut A::Context) -> Option<Instant>
where
    A: HeartbeatTimer,
    A::Context: AsyncContext<A>,
{
    let reason = match act.beat(Instant::now())? {
        Beat::Wait { ping, next } => {
            if ping {
                act.ping(ctx);
            }
            return Some(next);
        }
        Beat::PingTimeout => CloseReason::PingTimeout,
        Beat::ConnectTimeout => CloseReason::ConnectTimeout,
        Beat::TokenExpired => CloseReason::TokenExpired,
    };
    act.timed_out(ctx, reason);
    None
}
