//! One room's members on one worker thread, and when its pushes go out to them: plain state,
//! held by that thread's [`WorkerRooms`](crate::worker_rooms::WorkerRooms) actor, which
//! decides when a room may hold pushes and arms its timer.
//!
//! **Coalescing.** Each delivery costs a session wake-up and a socket write, whatever its size.
//! With a coalescing window `w`, a push that finds the room quiet (nothing
//! delivered in the last `w`) goes out at once; pushes that follow within `w` wait until `w`
//! has passed since the last delivery and then go out together, so a member gets them in one
//! write. A busy room thus costs one write per member per window instead of one per push, and
//! adds at most `w` of latency; a quiet room (a user's own room, say) adds none. The members
//! are spread over groups whose windows are staggered, so that a big room's writes are spread
//! over the window instead of all falling at once ([`Coalescer`]). Order is kept, and a member
//! gets exactly the pushes accepted while it was a member: the pushes its group is waiting for
//! are delivered before it joins or leaves.
//!
//! The window is `PUSH_COALESCE_MS` when set to a number; by default it adapts to the room
//! ([`AdaptiveWindow`]): zero while the room's pushes can be written one at a time, growing up
//! to a cap while they come faster, so that a quiet room adds no latency and a busy one gets
//! the coalesced costs without configuration.
//!
//! **Exceptions and alerts.** A push that some members must not get (an admin-room copy of a
//! user's event skips that user's own sessions, [`Fanout::except`]), and an alert
//! ([`Fanout::priority`]: `quota.alert`, `quota.exceeded`, the admin `critical` / `error`
//! notifications), flushes what every group is waiting for, then goes out at once to the
//! (other) members: it is never held by the window, and order is kept (whatever was accepted
//! before it is written before it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::SpawnHandle;

use crate::adaptive_window::{AdaptiveWindow, Backlog, CoalesceWindow};
use crate::coalescer::Coalescer;
use crate::inbox::Inbox;
use crate::messages::{Fanout, Packets, SessionId};
use crate::metrics::Metrics;

/// A room's members on one worker thread, and the pushes it holds for them.
pub struct RoomState {
    /// The members' inboxes (on this thread), each with its coalescing group (one map: a
    /// user's room with one member costs one small table, and a group's delivery just skips
    /// the other groups' members).
    members: HashMap<SessionId, (Inbox, usize)>,
    metrics: Arc<Metrics>,
    /// Pushes not delivered to every group yet, and when each group gets them.
    coalescer: Coalescer,
    /// The window that adapts to the room's pushes, unless it is fixed.
    adaptive: Option<AdaptiveWindow>,
    /// The last delivery (an adaptive room's only): its distinct batches, which each
    /// recipient's transport holds until it has written them, and how many members it went to.
    last_delivery: (Vec<Arc<Packets>>, usize),
    /// The timer of the coalescer's next due delivery, and when it fires (armed by the
    /// thread's actor).
    pub timer: Option<(SpawnHandle, Instant)>,
}

impl RoomState {
    /// An empty room that coalesces pushes within the window `coalesce` chooses.
    pub fn new(metrics: Arc<Metrics>, coalesce: CoalesceWindow) -> Self {
        let (coalescer, adaptive) = match coalesce {
            CoalesceWindow::Fixed(window) => (Coalescer::new(window), None),
            CoalesceWindow::Adaptive(limits) => {
                (Coalescer::adaptive(), Some(AdaptiveWindow::new(limits)))
            }
        };
        RoomState {
            members: HashMap::new(),
            metrics,
            coalescer,
            adaptive,
            last_delivery: (Vec::new(), 0),
            timer: None,
        }
    }

    /// Whether the room has no member left on this thread.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// When the coalescer's next delivery is due, if any push waits (`None`: the room holds
    /// nothing).
    pub fn next_due(&self) -> Option<Instant> {
        self.coalescer.next_due()
    }

    /// Add a member (false: it is one already). The pushes its group is waiting for go out
    /// first: they were accepted before it joined.
    pub fn add(&mut self, session: SessionId, inbox: Inbox) -> bool {
        if self.members.contains_key(&session) {
            return false;
        }
        let g = self.coalescer.group_for_newcomer();
        self.deliver(&[g]);
        self.coalescer.joined(g);
        self.members.insert(session, (inbox, g));
        true
    }

    /// Remove a member, after delivering the pushes its group is waiting for (accepted while
    /// it was a member).
    pub fn remove(&mut self, session: SessionId) {
        if let Some(&(_, g)) = self.members.get(&session) {
            self.deliver(&[g]);
            self.members.remove(&session);
            self.coalescer.left(g);
        }
    }

