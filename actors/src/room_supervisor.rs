//! The room supervisor: the one actor that knows every session and every room.
//!
//! Sessions register with it once authenticated, then join and leave rooms through it; pushers
//! (HTTP API, RabbitMQ consumers) hand it [`Push`]es. It encodes each push once and passes the
//! shared packet to the room's actors (one per worker thread with members), which fan it out.
//! A broadcast goes the same way, through an internal room every registered session is in.
//! Because every request goes through this one mailbox, a join followed by a push is always
//! seen in that order.
//!
//! With recovery on ([`RoomSupervisor::with_recovery`]) it also gives every push its offset and
//! logs it, keeps ended sessions, and gives a reconnecting client its session back in the same
//! step that registers it, so that no push falls between the missed ones and the live ones
//! (see [`crate::recovery`]). In cluster mode it also writes its sessions' records to the
//! cluster's log and claims a session there before giving it back (`cluster_sessions.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;

use crate::adaptive_window::CoalesceWindow;
use crate::admin_view::RoomMembership;
use crate::cluster::presence::{GetNodeFigures, NodeFigures};
use crate::cluster::{LoggedPush, SessionLog};
use crate::inbox::OpenedInbox;
use crate::messages::*;
use crate::metrics::Metrics;
use crate::push_stats::BusiestRooms;
use crate::recovery::{KeptSession, LogPosition, NotRecovered, Reclaimed, RecoveryStore};
use crate::worker_rooms::WorkerRooms;

mod cluster_sessions;
mod streams;

struct SessionEntry {
    /// Its inbox, which its thread's fan-out actor claims on the session's thread.
    inbox: OpenedInbox,
    going_away: Recipient<GoingAway>,
    /// The rooms it is in: a set, so that a join or leave costs the same however many rooms
    /// the session holds.
    rooms: HashSet<String>,
    /// What is kept of it when it ends, when recovery is on and it has a `pid`.
    keepable: Option<Keepable>,
}

/// A registered session's identity, as it is kept for recovery when it ends.
struct Keepable {
    sid: String,
    pid: String,
    user_id: String,
    /// The log's head when it registered.
    registered_at: LogPosition,
}

/// Where a room's pushes go: the actor of each worker thread that has members in it
/// ([`WorkerRooms`]), so that each packet crosses threads once per worker, and every delivery
/// wakes a session on its own thread. One actor per thread, whatever the room, keeps the
/// supervisor's order on each thread.
struct Shards {
    /// The room's name, as the threads' actors know it.
    name: Arc<str>,
    shards: Vec<RoomShard>,
    /// The room's members (on every thread).
    sessions: HashSet<SessionId>,
}

struct RoomShard {
    worker: WorkerId,
    addr: Addr<WorkerRooms>,
    members: usize,
}

/// The fan-out actor of each worker thread with members in some room, started on the thread's
/// first join.
struct Workers {
    actors: HashMap<WorkerId, Addr<WorkerRooms>>,
    metrics: Arc<Metrics>,
    coalesce: CoalesceWindow,
}

impl Workers {
    /// The actor of `home`'s thread, started there if it is the thread's first.
    fn on(&mut self, home: &Home) -> Addr<WorkerRooms> {
        let (metrics, coalesce) = (&self.metrics, self.coalesce);
        self.actors
            .entry(home.worker)
            .or_insert_with(|| {
                let metrics = metrics.clone();
                WorkerRooms::start_in_arbiter(&home.arbiter, move |_| {
                    WorkerRooms::new(metrics, coalesce)
                })
            })
            .clone()
    }
}

impl Shards {
    /// A room with no members yet.
    fn new(name: &str) -> Self {
        Shards {
            name: name.into(),
            shards: Vec::new(),
            sessions: HashSet::new(),
        }
    }

