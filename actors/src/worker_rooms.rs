//! One actor per worker thread that fans pushes out to the sessions on that thread, for every
//! room with members there: each room is plain state ([`RoomState`]) kept under its name.
//!
//! **Order.** The supervisor gives each push its offset and hands it to the actor of every
//! thread with members in its room, through that actor's one mailbox: the actor sees the
//! thread's pushes in the supervisor's order, whatever room each is for. A room's coalescing
//! window may hold pushes back (see [`crate::room`]); a push of another room delivered at once
//! would then overtake them for a session in both rooms, and a client that is cut just after
//! it would resume past a push it never got. So no session ever has pushes held in two rooms:
//! before a room takes a push, every other room that holds pushes for one of its members
//! delivers what it holds to that member's coalescing group (the other groups keep
//! coalescing). Within a room the coalescer keeps the order; across rooms, what a session is
//! sent never overtakes a push held for it, so every session gets its pushes in offset order.
//! The price: a room holding pushes for members of another room pushed to in turn coalesces
//! only between that room's pushes, for the groups of the members they share (a busy room
//! beside its members' user rooms loses a window for one group per user push).
//!
//! The actor is started by the [`RoomSupervisor`](crate::RoomSupervisor) on a thread's first
//! join and lives as long as the thread; a room's state goes when its last member there
//! leaves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use crate::adaptive_window::CoalesceWindow;
use crate::messages::{AddMember, Fanout, RemoveMember};
use crate::metrics::Metrics;
use crate::room::RoomState;

/// The rooms with members on one worker thread.
pub struct WorkerRooms {
    rooms: HashMap<Arc<str>, RoomState>,
    metrics: Arc<Metrics>,
    coalesce: CoalesceWindow,
    /// The rooms on this thread that hold pushes for some member (no session has pushes
    /// held in two of them).
    holding: Vec<Arc<str>>,
}

impl WorkerRooms {
    /// No rooms yet; rooms coalesce pushes within the window `coalesce` chooses.
    pub fn new(metrics: Arc<Metrics>, coalesce: CoalesceWindow) -> Self {
        WorkerRooms {
            rooms: HashMap::new(),
            metrics,
            coalesce,
            holding: Vec::new(),
        }
    }

    /// Before `room` delivers or holds a push: whatever other rooms hold for its members
    /// goes out first (to the whole coalescing group of each such member).
    fn release_for(&mut self, room: &Arc<str>, ctx: &mut Context<Self>) {
        if self.holding.is_empty() || self.holding.iter().all(|h| h == room) {
            return;
        }
        let Some(pushed) = self.rooms.remove(room) else {
            return;
        };
        for holder in self.holding.clone() {
            if holder == *room {
                continue;
            }
            if let Some(state) = self.rooms.get_mut(&holder) {
                let groups = state.groups_shared_with(&pushed);
                if !groups.is_empty() {
                    state.flush_groups(&groups);
                    Self::settle(&mut self.holding, &holder, state, ctx);
                }
            }
        }
        self.rooms.insert(room.clone(), pushed);
    }

    /// After `room` changed: note whether it holds pushes now, and arm its timer for the next
    /// due delivery (or drop the timer when none is).
    fn settle(
        holding: &mut Vec<Arc<str>>,
        room: &Arc<str>,
        state: &mut RoomState,
        ctx: &mut Context<Self>,
    ) {
        let next = state.next_due();
        let listed = holding.iter().position(|h| h == room);
        match (next, listed) {
            (Some(_), None) => holding.push(room.clone()),
            (None, Some(i)) => {
                holding.swap_remove(i);
            }
            _ => {}
        }
        if let Some((timer, at)) = state.timer {
            if next.is_some_and(|due| at <= due) {
                return; // It fires in time; then it looks again.
            }
            ctx.cancel_future(timer);
            state.timer = None;
        }
        if let Some(due) = next {
            let wait = due.saturating_duration_since(Instant::now());
            let name = room.clone();
            let timer = ctx.run_later(wait, move |rooms, ctx| {
                if let Some(state) = rooms.rooms.get_mut(&name) {
                    state.timer = None;
                    state.deliver_due();
                    Self::settle(&mut rooms.holding, &name, state, ctx);
                }
            });
            state.timer = Some((timer, due));
        }
    }
}