    /// Take a push: at once to the groups whose window is over (all of them for an alert or a
    /// push with exceptions), held for the others.
    pub fn push(&mut self, msg: Fanout) {
        if msg.priority || !msg.except.is_empty() {
            self.deliver_now(msg);
            return;
        }
        let now = Instant::now();
        if let Some(adaptive) = &mut self.adaptive {
            let backlog = backlog(&self.last_delivery);
            let window = adaptive.push(self.members.len(), backlog, now);
            self.coalescer.set_window(window);
        }
        let groups = self.coalescer.push(msg.packet, msg.stamp, now);
        self.deliver(&groups);
    }

    /// Remember a delivery of `batches` to `recipients` members, for the next push's
    /// [`Backlog`] (an adaptive room only: a fixed window does not look).
    fn delivered(&mut self, batches: Vec<Option<Arc<Packets>>>, recipients: usize) {
        if self.adaptive.is_none() || recipients == 0 {
            return;
        }
        let (kept, count) = &mut self.last_delivery;
        kept.clear();
        // Groups that had the same pushes share a batch: keep each once.
        for batch in batches.into_iter().flatten() {
            if !kept.iter().any(|k| Arc::ptr_eq(k, &batch)) {
                kept.push(batch);
            }
        }
        *count = recipients;
    }

    /// The groups of this room that hold some member of `other` (on this thread).
    pub fn groups_shared_with(&self, other: &RoomState) -> Vec<usize> {
        let mut groups = vec![false; self.coalescer.groups()];
        if self.members.len() <= other.members.len() {
            for (session, (_, g)) in &self.members {
                if other.members.contains_key(session) {
                    groups[*g] = true;
                }
            }
        } else {
            for session in other.members.keys() {
                if let Some((_, g)) = self.members.get(session) {
                    groups[*g] = true;
                }
            }
        }
        (0..groups.len()).filter(|&g| groups[g]).collect()
    }

    /// Deliver what `groups` are waiting for.
    pub fn flush_groups(&mut self, groups: &[usize]) {
        self.deliver(groups);
    }

    /// Deliver what every group is waiting for.
    pub fn flush(&mut self) {
        let groups: Vec<usize> = (0..self.coalescer.groups()).collect();
        self.deliver(&groups);
    }

    /// Deliver what the groups whose window has ended by now are waiting for.
    pub fn deliver_due(&mut self) {
        let due = self.coalescer.due(Instant::now());
        self.deliver(&due);
    }

    /// Deliver the pushes `groups` are waiting for to their members, in one batch per member
    /// and one pass over the members.
    fn deliver(&mut self, groups: &[usize]) {
        if groups.is_empty() {
            return;
        }
        let (batches, delivered) = self.coalescer.take(groups);
        if batches.iter().any(Option::is_some) {
            let mut recipients = 0;
            for (inbox, g) in self.members.values() {
                if let Some(packets) = &batches[*g] {
                    inbox.push(packets.clone());
                    recipients += 1;
                }
            }
            self.delivered(batches, recipients);
        }
        let now = Instant::now();
        for accepted_at in delivered {
            self.metrics
                .push_fanout_seconds
                .observe(now.duration_since(accepted_at).as_secs_f64());
        }
    }

    /// Deliver a push at once (an alert, or one that the members in `except` must not get):
    /// every group's waiting pushes first (order is kept), then this one to the other members,
    /// outside the coalescing windows (it is not in the coalescer, so it does not delay the
    /// others).
    fn deliver_now(&mut self, msg: Fanout) {
        self.flush();
        let packets = Arc::new(Packets::from_iter([(msg.packet, msg.stamp)]));
        let mut recipients = 0;
        for (session, (inbox, _)) in &self.members {
            if !msg.except.contains(session) {
                inbox.push(packets.clone());
                recipients += 1;
            }
        }
        self.delivered(vec![Some(packets)], recipients);
        self.metrics
            .push_fanout_seconds
            .observe(msg.stamp.accepted.at.elapsed().as_secs_f64());
    }
}

/// How many recipients of a delivery (its distinct batches, and how many members it went to)
/// have not written it yet: each holds a reference to its batch until then (the room holds
/// one more).
fn backlog((batches, recipients): &(Vec<Arc<Packets>>, usize)) -> Backlog {
    Backlog {
        recipients: *recipients,
        unserved: batches.iter().map(|b| Arc::strong_count(b) - 1).sum(),
    }
}