    /// Add a member whose inbox lives on `inbox.home()`.
    fn add(&mut self, session: SessionId, inbox: &OpenedInbox, workers: &mut Workers) {
        let home = inbox.home();
        let shard = match self.shards.iter().position(|s| s.worker == home.worker) {
            Some(i) => &mut self.shards[i],
            None => {
                self.shards.push(RoomShard {
                    worker: home.worker,
                    addr: workers.on(home),
                    members: 0,
                });
                self.shards.last_mut().expect("just pushed")
            }
        };
        shard.members += 1;
        self.sessions.insert(session);
        shard.addr.do_send(AddMember {
            room: self.name.clone(),
            session,
            inbox: inbox.clone(),
        });
    }

    /// Remove a member living on `worker`; that thread's actor drops the room when its last
    /// member there is removed.
    fn remove(&mut self, session: SessionId, worker: WorkerId) {
        let Some(i) = self.shards.iter().position(|s| s.worker == worker) else {
            return;
        };
        let shard = &mut self.shards[i];
        shard.addr.do_send(RemoveMember {
            room: self.name.clone(),
            session,
        });
        shard.members -= 1;
        self.sessions.remove(&session);
        if shard.members == 0 {
            self.shards.swap_remove(i);
        }
    }

    /// How many sessions are in the room.
    fn members(&self) -> usize {
        self.sessions.len()
    }

    /// Hand `packet` to every shard, each with the members it must skip (`skipped`: members of
    /// this room and the thread each lives on); `priority`: see [`Fanout::priority`].
    fn fanout(
        &self,
        packet: &ByteString,
        stamp: PushStamp,
        skipped: &[(WorkerId, SessionId)],
        priority: bool,
    ) {
        for shard in &self.shards {
            let except = skipped
                .iter()
                .filter(|(worker, _)| *worker == shard.worker)
                .map(|&(_, session)| session)
                .collect();
            shard.addr.do_send(Fanout {
                room: self.name.clone(),
                packet: packet.clone(),
                except,
                stamp,
                priority,
            });
        }
    }
}

/// How many of the busiest rooms [`GetStats`] lists.
const BUSIEST_ROOMS: usize = 10;

/// The internal name of the room every registered session is in (what a broadcast reaches);
/// it is not in the room registry, so clients can neither join nor see it.
const EVERYONE: &str = "(everyone)";

/// Owns the session and room registries and routes pushes to rooms.
pub struct RoomSupervisor {
    sessions: HashMap<SessionId, SessionEntry>,
    rooms: HashMap<String, Shards>,
    everyone: Shards,
    encode: EncodePacket,
    metrics: Arc<Metrics>,
    workers: Workers,
    /// The push log and the kept sessions, when recovery is on.
    recovery: Option<RecoveryStore>,
    /// Deliveries per room over the last minute.
    busiest_rooms: BusiestRooms,
    /// Told every join and leave, when the admin UI is on.
    admin_view: Option<Recipient<RoomMembership>>,
    /// The log's head when it started holding every push, whoever receives it: set when the
    /// first stream registers (see [`RegisterStream`]), since a stream may come back from any
    /// offset it got, with no kept session to make the pushes it misses logged.
    logs_every_push_since: Option<LogPosition>,
    /// Cluster mode: where its sessions' records go (`cluster_sessions.rs`).
    session_log: Option<SessionLog>,
    /// Cluster mode: the registrations waiting for their claim to be read back, by session.
    claims: HashMap<SessionId, futures::channel::oneshot::Sender<()>>,
}

impl RoomSupervisor {
    /// A supervisor with no sessions; `encode` turns an event and its JSON payload into the
    /// packet sessions write.
    pub fn new(encode: EncodePacket, metrics: Arc<Metrics>) -> Self {
        RoomSupervisor {
            sessions: HashMap::new(),
            rooms: HashMap::new(),
            everyone: Shards::new(EVERYONE),
            encode,
            workers: Workers {
                actors: HashMap::new(),
                metrics: metrics.clone(),
                coalesce: CoalesceWindow::default(),
            },
            metrics,
            recovery: None,
            busiest_rooms: BusiestRooms::new(Instant::now()),
            admin_view: None,
            logs_every_push_since: None,
            session_log: None,
            claims: HashMap::new(),
        }
    }

