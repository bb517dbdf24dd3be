//! One actor per non-empty room and worker thread: it holds the room's members on that thread
//! and writes each packet it is given to all of them.
//!
//! Rooms are created by the [`RoomSupervisor`](crate::RoomSupervisor) on first join and stop
//! themselves when their last member leaves.
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

use actix::prelude::*;

use crate::adaptive_window::{AdaptiveWindow, CoalesceWindow};
use crate::coalescer::Coalescer;
use crate::inbox::Inbox;
use crate::messages::{AddMember, Fanout, Packets, RemoveMember, SessionId};
use crate::metrics::Metrics;

/// A room and its members (on one worker thread).
pub struct Room {
    name: String,
    /// The members' inboxes (on this thread), each with its coalescing group (one map: a
    /// user's room with one member costs one small table, and a group's delivery just skips
    /// the other groups' members).
    members: HashMap<SessionId, (Inbox, usize)>,
    metrics: Arc<Metrics>,
    /// Pushes not delivered to every group yet, and when each group gets them.
    coalescer: Coalescer,
    /// The window that adapts to the room's pushes, unless it is fixed.
    adaptive: Option<AdaptiveWindow>,
    /// The timer of the coalescer's next due delivery, and when it fires.
    timer: Option<(SpawnHandle, Instant)>,
}

impl Room {
    /// An empty room that coalesces pushes within the window `coalesce` chooses; the
    /// supervisor adds the first member right after starting it.
    pub fn new(name: String, metrics: Arc<Metrics>, coalesce: CoalesceWindow) -> Self {
        let (coalescer, adaptive) = match coalesce {
            CoalesceWindow::Fixed(window) => (Coalescer::new(window), None),
            CoalesceWindow::Adaptive(limits) => {
                (Coalescer::adaptive(), Some(AdaptiveWindow::new(limits)))
            }
        };
        Room {
            name,
            members: HashMap::new(),
            metrics,
            coalescer,
            adaptive,
            timer: None,
        }
    }

