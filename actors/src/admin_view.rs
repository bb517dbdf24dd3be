//! What the Socket.IO Admin UI is shown: the live sockets of the root namespace, their rooms,
//! and this node's statistics, kept by one [`AdminView`] actor and streamed to the UI's
//! sockets (the *watchers*).
//!
//! The view only exists when the admin UI is configured; then every root-namespace socket
//! tells it that it connected ([`SocketOpened`]), upgraded ([`TransportUpgraded`]) and ended
//! ([`SocketClosed`]), and the room supervisor tells it every room join and leave
//! ([`RoomMembership`]). Those are per-connection and per-join messages: a push never reaches
//! the view. A watcher ([`Watch`]) is sent the list of sockets at once (`all_sockets`), every
//! change as it happens (`socket_connected`, `socket_updated`, `socket_disconnected`,
//! `room_joined`, `room_left`) and this node's statistics every
//! [`STATS_INTERVAL`] (`server_stats`). In cluster mode ([`AdminView::in_cluster`]) the other
//! live nodes' statistics go with it, one `server_stats` per node from its presence figures
//! ([`crate::cluster::node_server_stats`]), and the view gives this node's to the presence
//! beacon ([`GetServerFigures`]); their sockets are not listed. An operator's action ([`Operate`]) is handed to the
//! target sockets' own sessions, which apply it as they apply their client's requests.
//!
//! Events leave the view as the JSON array of a Socket.IO event (name first, then its
//! arguments); the edge adds the packet's type and namespace.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use serde_json::{json, Value};

use crate::cluster::node_server_stats;
use crate::cluster::{GetServerFigures, PresenceBoard, ServerFigures};
use crate::messages::SessionId;

/// How often watchers are sent `server_stats`.
pub const STATS_INTERVAL: Duration = Duration::from_secs(2);

/// The only namespace pushgate's clients connect (the admin UI's own is not listed).
const ROOT: &str = "/";

/// Hands a watcher one event (a JSON array); false once the watcher is gone.
pub type Feed = Box<dyn Fn(Arc<str>) -> bool + Send>;

/// Hands a socket's session an operator's command.
pub type Commands = Box<dyn Fn(SocketCommand) + Send>;

/// What an operator asks of one socket (the session applies it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketCommand {
    /// Join this room (within `MAX_ROOMS_PER_SOCKET`; the client's ACL does not apply).
    Join(String),
    /// Leave this room.
    Leave(String),
    /// End the session: the client is told it was disconnected by the server and does not
    /// reconnect by itself.
    Disconnect,
}

/// A root-namespace socket connected (or was recovered).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SocketOpened {
    /// Its session.
    pub session: SessionId,
    /// Its Socket.IO socket id.
    pub sid: String,
    /// The id the UI groups a connection's sockets by.
    pub client_id: String,
    /// `polling` or `websocket`.
    pub transport: &'static str,
    /// The handshake as the UI shows it (`address`, `headers`, `query`, `issued`, `time`,
    /// `url`, `secure`, `xdomain`), secrets already removed.
    pub handshake: Value,
    /// The rooms it is in already (a recovered session's).
    pub rooms: Vec<String>,
    /// Where an operator's commands for it go.
    pub commands: Commands,
}

/// A polling socket upgraded to WebSocket.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TransportUpgraded {
    /// Its session.
    pub session: SessionId,
}

/// A root-namespace socket ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SocketClosed {
    /// Its session.
    pub session: SessionId,
    /// Why (the disconnect reason's label).
    pub reason: &'static str,
}

/// A registered session joined or left a room (from the room supervisor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomMembership {
    /// The session.
    pub session: SessionId,
    /// The room.
    pub room: String,
    /// Joined (true) or left (false).
    pub joined: bool,
}

/// An admin-UI socket logged in: send it everything from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watch {
    /// The watcher's id (its session's).
    pub watcher: SessionId,
    /// Where its events go.
    pub feed: Feed,
}

/// An admin-UI socket left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unwatch {
    /// The watcher's id.
    pub watcher: SessionId,
}

/// An operator's action on the sockets of `nsp` that `filter` selects: the socket with that
/// id, else the members of the room of that name; every socket when there is no filter.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Operate {
    /// The namespace the UI names (only `/` has sockets).
    pub nsp: String,
    /// A socket id or a room name.
    pub filter: Option<String>,
    /// What to do to each.
    pub command: SocketCommand,
}