    /// Tell the admin UI's view (`crate::admin_view`) every room join and leave.
    pub fn with_admin_view(mut self, view: Recipient<RoomMembership>) -> Self {
        self.admin_view = Some(view);
        self
    }

    /// Turn connection-state recovery on: ended sessions are kept for `window`, pushes logged
    /// in at most `history_bytes` bytes, in process memory. A zero `window` leaves it off
    /// (no offsets, nothing kept).
    pub fn with_recovery(self, window: Duration, history_bytes: usize) -> Self {
        if window.is_zero() {
            return self;
        }
        self.with_recovery_store(RecoveryStore::in_memory(window, history_bytes))
    }

    /// Turn connection-state recovery on with the given push log and session records (a
    /// cluster mode's, kept outside the process).
    pub fn with_recovery_store(mut self, store: RecoveryStore) -> Self {
        self.metrics
            .recovery_history_bytes
            .set(store.log.bytes() as i64);
        self.recovery = Some(store);
        self
    }

    /// How rooms choose the window within which the pushes that follow a delivery are
    /// coalesced into one delivery at its end (see [`crate::room`]); by default it adapts to each
    /// room's load, `CoalesceWindow::Fixed(Duration::ZERO)` delivers every push at once.
    pub fn with_coalesce_window(mut self, window: CoalesceWindow) -> Self {
        self.workers.coalesce = window;
        self
    }

    fn leave(&mut self, session: SessionId, worker: WorkerId, room: &str) {
        let Some(shards) = self.rooms.get_mut(room) else {
            return;
        };
        shards.remove(session, worker);
        if shards.members() == 0 {
            self.rooms.remove(room);
            self.metrics.rooms.set(self.rooms.len() as i64);
        }
    }

    /// The shards a push to `target` goes to, and the members they must skip.
    fn receivers(&self, target: &PushTarget) -> Receivers<'_> {
        receivers(&self.rooms, &self.everyone, &self.sessions, target)
    }

    /// Count a push in the statistics: by event and source, and under its room when it
    /// reached someone.
    fn count_push(&mut self, stamp: PushStamp, room: Option<String>, reached: usize) {
        self.metrics
            .push_stats
            .pushed(stamp.event, stamp.accepted.source, reached);
        if let (Some(room), true) = (room, reached > 0) {
            self.busiest_rooms
                .record(&room, reached as u64, Instant::now());
        }
    }

    /// How many of this node's sessions a push to `target` reaches now.
    fn reach(&self, target: &PushTarget) -> usize {
        match self.receivers(target) {
            (Some(shards), skipped) => shards.members().saturating_sub(skipped.len()),
            (None, _) => 0,
        }
    }

    /// Forget a session: out of every room, out of the broadcast room.
    fn unregister(&mut self, session: SessionId) {
        let Some(entry) = self.sessions.remove(&session) else {
            return;
        };
        for room in &entry.rooms {
            self.leave(session, entry.inbox.home().worker, room);
        }
        self.everyone.remove(session, entry.inbox.home().worker);
    }
}

impl RoomSupervisor {
    /// Take back the session `recover` asks for, when recovery is on, counting the outcome.
    /// `Err(None)`: nothing was asked.
    fn reclaim(
        &mut self,
        recover: Option<&Recover>,
        user_id: &str,
    ) -> Result<Reclaimed, Option<NotRecovered>> {
        let (Some(store), Some(recover)) = (self.recovery.as_mut(), recover) else {
            return Err(None);
        };
        let reclaimed = store.reclaim(recover, user_id, Instant::now());
        let outcome = match &reclaimed {
            Ok(reclaimed) => {
                self.metrics
                    .recovered_pushes
                    .inc_by(reclaimed.missed.len() as u64);
                "recovered"
            }
            Err(not_recovered) => not_recovered.name(),
        };
        self.metrics.recoveries.with_label_values(&[outcome]).inc();
        reclaimed.map_err(Some)
    }

