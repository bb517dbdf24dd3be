//! One actor per non-empty room and worker thread: it holds the room's members on that thread
//! and writes each frame it is given to all of them.
//!
//! Rooms are created by the [`RoomSupervisor`](crate::RoomSupervisor) on first join and stop
//! themselves when their last member leaves.
//!
//! **Coalescing.** Each delivery costs a session wake-up and a socket write, whatever its size.
//! With a coalescing window `w` (`PUSH_COALESCE_MS`), a push that finds the room quiet (nothing
//! delivered in the last `w`) goes out at once; pushes that follow within `w` wait until `w`
//! has passed since that delivery and then go out together, so a member gets them in one write.
//! A busy room thus costs one write per member per window instead of one per push, and adds at
//! most `w` of latency; a quiet room (a user's own room, say) adds none. Order is kept, and a
//! member gets exactly the pushes accepted while it was a member: pending pushes are delivered
//! before anyone joins or leaves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;

use crate::inbox::Inbox;
use crate::messages::{AddMember, Deliver, Fanout, Frames, RemoveMember, SessionId};
use crate::metrics::Metrics;

/// At most this many pushes wait in one batch: a room pushed to faster than that per window
/// delivers early rather than build huge writes.
pub const MAX_BATCH: usize = 128;

/// Where a member's frames go.
enum Member {
    /// Its inbox on this thread (every session's, see [`Inbox`]).
    Local(Inbox),
    /// Its mailbox (a member without an inbox here).
    Remote(Recipient<Deliver>),
}

/// A room and its members (on one worker thread).
pub struct Room {
    name: String,
    members: HashMap<SessionId, Member>,
    metrics: Arc<Metrics>,
    coalesce: Duration,
    /// Frames waiting for the window to end, with when each push was accepted.
    pending: Vec<(ByteString, Instant)>,
    /// When frames were last delivered.
    last_delivery: Option<Instant>,
    /// The timer that delivers `pending` at the end of the window.
    timer: Option<SpawnHandle>,
}

impl Room {
    /// An empty room that coalesces pushes within `coalesce` (zero: every push goes out at
    /// once); the supervisor adds the first member right after starting it.
    pub fn new(name: String, metrics: Arc<Metrics>, coalesce: Duration) -> Self {
        Room {
            name,
            members: HashMap::new(),
            metrics,
            coalesce,
            pending: Vec::new(),
            last_delivery: None,
            timer: None,
        }
    }

    /// Deliver every pending frame to every member, in one message per member.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        if self.pending.is_empty() {
            return;
        }
        let frames: Arc<Frames> = Arc::new(self.pending.iter().map(|(f, _)| f.clone()).collect());
        for member in self.members.values() {
            match member {
                Member::Local(inbox) => inbox.push(frames.clone()),
                Member::Remote(recipient) => recipient.do_send(Deliver {
                    frames: frames.clone(),
                }),
            }
        }
        let now = Instant::now();
        for (_, accepted_at) in self.pending.drain(..) {
            self.metrics
                .push_fanout_seconds
                .observe(now.duration_since(accepted_at).as_secs_f64());
        }
        self.last_delivery = Some(now);
    }

    /// How long a push arriving now waits, or `None` if it goes out at once.
    fn wait(&self, now: Instant) -> Option<Duration> {
        let since = now.duration_since(self.last_delivery?);
        (since < self.coalesce).then(|| self.coalesce - since)
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
        // Pushes accepted before the join are not the newcomer's.
        self.flush(ctx);
        // Inserting an existing id replaces its recipient (a session that changed transport).
        let member = match Inbox::find(msg.session) {
            Some(inbox) => Member::Local(inbox),
            None => Member::Remote(msg.recipient),
        };
        self.members.insert(msg.session, member);
    }
}

impl Handler<RemoveMember> for Room {
    type Result = ();

    fn handle(&mut self, msg: RemoveMember, ctx: &mut Self::Context) {
        // Pushes accepted while it was a member are still the leaver's.
        self.flush(ctx);
        self.members.remove(&msg.session);
        if self.members.is_empty() {
            ctx.stop();
        }
    }
}

impl Handler<Fanout> for Room {
    type Result = ();

    fn handle(&mut self, msg: Fanout, ctx: &mut Self::Context) {
        let now = Instant::now();
        let wait = self.wait(now);
        self.pending.push((msg.frame, msg.accepted_at));
        match wait {
            Some(wait) if self.pending.len() < MAX_BATCH => {
                if self.timer.is_none() {
                    self.timer = Some(ctx.run_later(wait, |room, ctx| {
                        room.timer = None;
                        room.flush(ctx);
                    }));
                }
            }
            _ => self.flush(ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A stand-in session that records each delivery as the list of its frames.
    struct Probe(Arc<Mutex<Vec<Vec<String>>>>);

    impl Actor for Probe {
        type Context = Context<Self>;
    }

    impl Handler<Deliver> for Probe {
        type Result = ();
        fn handle(&mut self, msg: Deliver, _ctx: &mut Self::Context) {
            let frames = msg.frames.iter().map(|f| f.to_string()).collect();
            self.0.lock().unwrap().push(frames);
        }
    }

    type Seen = Arc<Mutex<Vec<Vec<String>>>>;

    fn member(room: &Addr<Room>, session: SessionId) -> Seen {
        let seen = Seen::default();
        room.do_send(AddMember {
            session,
            recipient: Probe(seen.clone()).start().recipient(),
        });
        seen
    }

    fn fanout(frame: &str) -> Fanout {
        Fanout {
            frame: ByteString::from(frame.to_owned()),
            accepted_at: Instant::now(),
        }
    }

    fn room(window_ms: u64) -> Addr<Room> {
        let metrics = Arc::new(Metrics::new());
        Room::new("r".into(), metrics, Duration::from_millis(window_ms)).start()
    }

    async fn sleep_ms(ms: u64) {
        actix::clock::sleep(Duration::from_millis(ms)).await;
    }

    fn batches(seen: &Seen) -> Vec<Vec<String>> {
        seen.lock().unwrap().clone()
    }

    fn strings(frames: &[&str]) -> Vec<String> {
        frames.iter().map(|f| f.to_string()).collect()
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
        let frames: Vec<String> = (0..=MAX_BATCH).map(|i| i.to_string()).collect();
        for f in &frames {
            room.do_send(fanout(f));
        }
        sleep_ms(50).await;
        let got = batches(&a);
        assert_eq!(got.len(), 2, "the first push, then one full batch");
        assert_eq!(got[1].len(), MAX_BATCH);
        assert_eq!(got.concat(), frames);
    }
}
