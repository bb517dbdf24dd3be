//! The messages exchanged between session actors, the fan-out actors, the room supervisor and
//! the pushers (HTTP API, RabbitMQ consumers).
//!
//! Pushes travel as encoded Socket.IO packets (text like `42["notification",{...}]`) in
//! [`ByteString`]s: encoded once per push, then shared by reference count with every receiving
//! session. A delivery's packets ([`Packets`]) also carry their encoding in WebSocket frames,
//! made by the first session that writes them and shared by the others.
//!
//! Words: a *packet* is an encoded Socket.IO / Engine.IO packet; a *frame* is only ever a
//! WebSocket frame.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use bytestring::ByteString;

use crate::inbox::OpenedInbox;
use crate::push_stats::{EventStats, RoomActivity};
use crate::recovery::NotRecovered;

/// Identifies one session inside this process (never shown to clients).
pub type SessionId = u64;

/// Turns an event name, its JSON payload and the push's offset into the packet sessions write
/// to the wire (the Socket.IO codec provides it, so this crate stays protocol-agnostic). The
/// offset, when recovery is on, is the packet's last argument; `None` when recovery is off.
pub type EncodePacket = fn(event: &str, payload_json: &str, offset: Option<&str>) -> String;

/// Encoded packets for a session to write, in this order: one per push, shared by every
/// receiver of the same pushes. A room that coalesces pushes (see
/// [`RoomState`](crate::room::RoomState)) hands several at once, which the session writes in
/// one go.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Deliver {
    /// The complete packets, e.g. `42["notification",{...}]`.
    pub packets: Arc<Packets>,
}

impl Deliver {
    /// A delivery of one packet.
    pub fn one(packet: ByteString) -> Self {
        Deliver {
            packets: Arc::new(Packets::from(vec![packet])),
        }
    }
}

/// The packets of one delivery (a slice of [`ByteString`] by `Deref`), as shared by all its
/// receivers, with a place for their encoding in WebSocket packets.
///
/// Every receiver on a WebSocket writes the same bytes for the same packets (server packets are
/// not masked), so the first one encodes them ([`Packets::encoded`]) and the others write that
/// same buffer: a delivery to a room costs one encoding per worker thread instead of one per
/// member.
#[derive(Debug)]
pub struct Packets {
    packets: Box<[ByteString]>,
    /// Each push's stamp, in the packets' order (empty for packets that are not pushes).
    stamps: Box<[PushStamp]>,
    encoded: OnceLock<Bytes>,
}

impl Packets {
    /// The packets as `encode` writes them, encoded by the first caller and shared with the
    /// later ones. There is one encoding per delivery: every caller passes the same function
    /// (the WebSocket transport's).
    pub fn encoded(&self, encode: fn(&[ByteString]) -> Bytes) -> Bytes {
        self.encoded.get_or_init(|| encode(&self.packets)).clone()
    }

    /// The stamps of the pushes these packets carry (for the push statistics), in order.
    pub fn stamps(&self) -> &[PushStamp] {
        &self.stamps
    }
}

impl Deref for Packets {
    type Target = [ByteString];

    fn deref(&self) -> &[ByteString] {
        &self.packets
    }
}

impl From<Vec<ByteString>> for Packets {
    fn from(packets: Vec<ByteString>) -> Self {
        Packets {
            packets: packets.into_boxed_slice(),
            stamps: Box::default(),
            encoded: OnceLock::new(),
        }
    }
}

impl FromIterator<(ByteString, PushStamp)> for Packets {
    fn from_iter<I: IntoIterator<Item = (ByteString, PushStamp)>>(pushes: I) -> Self {
        let (packets, stamps): (Vec<_>, Vec<_>) = pushes.into_iter().unzip();
        Packets {
            packets: packets.into_boxed_slice(),
            stamps: stamps.into_boxed_slice(),
            encoded: OnceLock::new(),
        }
    }
}

impl FromIterator<ByteString> for Packets {
    fn from_iter<I: IntoIterator<Item = ByteString>>(packets: I) -> Self {
        Packets::from(packets.into_iter().collect::<Vec<_>>())
    }
}