    /// Keep a registered session for recovery, with the rooms it is in, when it can be.
    fn keep(&mut self, session: SessionId) {
        let (Some(store), Some(entry)) = (self.recovery.as_mut(), self.sessions.get(&session))
        else {
            return;
        };
        let Some(keepable) = &entry.keepable else {
            return;
        };
        store.records.keep(KeptSession {
            sid: keepable.sid.clone(),
            pid: keepable.pid.clone(),
            user_id: keepable.user_id.clone(),
            rooms: entry.rooms.iter().cloned().collect(),
            registered_at: keepable.registered_at,
            ended_at: Instant::now(),
        });
    }
}

/// The shards a push goes to, and the members (with their threads) they must skip.
type Receivers<'a> = (Option<&'a Shards>, Vec<(WorkerId, SessionId)>);

/// The shards a push to `target` goes to, and the members they must skip (a free function so
/// that the supervisor's recovery store stays borrowable beside it).
fn receivers<'a>(
    rooms: &'a HashMap<String, Shards>,
    everyone: &'a Shards,
    sessions: &HashMap<SessionId, SessionEntry>,
    target: &PushTarget,
) -> Receivers<'a> {
    match target {
        PushTarget::Room(name) => (rooms.get(name), Vec::new()),
        PushTarget::RoomExceptMembersOf {
            room,
            except_members_of,
        } => {
            let shards = rooms.get(room);
            let skipped = match (shards, rooms.get(except_members_of)) {
                (Some(shards), Some(except)) => members_of_both(sessions, shards, except),
                _ => Vec::new(),
            };
            (shards, skipped)
        }
        PushTarget::Everyone => (Some(everyone), Vec::new()),
    }
}

/// The sessions in both `room` and `except` (a user's room: a few), each with its thread.
fn members_of_both(
    sessions: &HashMap<SessionId, SessionEntry>,
    room: &Shards,
    except: &Shards,
) -> Vec<(WorkerId, SessionId)> {
    except
        .sessions
        .iter()
        .filter(|session| room.sessions.contains(session))
        .filter_map(|&session| {
            let entry = sessions.get(&session)?;
            Some((entry.inbox.home().worker, session))
        })
        .collect()
}

/// Where an encoded push goes: the shards with a live receiver (if any) and whom they skip.
struct Delivery<'a> {
    shards: Option<&'a Shards>,
    skipped: &'a [(WorkerId, SessionId)],
    stamp: PushStamp,
    priority: bool,
}

impl Delivery<'_> {
    /// Fan `packet` out (when there is one and someone to get it), count the deliveries of
    /// its event; returns how many sessions it reached.
    fn fan_out(self, packet: Option<ByteString>, metrics: &Metrics) -> usize {
        let reached = match (self.shards, packet) {
            (Some(shards), Some(packet)) => {
                shards.fanout(&packet, self.stamp, self.skipped, self.priority);
                shards.members() - self.skipped.len()
            }
            _ => 0,
        };
        metrics
            .deliveries
            .with_label_values(&[self.stamp.event.name()])
            .inc_by(reached as u64);
        reached
    }
}

/// The room a push to `target` is counted under among the busiest rooms (a broadcast is no
/// room).
fn target_room(target: &PushTarget) -> Option<String> {
    match target {
        PushTarget::Room(room) | PushTarget::RoomExceptMembersOf { room, .. } => Some(room.clone()),
        PushTarget::Everyone => None,
    }
}

/// A push about to be encoded.
struct Outgoing<'a> {
    target: PushTarget,
    event: &'a str,
    payload: &'a str,
    /// Whether some live session receives it (or every push is logged: the supervisor's
    /// `logs_every_push_since`).
    live: bool,
    accepted_at: Instant,
}

/// The packet of a push: encoded once, with its offset and logged when recovery is on. `None`
/// when nobody is to get it: no live receiver, and no kept session that might.
fn encode_push(
    recovery: &mut Option<RecoveryStore>,
    encode: EncodePacket,
    metrics: &Metrics,
    push: Outgoing<'_>,
) -> Option<ByteString> {
    let Outgoing {
        target,
        event,
        payload,
        live,
        accepted_at,
    } = push;
    let Some(store) = recovery.as_mut() else {
        return live.then(|| ByteString::from(encode(event, payload, None)));
    };
    if !live && !store.records.any_kept(accepted_at) {
        return None;
    }
    let appended = store
        .log
        .append(target, &mut |offset| encode(event, payload, Some(offset)));
    metrics
        .recovery_history_evicted
        .inc_by(appended.evicted as u64);
    metrics.recovery_history_bytes.set(store.log.bytes() as i64);
    Some(appended.packet)
}

