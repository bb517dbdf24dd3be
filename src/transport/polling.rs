//! The HTTP long-polling transport, and the session actor that outlives it on upgrade.
//!
//! A [`PollingSession`] owns its [`SocketSession`] for the whole Engine.IO session. GETs take
//! the queued packets (or wait for the next ones); POSTs carry the client's packets. When the
//! client upgrades, a WebSocket carrier (see [`super::websocket`]) probes, then takes over the
//! sink: the session actor stays the one recipient of pushes, so their order never changes.
//!
//! A recovered session's missed pushes go a slice at a time: each GET's answer carries at
//! most one slice of them, and what the session writes meanwhile waits behind the replay.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use actix::prelude::*;
use futures::channel::oneshot;
use pushgate_actors::{Deliver, GoingAway, Packets};

use crate::disconnect::{CloseReason, PollingAnswer};
use crate::heartbeat::Beat;
use crate::protocol::engineio::{self, EioError};
use crate::session::replay::{Replay, ReplayAt};
use crate::session::{AdminUiNotice, Outbound, SocketSession};
use crate::transport::heartbeat_timer::{self, HeartbeatTimer};
use crate::transport::upgraded::MAX_UNWRITTEN;

/// What the HTTP side holds of a polling session.
#[derive(Clone)]
pub struct PollingHandle {
    /// The session actor.
    pub addr: Addr<PollingSession>,
    posting: Arc<AtomicBool>,
}

impl PollingHandle {
    /// Mark a POST as in progress until the guard drops; `None` when one already is (a
    /// client must never have two: the session is then closed).
    pub fn begin_post(&self) -> Option<PostGuard> {
        (!self.posting.swap(true, Ordering::AcqRel)).then(|| PostGuard(self.posting.clone()))
    }
}

/// A POST in progress (see [`PollingHandle::begin_post`]).
pub struct PostGuard(Arc<AtomicBool>);

impl Drop for PostGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Polling sessions by Engine.IO sid.
#[derive(Default)]
pub struct PollingRegistry {
    sessions: RwLock<HashMap<String, PollingHandle>>,
}

impl PollingRegistry {
    /// The session with this sid, if it is open.
    pub fn get(&self, sid: &str) -> Option<PollingHandle> {
        self.sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(sid)
            .cloned()
    }

