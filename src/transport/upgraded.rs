//! Upgraded connections without actix-http's per-connection buffers.
//!
//! actix-http's HTTP/1 dispatcher keeps an 8 KiB read buffer and an 8 KiB write buffer (plus
//! its payload channel and timers) for as long as a connection lives, and a WebSocket started
//! the usual way is streamed *through* the dispatcher as a response body: an idle WebSocket
//! costs ~15 KiB, most of it in those buffers. Instead, the server is built with an upgrade
//! service ([`service`]): the dispatcher hands every request carrying `Upgrade: websocket`
//! (and `CONNECT`) over with its connection and buffers, and [`serve`] drops the buffers.
//!
//! [`serve`] answers such a request with the application itself, so that every check and
//! every answer (Origin, handshake headers, unknown sid, CORS headers, 404s, ...) is the one
//! the HTTP path gives. The handler that accepts a WebSocket finds a [`Handover`] in the
//! request's extensions, leaves the connection's frame stream in it (see
//! `WsTransport::start`) and answers 101; [`serve`] then drives the socket itself, and the
//! 101 goes out in one write with the first frames (the Engine.IO open packet):
//!
//! - reads go into the worker thread's read buffer ([`READ_CHUNK`] bytes of room, never
//!   zeroed) and are handed on as exactly sized chunks of it, only when the WebSocket context
//!   asks for input (so a busy actor reads nothing), at most
//!   [`READ_BUDGET`] bytes in a row before the frames read so far are decoded; a frame whose
//!   header announces more than the context's limit ends the input at once
//!   ([`FrameLimit`]: the context would otherwise buffer it whole before looking at its size);
//! - writes go to the socket from one queue, in order: the room pushes the connection takes
//!   from its session's inbox itself, the data frames the actor encodes and hands over through
//!   the connection's [`Wire`] (a push's frames are encoded once for every receiver, see
//!   [`wire_frames`](super::wire_frames)), then the chunks the context encodes (control
//!   frames: pongs, the close frame), several chunks per `writev`. A push therefore runs no
//!   actor: the context is polled only when it was woken itself (its mailbox, timers or
//!   input), and always then, so its timers run whatever the socket does (a client that reads
//!   nothing answers no ping and is closed by the heartbeat); a client that falls more than
//!   [`MAX_UNWRITTEN`] bytes behind is dropped as a slow reader, and a closed session's last
//!   frames get [`CLOSE_LINGER`] to go out, with no push after its close frame;
//! - EOF on the socket (the client closed or half-closed its side) ends the context's input,
//!   and the actor stops; a write error drops the context, which stops the actor too.
//!
//! The accepted connection runs as a task of its own on the worker's thread, so that the
//! dispatcher's task (~3.8 KiB: the dispatcher is one inline future) ends with the handshake.
//! actix-server no longer counts such a connection (its per-worker connection cap and its
//! graceful stop do not see it): [`Connections`] counts them instead, for the shutdown to wait
//! for their close frames to go out.
//!
//! An idle connection holds no buffer here at all. Any other answer (an error, a fallback) is
//! written in full and the connection is closed, as a request whose body is "the rest of the
//! connection" cannot be followed by another one.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use actix_codec::Framed;
use actix_http::body::{BodySize, MessageBody};
use actix_http::error::PayloadError;
use actix_http::h1::{Codec, Message};
use actix_http::{ConnectionType, HttpMessage, Request, Response, StatusCode};
use actix_service::{fn_factory, fn_service, IntoServiceFactory, Service, ServiceFactory};
use actix_web::dev::{AppConfig, ServiceResponse};
use actix_web::rt::net::TcpStream;
use actix_web::rt::time::{sleep, Sleep};
use actix_web::web::{Bytes, BytesMut};
use futures::task::AtomicWaker;
use futures::{SinkExt, Stream};
use pushgate_actors::Inbox;

use crate::transport::frame_limit::FrameLimit;
use crate::transport::wire_frames;

/// How many bytes are read in a row before the context gets to decode them.
pub const READ_BUDGET: usize = 32 * 1024;

/// A client this many bytes behind (frames encoded for it that its socket has not taken, on
/// top of what the kernel buffers) is dropped as a slow reader: four times the largest push
/// the HTTP API takes by default. A single frame larger than this is still written.
pub const MAX_UNWRITTEN: usize = 4 * 1024 * 1024;