impl Actor for RoomSupervisor {
    type Context = Context<Self>;
}

impl Handler<RegisterSession> for RoomSupervisor {
    type Result = ResponseActFuture<Self, Registration>;

    fn handle(&mut self, msg: RegisterSession, ctx: &mut Self::Context) -> Self::Result {
        match self.claim(&msg) {
            Some(answer) => self.register_claimed(msg, answer),
            None => Box::pin(fut::ready(self.register(msg, ctx))),
        }
    }
}

impl RoomSupervisor {
    /// Register a session, giving back the session it asks for when it can: in one step, so
    /// that no push falls between its missed ones and its live ones.
    fn register(&mut self, msg: RegisterSession, ctx: &mut Context<Self>) -> Registration {
        // Registering an id again starts it afresh.
        self.unregister(msg.session);
        let reclaimed = self.reclaim(msg.recover.as_ref(), &msg.user_id);
        let (sid, pid) = match (&reclaimed, msg.recover) {
            (Ok(reclaimed), Some(recover)) => (reclaimed.sid.clone(), Some(recover.pid)),
            _ => (msg.sid, msg.pid),
        };
        let keepable = match (&self.recovery, pid) {
            (Some(store), Some(pid)) => Some(Keepable {
                sid,
                pid,
                user_id: msg.user_id,
                registered_at: store.log.head(),
            }),
            _ => None,
        };
        self.everyone
            .add(msg.session, &msg.inbox, &mut self.workers);
        self.sessions.insert(
            msg.session,
            SessionEntry {
                inbox: msg.inbox,
                going_away: msg.going_away,
                rooms: HashSet::new(),
                keepable,
            },
        );
        self.metrics
            .connected_clients
            .set(self.sessions.len() as i64);
        match reclaimed {
            Ok(Reclaimed { sid, rooms, missed }) => {
                for room in &rooms {
                    // Through the join handler itself: the kept rooms are joined exactly as
                    // the client's own joins are.
                    let join = JoinRoom {
                        session: msg.session,
                        room: room.clone(),
                    };
                    <Self as Handler<JoinRoom>>::handle(self, join, ctx);
                }
                self.announce(msg.session);
                Registration::Recovered { sid, rooms, missed }
            }
            Err(not_recovered) => {
                self.announce(msg.session);
                Registration::Fresh { not_recovered }
            }
        }
    }
}

impl Handler<UnregisterSession> for RoomSupervisor {
    type Result = ();

    fn handle(&mut self, msg: UnregisterSession, _ctx: &mut Self::Context) {
        if !self.log_end(msg.session, msg.keep) && msg.keep {
            self.keep(msg.session);
        }
        self.unregister(msg.session);
        self.metrics
            .connected_clients
            .set(self.sessions.len() as i64);
    }
}

impl Handler<CloseAllSessions> for RoomSupervisor {
    type Result = usize;

    fn handle(&mut self, _msg: CloseAllSessions, _ctx: &mut Self::Context) -> usize {
        for s in self.sessions.values() {
            s.going_away.do_send(GoingAway);
        }
        self.sessions.len()
    }
}

impl Handler<JoinRoom> for RoomSupervisor {
    type Result = ();

    fn handle(&mut self, msg: JoinRoom, _ctx: &mut Self::Context) {
        let Some(session) = self.sessions.get_mut(&msg.session) else {
            log::debug!("join of {} by unknown session {}", msg.room, msg.session);
            return;
        };
        if session.rooms.contains(&msg.room) {
            return;
        }
        self.rooms
            .entry(msg.room.clone())
            .or_insert_with(|| Shards::new(&msg.room))
            .add(msg.session, &session.inbox, &mut self.workers);
        if let Some(view) = &self.admin_view {
            view.do_send(RoomMembership {
                session: msg.session,
                room: msg.room.clone(),
                joined: true,
            });
        }
        session.rooms.insert(msg.room);
        self.metrics.rooms.set(self.rooms.len() as i64);
        self.announce(msg.session);
    }
}