    fn insert(&self, sid: String, addr: Addr<PollingSession>) {
        let handle = PollingHandle {
            addr,
            posting: Arc::new(AtomicBool::new(false)),
        };
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sid, handle);
    }

    fn remove(&self, sid: &str) {
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(sid);
    }

    /// Open sessions (for tests and stats).
    pub fn len(&self) -> usize {
        self.sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Packets for a WebSocket carrier to write, or the order to close it.
#[derive(Message)]
#[rtype(result = "()")]
pub enum CarrierCommand {
    /// Write these frames.
    Write(Vec<Outbound>),
    /// Write a delivery's room pushes, as every WebSocket writes them (encoded once for all
    /// their receivers).
    Pushes(Arc<Packets>),
    /// Write what is left of a recovered session's missed pushes, a slice at a time, with
    /// everything after them behind them.
    Replay(Replay),
    /// The session ended: close the WebSocket for this reason.
    Close(CloseReason),
    /// Handle what the client has sent (read the socket now, whatever its readiness says),
    /// then tell the session ([`InputSettled`]).
    SettleInput,
}

/// What the session writes to.
enum Sink {
    /// Packets wait in the queue for the next GET.
    Polling,
    /// A WebSocket claimed the upgrade; `probed` once it answered `2probe`; `carrier` once its
    /// actor started ([`CarrierStarted`]), to be closed if the session ends first.
    Upgrading {
        probed: bool,
        carrier: Option<Recipient<CarrierCommand>>,
    },
    /// Upgraded: everything goes over the WebSocket.
    WebSocket(Recipient<CarrierCommand>),
}

/// One Engine.IO session that started on long-polling.
pub struct PollingSession {
    session: SocketSession,
    registry: Arc<PollingRegistry>,
    sink: Sink,
    /// Packets for the next GET, and their size in bytes.
    queue: Vec<Outbound>,
    queued_bytes: usize,
    /// The room deliveries in `queue` (and `out`), whose latency the push statistics record
    /// when a GET's answer carries them.
    queued_pushes: Vec<Arc<Packets>>,
    waiting: Option<oneshot::Sender<Vec<Outbound>>>,
    /// A GET that came while a WebSocket was upgrading the session, held until the
    /// WebSocket has handled what its client sent before it ([`SettleInput`]).
    held: Option<oneshot::Sender<Result<PollAnswer, EioError>>>,
    out: Vec<Outbound>,
    /// A recovered session's missed pushes while they are fetched a slice at a time.
    replay: Option<PollingReplay>,
    /// The client closed while no GET was waiting: the session is over, but a GET already on
    /// its way still gets its noop (instead of an unknown-sid error) for [`LAST_GET_GRACE`].
    closing: bool,
    /// Why the session ended, once it did.
    ended: Option<CloseReason>,
}

/// A replay being fetched: the missed pushes not queued yet, and the packets the session wrote
/// meanwhile, queued once the last slice is.
struct PollingReplay {
    missed: Replay,
    behind: Vec<Outbound>,
}

/// How long a session closed by the client still answers a last GET (one sent just before
/// the close) with a noop.
const LAST_GET_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

impl PollingSession {
    /// Start a session, register it under its sid and return its open packet.
    pub fn open(session: SocketSession, registry: Arc<PollingRegistry>) -> String {
        let open = session.open_packet(&["websocket"]);
        let sid = session.sid().to_owned();
        let addr = PollingSession {
            session,
            registry: registry.clone(),
            sink: Sink::Polling,
            queue: Vec::new(),
            queued_bytes: 0,
            queued_pushes: Vec::new(),
            waiting: None,
            held: None,
            out: Vec::new(),
            replay: None,
            closing: false,
            ended: None,
        }
        .start();
        registry.insert(sid, addr);
        open
    }

    /// Move `self.out` to the sink. A client whose queue grows past [`MAX_UNWRITTEN`] bytes,
    /// because it does not GET (and may keep the heartbeat alive with POSTs alone), is ended
    /// as a slow reader, as a WebSocket client that does not read is.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        self.out.append(&mut self.session.take_deferred());
        if let Some(at) = self.session.take_wake() {
            heartbeat_timer::wake_once::<Self>(ctx, at);
        }
        if let Some(answer) = self.session.take_registration() {
            // A CONNECT asking for recovery: nothing else of the session (its inbox
            // included) is handled until its answer's CONNECT reply (and the pushes it
            // missed) are written.
            let answer = answer.into_actor(self);
            ctx.wait(answer.map(|answer, act, ctx| {
                let r = act.session.on_registration(answer, &mut act.out);
                if let Some(replay) = act.session.take_replay() {
                    act.start_replay(replay);
                }
                act.on_result(ctx, r);
            }));
        }
        if self.out.is_empty() {
            return;
        }
        match &self.sink {
            Sink::WebSocket(ws) => ws.do_send(CarrierCommand::Write(std::mem::take(&mut self.out))),
            _ => {
                self.queued_bytes += packet_bytes(&self.out);
                match &mut self.replay {
                    Some(replay) => replay.behind.append(&mut self.out),
                    None => self.queue.append(&mut self.out),
                }
                self.answer_poll();
                if self.queued_bytes > MAX_UNWRITTEN {
                    log::info!(
                        "ending polling session {}: {} bytes not fetched (slow reader)",
                        self.session.sid(),
                        self.queued_bytes
                    );
                    self.end(ctx, CloseReason::SlowReader);
                }
            }
        }
    }

    /// The queue, emptied: it is the answer to a GET, so its pushes count as written (once no
    /// replay holds them back).
    fn take_queue(&mut self) -> Vec<Outbound> {
        if self.replay.is_none() {
            self.record_written();
        }
        let taken = std::mem::take(&mut self.queue);
        self.queued_bytes -= packet_bytes(&taken);
        taken
    }

    /// Queue the CONNECT reply (the packets of `out` before the replay's place), then the
    /// first slice of the missed pushes; the rest of `out`, and all that follows, waits
    /// behind the replay.
    fn start_replay(&mut self, ReplayAt { at, replay }: ReplayAt) {
        let after = self.out.split_off(at);
        self.queued_bytes += packet_bytes(&self.out);
        self.queue.append(&mut self.out);
        self.out = after;
        self.replay = Some(PollingReplay {
            missed: replay,
            behind: Vec::new(),
        });
        self.next_replay_slice();
    }

    /// Queue the replay's next slice, or, after the last, what waited behind it.
    fn next_replay_slice(&mut self) {
        let Some(replaying) = &mut self.replay else {
            return;
        };
        let slice = replaying.missed.next_slice();
        if slice.is_empty() {
            let behind = self.replay.take().expect("matched above").behind;
            self.queue.extend(behind); // counted in `queued_bytes` already
        } else {
            let slice: Vec<_> = slice.into_iter().map(Outbound::Text).collect();
            self.queued_bytes += packet_bytes(&slice);
            self.queue.extend(slice);
        }
    }

    /// Queue the replay's next slice once the last was fetched: a GET's answer carries at
    /// most one.
    fn refill(&mut self) {
        if self.queue.is_empty() {
            self.next_replay_slice();
        }
    }

    /// Record the latency of the queued pushes: they are written now.
    fn record_written(&mut self) {
        if self.queued_pushes.is_empty() {
            return;
        }
        let (stats, now) = (&self.session.context().metrics.push_stats, Instant::now());
        for packets in self.queued_pushes.drain(..) {
            stats.written(&packets, now);
        }
    }

    /// Hand the queue to a waiting GET.
    fn answer_poll(&mut self) {
        self.refill();
        if self.queue.is_empty() {
            return;
        }
        if let Some(tx) = self.waiting.take() {
            if let Err(mut back) = tx.send(self.take_queue()) {
                // The client gave up on that GET: keep the packets for the next one.
                self.queued_bytes += packet_bytes(&back);
                back.append(&mut self.queue);
                self.queue = back;
            }
        }
    }

    /// Answer a waiting GET with one packet (noop or close), if there is one.
    fn release_poll(&mut self, packet: &'static str) {
        if let Some(tx) = self.waiting.take() {
            let _ = tx.send(vec![Outbound::Text(packet.into())]);
        }
    }

    /// Answer the held GET, if there is one, as the session now stands.
    fn answer_held(&mut self, ctx: &mut Context<Self>) {
        if let Some(tx) = self.held.take() {
            let answer = self.long_poll(ctx);
            let _ = tx.send(answer);
        }
    }

    /// Answer a GET as the session now stands.
    fn long_poll(&mut self, ctx: &mut Context<Self>) -> Result<PollAnswer, EioError> {
        self.refill();
        if self.session.pong_deadline_passed(Instant::now()) {
            self.end(ctx, CloseReason::PingTimeout);
            return Err(EioError::UnknownSid);
        }
        if self.closing {
            ctx.stop();
            return Ok(PollAnswer::Ready(vec![Outbound::Text(
                engineio::NOOP.into(),
            )]));
        }
        match self.sink {
            Sink::WebSocket(_) => return Err(EioError::BadRequest),
            Sink::Upgrading { probed: true, .. } if self.queue.is_empty() => {
                // Lets the client end its polling cycle and finish the upgrade.
                return Ok(PollAnswer::Ready(vec![Outbound::Text(
                    engineio::NOOP.into(),
                )]));
            }
            _ => {}
        }
        if self.waiting.as_ref().is_some_and(|tx| !tx.is_canceled()) {
            log::debug!("session {}: overlapping GET polls", self.session.sid());
            self.end(ctx, CloseReason::ProtocolError);
            return Err(EioError::BadRequest);
        }
        if !self.queue.is_empty() {
            return Ok(PollAnswer::Ready(self.take_queue()));
        }
        let (tx, rx) = oneshot::channel();
        self.waiting = Some(tx);
        Ok(PollAnswer::Wait(rx))
    }

    fn end(&mut self, ctx: &mut Context<Self>, reason: CloseReason) {
        if self.ended.is_some() {
            return; // ended already (a slow reader's flush, then its caller's end, say)
        }
        self.ended = Some(reason);
        self.session.end(reason);
        if let Some(tx) = self.held.take() {
            // (Held only during an upgrade, whose WebSocket the session does not write to.)
            let packet = match reason.polling_answer() {
                PollingAnswer::Noop => engineio::NOOP,
                PollingAnswer::Close => engineio::CLOSE,
            };
            let _ = tx.send(Ok(PollAnswer::Ready(vec![Outbound::Text(packet.into())])));
        }
        match &self.sink {
            Sink::WebSocket(ws) => {
                ws.do_send(CarrierCommand::Write(std::mem::take(&mut self.out)));
                ws.do_send(CarrierCommand::Close(reason));
            }
            _ if reason == CloseReason::ClientClose => {
                // A client close ends its GET with a noop; when none is waiting yet, one may
                // be in flight (sent just before the close): linger to answer it.
                if self.waiting.is_some() {
                    self.release_poll(engineio::NOOP);
                } else {
                    self.closing = true;
                    ctx.run_later(LAST_GET_GRACE, |_, ctx| ctx.stop());
                    return;
                }
            }
            _ => self.release_poll(engineio::CLOSE),
        }
        ctx.stop();
    }

    fn on_result(&mut self, ctx: &mut Context<Self>, r: Result<(), CloseReason>) {
        self.flush(ctx);
        if let Err(reason) = r {
            self.end(ctx, reason);
        }
    }
}

