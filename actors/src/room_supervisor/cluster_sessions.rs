//! Cluster mode's session hooks (`CLUSTER=rabbitmq` with recovery on): the supervisor tells
//! the cluster's log what recovery needs of its sessions, and claims a kept session through
//! the log before it gives it back, so that any node can recover any node's client, once.
//!
//! - A session that registers, joins or leaves a room: a `Live` record with its rooms.
//! - A session that ends: an `Ended` record, `kept` unless its client disconnected itself.
//! - A CONNECT asking for a session back: a `Taken` claim, then the registration waits (at
//!   most [`CLAIM_WAIT`]) until this node read its claim back. By then it has read every push
//!   appended before the claim, the client's last one included, and the log's one order has
//!   decided whether this claim took the session (see
//!   [`LogSessionRecords`](crate::recovery::LogSessionRecords)). No claim read back in time:
//!   a fresh session (`unknown`).

use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::channel::oneshot;

use super::RoomSupervisor;
use crate::cluster::session_log::now_ms;
use crate::cluster::{pid_hash, LoggedSession, SessionEvent, SessionLog};
use crate::messages::{GoingAway, RegisterSession, SessionId};

/// The longest a reconnecting client waits for its claim to be read back.
pub const CLAIM_WAIT: Duration = Duration::from_secs(5);

impl RoomSupervisor {
    /// Write session records to the cluster's log through `log` (cluster mode, recovery on).
    pub fn with_session_log(mut self, log: SessionLog) -> Self {
        self.session_log = Some(log);
        self
    }

    /// Append `session`'s state (its rooms) to the cluster's log, in cluster mode.
    pub(super) fn announce(&self, session: SessionId) {
        let (Some(log), Some(entry)) = (&self.session_log, self.sessions.get(&session)) else {
            return;
        };
        let Some(keepable) = &entry.keepable else {
            return;
        };
        log.append(SessionEvent::Live {
            life: session,
            pid: pid_hash(&keepable.pid),
            sid: keepable.sid.clone(),
            user_id: keepable.user_id.clone(),
            rooms: entry.rooms.iter().cloned().collect(),
            registered_at: keepable.registered_at.0,
        });
    }

    /// In cluster mode, append `session`'s end (kept or not) and say so: the log, not this
    /// process, keeps it.
    pub(super) fn log_end(&self, session: SessionId, kept: bool) -> bool {
        let Some(log) = &self.session_log else {
            return false;
        };
        if let Some(keepable) = self
            .sessions
            .get(&session)
            .and_then(|e| e.keepable.as_ref())
        {
            log.append(SessionEvent::Ended {
                life: session,
                pid: pid_hash(&keepable.pid),
                kept,
                at_ms: now_ms(),
            });
        }
        true
    }

    /// In cluster mode, claim the session `msg` asks back: the claim is appended, and the
    /// answer is read back from the log.
    pub(super) fn claim(&mut self, msg: &RegisterSession) -> Option<oneshot::Receiver<()>> {
        let (Some(log), Some(recover), Some(_)) = (&self.session_log, &msg.recover, &self.recovery)
        else {
            return None;
        };
        log.append(SessionEvent::Taken {
            life: msg.session,
            pid: pid_hash(&recover.pid),
            user_id: msg.user_id.clone(),
        });
        let (read_back, answer) = oneshot::channel();
        self.claims.insert(msg.session, read_back);
        Some(answer)
    }

    /// Register `msg` once its claim was read back (or waited for in vain).
    pub(super) fn register_claimed(
        &mut self,
        msg: RegisterSession,
        answer: oneshot::Receiver<()>,
    ) -> ResponseActFuture<Self, crate::messages::Registration> {
        let wait = async move { actix::clock::timeout(CLAIM_WAIT, answer).await };
        Box::pin(wait.into_actor(self).map(move |read, act, ctx| {
            if !matches!(read, Ok(Ok(()))) {
                act.claims.remove(&msg.session);
                log::warn!(
                    "a recovery claim was not read back from the cluster's log within \
                     {CLAIM_WAIT:?}; the client gets a fresh session"
                );
            }
            act.register(msg, ctx)
        }))
    }
}

/// A session record read from the cluster's log: applied to the kept sessions; this node's
/// own claim, when it is one, lets its registration go on; a session of this node that a
/// claim took (its client came back, here or elsewhere, before this node noticed it left)
/// is closed.
impl Handler<LoggedSession> for RoomSupervisor {
    type Result = ();

    fn handle(&mut self, msg: LoggedSession, _ctx: &mut Self::Context) {
        let Some(store) = self.recovery.as_mut() else {
            return;
        };
        let applied = store.records.apply(&msg.origin, msg.event, Instant::now());
        if let Some(read_back) = applied.claim_read_back.and_then(|l| self.claims.remove(&l)) {
            let _ = read_back.send(());
        }
        if let Some(entry) = applied.superseded.and_then(|l| self.sessions.get(&l)) {
            // Its client is back on another session: this transport is stale.
            entry.going_away.do_send(GoingAway);
        }
    }
}