impl Handler<LeaveRoom> for RoomSupervisor {
    type Result = ();

    fn handle(&mut self, msg: LeaveRoom, _ctx: &mut Self::Context) {
        let Some(session) = self.sessions.get_mut(&msg.session) else {
            return;
        };
        if !session.rooms.remove(&msg.room) {
            return;
        }
        let worker = session.inbox.home().worker;
        self.leave(msg.session, worker, &msg.room);
        if let Some(view) = &self.admin_view {
            view.do_send(RoomMembership {
                session: msg.session,
                room: msg.room,
                joined: false,
            });
        }
        self.announce(msg.session);
    }
}

impl Handler<Push> for RoomSupervisor {
    type Result = usize;

    fn handle(&mut self, msg: Push, _ctx: &mut Self::Context) -> usize {
        let accepted_at = msg.accepted.at;
        let stamp = PushStamp {
            event: msg.event,
            accepted: msg.accepted,
        };
        let event = msg.event.name();
        self.metrics.pushes.with_label_values(&[event]).inc();
        let (shards, skipped) = receivers(&self.rooms, &self.everyone, &self.sessions, &msg.target);
        let live = shards.filter(|shards| shards.members() > skipped.len());
        let room = target_room(&msg.target);
        let packet = encode_push(
            &mut self.recovery,
            self.encode,
            &self.metrics,
            Outgoing {
                target: msg.target,
                event,
                payload: &msg.payload,
                live: live.is_some() || self.logs_every_push_since.is_some(),
                accepted_at,
            },
        );
        let delivery = Delivery {
            shards: live,
            skipped: &skipped,
            stamp,
            priority: msg.priority,
        };
        let reached = delivery.fan_out(packet, &self.metrics);
        self.count_push(stamp, room, reached);
        reached
    }
}

/// Cluster mode: a push read from the cluster's log. Stored in the history at its position
/// whether or not a session here receives it (a session kept on another node may recover
/// here), and delivered to this node's sessions when live.
impl Handler<LoggedPush> for RoomSupervisor {
    type Result = ();

    fn handle(&mut self, msg: LoggedPush, _ctx: &mut Self::Context) {
        let LoggedPush {
            position,
            push,
            live,
        } = msg;
        let stamp = PushStamp {
            event: push.event,
            accepted: push.accepted,
        };
        let event = push.event.name();
        let room = target_room(&push.target);
        let (shards, skipped) =
            receivers(&self.rooms, &self.everyone, &self.sessions, &push.target);
        let shards = shards.filter(|shards| live && shards.members() > skipped.len());
        let (encode, payload) = (self.encode, &push.payload);
        let packet = match self.recovery.as_mut() {
            Some(store) => {
                let appended = store
                    .log
                    .append_at(position, push.target.clone(), &mut |offset| {
                        encode(event, payload, Some(offset))
                    });
                if let Some(appended) = &appended {
                    self.metrics
                        .recovery_history_evicted
                        .inc_by(appended.evicted as u64);
                    self.metrics
                        .recovery_history_bytes
                        .set(store.log.bytes() as i64);
                }
                appended.map(|appended| appended.packet)
            }
            None => shards.map(|_| ByteString::from(encode(event, payload, None))),
        };
        if !live {
            return;
        }
        self.metrics.pushes.with_label_values(&[event]).inc();
        let delivery = Delivery {
            shards,
            skipped: &skipped,
            stamp,
            priority: push.priority,
        };
        let reached = delivery.fan_out(packet, &self.metrics);
        self.count_push(stamp, room, reached);
    }
}

