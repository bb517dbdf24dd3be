//! Recovery through the room supervisor's mailbox: a session ends, is kept, and a new
//! registration asks for it back, with pushes going on around it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;

use crate::messages::*;
use crate::metrics::Metrics;
use crate::recovery::NotRecovered;
use crate::room_supervisor::tests::register;
use crate::room_supervisor::RoomSupervisor;

type Seen = Arc<Mutex<Vec<String>>>;

/// `event:payload@offset`, or `event:payload` without an offset.
fn encode(event: &str, payload: &str, offset: Option<&str>) -> String {
    match offset {
        Some(offset) => format!("{event}:{payload}@{offset}"),
        None => format!("{event}:{payload}"),
    }
}

/// The payloads of packets made by [`encode`].
fn payloads<S: AsRef<str>>(packets: &[S]) -> Vec<String> {
    packets
        .iter()
        .map(|p| {
            let (_, rest) = p.as_ref().split_once(':').expect("event:payload");
            rest.split('@').next().unwrap().to_owned()
        })
        .collect()
}

/// The offset of a packet made by [`encode`].
fn offset_of(packet: &str) -> String {
    packet.split_once('@').expect("an offset").1.to_owned()
}

fn seen(seen: &Seen) -> Vec<String> {
    seen.lock().unwrap().clone()
}

/// Session `session` (socket id `s<session>`, `pid` `p<session>`) of `user`, recording what its
/// inbox gets.
fn session(session: SessionId, user: &str) -> (RegisterSession, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let register = RegisterSession {
        sid: format!("s{session}"),
        pid: Some(format!("p{session}")),
        user_id: user.into(),
        ..register(session, &seen)
    };
    (register, seen)
}

/// Session `id` of `user` asking for the session kept under `pid`, its client having received
/// up to `offset`; `admin`: whether its new token may join `admin`.
fn recovering(
    id: SessionId,
    user: &str,
    pid: &str,
    offset: Option<&str>,
    admin: bool,
) -> (RegisterSession, Seen) {
    let (mut register, seen) = session(id, user);
    register.recover = Some(Recover {
        pid: pid.into(),
        offset: offset.map(str::to_owned),
        may_join: Box::new(move |room| admin || room != "admin"),
    });
    (register, seen)
}

struct Harness {
    sup: Addr<RoomSupervisor>,
    metrics: Arc<Metrics>,
}

impl Harness {
    fn new(window: Duration, history_bytes: usize) -> Self {
        let metrics = Arc::new(Metrics::new());
        let sup = RoomSupervisor::new(encode, metrics.clone())
            .with_recovery(window, history_bytes)
            .start();
        Harness { sup, metrics }
    }

    async fn register(&self, register: RegisterSession) -> Registration {
        self.sup.send(register).await.unwrap()
    }

    async fn join(&self, session: SessionId, rooms: &[&str]) {
        for room in rooms {
            let room = (*room).to_owned();
            self.sup.send(JoinRoom { session, room }).await.unwrap();
        }
    }

    async fn end(&self, session: SessionId, keep: bool) {
        let end = UnregisterSession { session, keep };
        self.sup.send(end).await.unwrap();
    }

    async fn push(&self, target: PushTarget, payload: &str) -> usize {
        let push = Push {
            target,
            event: PushEvent::Notification,
            payload: payload.into(),
            priority: false,
            accepted: Accepted::now(PushSource::Http),
        };
        self.sup.send(push).await.unwrap()
    }

    async fn room_size(&self, room: &str) -> usize {
        let room = room.into();
        self.sup.send(RoomSize { room }).await.unwrap()
    }

    fn outcomes(&self, outcome: &str) -> u64 {
        self.metrics.recoveries.with_label_values(&[outcome]).get()
    }

    /// Session 1 of user `a`, in `user:a` and `admin`, gets push `1`, then ends (kept, unless
    /// `keep` is false); pushes `2` to `7` follow while it is away. Returns the offset of `1`.
    async fn one_away(&self, keep: bool) -> String {
        let (register, first) = session(1, "a");
        let fresh = Registration::Fresh {
            not_recovered: None,
        };
        assert_eq!(self.register(register).await, fresh);
        self.join(1, &["user:a", "admin"]).await;
        assert_eq!(self.push(room("user:a"), "1").await, 1);
        settle().await;
        let got = seen(&first);
        assert_eq!(payloads(&got), ["1"]);
        self.end(1, keep).await;
        for (target, payload) in [
            (room("user:a"), "2"),
            (room("admin"), "3"),
            (PushTarget::Everyone, "4"),
            (room("other"), "5"),
            (admin_copy_except("user:a"), "6"),
            (admin_copy_except("user:b"), "7"),
        ] {
            assert_eq!(self.push(target, payload).await, 0, "nobody is connected");
        }
        offset_of(&got[0])
    }
}