impl HeartbeatTimer for PollingSession {
    fn beat(&mut self, now: Instant) -> Option<Beat> {
        Some(self.session.beat(now))
    }

    fn ping(&mut self, ctx: &mut Self::Context) {
        let ping = Outbound::Text(engineio::PING.into());
        if self.replay.is_some() {
            // Ahead of what waits behind the replay: the client answers it in time, however
            // many GETs its replay takes.
            self.queued_bytes += engineio::PING.len();
            self.queue.push(ping);
            self.answer_poll();
            return;
        }
        self.out.push(ping);
        self.flush(ctx);
    }

    fn timed_out(&mut self, ctx: &mut Self::Context, reason: CloseReason) {
        self.end(ctx, reason);
    }
}

impl Actor for PollingSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.session
            .attach(ctx.address().recipient(), ctx.address().recipient());
        ctx.add_message_stream(self.session.inbox().stream());
        let first = self.session.first_beat();
        heartbeat_timer::arm::<Self>(ctx, first);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        let reason = self.ended.unwrap_or(CloseReason::TransportError);
        self.session.end(reason);
        self.registry.remove(self.session.sid());
        // A WebSocket that claimed the upgrade has no timers of its own: it ends with us.
        if let Sink::Upgrading {
            carrier: Some(carrier),
            ..
        } = &self.sink
        {
            carrier.do_send(CarrierCommand::Close(reason));
        }
    }
}