/// How many of this node's sessions a push to `target` would reach now (cluster mode's
/// `clients` in a `202`, before the push is read back from the log).
#[derive(Message, Debug, Clone)]
#[rtype(result = "usize")]
pub struct CountReach {
    /// The push's target.
    pub target: PushTarget,
}

impl Handler<CountReach> for RoomSupervisor {
    type Result = usize;

    fn handle(&mut self, msg: CountReach, _ctx: &mut Self::Context) -> usize {
        self.reach(&msg.target)
    }
}

impl Handler<GetNodeFigures> for RoomSupervisor {
    type Result = MessageResult<GetNodeFigures>;

    fn handle(&mut self, _msg: GetNodeFigures, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(NodeFigures {
            connections: self.sessions.len(),
            rooms: self
                .rooms
                .iter()
                .map(|(name, shards)| (name.clone(), shards.members()))
                .collect(),
            ..NodeFigures::default()
        })
    }
}

impl Handler<RoomSize> for RoomSupervisor {
    type Result = usize;

    fn handle(&mut self, msg: RoomSize, _ctx: &mut Self::Context) -> usize {
        self.rooms.get(&msg.room).map_or(0, Shards::members)
    }
}

impl Handler<GetStats> for RoomSupervisor {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _msg: GetStats, _ctx: &mut Self::Context) -> Self::Result {
        let mut stats = Stats {
            connections: self.sessions.len(),
            rooms: self.rooms.len(),
            events: self.metrics.push_stats.snapshot(),
            busiest_rooms: self.busiest_rooms.top(BUSIEST_ROOMS, Instant::now()),
            ..Stats::default()
        };
        for event in [PushEvent::Notification, PushEvent::Message] {
            let name = event.name();
            stats
                .pushes
                .insert(name, self.metrics.pushes.with_label_values(&[name]).get());
            stats.deliveries.insert(
                name,
                self.metrics.deliveries.with_label_values(&[name]).get(),
            );
        }
        MessageResult(stats)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::{ProbeSession, Received};
    use std::sync::Mutex;

    /// Register `session`, recording what it gets in `seen`.
    pub(crate) fn register(session: SessionId, seen: &Arc<Mutex<Vec<String>>>) -> RegisterSession {
        let seen = seen.clone();
        let (probe, inbox) = ProbeSession::start(move |received| {
            let mut seen = seen.lock().unwrap();
            match received {
                Received::Packets(packets) => seen.extend(packets),
                Received::GoingAway => seen.push("going away".into()),
            }
        });
        RegisterSession {
            session,
            inbox,
            going_away: probe.recipient(),
            sid: format!("sid{session}"),
            pid: None,
            user_id: format!("u{session}"),
            recover: None,
        }
    }

    fn encode(event: &str, payload: &str, offset: Option<&str>) -> String {
        assert_eq!(offset, None, "recovery is off");
        format!("{event}:{payload}")
    }

    fn broadcast(payload: &str) -> Push {
        Push {
            target: PushTarget::Everyone,
            event: PushEvent::Message,
            payload: payload.into(),
            priority: false,
            accepted: Accepted::now(PushSource::Http),
        }
    }

    /// A notification to `room`.
    pub(crate) fn push(room: &str, payload: &str) -> Push {
        Push {
            target: PushTarget::Room(room.into()),
            event: PushEvent::Notification,
            payload: payload.into(),
            priority: false,
            accepted: Accepted::now(PushSource::Http),
        }
    }