fn room(name: &str) -> PushTarget {
    PushTarget::Room(name.into())
}

fn admin_copy_except(user_room: &str) -> PushTarget {
    PushTarget::RoomExceptMembersOf {
        room: "admin".into(),
        except_members_of: user_room.into(),
    }
}

async fn settle() {
    for _ in 0..5 {
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
}

const WINDOW: Duration = Duration::from_secs(60);
const HISTORY: usize = 1 << 20;

/// A fresh registration after a recovery failed for `why`.
fn fresh(why: NotRecovered) -> Registration {
    Registration::Fresh {
        not_recovered: Some(why),
    }
}

fn missed(registration: &Registration) -> Vec<String> {
    match registration {
        Registration::Recovered { missed, .. } => payloads(missed),
        other => panic!("not recovered: {other:?}"),
    }
}

#[actix::test]
async fn a_recovered_session_gets_its_id_rooms_and_missed_pushes_then_live_ones() {
    let h = Harness::new(WINDOW, HISTORY);
    let offset = h.one_away(true).await;
    assert!(h.metrics.recovery_history_bytes.get() > 0);
    let (register, live) = recovering(2, "a", "p1", Some(&offset), true);
    let registration = h.register(register).await;
    let Registration::Recovered {
        sid,
        rooms,
        missed: packets,
    } = &registration
    else {
        panic!("{registration:?}");
    };
    assert_eq!(sid, "s1", "its old socket id");
    let mut rooms = rooms.clone();
    rooms.sort_unstable(); // kept as a set: in no particular order
    assert_eq!(rooms, ["admin", "user:a"]);
    assert_eq!(
        payloads(packets),
        ["2", "3", "4", "7"],
        "what it would have received, in order"
    );
    let offsets: Vec<String> = packets.iter().map(|p| offset_of(p)).collect();
    assert!(!offsets.contains(&offset));
    assert_eq!(h.room_size("admin").await, 1, "its rooms are back");
    assert_eq!(h.push(room("user:a"), "8").await, 1);
    settle().await;
    assert_eq!(
        payloads(&seen(&live)),
        ["8"],
        "live pushes follow, none twice"
    );
    assert_eq!(h.outcomes("recovered"), 1);
    assert_eq!(h.metrics.recovered_pushes.get(), 4);
}

#[actix::test]
async fn admin_comes_back_only_to_a_token_that_is_still_admin() {
    let h = Harness::new(WINDOW, HISTORY);
    let offset = h.one_away(true).await;
    let (register, _live) = recovering(2, "a", "p1", Some(&offset), false);
    let registration = h.register(register).await;
    assert!(matches!(
        &registration,
        Registration::Recovered { rooms, .. } if rooms == &["user:a"]
    ));
    assert_eq!(missed(&registration), ["2", "4"]);
    assert_eq!(h.room_size("admin").await, 0);
    assert_eq!(h.push(room("admin"), "8").await, 0);
}

#[actix::test]
async fn without_an_offset_the_missed_pushes_start_where_the_session_registered() {
    let h = Harness::new(WINDOW, HISTORY);
    h.push(PushTarget::Everyone, "before").await;
    let (register, _) = session(1, "a");
    h.register(register).await;
    h.join(1, &["user:a"]).await;
    h.end(1, true).await;
    h.push(room("user:a"), "after").await;
    let (register, _) = recovering(2, "a", "p1", None, false);
    assert_eq!(missed(&h.register(register).await), ["after"]);
}

#[actix::test]
async fn pushes_racing_a_recovery_arrive_once_each_in_order() {
    let h = Harness::new(WINDOW, HISTORY);
    let (register, _) = session(1, "a");
    h.register(register).await;
    h.join(1, &["user:a"]).await;
    h.end(1, true).await;
    let sup = h.sup.clone();
    let pusher = actix::spawn(async move {
        for i in 0..200 {
            let push = Push {
                target: room("user:a"),
                event: PushEvent::Notification,
                payload: i.to_string().into(),
                priority: false,
                accepted: Accepted::now(PushSource::Http),
            };
            sup.send(push).await.unwrap();
        }
    });
    // Let some pushes through before the client is back.
    while h.metrics.pushes.with_label_values(&["notification"]).get() < 20 {
        actix::clock::sleep(Duration::from_millis(1)).await;
    }
    let (register, live) = recovering(2, "a", "p1", None, false);
    let registration = h.register(register).await;
    pusher.await.unwrap();
    settle().await;
    let mut got = missed(&registration);
    assert!(got.len() >= 20, "{got:?}");
    got.extend(payloads(&seen(&live)));
    let all: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    assert_eq!(got, all, "missed, then live: none lost, none twice");
}

#[actix::test]
async fn every_failed_recovery_is_a_fresh_session_counted_by_its_outcome() {
    let h = Harness::new(WINDOW, HISTORY);
    let offset = h.one_away(true).await;
    let (register, _) = recovering(2, "a", "nope", Some(&offset), true);
    assert_eq!(h.register(register).await, fresh(NotRecovered::Unknown));
    let (register, _) = recovering(3, "b", "p1", Some(&offset), true);
    assert_eq!(
        h.register(register).await,
        fresh(NotRecovered::UserMismatch)
    );
    // The mismatch left it for its owner, whose recovery consumes it.
    let (register, _) = recovering(4, "a", "p1", Some(&offset), true);
    assert!(matches!(
        h.register(register).await,
        Registration::Recovered { .. }
    ));
    let (register, _) = recovering(5, "a", "p1", Some(&offset), true);
    assert_eq!(h.register(register).await, fresh(NotRecovered::Unknown));
    // The recovered session is kept again under the same pid, and another run's offset is
    // refused (and the record consumed).
    h.end(4, true).await;
    let (register, _) = recovering(6, "a", "p1", Some("0-1"), true);
    assert_eq!(
        h.register(register).await,
        fresh(NotRecovered::OffsetTooOld)
    );
    // A fresh session is registered under its own ids: kept, it is recovered as `s7`.
    let (register, _) = recovering(7, "a", "p1", None, true);
    assert_eq!(h.register(register).await, fresh(NotRecovered::Unknown));
    h.end(7, true).await;
    let (register, _) = recovering(8, "a", "p7", None, true);
    assert!(matches!(
        h.register(register).await,
        Registration::Recovered { sid, .. } if sid == "s7"
    ));
    for (outcome, count) in [
        ("recovered", 2),
        ("unknown", 3),
        ("user_mismatch", 1),
        ("offset_too_old", 1),
        ("expired", 0),
    ] {
        assert_eq!(h.outcomes(outcome), count, "{outcome}");
    }
}

#[actix::test]
async fn a_client_disconnect_keeps_nothing_and_nothing_unreceived_is_logged() {
    let h = Harness::new(WINDOW, HISTORY);
    let offset = h.one_away(false).await;
    let (register, _) = recovering(2, "a", "p1", Some(&offset), true);
    assert_eq!(h.register(register).await, fresh(NotRecovered::Unknown));
    let bytes = h.metrics.recovery_history_bytes.get();
    h.end(2, false).await;
    assert_eq!(h.push(room("user:a"), "nobody").await, 0);
    assert_eq!(
        h.metrics.recovery_history_bytes.get(),
        bytes,
        "no session kept: a push nobody gets is not logged"
    );
}

#[actix::test]
async fn an_expired_session_and_an_evicted_history_are_not_recovered() {
    let h = Harness::new(Duration::from_millis(30), HISTORY);
    let offset = h.one_away(true).await;
    actix::clock::sleep(Duration::from_millis(60)).await;
    let (register, _) = recovering(2, "a", "p1", Some(&offset), true);
    assert_eq!(h.register(register).await, fresh(NotRecovered::Expired));
    assert_eq!(h.outcomes("expired"), 1);

    let h = Harness::new(WINDOW, 400);
    let offset = h.one_away(true).await;
    assert!(h.metrics.recovery_history_evicted.get() > 0);
    let (register, _) = recovering(2, "a", "p1", Some(&offset), true);
    assert_eq!(
        h.register(register).await,
        fresh(NotRecovered::OffsetTooOld)
    );
    assert_eq!(h.outcomes("offset_too_old"), 1);
}

#[actix::test]
async fn with_recovery_off_pushes_have_no_offset_and_nothing_is_recovered() {
    let metrics = Arc::new(Metrics::new());
    let sup = RoomSupervisor::new(encode, metrics.clone())
        .with_recovery(Duration::ZERO, HISTORY)
        .start();
    let h = Harness { sup, metrics };
    let (register, first) = session(1, "a");
    h.register(register).await;
    h.join(1, &["user:a"]).await;
    h.push(room("user:a"), "1").await;
    settle().await;
    assert_eq!(seen(&first), ["notification:1"], "exactly the event packet");
    h.end(1, true).await;
    let (register, _) = recovering(2, "a", "p1", None, true);
    assert_eq!(
        h.register(register).await,
        Registration::Fresh {
            not_recovered: None
        }
    );
    assert_eq!(h.outcomes("unknown"), 0);
}