/// How long a closed session's last frames (the close frame among them) may take to go out
/// before the connection is dropped.
pub const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// The room each read gets in the thread's read buffer.
const READ_CHUNK: usize = 8 * 1024;

thread_local! {
    /// Where every upgraded connection of this worker thread reads into. A read leaves with
    /// the bytes it got as a chunk of this buffer; once the WebSocket context has decoded and
    /// dropped those chunks (it copies them into its own buffer at once), the buffer's memory
    /// is used again from its start. Nothing is zeroed before a read: a stack array would
    /// cost a zeroing of [`READ_CHUNK`] bytes per read, a sixth of a connect's instructions.
    static READ_BUFFER: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// The encoded frames a WebSocket context yields for the socket.
pub type Output = Pin<Box<dyn Stream<Item = Result<Bytes, actix_web::Error>>>>;

/// What an accepted WebSocket leaves in the [`Handover`]: given the connection's input,
/// start the actor and return its output.
pub type Accepted = Box<dyn FnOnce(Input) -> Output>;

/// Put in an upgrade request's extensions by [`serve`]: a handler that accepts the upgrade
/// leaves its [`Accepted`] here instead of streaming its frames as a response body.
#[derive(Clone, Default)]
pub struct Handover(Rc<Cell<Option<Accepted>>>);

impl Handover {
    /// Leave the accepted connection's start for [`serve`].
    pub fn accept(&self, accepted: Accepted) {
        self.0.set(Some(accepted));
    }

    fn take(&self) -> Option<Accepted> {
        self.0.take()
    }
}

/// Bytes waiting to be written to one connection, in order.
#[derive(Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    /// Their total length.
    len: usize,
}

impl Queue {
    /// The first chunks, as many as `slices` holds, for one `writev`; returns how many.
    fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut count = 0;
        for (slice, chunk) in slices.iter_mut().zip(&self.chunks) {
            *slice = IoSlice::new(chunk);
            count += 1;
        }
        count
    }

    /// Drop the first `n` bytes (written), whole chunks and the start of the next.
    fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let front = self.chunks.front_mut().expect("advanced past the end");
            if n >= front.len() {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                let _ = front.split_to(n);
                n = 0;
            }
        }
    }
}

/// The write side of an upgraded connection, for its actor: frames encoded by the actor itself
/// go out in the order they are pushed, ahead of whatever its context encodes in the same turn.
/// A cheap handle (clones share the queue).
///
/// The actor may also hand the connection its session's [`Inbox`] ([`Wire::read_inbox`]):
/// the connection's task then takes the room pushes from it and writes them without running
/// the actor (encoded once per push for every receiver on the thread, as the actor would),
/// until the actor stops it ([`Wire::stop_inbox`]) before its close frame.
#[derive(Clone, Default)]
pub struct Wire(Rc<WireState>);

#[derive(Default)]
struct WireState {
    queue: RefCell<Queue>,
    inbox: RefCell<Option<Inbox>>,
    /// The connection was dropped as a slow reader.
    fell_behind: Cell<bool>,
}

impl Wire {
    /// Queue encoded frames for the socket.
    pub fn push(&self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let mut queue = self.0.queue.borrow_mut();
        queue.len += bytes.len();
        queue.chunks.push_back(bytes);
    }

    /// Have the connection write the pushes arriving in `inbox` itself.
    pub fn read_inbox(&self, inbox: Inbox) {
        *self.0.inbox.borrow_mut() = Some(inbox);
    }

    /// Write nothing more from the inbox (what it still holds is dropped): the session is
    /// closing, and nothing may follow its close frame.
    pub fn stop_inbox(&self) {
        self.0.inbox.borrow_mut().take();
    }

    /// Whether the connection was dropped for falling more than [`MAX_UNWRITTEN`] bytes
    /// behind (the session's close reason then).
    pub fn fell_behind(&self) -> bool {
        self.0.fell_behind.get()
    }

    /// Queue the pushes waiting in the inbox, if one is read; `waker` is woken by the next.
    fn take_inbox(&self, waker: &Waker) {
        let reading = self.0.inbox.borrow();
        let Some(inbox) = &*reading else {
            return;
        };
        let open = inbox.drain(waker, |frames| {
            self.push(frames.encoded(wire_frames::text_frames));
        });
        if !open {
            drop(reading);
            self.stop_inbox();
        }
    }

    fn len(&self) -> usize {
        self.0.queue.borrow().len
    }

    fn chunks(&self) -> usize {
        self.0.queue.borrow().chunks.len()
    }
}