impl Handler<Deliver> for PollingSession {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        // Every handler flushes what it produced: nothing waits in `out` to go before these.
        if let Sink::WebSocket(ws) = &self.sink {
            // Handed to the WebSocket's writer: written, for the push statistics.
            let stats = &self.session.context().metrics.push_stats;
            stats.written(&msg.packets, Instant::now());
            ws.do_send(CarrierCommand::Pushes(msg.packets));
            return;
        }
        self.out
            .extend(msg.packets.iter().map(|f| Outbound::Text(f.clone())));
        if !msg.packets.stamps().is_empty() {
            self.queued_pushes.push(msg.packets);
        }
        self.flush(ctx);
    }
}

impl Handler<AdminUiNotice> for PollingSession {
    type Result = ();

    fn handle(&mut self, msg: AdminUiNotice, ctx: &mut Self::Context) {
        let r = self.session.on_admin_ui_notice(msg.notice, &mut self.out);
        self.on_result(ctx, r);
    }
}

impl Handler<GoingAway> for PollingSession {
    type Result = ();

    fn handle(&mut self, _msg: GoingAway, ctx: &mut Self::Context) {
        self.end(ctx, CloseReason::ServerShutdown);
    }
}

/// A long-polling GET: the packets to send now, or a receiver that gets them when they come.
#[derive(Message)]
#[rtype(result = "Result<PollAnswer, EioError>")]
pub struct LongPoll;

/// The answer to a GET.
pub enum PollAnswer {
    /// Send these now.
    Ready(Vec<Outbound>),
    /// Wait for these.
    Wait(oneshot::Receiver<Vec<Outbound>>),
}