/// Identifies the worker thread (actix arbiter) a session lives on.
pub type WorkerId = usize;

/// The thread a session's actor runs on: rooms put one actor on each such thread, so that
/// fanning a packet out to a session never wakes it from another thread.
#[derive(Clone)]
pub struct Home {
    /// This thread's id (stable for the thread's life).
    pub worker: WorkerId,
    /// Its arbiter, where the fan-out actor for its sessions is started.
    pub arbiter: actix::ArbiterHandle,
}

impl Home {
    /// The calling thread's home (call it from the session actor's thread).
    pub fn current() -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static WORKER: WorkerId = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        Home {
            worker: WORKER.with(|w| *w),
            arbiter: actix::Arbiter::current(),
        }
    }
}

/// A session authenticated and can receive pushes from now on; or, with `recover`, asks for
/// the session it had before its connection dropped (see [`crate::recovery`] for the edge's
/// side of it). Answers how it was registered.
#[derive(Message)]
#[rtype(result = "Registration")]
pub struct RegisterSession {
    /// The session's process-local id.
    pub session: SessionId,
    /// Where its pushes go: its inbox, opened on the thread it lives on (the rooms holding it
    /// run there).
    pub inbox: OpenedInbox,
    /// Where to tell it that the server is shutting down.
    pub going_away: Recipient<GoingAway>,
    /// Its new Socket.IO socket id (kept with it for recovery; a recovered session gets its
    /// old one instead).
    pub sid: String,
    /// Its new private session id, when recovery is on (the edge draws it: random, at least
    /// 128 bits, never logged); `None` keeps nothing of it when it ends.
    pub pid: Option<String>,
    /// The user (`sub`) it authenticated as.
    pub user_id: String,
    /// The kept session the client asks back, when its auth carried a `pid`.
    pub recover: Option<Recover>,
}

/// A client's request for its kept session (the `pid` and `offset` of its CONNECT auth).
pub struct Recover {
    /// The private session id it was given.
    pub pid: String,
    /// The offset of the last push it received; `None` when it received none.
    pub offset: Option<String>,
    /// Whether the session, as its new token allows, may be in a room: a kept room it may not
    /// join is not given back (nor are pushes to it replayed).
    pub may_join: Box<dyn Fn(&str) -> bool + Send>,
}

/// How a session was registered.
#[derive(Debug, Clone, PartialEq, Eq, MessageResponse)]
pub enum Registration {
    /// Its kept session is back: it is registered under its old socket id and in `rooms`.
    /// The session writes `missed` before anything from its inbox.
    Recovered {
        /// Its old socket id (for the CONNECT reply; the `pid` is the one it sent).
        sid: String,
        /// The rooms it is in again (the kept ones it may still join).
        rooms: Vec<String>,
        /// The pushes it missed, oldest first.
        missed: Vec<ByteString>,
    },
    /// A new session under the ids it was registered with.
    Fresh {
        /// Why a requested recovery failed (for metrics; the client must not learn it);
        /// `None` when none was asked for, or recovery is off.
        not_recovered: Option<NotRecovered>,
    },
}

/// A session that is not a Socket.IO client (a Server-Sent Events stream) registers and is in
/// `rooms` at once; with `resume_after`, it asks for the pushes after that offset. Its missed
/// pushes are read in the same step that registers it, so none falls between them and the
/// live ones (as in recovery). Answers how the stream starts.
#[derive(Message)]
#[rtype(result = "StreamStart")]
pub struct RegisterStream {
    /// The stream's process-local id.
    pub session: SessionId,
    /// Where its pushes go (see [`RegisterSession::inbox`]).
    pub inbox: OpenedInbox,
    /// Where to tell it that the server is shutting down.
    pub going_away: Recipient<GoingAway>,
    /// The user (`sub`) it authenticated as.
    pub user_id: String,
    /// The rooms it is in for its whole life (its user room, `admin` for admins).
    pub rooms: Vec<String>,
    /// The offset of the last push its client received (SSE's `Last-Event-ID`), if any.
    pub resume_after: Option<String>,
}