    /// Deliver the pushes `groups` are waiting for to their members, in one batch per member
    /// and one pass over the members.
    fn deliver(&mut self, groups: &[usize]) {
        if groups.is_empty() {
            return;
        }
        let (batches, delivered) = self.coalescer.take(groups);
        if batches.iter().any(Option::is_some) {
            for (inbox, g) in self.members.values() {
                if let Some(packets) = &batches[*g] {
                    inbox.push(packets.clone());
                }
            }
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
        let groups: Vec<usize> = (0..self.coalescer.groups()).collect();
        self.deliver(&groups);
        let packets = Arc::new(Packets::from_iter([(msg.packet, msg.stamp)]));
        for (session, (inbox, _)) in &self.members {
            if !msg.except.contains(session) {
                inbox.push(packets.clone());
            }
        }
        self.metrics
            .push_fanout_seconds
            .observe(msg.stamp.accepted.at.elapsed().as_secs_f64());
    }

    /// Arm the timer for the coalescer's next due delivery (or drop it when none is).
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        let next = self.coalescer.next_due();
        if let Some((timer, at)) = self.timer {
            if next.is_some_and(|due| at <= due) {
                return; // It fires in time; then it looks again.
            }
            ctx.cancel_future(timer);
            self.timer = None;
        }
        if let Some(due) = next {
            let wait = due.saturating_duration_since(Instant::now());
            let timer = ctx.run_later(wait, |room, ctx| {
                room.timer = None;
                let due = room.coalescer.due(Instant::now());
                room.deliver(&due);
                room.schedule(ctx);
            });
            self.timer = Some((timer, due));
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

    fn handle(&mut self, msg: AddMember, ctx: &mut Self::Context) {
        // The supervisor starts a room on the thread its members' inboxes were opened on.
        let Some(inbox) = msg.inbox.claim() else {
            log::error!(
                "room {}: {}'s inbox lives on another thread",
                self.name,
                msg.session
            );
            return;
        };
        // The supervisor sends one AddMember per join (it ignores a session's repeated joins,
        // and a session keeps its inbox when its transport upgrades).
        if self.members.contains_key(&msg.session) {
            log::debug!("room {}: {} is a member already", self.name, msg.session);
            return;
        }
        let g = self.coalescer.group_for_newcomer();
        // Pushes accepted before the join are not the newcomer's.
        self.deliver(&[g]);
        self.coalescer.joined(g);
        self.members.insert(msg.session, (inbox, g));
        self.schedule(ctx);
    }
}

impl Handler<RemoveMember> for Room {
    type Result = ();

    fn handle(&mut self, msg: RemoveMember, ctx: &mut Self::Context) {
        if let Some(&(_, g)) = self.members.get(&msg.session) {
            // Pushes accepted while it was a member are still the leaver's.
            self.deliver(&[g]);
            self.members.remove(&msg.session);
            self.coalescer.left(g);
        }
        if self.members.is_empty() {
            ctx.stop();
        } else {
            self.schedule(ctx);
        }
    }
}

impl Handler<Fanout> for Room {
    type Result = ();

    fn handle(&mut self, msg: Fanout, ctx: &mut Self::Context) {
        if msg.priority || !msg.except.is_empty() {
            self.deliver_now(msg);
            self.schedule(ctx);
            return;
        }
        let now = Instant::now();
        if let Some(adaptive) = &mut self.adaptive {
            let window = adaptive.push(self.members.len(), now);
            self.coalescer.set_window(window);
        }
        let groups = self.coalescer.push(msg.packet, msg.stamp, now);
        self.deliver(&groups);
        self.schedule(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adaptive_window::AdaptiveLimits;
    use crate::coalescer::MAX_BATCH;
    use crate::messages::{Accepted, PushEvent, PushSource, PushStamp};
    use crate::testing::{ProbeSession, Received};
    use bytestring::ByteString;
    use std::sync::Mutex;
    use std::time::Duration;

    type Seen = Arc<Mutex<Vec<Vec<String>>>>;

    fn member(room: &Addr<Room>, session: SessionId) -> Seen {
        let seen = Seen::default();
        let record = seen.clone();
        let (_, inbox) = ProbeSession::start(move |received| {
            if let Received::Packets(packets) = received {
                record.lock().unwrap().push(packets);
            }
        });
        room.do_send(AddMember { session, inbox });
        seen
    }

    fn fanout(packet: &str) -> Fanout {
        Fanout {
            packet: ByteString::from(packet.to_owned()),
            except: Vec::new(),
            stamp: PushStamp {
                event: PushEvent::Message,
                accepted: Accepted::now(PushSource::Http),
            },
            priority: false,
        }
    }

    fn room(window_ms: u64) -> Addr<Room> {
        let window = CoalesceWindow::Fixed(Duration::from_millis(window_ms));
        Room::new("r".into(), Arc::new(Metrics::new()), window).start()
    }

    async fn sleep_ms(ms: u64) {
        actix::clock::sleep(Duration::from_millis(ms)).await;
    }

    fn batches(seen: &Seen) -> Vec<Vec<String>> {
        seen.lock().unwrap().clone()
    }

    fn strings(packets: &[&str]) -> Vec<String> {
        packets.iter().map(|f| f.to_string()).collect()
    }

    #[actix::test]
    async fn without_a_window_every_push_is_its_own_delivery() {
        let room = room(0);
        let a = member(&room, 1);
        for f in ["1", "2", "3"] {
            room.do_send(fanout(f));
        }
        sleep_ms(20).await;
        assert_eq!(
            batches(&a),
            vec![strings(&["1"]), strings(&["2"]), strings(&["3"])]
        );
    }

    #[actix::test]
    async fn pushes_within_the_window_go_out_together_at_its_end() {
        let room = room(300);
        let a = member(&room, 1);
        room.do_send(fanout("1"));
        room.do_send(fanout("2"));
        room.do_send(fanout("3"));
        sleep_ms(30).await;
        // The first push found the room quiet: at once. The others wait for the window.
        assert_eq!(batches(&a), vec![strings(&["1"])]);
        sleep_ms(400).await;
        assert_eq!(batches(&a), vec![strings(&["1"]), strings(&["2", "3"])]);
        // Quiet again after a full window: the next push goes out at once.
        sleep_ms(400).await;
        room.do_send(fanout("4"));
        sleep_ms(30).await;
        assert_eq!(batches(&a).last().unwrap(), &strings(&["4"]));
    }

    #[actix::test]
    async fn members_get_exactly_the_pushes_accepted_while_they_were_members() {
        let room = room(60);
        let a = member(&room, 1);
        room.do_send(fanout("1"));
        room.do_send(fanout("2")); // pending
        let b = member(&room, 2); // joins after "2" was accepted
        room.do_send(fanout("3")); // pending
        room.do_send(RemoveMember { session: 1 }); // leaves after "3" was accepted
        room.do_send(fanout("4"));
        sleep_ms(150).await;
        let flat = |seen: &Seen| batches(seen).concat();
        assert_eq!(flat(&a), strings(&["1", "2", "3"]));
        assert_eq!(flat(&b), strings(&["3", "4"]));
    }

    #[actix::test]
    async fn a_full_batch_goes_out_before_the_window_ends() {
        let room = room(1_000);
        let a = member(&room, 1);
        let packets: Vec<String> = (0..=MAX_BATCH).map(|i| i.to_string()).collect();
        for f in &packets {
            room.do_send(fanout(f));
        }
        sleep_ms(50).await;
        let got = batches(&a);
        assert_eq!(got.len(), 2, "the first push, then one full batch");
        assert_eq!(got[1].len(), MAX_BATCH);
        assert_eq!(got.concat(), packets);
    }

    #[actix::test]
    async fn a_busy_room_spreads_its_members_writes_over_the_window() {
        use crate::coalescer::GROUPS;
        let room = room(800);
        // One member per group, in join order: member g is in group g.
        let members: Vec<Seen> = (0..GROUPS as u64).map(|s| member(&room, s)).collect();
        room.do_send(fanout("1")); // quiet: everyone at once
        room.do_send(fanout("2")); // waits: group g until 800 - 100 * g ms from now
        sleep_ms(200).await;
        let got: Vec<usize> = members.iter().map(|m| batches(m).len()).collect();
        assert_eq!(
            got[GROUPS - 1],
            2,
            "the last group's window ended at 100 ms: {got:?}"
        );
        assert_eq!(got[0], 1, "the first group's ends at 800 ms: {got:?}");
        sleep_ms(700).await;
        for m in &members {
            assert_eq!(batches(m), vec![strings(&["1"]), strings(&["2"])]);
        }
    }

    #[actix::test]
    async fn a_push_with_exceptions_keeps_the_order_and_skips_them() {
        let room = room(300);
        let a = member(&room, 1);
        let b = member(&room, 2);
        room.do_send(fanout("1")); // quiet: at once
        room.do_send(fanout("2")); // waits for the window
        room.do_send(Fanout {
            except: vec![1],
            ..fanout("3")
        });
        sleep_ms(50).await;
        assert_eq!(batches(&a).concat(), strings(&["1", "2"]));
        assert_eq!(batches(&b).concat(), strings(&["1", "2", "3"]));
        assert_eq!(batches(&b).last().unwrap(), &strings(&["3"]));
    }

    #[actix::test]
    async fn an_alert_is_not_held_by_the_window_and_follows_what_was_held() {
        let room = room(500);
        let a = member(&room, 1);
        let b = member(&room, 2);
        room.do_send(fanout("1")); // quiet: at once
        room.do_send(fanout("2")); // waits for the window
        room.do_send(Fanout {
            priority: true,
            ..fanout("alert")
        });
        room.do_send(fanout("3")); // accepted after the alert: written after it
        sleep_ms(100).await;
        for m in [&a, &b] {
            assert_eq!(
                batches(m),
                vec![strings(&["1"]), strings(&["2"]), strings(&["alert"])],
                "long before the window's end"
            );
        }
        sleep_ms(600).await;
        for m in [&a, &b] {
            assert_eq!(batches(m).concat(), strings(&["1", "2", "alert", "3"]));
        }
    }

    fn adaptive_room(limits: AdaptiveLimits) -> Addr<Room> {
        let window = CoalesceWindow::Adaptive(limits);
        Room::new("r".into(), Arc::new(Metrics::new()), window).start()
    }

    #[actix::test]
    async fn a_quiet_adaptive_room_delivers_every_push_at_once() {
        let room = adaptive_room(AdaptiveLimits::DEFAULT);
        let a = member(&room, 1);
        for f in ["1", "2", "3"] {
            room.do_send(fanout(f));
            sleep_ms(30).await;
            assert_eq!(batches(&a).last().unwrap(), &strings(&[f]));
        }
        // Back to back, still far under the limit: each its own delivery, at once.
        room.do_send(fanout("4"));
        room.do_send(fanout("5"));
        sleep_ms(30).await;
        assert_eq!(batches(&a).len(), 5);
    }

    #[actix::test]
    async fn a_busy_adaptive_room_batches_never_holds_an_alert_and_calms_down() {
        // A push every 5 ms to one member is far over 20 writes a second: the window grows
        // every period.
        let room = adaptive_room(AdaptiveLimits {
            cap: Duration::from_millis(1_000),
            writes_per_sec: 20,
        });
        let a = member(&room, 1);
        let mut sent = Vec::new();
        for k in 0..40 {
            sent.push(k.to_string());
            room.do_send(fanout(&k.to_string()));
            sleep_ms(5).await;
        }
        let got = batches(&a).len();
        assert!(got < 20, "{got} deliveries of 40 pushes: batched");
        // Whatever is held goes out before the alert, and the alert goes out at once.
        room.do_send(fanout("last"));
        room.do_send(Fanout {
            priority: true,
            ..fanout("alert")
        });
        sent.extend(["last".to_owned(), "alert".to_owned()]);
        sleep_ms(50).await;
        assert_eq!(batches(&a).concat(), sent, "long before the window's end");
        assert_eq!(batches(&a).last().unwrap(), &strings(&["alert"]));
        // Quiet for a while (the last period's few pushes over 600 ms: under half the limit):
        // back to zero, two pushes back to back go out at once, apart.
        sleep_ms(600).await;
        let before = batches(&a).len();
        room.do_send(fanout("x"));
        room.do_send(fanout("y"));
        sleep_ms(50).await;
        assert_eq!(
            batches(&a)[before..],
            [strings(&["x"]), strings(&["y"])],
            "no window left"
        );
    }
}