impl Handler<LongPoll> for PollingSession {
    type Result = Response<Result<PollAnswer, EioError>>;

    fn handle(&mut self, _msg: LongPoll, ctx: &mut Self::Context) -> Self::Result {
        self.refill();
        // A GET during an upgrade is answered as one during the upgrade (a noop, or a wait)
        // only once the WebSocket has handled what its client sent before the GET: a client
        // that sent `5` and then a GET (on another connection, maybe served by another
        // thread) gets the answer after the upgrade, every time.
        let carrier = match &self.sink {
            Sink::Upgrading {
                carrier: Some(carrier),
                ..
            } if self.queue.is_empty() && !self.closing => carrier.clone(),
            _ => return Response::reply(self.long_poll(ctx)),
        };
        if self.held.as_ref().is_some_and(|tx| !tx.is_canceled()) {
            log::debug!("session {}: overlapping GET polls", self.session.sid());
            self.end(ctx, CloseReason::ProtocolError);
            return Response::reply(Err(EioError::BadRequest));
        }
        let (tx, rx) = oneshot::channel();
        self.held = Some(tx);
        carrier.do_send(CarrierCommand::SettleInput);
        // Never held for long, even by a WebSocket that does not answer.
        ctx.run_later(SETTLE_TIMEOUT, |act, ctx| act.answer_held(ctx));
        Response::fut(async move { rx.await.unwrap_or(Err(EioError::UnknownSid)) })
    }
}

/// How long a GET held during an upgrade waits at most for the WebSocket to settle its input.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The WebSocket upgrading the session has handled everything its client had sent when it
/// was asked to ([`CarrierCommand::SettleInput`]): a held GET can be answered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct InputSettled;

impl Handler<InputSettled> for PollingSession {
    type Result = ();

    fn handle(&mut self, _msg: InputSettled, ctx: &mut Self::Context) {
        self.answer_held(ctx);
    }
}

/// A POST body: one or more packets.
#[derive(Message)]
#[rtype(result = "Result<(), EioError>")]
pub struct PostPayload {
    /// The body, already checked against `maxPayload` and UTF-8.
    pub body: String,
}

impl Handler<PostPayload> for PollingSession {
    type Result = Result<(), EioError>;

    fn handle(&mut self, msg: PostPayload, ctx: &mut Self::Context) -> Self::Result {
        if self.session.pong_deadline_passed(Instant::now())
            && !msg.body.starts_with(engineio::PONG)
        {
            self.end(ctx, CloseReason::PingTimeout);
            return Err(EioError::UnknownSid);
        }
        if self.closing {
            return Err(EioError::BadRequest);
        }
        if let Sink::WebSocket(_) = self.sink {
            return Err(EioError::BadRequest);
        }
        for packet in engineio::split_payload(&msg.body) {
            if let Err(reason) = self.session.on_text(packet, &mut self.out) {
                self.flush(ctx);
                self.end(ctx, reason);
                return match reason {
                    CloseReason::ClientClose => Ok(()),
                    _ => Err(EioError::BadRequest),
                };
            }
        }
        self.flush(ctx);
        if self.ended.is_some() {
            return Err(EioError::BadRequest); // a slow reader, ended by the flush
        }
        Ok(())
    }
}

/// The session must end now (a POST over `maxPayload`, server shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndSession {
    /// Why.
    pub reason: CloseReason,
}

impl Handler<EndSession> for PollingSession {
    type Result = ();

    fn handle(&mut self, msg: EndSession, ctx: &mut Self::Context) {
        self.end(ctx, msg.reason);
    }
}

/// A WebSocket wants to take this session over. Refused once another one has.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct ClaimUpgrade;

impl Handler<ClaimUpgrade> for PollingSession {
    type Result = bool;

    fn handle(&mut self, _msg: ClaimUpgrade, _ctx: &mut Self::Context) -> bool {
        match self.sink {
            Sink::Polling if !self.closing => {
                self.sink = Sink::Upgrading {
                    probed: false,
                    carrier: None,
                };
                true
            }
            _ => false,
        }
    }
}