/// How a stream registered with [`RegisterStream`] starts.
#[derive(Debug, Clone, PartialEq, Eq, MessageResponse)]
pub enum StreamStart {
    /// Live pushes only: no offset was asked for.
    Live,
    /// The pushes after the asked offset that it would have received, oldest first, to be
    /// written before anything from its inbox.
    Resumed {
        /// The missed pushes' packets.
        missed: Vec<ByteString>,
    },
    /// The asked offset cannot be resumed from (recovery is off, the history no longer
    /// reaches back to it, or it is no offset of this history): live pushes only, and the
    /// client must be told that it may have missed some.
    HistoryLost,
}

/// The server is shutting down: close the transport as "going away" (WebSocket 1001, an
/// Engine.IO close on polling) so the client reconnects, to this node once it is back or to
/// another one.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct GoingAway;

/// Tell every registered session [`GoingAway`]. Answers with how many were told.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CloseAllSessions;

/// A session is gone: remove it from every room it was in.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnregisterSession {
    /// The session that ended.
    pub session: SessionId,
    /// Keep it for recovery (every end but the client's own disconnect); ignored when
    /// recovery is off or the session has no `pid`.
    pub keep: bool,
}

/// Add a registered session to a room (creating the room when it is new).
#[derive(Message)]
#[rtype(result = "()")]
pub struct JoinRoom {
    /// The joining session.
    pub session: SessionId,
    /// The room name, already validated by the caller.
    pub room: String,
}

/// Remove a session from a room (stopping the room when it becomes empty).
#[derive(Message)]
#[rtype(result = "()")]
pub struct LeaveRoom {
    /// The leaving session.
    pub session: SessionId,
    /// The room name.
    pub room: String,
}

/// Which Socket.IO event a push is emitted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushEvent {
    /// Emitted as `notification` (send to user, send notification to room).
    Notification,
    /// Emitted as `message` (send to room).
    Message,
}

impl PushEvent {
    /// The Socket.IO event name: `"notification"` or `"message"`.
    pub fn name(&self) -> &'static str {
        match self {
            PushEvent::Notification => "notification",
            PushEvent::Message => "message",
        }
    }
}

impl fmt::Display for PushEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a push came from (a label of the push statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushSource {
    /// A RabbitMQ event, routed by a consumer.
    Amqp,
    /// The HTTP push API.
    Http,
    /// A Consul service-health change (the notice to the admin room).
    Consul,
}

impl PushSource {
    /// The label value: `"amqp"`, `"http"` or `"consul"`.
    pub fn name(&self) -> &'static str {
        match self {
            PushSource::Amqp => "amqp",
            PushSource::Http => "http",
            PushSource::Consul => "consul",
        }
    }
}

/// When and from where a push entered pushgate: when the HTTP handler had its valid body, the
/// consumer took its delivery, or the Consul watcher decided to send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Who pushed it.
    pub source: PushSource,
    /// When it was accepted.
    pub at: Instant,
}

impl Accepted {
    /// A push from `source` accepted now.
    pub fn now(source: PushSource) -> Self {
        Accepted {
            source,
            at: Instant::now(),
        }
    }
}

/// What the push statistics need to know of a push's packet when it is written: its event,
/// where it came from and when it was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushStamp {
    /// The Socket.IO event it is emitted as.
    pub event: PushEvent,
    /// Its source and acceptance time.
    pub accepted: Accepted,
}

/// Who a push goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushTarget {
    /// Every session in the named room.
    Room(String),
    /// Every session in `room` except those that are also in `except_members_of` (an
    /// admin-room copy of a user's event skips that user's own sessions, which get the event
    /// as their `notification` already).
    RoomExceptMembersOf {
        /// The room pushed to.
        room: String,
        /// The room whose members are skipped.
        except_members_of: String,
    },
    /// Every connected session.
    Everyone,
}