/// Ask how many sockets and watchers the view holds (tests, diagnostics).
#[derive(Message)]
#[rtype(result = "(usize, usize)")]
pub struct ViewSize;

/// Who this node is, for `server_stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// `NODE_ID`: the UI's server id (each node of a cluster is one server in the UI).
    pub server_id: String,
    /// The host name.
    pub hostname: String,
}

struct Socket {
    sid: String,
    client_id: String,
    transport: &'static str,
    handshake: Value,
    rooms: BTreeSet<String>,
    commands: Commands,
}

impl Socket {
    /// The socket as the UI reads it.
    fn serialize(&self) -> Value {
        json!({
            "id": self.sid,
            "clientId": self.client_id,
            "transport": self.transport,
            "nsp": ROOT,
            "data": {},
            "handshake": self.handshake,
            "rooms": self.rooms,
        })
    }
}

/// The admin UI's view of this node (see the module documentation).
pub struct AdminView {
    node: NodeIdentity,
    started: Instant,
    sockets: HashMap<SessionId, Socket>,
    by_sid: HashMap<String, SessionId>,
    watchers: HashMap<SessionId, Feed>,
    stats_timer: Option<SpawnHandle>,
    presence: Option<Arc<PresenceBoard>>,
}

impl AdminView {
    /// A view of no sockets yet.
    pub fn new(node: NodeIdentity) -> Self {
        AdminView {
            node,
            started: Instant::now(),
            sockets: HashMap::new(),
            by_sid: HashMap::new(),
            watchers: HashMap::new(),
            stats_timer: None,
            presence: None,
        }
    }

    /// A view of a cluster node: the other nodes' figures on `presence` are listed as servers
    /// too.
    pub fn in_cluster(mut self, presence: Arc<PresenceBoard>) -> Self {
        self.presence = Some(presence);
        self
    }

    /// Send an event to every watcher, forgetting those that are gone.
    fn broadcast(&mut self, event: Value) {
        if self.watchers.is_empty() {
            return;
        }
        let text: Arc<str> = event.to_string().into();
        self.watchers.retain(|_, feed| feed(text.clone()));
    }

    fn polling_sockets(&self) -> usize {
        self.sockets
            .values()
            .filter(|s| s.transport == "polling")
            .count()
    }

    /// This node's `server_stats`, then (in cluster mode) one per other live node.
    fn server_stats(&self) -> Vec<Value> {
        let own = json!(["server_stats", {
            "serverId": self.node.server_id,
            "hostname": self.node.hostname,
            "pid": std::process::id(),
            "uptime": self.started.elapsed().as_secs_f64(),
            "clientsCount": self.sockets.len(),
            "pollingClientsCount": self.polling_sockets(),
            "namespaces": [{"name": ROOT, "socketsCount": self.sockets.len()}],
        }]);
        let others = self.presence.iter().flat_map(|board| {
            node_server_stats::other_nodes(board, &self.node.server_id, Instant::now())
        });
        std::iter::once(own)
            .chain(others.map(|stats| json!(["server_stats", stats])))
            .collect()
    }

    /// Send every watcher the `server_stats`.
    fn broadcast_stats(&mut self) {
        for stats in self.server_stats() {
            self.broadcast(stats);
        }
    }

    fn all_sockets(&self) -> Value {
        let sockets: Vec<Value> = self.sockets.values().map(Socket::serialize).collect();
        json!(["all_sockets", sockets])
    }

    /// The sessions an [`Operate`] selects.
    fn targets(&self, msg: &Operate) -> Vec<SessionId> {
        if msg.nsp != ROOT {
            return Vec::new();
        }
        let Some(filter) = &msg.filter else {
            return self.sockets.keys().copied().collect();
        };
        if let Some(&session) = self.by_sid.get(filter) {
            return vec![session];
        }
        self.sockets
            .iter()
            .filter(|(_, s)| s.rooms.contains(filter))
            .map(|(&session, _)| session)
            .collect()
    }
}

/// The current time as the UI's event timestamps carry it.
fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Actor for AdminView {
    type Context = Context<Self>;
}

impl Handler<SocketOpened> for AdminView {
    type Result = ();