/// The claiming WebSocket's actor started: the session closes it if it ends before the
/// upgrade. An `Err` (mailbox closed) tells the WebSocket that the session has already ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CarrierStarted {
    /// The WebSocket carrier.
    pub carrier: Recipient<CarrierCommand>,
}

impl Handler<CarrierStarted> for PollingSession {
    type Result = ();

    fn handle(&mut self, msg: CarrierStarted, _ctx: &mut Self::Context) {
        if let Sink::Upgrading { carrier, .. } = &mut self.sink {
            *carrier = Some(msg.carrier);
        }
    }
}

/// The claiming WebSocket answered `2probe`: end the pending GET so the client can finish.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Probed;

impl Handler<Probed> for PollingSession {
    type Result = ();

    fn handle(&mut self, _msg: Probed, _ctx: &mut Self::Context) {
        if let Sink::Upgrading { probed, .. } = &mut self.sink {
            *probed = true;
            self.refill();
            if self.queue.is_empty() {
                self.release_poll(engineio::NOOP);
            } else {
                self.answer_poll();
            }
        }
    }
}

/// The client sent the Engine.IO upgrade packet (`5`) over the WebSocket: it carries
/// everything from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpgradeCompleted {
    /// The WebSocket carrier.
    pub carrier: Recipient<CarrierCommand>,
}

impl Handler<UpgradeCompleted> for PollingSession {
    type Result = ();

    fn handle(&mut self, msg: UpgradeCompleted, _ctx: &mut Self::Context) {
        self.session.upgraded();
        self.release_poll(engineio::NOOP);
        let mut pending = self.take_queue();
        if let Some(PollingReplay { missed, behind }) = self.replay.take() {
            // The rest of the replay goes on over the WebSocket, a slice at a time.
            self.record_written();
            self.queued_bytes = 0;
            if !pending.is_empty() {
                msg.carrier.do_send(CarrierCommand::Write(pending));
            }
            msg.carrier.do_send(CarrierCommand::Replay(missed));
            pending = behind;
        }
        pending.append(&mut self.out);
        if !pending.is_empty() {
            msg.carrier.do_send(CarrierCommand::Write(pending));
        }
        self.sink = Sink::WebSocket(msg.carrier);
    }
}

/// The claiming WebSocket went away: before the upgrade, polling goes on; after, the session
/// ends.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CarrierGone {
    /// Why it went away.
    pub reason: CloseReason,
}

impl Handler<CarrierGone> for PollingSession {
    type Result = ();

    fn handle(&mut self, msg: CarrierGone, ctx: &mut Self::Context) {
        match self.sink {
            Sink::WebSocket(_) => {
                self.session.end(msg.reason);
                ctx.stop();
            }
            _ => {
                self.sink = Sink::Polling;
                self.answer_held(ctx);
            }
        }
    }
}

/// A frame the WebSocket carrier received after the upgrade.
#[derive(Message)]
#[rtype(result = "()")]
pub enum CarriedFrame {
    /// A text frame.
    Text(bytestring::ByteString),
    /// A binary frame.
    Binary(Vec<u8>),
}

impl Handler<CarriedFrame> for PollingSession {
    type Result = ();

    fn handle(&mut self, msg: CarriedFrame, ctx: &mut Self::Context) {
        let r = match msg {
            CarriedFrame::Text(t) => self.session.on_text(&t, &mut self.out),
            CarriedFrame::Binary(b) => self.session.on_binary(&b, &mut self.out),
        };
        self.on_result(ctx, r);
    }
}

/// The bytes `packets` take (binary ones before their base64).
fn packet_bytes(packets: &[Outbound]) -> usize {
    packets
        .iter()
        .map(|p| match p {
            Outbound::Text(t) => t.len(),
            Outbound::Binary(b) => b.len(),
        })
        .sum()
}

/// Encode packets as one polling payload: text as is, binary as `b<base64>`, joined by the
/// record separator.
pub fn encode_poll_payload(packets: &[Outbound]) -> String {
    engineio::encode_payload(packets.iter().map(|p| match p {
        Outbound::Text(t) => std::borrow::Cow::Borrowed(&**t),
        Outbound::Binary(b) => std::borrow::Cow::Owned(engineio::encode_binary_for_polling(b)),
    }))
}