    /// Let the actors handle what was sent.
    pub(crate) async fn settle() {
        for _ in 0..5 {
            actix::clock::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    #[actix::test]
    async fn pushes_reach_members_only_and_rooms_close_when_empty() {
        let metrics = Arc::new(Metrics::new());
        let sup = RoomSupervisor::new(encode, metrics.clone()).start();
        let a = Arc::new(Mutex::new(Vec::new()));
        let b = Arc::new(Mutex::new(Vec::new()));
        sup.do_send(register(1, &a));
        sup.do_send(register(2, &b));
        sup.do_send(JoinRoom {
            session: 1,
            room: "admin".into(),
        });
        // Joining twice counts once.
        sup.do_send(JoinRoom {
            session: 1,
            room: "admin".into(),
        });
        assert_eq!(sup.send(push("admin", "{}")).await.unwrap(), 1);
        assert_eq!(sup.send(push("nobody", "{}")).await.unwrap(), 0);
        assert_eq!(sup.send(broadcast("1")).await.unwrap(), 2);
        settle().await;
        assert_eq!(*a.lock().unwrap(), vec!["notification:{}", "message:1"]);
        assert_eq!(*b.lock().unwrap(), vec!["message:1"]);
        assert_eq!(metrics.rooms.get(), 1);

        sup.do_send(LeaveRoom {
            session: 1,
            room: "admin".into(),
        });
        assert_eq!(
            sup.send(RoomSize {
                room: "admin".into()
            })
            .await
            .unwrap(),
            0
        );
        assert_eq!(metrics.rooms.get(), 0);
        sup.do_send(UnregisterSession {
            session: 2,
            keep: false,
        });
        assert_eq!(sup.send(broadcast("2")).await.unwrap(), 1);
        settle().await;
        assert_eq!(a.lock().unwrap().last().unwrap(), "message:2");
        assert_eq!(
            *b.lock().unwrap(),
            vec!["message:1"],
            "unregistered: no broadcast"
        );
        let stats = sup.send(GetStats).await.unwrap();
        assert_eq!(stats.connections, 1);
        assert_eq!(stats.rooms, 0);
        assert_eq!(stats.pushes["notification"], 2);
        assert_eq!(stats.deliveries["message"], 3);
    }

    #[actix::test]
    async fn unregister_leaves_every_room_and_shutdown_reaches_everyone() {
        let metrics = Arc::new(Metrics::new());
        let sup = RoomSupervisor::new(encode, metrics.clone()).start();
        let a = Arc::new(Mutex::new(Vec::new()));
        let b = Arc::new(Mutex::new(Vec::new()));
        sup.do_send(register(7, &a));
        sup.do_send(register(8, &b));
        for room in ["user:1", "admin"] {
            sup.do_send(JoinRoom {
                session: 7,
                room: room.into(),
            });
        }
        assert_eq!(sup.send(push("user:1", "2")).await.unwrap(), 1);
        sup.do_send(UnregisterSession {
            session: 7,
            keep: false,
        });
        let stats = sup.send(GetStats).await.unwrap();
        assert_eq!((stats.connections, stats.rooms), (1, 0));
        assert_eq!(metrics.connected_clients.get(), 1);
        assert_eq!(sup.send(CloseAllSessions).await.unwrap(), 1);
        settle().await;
        assert_eq!(*a.lock().unwrap(), vec!["notification:2"]);
        assert_eq!(*b.lock().unwrap(), vec!["going away"]);
    }

    #[actix::test]
    async fn a_push_except_the_members_of_a_room_skips_them() {
        let sup = RoomSupervisor::new(encode, Arc::new(Metrics::new())).start();
        let seen: Vec<_> = (0..3).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
        for (i, s) in seen.iter().enumerate() {
            sup.do_send(register(i as u64, s));
        }
        for (session, room) in [(0, "admin"), (0, "user:a"), (1, "admin"), (2, "user:a")] {
            sup.do_send(JoinRoom {
                session,
                room: room.into(),
            });
        }
        let except = |except_members_of: &str, payload: &str| Push {
            target: PushTarget::RoomExceptMembersOf {
                room: "admin".into(),
                except_members_of: except_members_of.into(),
            },
            event: PushEvent::Message,
            payload: payload.into(),
            priority: false,
            accepted: Accepted::now(PushSource::Http),
        };
        assert_eq!(sup.send(except("user:a", "1")).await.unwrap(), 1);
        assert_eq!(sup.send(except("user:nobody", "2")).await.unwrap(), 2);
        settle().await;
        assert_eq!(*seen[0].lock().unwrap(), vec!["message:2"]);
        assert_eq!(*seen[1].lock().unwrap(), vec!["message:1", "message:2"]);
        assert!(seen[2].lock().unwrap().is_empty(), "not in admin");
    }
}