    fn handle(&mut self, msg: SocketOpened, _ctx: &mut Self::Context) {
        let socket = Socket {
            sid: msg.sid,
            client_id: msg.client_id,
            transport: msg.transport,
            handshake: msg.handshake,
            rooms: msg.rooms.into_iter().collect(),
            commands: msg.commands,
        };
        let event = json!(["socket_connected", socket.serialize(), now()]);
        self.by_sid.insert(socket.sid.clone(), msg.session);
        if let Some(old) = self.sockets.insert(msg.session, socket) {
            self.by_sid.remove(&old.sid);
        }
        self.broadcast(event);
    }
}

impl Handler<TransportUpgraded> for AdminView {
    type Result = ();

    fn handle(&mut self, msg: TransportUpgraded, _ctx: &mut Self::Context) {
        let Some(socket) = self.sockets.get_mut(&msg.session) else {
            return;
        };
        socket.transport = "websocket";
        let event =
            json!(["socket_updated", {"id": socket.sid, "nsp": ROOT, "transport": "websocket"}]);
        self.broadcast(event);
    }
}

impl Handler<SocketClosed> for AdminView {
    type Result = ();

    fn handle(&mut self, msg: SocketClosed, _ctx: &mut Self::Context) {
        let Some(socket) = self.sockets.remove(&msg.session) else {
            return;
        };
        self.by_sid.remove(&socket.sid);
        // Its rooms are left first, as a Socket.IO server's adapter does when a socket ends.
        for room in &socket.rooms {
            self.broadcast(json!(["room_left", ROOT, room, socket.sid, now()]));
        }
        self.broadcast(json!([
            "socket_disconnected",
            ROOT,
            socket.sid,
            msg.reason,
            now()
        ]));
    }
}

impl Handler<RoomMembership> for AdminView {
    type Result = ();

    fn handle(&mut self, msg: RoomMembership, _ctx: &mut Self::Context) {
        let Some(socket) = self.sockets.get_mut(&msg.session) else {
            return;
        };
        let changed = if msg.joined {
            socket.rooms.insert(msg.room.clone())
        } else {
            socket.rooms.remove(&msg.room)
        };
        if !changed {
            return;
        }
        let name = if msg.joined {
            "room_joined"
        } else {
            "room_left"
        };
        let event = json!([name, ROOT, msg.room, socket.sid, now()]);
        self.broadcast(event);
    }
}

impl Handler<Watch> for AdminView {
    type Result = ();

    fn handle(&mut self, msg: Watch, ctx: &mut Self::Context) {
        let all = Arc::<str>::from(self.all_sockets().to_string());
        if !(msg.feed)(all) {
            return;
        }
        for stats in self.server_stats() {
            if !(msg.feed)(stats.to_string().into()) {
                return;
            }
        }
        self.watchers.insert(msg.watcher, msg.feed);
        if self.stats_timer.is_none() {
            let timer = ctx.run_interval(STATS_INTERVAL, |view, ctx| {
                view.broadcast_stats();
                if view.watchers.is_empty() {
                    if let Some(timer) = view.stats_timer.take() {
                        ctx.cancel_future(timer);
                    }
                }
            });
            self.stats_timer = Some(timer);
        }
    }
}

impl Handler<Unwatch> for AdminView {
    type Result = ();

    fn handle(&mut self, msg: Unwatch, ctx: &mut Self::Context) {
        self.watchers.remove(&msg.watcher);
        if self.watchers.is_empty() {
            if let Some(timer) = self.stats_timer.take() {
                ctx.cancel_future(timer);
            }
        }
    }
}

impl Handler<Operate> for AdminView {
    type Result = ();

    fn handle(&mut self, msg: Operate, _ctx: &mut Self::Context) {
        for session in self.targets(&msg) {
            if let Some(socket) = self.sockets.get(&session) {
                (socket.commands)(msg.command.clone());
            }
        }
    }
}

impl Handler<GetServerFigures> for AdminView {
    type Result = MessageResult<GetServerFigures>;

    fn handle(&mut self, _msg: GetServerFigures, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(ServerFigures {
            hostname: self.node.hostname.clone(),
            pid: std::process::id(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            polling_connections: self.polling_sockets(),
        })
    }
}

impl Handler<ViewSize> for AdminView {
    type Result = MessageResult<ViewSize>;

    fn handle(&mut self, _msg: ViewSize, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult((self.sockets.len(), self.watchers.len()))
    }
}