impl Actor for WorkerRooms {
    type Context = Context<Self>;
}

impl Handler<AddMember> for WorkerRooms {
    type Result = ();

    fn handle(&mut self, msg: AddMember, ctx: &mut Self::Context) {
        // The supervisor sends a member to the actor of the thread its inbox was opened on.
        let Some(inbox) = msg.inbox.claim() else {
            log::error!(
                "room {}: {}'s inbox lives on another thread",
                msg.room,
                msg.session
            );
            return;
        };
        let (metrics, coalesce) = (&self.metrics, self.coalesce);
        let state = self.rooms.entry(msg.room.clone()).or_insert_with(|| {
            log::debug!("room {} opened on this thread", msg.room);
            RoomState::new(metrics.clone(), coalesce)
        });
        // The supervisor sends one AddMember per join (it ignores a session's repeated joins,
        // and a session keeps its inbox when its transport upgrades).
        if !state.add(msg.session, inbox) {
            log::debug!("room {}: {} is a member already", msg.room, msg.session);
        }
        Self::settle(&mut self.holding, &msg.room, state, ctx);
    }
}

impl Handler<RemoveMember> for WorkerRooms {
    type Result = ();

    fn handle(&mut self, msg: RemoveMember, ctx: &mut Self::Context) {
        let Some(state) = self.rooms.get_mut(&msg.room) else {
            return;
        };
        state.remove(msg.session);
        if !state.is_empty() {
            Self::settle(&mut self.holding, &msg.room, state, ctx);
            return;
        }
        if let Some((timer, _)) = state.timer.take() {
            ctx.cancel_future(timer);
        }
        self.rooms.remove(&msg.room);
        self.holding.retain(|h| *h != msg.room);
        log::debug!("room {} closed on this thread", msg.room);
    }
}

impl Handler<Fanout> for WorkerRooms {
    type Result = ();