/// The waker the WebSocket context is polled with: it notes that the context asked to be
/// polled, then wakes the connection's task. The task is also woken by its inbox and by the
/// socket's write readiness, and polls the context (the actor's mailbox, timers and input)
/// only when the context itself was woken.
#[derive(Default)]
struct ContextWake {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for ContextWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// The upgraded connections of one server that are still open.
#[derive(Clone, Default)]
pub struct Connections(Arc<AtomicUsize>);

impl Connections {
    /// How many are open.
    pub fn open(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Wait until none is open, or `limit` has passed.
    pub async fn drained(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.open() > 0 && Instant::now() < deadline {
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn enter(&self) -> Open {
        self.0.fetch_add(1, Ordering::Relaxed);
        Open(self.clone())
    }
}

/// One open upgraded connection, counted in [`Connections`] until dropped.
struct Open(Connections);

impl Drop for Open {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The upgrade service factory for `HttpService::build().upgrade(..)`: each worker builds its
/// own instance of the application (`make_app`) to answer the upgrade requests with; the
/// accepted connections are counted in `connections`.
pub fn service<F, A, S, B>(
    make_app: F,
    connections: Connections,
) -> impl ServiceFactory<
    (Request, Framed<TcpStream, Codec>),
    Config = (),
    Response = (),
    Error = actix_web::Error,
    InitError = (),
>
where
    F: Fn() -> A + 'static,
    A: IntoServiceFactory<S, Request>,
    S: ServiceFactory<
            Request,
            Config = AppConfig,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
        > + 'static,
    S::Service: 'static,
    S::InitError: std::fmt::Debug,
    B: MessageBody + 'static,
{
    fn_factory(move || {
        let factory = make_app().into_factory();
        let connections = connections.clone();
        async move {
            let app = factory
                .new_service(AppConfig::default())
                .await
                .map_err(|e| {
                    log::error!("cannot build the upgrade service's application: {e:?}");
                })?;
            let app = Rc::new(app);
            Ok(fn_service(
                move |(req, framed): (Request, Framed<TcpStream, Codec>)| {
                    let app = app.clone();
                    let connections = connections.clone();
                    async move {
                        serve(&*app, req, framed, &connections).await;
                        Ok::<_, actix_web::Error>(())
                    }
                },
            ))
        }
    })
}

/// Answer one upgrade request with `app`, then either start a task driving the accepted
/// WebSocket (counted in `connections`) or close the connection.
pub async fn serve<S, B>(
    app: &S,
    req: Request,
    mut framed: Framed<TcpStream, Codec>,
    connections: &Connections,
) where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let handover = Handover::default();
    req.extensions_mut().insert(handover.clone());
    let res: Response<_> = match app.call(req).await {
        Ok(res) => res.map_into_boxed_body().into(),
        Err(e) => e.error_response().into(),
    };
    let accepted = handover.take();
    let upgrade = accepted.is_some() && res.status() == StatusCode::SWITCHING_PROTOCOLS;
    let (mut head, body) = res.into_parts();
    let size = body.size();
    let body = match actix_http::body::to_bytes(body).await {
        Ok(b) => b,
        Err(e) => {
            log::debug!("upgrade request: the answer's body failed: {e}");
            return;
        }
    };
    let size = match size {
        BodySize::None => BodySize::None,
        _ => BodySize::Sized(body.len() as u64),
    };
    if !upgrade {
        head.head_mut().set_connection_type(ConnectionType::Close);
    }
    let encoded = async {
        framed.feed(Message::Item((head, size))).await?;
        if size != BodySize::None {
            framed.feed(Message::Chunk(Some(body))).await?;
            framed.feed(Message::Chunk(None)).await?;
        }
        Ok::<_, io::Error>(())
    }
    .await;
    // Not an accepted upgrade: the answer is the last thing on this connection.
    let Some(accepted) = accepted.filter(|_| upgrade) else {
        if encoded.is_ok() && framed.flush().await.is_ok() {
            let _ = shutdown(framed.io_ref());
        }
        return;
    };
    // Keep what the client sent after its handshake and the encoded 101, which goes out with
    // the first frames (the Engine.IO open packet) in one write; drop the dispatcher's buffers.
    let parts = framed.into_parts();
    let early = (!parts.read_buf.is_empty()).then(|| Bytes::copy_from_slice(&parts.read_buf));
    let answer = Bytes::copy_from_slice(&parts.write_buf);
    let io = Rc::new(parts.io);
    drop((parts.read_buf, parts.write_buf, parts.codec));
    let wire = Wire::default();
    wire.push(answer);
    // (An accepted upgrade whose 101 could not be encoded still starts and stops its actor, so
    // that its session is closed the usual way.)
    let output = accepted(Input {
        io: io.clone(),
        wire: wire.clone(),
        early,
        eof: false,
        read_in_a_row: 0,
        limit: None,
        oversized: Rc::default(),
    });
    if let Err(e) = encoded {
        log::debug!("cannot encode the 101 answer: {e}");
        return; // dropping `output` stops the actor
    }
    let context_wake = Arc::new(ContextWake::default());
    context_wake.woken.store(true, Ordering::Relaxed); // the context has not run yet
    actix_web::rt::spawn(Driver {
        io,
        output,
        context_waker: Waker::from(context_wake.clone()),
        context_wake,
        queue: wire,
        linger: None,
        _open: connections.enter(),
    });
}

fn shutdown(io: &TcpStream) -> io::Result<()> {
    socket2::SockRef::from(io).shutdown(std::net::Shutdown::Write)
}

/// The bytes of an upgraded connection, as the WebSocket context's input.
pub struct Input {
    io: Rc<TcpStream>,
    wire: Wire,
    /// What arrived with (after) the handshake request.
    early: Option<Bytes>,
    eof: bool,
    /// Bytes handed on since the socket last had nothing to read.
    read_in_a_row: usize,
    limit: Option<FrameLimit>,
    oversized: Rc<Cell<bool>>,
}

impl Input {
    /// Refuse frames of more than `max` payload bytes as soon as their header arrives: the
    /// input then ends with [`PayloadError::Overflow`] and [`Input::oversized`] turns true.
    pub fn limit_frames(&mut self, max: usize) {
        self.limit = Some(FrameLimit::new(max));
    }

    /// The connection's write side, for frames the actor encodes itself.
    pub fn wire(&self) -> Wire {
        self.wire.clone()
    }

    /// Turns true when the input ended on a frame over the limit (shared: the flag stays
    /// readable after the input moved into the WebSocket context).
    pub fn oversized(&self) -> Rc<Cell<bool>> {
        self.oversized.clone()
    }

    /// Pass `chunk` on, unless it completes a header over the limit.
    fn checked(&mut self, chunk: Bytes) -> Poll<Option<Result<Bytes, PayloadError>>> {
        if let Some(Err(e)) = self.limit.as_mut().map(|l| l.check(&chunk)) {
            log::debug!("closing a WebSocket: {e}");
            self.eof = true;
            self.oversized.set(true);
            return Poll::Ready(Some(Err(PayloadError::Overflow)));
        }
        Poll::Ready(Some(Ok(chunk)))
    }
}

impl Stream for Input {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(early) = this.early.take() {
            return this.checked(early);
        }
        if this.eof {
            return Poll::Ready(None);
        }
        if this.read_in_a_row >= READ_BUDGET {
            // Let the context decode what it has before reading on.
            this.read_in_a_row = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        loop {
            if let Err(e) = ready!(this.io.poll_read_ready(cx)) {
                this.eof = true;
                return Poll::Ready(Some(Err(PayloadError::Io(e))));
            }
            let read = READ_BUFFER.with_borrow_mut(|buf| {
                buf.reserve(READ_CHUNK);
                this.io.try_read_buf(buf).map(|_| buf.split().freeze())
            });
            match read {
                Ok(chunk) if chunk.is_empty() => {
                    this.eof = true;
                    return Poll::Ready(None);
                }
                Ok(chunk) => {
                    this.read_in_a_row += chunk.len();
                    return this.checked(chunk);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    this.read_in_a_row = 0;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    this.eof = true;
                    return Poll::Ready(Some(Err(PayloadError::Io(e))));
                }
            }
        }
    }
}

/// Writes a connection's [`Wire`] and its WebSocket context's output to its socket until the
/// context ends.
struct Driver {
    io: Rc<TcpStream>,
    output: Output,
    /// Set when the context asked to be polled.
    context_wake: Arc<ContextWake>,
    /// What the context is polled with (a waker of `context_wake`).
    context_waker: Waker,
    /// What is not written yet: the actor's frames and the context's chunks, in order.
    queue: Wire,
    /// Set once the context ended: how long its last frames may still take.
    linger: Option<Pin<Box<Sleep>>>,
    _open: Open,
}

/// At most this many chunks go into one `writev`.
const MAX_SLICES: usize = 16;

impl Driver {
    /// Write what is queued; `Ready(Ok)` once all is written.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut queue = self.queue.0.queue.borrow_mut();
        let queue = &mut *queue;
        while !queue.chunks.is_empty() {
            ready!(self.io.poll_write_ready(cx))?;
            let result = if queue.chunks.len() == 1 {
                self.io.try_write(&queue.chunks[0])
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let count = queue.slices(&mut slices);
                self.io.try_write_vectored(&slices[..count])
            };
            match result {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => queue.advance(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        // Do not keep a grown queue on an idle connection.
        if queue.chunks.capacity() > 4 {
            queue.chunks = VecDeque::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.context_wake.task.register(cx.waker());
        loop {
            if this.linger.is_none() {
                this.queue.take_inbox(cx.waker());
                // Polling the context runs the actor, which may push frames to the wire; the
                // chunk the context returns comes after them. All of it is written together
                // (the first time, with the 101 answer queued before it).
                if this.context_wake.woken.swap(false, Ordering::AcqRel) {
                    let mut context_cx = Context::from_waker(&this.context_waker);
                    match this.output.as_mut().poll_next(&mut context_cx) {
                        Poll::Ready(Some(Ok(chunk))) => {
                            this.queue.push(chunk);
                            // It may have more.
                            this.context_wake.woken.store(true, Ordering::Relaxed);
                            continue;
                        }
                        Poll::Ready(Some(Err(e))) => {
                            log::debug!("websocket context failed: {e}");
                            return Poll::Ready(());
                        }
                        Poll::Ready(None) => {
                            this.queue.stop_inbox();
                            this.linger = Some(Box::pin(sleep(CLOSE_LINGER)));
                        }
                        Poll::Pending => {}
                    }
                }
            }
            let written = match this.poll_write(cx) {
                Poll::Ready(Ok(())) => true,
                Poll::Ready(Err(e)) => {
                    log::debug!("websocket write failed: {e}");
                    return Poll::Ready(()); // dropping `output` stops the actor
                }
                Poll::Pending => false,
            };
            if let Some(linger) = &mut this.linger {
                if written {
                    let _ = shutdown(&this.io);
                    return Poll::Ready(());
                }
                if linger.as_mut().poll(cx).is_ready() {
                    log::debug!(
                        "a closed websocket's last {} bytes were not read",
                        this.queue.len()
                    );
                    return Poll::Ready(());
                }
                return Poll::Pending;
            }
            if this.queue.len() > MAX_UNWRITTEN && this.queue.chunks() > 1 {
                log::info!(
                    "dropping a websocket client that fell {} bytes behind (slow reader)",
                    this.queue.len()
                );
                this.queue.0.fell_behind.set(true);
                return Poll::Ready(()); // dropping `output` stops the actor
            }
            // Waiting for the context, the inbox or the socket's readiness. A context that
            // woke itself meanwhile (its input read its budget, say) has had the task
            // scheduled again: other connections of this thread get their turn first.
            return Poll::Pending;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(chunks: &[&str]) -> Queue {
        let wire = Wire::default();
        for c in chunks {
            wire.push(Bytes::copy_from_slice(c.as_bytes()));
        }
        Rc::try_unwrap(wire.0).ok().unwrap().queue.into_inner()
    }

    fn rest(q: &Queue) -> String {
        q.chunks
            .iter()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect()
    }

    #[test]
    fn a_write_of_any_length_leaves_exactly_the_bytes_after_it() {
        let all = "abcdefghij";
        for n in 0..=all.len() {
            let mut q = queue(&["abc", "d", "efgh", "ij"]);
            q.advance(n);
            assert_eq!(rest(&q), &all[n..], "after {n} bytes");
            assert_eq!(q.len, all.len() - n);
            assert!(
                q.chunks.iter().all(|c| !c.is_empty()),
                "no empty chunk left"
            );
        }
    }

    #[test]
    fn one_writev_takes_the_first_chunks_up_to_its_slices() {
        let q = queue(&["ab", "c", "def"]);
        let mut slices = [IoSlice::new(&[]); 2];
        assert_eq!(q.slices(&mut slices), 2);
        assert_eq!((&*slices[0], &*slices[1]), (&b"ab"[..], &b"c"[..]));
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(q.slices(&mut slices), 3);
        // Empty pushes are not queued.
        assert_eq!(queue(&["", "x", ""]).chunks.len(), 1);
    }
}