/// Emit `event` with `payload` to `target`. Answers with the number of sessions it reached.
#[derive(Message, Debug, Clone)]
#[rtype(result = "usize")]
pub struct Push {
    /// The receivers.
    pub target: PushTarget,
    /// The Socket.IO event name it is emitted as.
    pub event: PushEvent,
    /// The payload, as serialized JSON text (serialized once by the pusher).
    pub payload: Arc<str>,
    /// An alert (docs/limits.md: `quota.alert`, `quota.exceeded` and the admin `critical` /
    /// `error` notifications): never held by a room's coalescing window; it goes out at once,
    /// after what the room held before it.
    pub priority: bool,
    /// When and from where it entered pushgate (for the push statistics).
    pub accepted: Accepted,
}

/// Ask how many sessions are in a room.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct RoomSize {
    /// The room name.
    pub room: String,
}

/// Ask for the supervisor's counters.
#[derive(Message)]
#[rtype(result = "Stats")]
pub struct GetStats;

/// A snapshot of the supervisor's state.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    /// Registered (authenticated) sessions.
    pub connections: usize,
    /// Non-empty rooms.
    pub rooms: usize,
    /// Pushes accepted since start, by Socket.IO event name.
    pub pushes: BTreeMap<&'static str, u64>,
    /// Packets handed to sessions since start, by Socket.IO event name.
    pub deliveries: BTreeMap<&'static str, u64>,
    /// Pushes, deliveries and write latency by Socket.IO event name, then source.
    pub events: EventStats,
    /// The rooms with the most deliveries in the last minute, busiest first (at most 10).
    pub busiest_rooms: Vec<RoomActivity>,
}

/// Room-internal: add a member.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddMember {
    /// The room it joins (the thread's actor keeps each room's members under its name).
    pub room: Arc<str>,
    /// The member's session id.
    pub session: SessionId,
    /// Where the member's packets go (the room claims it on its thread).
    pub inbox: OpenedInbox,
}

/// Room-internal: remove a member.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoveMember {
    /// The room it leaves.
    pub room: Arc<str>,
    /// The member's session id.
    pub session: SessionId,
}

/// Room-internal: write one packet to every member.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Fanout {
    /// The room whose members (on the receiving thread) get it.
    pub room: Arc<str>,
    /// The packet.
    pub packet: ByteString,
    /// Members of this room (on this thread) that must not get it; usually none.
    pub except: Vec<SessionId>,
    /// The push's event, source and acceptance time (for the fan-out latency histogram and
    /// the push statistics).
    pub stamp: PushStamp,
    /// The push is an alert ([`Push::priority`]): deliver what the room holds, then this at
    /// once, outside the coalescing window.
    pub priority: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static ENCODINGS: AtomicUsize = AtomicUsize::new(0);

    fn joined(packets: &[ByteString]) -> Bytes {
        ENCODINGS.fetch_add(1, Ordering::Relaxed);
        Bytes::from(packets.iter().map(|f| &**f).collect::<Vec<_>>().join("|"))
    }

    #[test]
    fn push_event_names() {
        assert_eq!(PushEvent::Notification.name(), "notification");
        assert_eq!(PushEvent::Message.name(), "message");
        assert_eq!(PushEvent::Message.to_string(), "message");
    }

    #[test]
    fn packets_are_encoded_once_and_the_encoding_is_shared() {
        let packets: Arc<Packets> = Arc::new(
            ["a", "bc"]
                .into_iter()
                .map(|f| ByteString::from(f.to_owned()))
                .collect(),
        );
        assert_eq!(packets.len(), 2);
        assert_eq!(&*packets[1], "bc");
        let first = packets.encoded(joined);
        let second = Deliver {
            packets: packets.clone(),
        }
        .packets
        .encoded(joined);
        assert_eq!(&first[..], b"a|bc");
        assert_eq!(first.as_ptr(), second.as_ptr(), "the same buffer");
        assert_eq!(ENCODINGS.load(Ordering::Relaxed), 1);
    }
}