    fn handle(&mut self, msg: Fanout, ctx: &mut Self::Context) {
        self.release_for(&msg.room, ctx);
        let Some(state) = self.rooms.get_mut(&msg.room) else {
            return;
        };
        let room = msg.room.clone();
        state.push(msg);
        Self::settle(&mut self.holding, &room, state, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adaptive_window::AdaptiveLimits;
    use crate::coalescer::MAX_BATCH;
    use crate::inbox::Inbox;
    use crate::messages::{Accepted, PushEvent, PushSource, PushStamp, SessionId};
    use crate::testing::{ProbeSession, Received};
    use bytestring::ByteString;
    use std::sync::Mutex;
    use std::time::Duration;

    type Seen = Arc<Mutex<Vec<Vec<String>>>>;

    fn member(room: &Addr<WorkerRooms>, session: SessionId) -> Seen {
        member_of(room, &["r"], session)
    }

    /// A member of each of `rooms` (on this thread).
    fn member_of(actor: &Addr<WorkerRooms>, rooms: &[&str], session: SessionId) -> Seen {
        let seen = Seen::default();
        let record = seen.clone();
        let (_, inbox) = ProbeSession::start(move |received| {
            if let Received::Packets(packets) = received {
                record.lock().unwrap().push(packets);
            }
        });
        for room in rooms {
            actor.do_send(AddMember {
                room: (*room).into(),
                session,
                inbox: inbox.clone(),
            });
        }
        seen
    }

    fn fanout(packet: &str) -> Fanout {
        fanout_to("r", packet)
    }

    fn fanout_to(room: &str, packet: &str) -> Fanout {
        Fanout {
            room: room.into(),
            packet: ByteString::from(packet.to_owned()),
            except: Vec::new(),
            stamp: PushStamp {
                event: PushEvent::Message,
                accepted: Accepted::now(PushSource::Http),
            },
            priority: false,
        }
    }

    fn room(window_ms: u64) -> Addr<WorkerRooms> {
        let window = CoalesceWindow::Fixed(Duration::from_millis(window_ms));
        WorkerRooms::new(Arc::new(Metrics::new()), window).start()
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
        room.do_send(RemoveMember {
            room: "r".into(),
            session: 1,
        }); // leaves after "3" was accepted
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

    fn adaptive_room(limits: AdaptiveLimits) -> Addr<WorkerRooms> {
        let window = CoalesceWindow::Adaptive(limits);
        WorkerRooms::new(Arc::new(Metrics::new()), window).start()
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

    /// Limits that consider batching from 100 writes a second and never force it.
    fn low_floor(cap_ms: u64) -> AdaptiveLimits {
        AdaptiveLimits {
            cap: Duration::from_millis(cap_ms),
            floor: 100,
            ceiling: u64::MAX,
        }
    }

    /// A member whose transport never writes: every delivery stays in its inbox.
    fn stalled_member(room: &Addr<WorkerRooms>, session: SessionId) -> Inbox {
        let inbox = Inbox::new();
        room.do_send(AddMember {
            room: "r".into(),
            session,
            inbox: inbox.open(),
        });
        inbox
    }

    /// Push "0" to "39" to room `r`, one every 5 ms (200 a second).
    async fn push_every_5_ms(room: &Addr<WorkerRooms>) -> Vec<String> {
        let mut sent = Vec::new();
        for k in 0..40 {
            sent.push(k.to_string());
            room.do_send(fanout(&k.to_string()));
            sleep_ms(5).await;
        }
        sent
    }

    #[actix::test]
    async fn an_adaptive_room_whose_members_keep_up_does_not_batch() {
        let room = adaptive_room(low_floor(1_000));
        let a = member(&room, 1);
        let sent = push_every_5_ms(&room).await;
        sleep_ms(30).await;
        let got = batches(&a);
        assert_eq!(got.concat(), sent);
        assert_eq!(got.len(), 40, "every push its own delivery: {got:?}");
    }

    #[actix::test]
    async fn a_busy_adaptive_room_batches_when_members_fall_behind_and_calms_down() {
        let room = adaptive_room(low_floor(1_000));
        let a = member(&room, 1);
        // One of the two members does not write: half the recipients are behind.
        let stalled = stalled_member(&room, 2);
        let mut sent = push_every_5_ms(&room).await;
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
        // Quiet for a while (a few pushes over 600 ms: under the floor): back to zero, two
        // pushes back to back go out at once, apart, the stalled member notwithstanding.
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
        drop(stalled);
    }

    #[actix::test]
    async fn over_the_ceiling_an_adaptive_room_batches_members_that_keep_up() {
        let room = adaptive_room(AdaptiveLimits {
            cap: Duration::from_millis(1_000),
            floor: 0,
            ceiling: 100,
        });
        let a = member(&room, 1);
        let sent = push_every_5_ms(&room).await;
        sleep_ms(1_100).await;
        let got = batches(&a);
        assert_eq!(got.concat(), sent);
        assert!(got.len() < 20, "{} deliveries of 40 pushes", got.len());
    }

    /// Pushes numbered in the supervisor's order, alternating between rooms `a` and `b`.
    fn interleaved(n: u32) -> Vec<(&'static str, String)> {
        (1..=n)
            .map(|k| (if k % 3 == 0 { "b" } else { "a" }, k.to_string()))
            .collect()
    }

    async fn a_member_of_two_rooms_gets_every_push_in_order(window: CoalesceWindow) {
        let rooms = WorkerRooms::new(Arc::new(Metrics::new()), window).start();
        let both = member_of(&rooms, &["a", "b"], 1);
        let only_a = member_of(&rooms, &["a"], 2);
        let pushes = interleaved(60);
        for (i, (room, packet)) in pushes.iter().enumerate() {
            rooms.do_send(fanout_to(room, packet));
            if i % 7 == 0 {
                sleep_ms(3).await;
            }
        }
        sleep_ms(700).await;
        let all: Vec<String> = pushes.iter().map(|(_, p)| p.clone()).collect();
        let of_a: Vec<String> = pushes
            .iter()
            .filter(|(room, _)| *room == "a")
            .map(|(_, p)| p.clone())
            .collect();
        assert_eq!(batches(&both).concat(), all);
        assert_eq!(batches(&only_a).concat(), of_a);
    }

    #[actix::test]
    async fn without_a_window_a_member_of_two_rooms_gets_every_push_in_order() {
        let window = CoalesceWindow::Fixed(Duration::ZERO);
        a_member_of_two_rooms_gets_every_push_in_order(window).await;
    }

    #[actix::test]
    async fn with_a_window_a_member_of_two_rooms_gets_every_push_in_order() {
        let window = CoalesceWindow::Fixed(Duration::from_millis(200));
        a_member_of_two_rooms_gets_every_push_in_order(window).await;
    }

    #[actix::test]
    async fn with_an_adaptive_window_a_member_of_two_rooms_gets_every_push_in_order() {
        let window = CoalesceWindow::Adaptive(AdaptiveLimits {
            cap: Duration::from_millis(200),
            floor: 0,
            ceiling: 20,
        });
        a_member_of_two_rooms_gets_every_push_in_order(window).await;
    }

    #[actix::test]
    async fn a_push_to_another_room_releases_what_a_room_holds_first() {
        let rooms = room(300);
        let both = member_of(&rooms, &["a", "b"], 1);
        rooms.do_send(fanout_to("a", "1")); // a is quiet: at once
        rooms.do_send(fanout_to("a", "2")); // held by a's window
        rooms.do_send(fanout_to("b", "3")); // b is quiet: "2" goes out first
        rooms.do_send(fanout_to("a", "4")); // held by a's window again
        rooms.do_send(fanout_to("b", "5")); // held by b's window: "4" goes out first
        rooms.do_send(Fanout {
            priority: true,
            ..fanout_to("a", "6") // an alert: "5" first, then the alert, at once
        });
        sleep_ms(50).await;
        assert_eq!(
            batches(&both).concat(),
            strings(&["1", "2", "3", "4", "5", "6"]),
            "long before any window's end"
        );
        rooms.do_send(fanout_to("b", "7")); // held by b's window, then out at its end
        sleep_ms(30).await;
        assert_eq!(batches(&both).concat().len(), 6);
        sleep_ms(400).await;
        assert_eq!(batches(&both).concat().last().unwrap(), "7");
    }

    #[actix::test]
    async fn a_push_to_a_small_room_releases_only_its_members_group_of_a_busy_room() {
        use crate::coalescer::GROUPS;
        let rooms = room(300);
        // One member per group of `r`: member g is in group g. Member 0 is in `u` too.
        let members: Vec<Seen> = (0..GROUPS as u64)
            .map(|s| match s {
                0 => member_of(&rooms, &["r", "u"], s),
                _ => member(&rooms, s),
            })
            .collect();
        rooms.do_send(fanout("1")); // quiet: everyone at once
        rooms.do_send(fanout("2")); // held by the window
        rooms.do_send(fanout_to("u", "3")); // member 0's group gets "2" first
        sleep_ms(50).await;
        assert_eq!(batches(&members[0]).concat(), strings(&["1", "2", "3"]));
        assert_eq!(
            batches(&members[1]).concat(),
            strings(&["1"]),
            "the other groups keep coalescing"
        );
        sleep_ms(400).await;
        for m in &members[1..] {
            assert_eq!(batches(m), vec![strings(&["1"]), strings(&["2"])]);
        }
    }
}
