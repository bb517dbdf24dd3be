//! The task of one accepted upgraded connection: it writes the connection's [`Wire`] to the
//! socket (a recovered session's replay a slice at a time, each once the last is written) and
//! polls the WebSocket context (its actor's mailbox, timers and input) only when
//! the context itself was woken, until the context ends and its last frames are out.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use actix_web::rt::net::TcpStream;
use actix_web::rt::time::{sleep, Sleep};
use futures::task::AtomicWaker;

use super::connections::Open;
use super::handover::Output;
use super::wire::{Wire, MAX_UNWRITTEN};

/// How long a closed session's last frames (the close frame among them) may take to go out
/// before the connection is dropped.
pub const LAST_FRAMES_TIMEOUT: Duration = Duration::from_secs(5);

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

/// Writes a connection's [`Wire`] and its WebSocket context's output to its socket until the
/// context ends.
pub(super) struct Driver {
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

impl Driver {
    /// The task of the connection `io`, writing `queue` and the chunks of `output` (a context
    /// that has not run yet), counted as `open` until it ends.
    pub(super) fn new(io: Rc<TcpStream>, output: Output, queue: Wire, open: Open) -> Self {
        let context_wake = Arc::new(ContextWake::default());
        context_wake.woken.store(true, Ordering::Relaxed); // the context has not run yet
        Driver {
            io,
            output,
            context_waker: Waker::from(context_wake.clone()),
            context_wake,
            queue,
            linger: None,
            _open: open,
        }
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
                            this.linger = Some(Box::pin(sleep(LAST_FRAMES_TIMEOUT)));
                        }
                        Poll::Pending => {}
                    }
                }
                // The actor may have just started reading the inbox (a session whose
                // recovery was answered): what waits in it goes after the actor's frames.
                this.queue.take_inbox(cx.waker());
            }
            let written = match this.queue.poll_write_to(&this.io, cx) {
                Poll::Ready(Ok(())) => {
                    // A replay's next slice is framed only now that the last one is written.
                    if this.queue.next_replay_slice() {
                        continue;
                    }
                    this.queue.written();
                    true
                }
                Poll::Ready(Err(e)) => {
                    log::debug!("websocket write failed: {e}");
                    return Poll::Ready(()); // dropping `output` stops the actor
                }
                Poll::Pending => false,
            };
            if let Some(linger) = &mut this.linger {
                if written {
                    let _ = shutdown_write(&this.io);
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
                this.queue.set_fell_behind();
                return Poll::Ready(()); // dropping `output` stops the actor
            }
            // Waiting for the context, the inbox or the socket's readiness. A context that
            // woke itself meanwhile (its input read its budget, say) has had the task
            // scheduled again: other connections of this thread get their turn first.
            return Poll::Pending;
        }
    }
}

/// Shut the write side of `io`: the client reads the end of what was written.
pub(super) fn shutdown_write(io: &TcpStream) -> io::Result<()> {
    socket2::SockRef::from(io).shutdown(std::net::Shutdown::Write)
}
