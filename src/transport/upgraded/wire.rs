//! The write side of an upgraded connection: one queue of encoded bytes, in the order they
//! must reach the socket, and the session's inbox whose pushes the connection writes itself.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Instant;

use actix_web::rt::net::TcpStream;
use actix_web::web::Bytes;
use pushgate_actors::metrics::Metrics;
use pushgate_actors::{Inbox, Packets};

use crate::transport::wire_frames;

/// A client this many bytes behind (frames encoded for it that its socket has not taken, on
/// top of what the kernel buffers) is dropped as a slow reader: four times the largest push
/// the HTTP API takes by default. A single frame larger than this is still written.
pub const MAX_UNWRITTEN: usize = 4 * 1024 * 1024;

/// At most this many chunks go into one `writev`.
const MAX_SLICES: usize = 16;

/// Bytes waiting to be written to one connection, in order.
#[derive(Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    /// Their total length.
    len: usize,
}

impl Queue {
    /// The first chunks, as many as `slices` holds, for one `writev`; returns how many.
    #[inline]
    fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut count = 0;
        for (slice, chunk) in slices.iter_mut().zip(&self.chunks) {
            *slice = IoSlice::new(chunk);
            count += 1;
        }
        count
    }

    /// Drop the first `n` bytes (written), whole chunks and the start of the next.
    #[inline]
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
/// The actor also hands the connection its session's [`Inbox`] ([`Wire::read_inbox`]): the
/// connection's task then takes the room pushes from it and writes them without running the
/// actor (encoded once per push for every receiver on the thread), until the actor stops it
/// ([`Wire::stop_inbox`]) before its close frame.
#[derive(Clone, Default)]
pub struct Wire(Rc<WireState>);

#[derive(Default)]
struct WireState {
    queue: RefCell<Queue>,
    inbox: RefCell<Option<Inbox>>,
    /// Where the inbox's deliveries are counted once written, when an inbox is read.
    stats: RefCell<Option<Unwritten>>,
    /// The connection was dropped as a slow reader.
    fell_behind: Cell<bool>,
    /// What to run once everything queued until then is written (see [`Wire::when_written`]).
    when_written: RefCell<Vec<Box<dyn FnOnce()>>>,
}

/// The inbox's deliveries queued but not written yet, and the metrics whose push statistics
/// record their latency once they are.
struct Unwritten {
    metrics: Arc<Metrics>,
    pushes: Vec<Arc<Packets>>,
}

impl Wire {
    /// Queue encoded frames for the socket.
    #[inline]
    pub fn push(&self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let mut queue = self.0.queue.borrow_mut();
        queue.len += bytes.len();
        queue.chunks.push_back(bytes);
    }

    /// Queue a delivery's room pushes, encoded by their first receiver on any WebSocket and
    /// shared by the others.
    #[inline]
    pub fn push_delivery(&self, frames: &Packets) {
        self.push(frames.encoded(wire_frames::text_frames));
    }

    /// Have the connection write the pushes arriving in `inbox` itself, recording each one's
    /// latency in `metrics`' push statistics once it is written to the socket.
    pub fn read_inbox(&self, inbox: Inbox, metrics: Arc<Metrics>) {
        *self.0.inbox.borrow_mut() = Some(inbox);
        let mut stats = self.0.stats.borrow_mut();
        if stats.is_none() {
            *stats = Some(Unwritten {
                metrics,
                pushes: Vec::new(),
            });
        }
    }

    /// Write nothing more from the inbox (what it still holds is dropped): the session is
    /// closing, and nothing may follow its close frame.
    pub fn stop_inbox(&self) {
        self.0.inbox.borrow_mut().take();
    }

    /// Run `f` once the connection's task has written everything queued so far (and
    /// whatever is queued in the same turn) to the socket.
    pub fn when_written(&self, f: impl FnOnce() + 'static) {
        self.0.when_written.borrow_mut().push(Box::new(f));
    }

    /// Run what waited for the queue to be written (it is), and record the latency of the
    /// pushes written.
    #[inline]
    pub(super) fn written(&self) {
        if let Some(Unwritten { metrics, pushes }) = &mut *self.0.stats.borrow_mut() {
            if !pushes.is_empty() {
                let now = Instant::now();
                for packets in pushes.drain(..) {
                    metrics.push_stats.written(&packets, now);
                }
            }
        }
        if self.0.when_written.borrow().is_empty() {
            return; // the usual case: nothing waits
        }
        let waiting = std::mem::take(&mut *self.0.when_written.borrow_mut());
        for f in waiting {
            f();
        }
    }

    /// Whether the connection was dropped for falling more than [`MAX_UNWRITTEN`] bytes
    /// behind (the session's close reason then).
    pub fn fell_behind(&self) -> bool {
        self.0.fell_behind.get()
    }

    /// Note that the connection is dropped as a slow reader.
    pub(super) fn set_fell_behind(&self) {
        self.0.fell_behind.set(true);
    }

    /// Queue the pushes waiting in the inbox, if one is read; `waker` is woken by the next.
    #[inline]
    pub(super) fn take_inbox(&self, waker: &Waker) {
        let reading = self.0.inbox.borrow();
        let Some(inbox) = &*reading else {
            return;
        };
        let mut stats = self.0.stats.borrow_mut();
        let open = inbox.drain(waker, |frames| {
            self.push_delivery(&frames);
            if let Some(unwritten) = &mut *stats {
                if !frames.stamps().is_empty() {
                    unwritten.pushes.push(frames);
                }
            }
        });
        drop(stats);
        if !open {
            drop(reading);
            self.stop_inbox();
        }
    }

    /// How many bytes are queued.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.0.queue.borrow().len
    }

    /// How many chunks are queued.
    #[inline]
    pub(super) fn chunks(&self) -> usize {
        self.0.queue.borrow().chunks.len()
    }

    /// Write what is queued to `io`; `Ready(Ok)` once all is written.
    #[inline]
    pub(super) fn poll_write_to(
        &self,
        io: &TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let mut queue = self.0.queue.borrow_mut();
        let queue = &mut *queue;
        while !queue.chunks.is_empty() {
            ready!(io.poll_write_ready(cx))?;
            let result = if queue.chunks.len() == 1 {
                io.try_write(&queue.chunks[0])
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let count = queue.slices(&mut slices);
                io.try_write_vectored(&slices[..count])
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
