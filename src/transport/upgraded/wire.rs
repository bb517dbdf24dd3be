//! The write side of an upgraded connection: one queue of encoded bytes, in the order they
//! must reach the socket, the session's inbox whose pushes the connection writes itself, and
//! a recovered session's replay, framed a slice at a time as the socket takes it.

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

use crate::session::replay::Replay;
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
///
/// A recovered session's missed pushes go through [`Wire::replay`]: the connection frames the
/// next [`REPLAY_SLICE_BYTES`](crate::session::replay::REPLAY_SLICE_BYTES) of them only once
/// everything queued before is written, and whatever is queued meanwhile (the actor's frames,
/// the inbox's pushes) waits behind the replay, counted against [`MAX_UNWRITTEN`] as usual.
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
    /// A replay being written, and what was queued behind it meanwhile.
    replay: RefCell<Option<Replaying>>,
}

/// A replay in progress: the missed pushes not framed yet, and the bytes queued meanwhile,
/// to be written once the last slice is.
struct Replaying {
    missed: Replay,
    behind: Queue,
}

/// The inbox's deliveries queued but not written yet, and the metrics whose push statistics
/// record their latency once they are.
struct Unwritten {
    metrics: Arc<Metrics>,
    pushes: Vec<Arc<Packets>>,
}

impl Wire {
    /// Queue encoded frames for the socket (behind the replay, while one is written).
    #[inline]
    pub fn push(&self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let mut replay = self.0.replay.borrow_mut();
        let mut queue = self.0.queue.borrow_mut();
        let queue = match &mut *replay {
            Some(replaying) => &mut replaying.behind,
            None => &mut *queue,
        };
        queue.len += bytes.len();
        queue.chunks.push_back(bytes);
    }

    /// Queue encoded frames ahead of what waits behind a replay, if one is written (right
    /// after its current slice): an Engine.IO ping, which the client must answer in time
    /// however long its replay, and which the Socket.IO packets' order does not concern.
    pub fn push_ahead(&self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let mut queue = self.0.queue.borrow_mut();
        queue.len += bytes.len();
        queue.chunks.push_back(bytes);
    }

    /// Write a recovered session's missed pushes after what is queued so far, a slice at a
    /// time, and everything queued from now on after them.
    pub fn replay(&self, missed: Replay) {
        if missed.is_done() {
            return;
        }
        let mut replay = self.0.replay.borrow_mut();
        debug_assert!(replay.is_none(), "one replay per session");
        *replay = Some(Replaying {
            missed,
            behind: Queue::default(),
        });
        drop(replay);
        self.next_replay_slice();
    }

    /// Whether a replay is being written.
    pub fn replaying(&self) -> bool {
        self.0.replay.borrow().is_some()
    }

    /// Frame the replay's next slice into the queue, if one is being written: when the queue
    /// was written (or at its start). After the last slice, what waited behind it is queued
    /// and the replay is over. Returns whether anything was queued.
    pub(super) fn next_replay_slice(&self) -> bool {
        let mut replay = self.0.replay.borrow_mut();
        let Some(replaying) = &mut *replay else {
            return false;
        };
        let mut queue = self.0.queue.borrow_mut();
        let slice = replaying.missed.next_slice();
        if !slice.is_empty() {
            let frames = wire_frames::text_frames(&slice);
            queue.len += frames.len();
            queue.chunks.push_back(frames);
            return true;
        }
        let behind = replay.take().expect("matched above").behind;
        queue.len += behind.len;
        queue.chunks.extend(behind.chunks);
        queue.len > 0
    }

    /// Drop what is left of the replay, if one is being written; what waited behind it is
    /// queued (the session is closing: its last frames go, the missed pushes no longer).
    fn end_replay(&self) {
        if let Some(replaying) = self.0.replay.borrow_mut().take() {
            let mut queue = self.0.queue.borrow_mut();
            queue.len += replaying.behind.len;
            queue.chunks.extend(replaying.behind.chunks);
        }
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

    /// Write nothing more from the inbox (what it still holds is dropped) nor from the replay:
    /// the session is closing (or waits for its registration, when no replay has begun), and
    /// nothing may follow its close frame.
    pub fn stop_inbox(&self) {
        self.0.inbox.borrow_mut().take();
        self.end_replay();
    }

    /// Run `f` once the connection's task has written everything queued so far (and
    /// whatever is queued in the same turn) to the socket.
    pub fn when_written(&self, f: impl FnOnce() + 'static) {
        self.0.when_written.borrow_mut().push(Box::new(f));
    }

    /// Run what waited for the queue to be written (it is), and record the latency of the
    /// pushes written; while a replay is written, what was queued behind it is not yet.
    #[inline]
    pub(super) fn written(&self) {
        if self.replaying() {
            return;
        }
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

    /// How many bytes are queued (behind the replay too); the replay's missed pushes not
    /// framed yet are not.
    #[inline]
    pub(super) fn len(&self) -> usize {
        let behind = self.0.replay.borrow().as_ref().map_or(0, |r| r.behind.len);
        self.0.queue.borrow().len + behind
    }

    /// How many chunks are queued (behind the replay too).
    #[inline]
    pub(super) fn chunks(&self) -> usize {
        let behind = self
            .0
            .replay
            .borrow()
            .as_ref()
            .map_or(0, |r| r.behind.chunks.len());
        self.0.queue.borrow().chunks.len() + behind
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

    /// What the socket would get if it took everything queued now.
    fn take_queued(wire: &Wire) -> Vec<u8> {
        let mut queue = wire.0.queue.borrow_mut();
        let bytes = queue
            .chunks
            .iter()
            .flat_map(|c| c.iter().copied())
            .collect();
        let len = queue.len;
        queue.advance(len);
        bytes
    }

    fn missed(count: usize) -> Vec<bytestring::ByteString> {
        (0..count)
            .map(|i| format!("42[\"notification\",{{\"n\":{i:06}}},\"1-{i:06}\"]").into())
            .collect()
    }

    #[test]
    fn a_replay_is_framed_a_slice_at_a_time_and_what_follows_waits_behind_it() {
        use crate::session::replay::{Replay, REPLAY_SLICE_BYTES};
        let missed = missed(5_000);
        let packet = missed[0].len();
        let slice = wire_frames::frame_len(packet) * (REPLAY_SLICE_BYTES / packet);
        let wire = Wire::default();
        wire.push(Bytes::from_static(b"reply"));
        wire.replay(Replay::new(missed.clone()));
        wire.push(Bytes::from_static(b"welcome"));
        assert!(wire.replaying());
        // The peer reads nothing: however many pushes wait, one slice is framed.
        for _ in 0..100 {
            wire.push(Bytes::from_static(b"live"));
        }
        assert_eq!(wire.0.queue.borrow().len, "reply".len() + slice);
        assert_eq!(wire.len(), "reply".len() + slice + "welcome".len() + 400);
        let mut got = take_queued(&wire);
        let mut slices = 1;
        // Each time the queue is written, the next slice, and never more than one.
        while wire.next_replay_slice() {
            assert!(wire.0.queue.borrow().len <= slice.max(7 + 400));
            got.extend(take_queued(&wire));
            slices += 1;
        }
        assert!(!wire.replaying());
        assert_eq!(
            slices,
            5_000_usize.div_ceil(REPLAY_SLICE_BYTES / packet) + 1
        );
        let mut expected = b"reply".to_vec();
        expected.extend_from_slice(&wire_frames::text_frames(&missed));
        expected.extend_from_slice(b"welcome");
        expected.extend_from_slice(&b"live".repeat(100));
        assert_eq!(
            got, expected,
            "every missed push once, in order, then the rest"
        );
        // Done: frames go straight to the queue again.
        wire.push(Bytes::from_static(b"after"));
        assert_eq!(take_queued(&wire), b"after");
    }

    #[test]
    fn behind_a_replay_the_slow_reader_bound_still_holds_and_a_close_ends_it() {
        use crate::session::replay::Replay;
        let wire = Wire::default();
        wire.replay(Replay::new(missed(5_000)));
        let ping = Bytes::from_static(b"ping");
        wire.push_ahead(ping.clone());
        let live = Bytes::from(vec![b'x'; 64 * 1024]);
        for _ in 0..=MAX_UNWRITTEN / live.len() {
            wire.push(live.clone());
        }
        assert!(
            wire.len() > MAX_UNWRITTEN && wire.chunks() > 1,
            "dropped as a slow reader, as without a replay"
        );
        let framed = take_queued(&wire);
        assert!(framed.ends_with(b"ping"), "a ping goes ahead of what waits");
        // The session closes: what waited goes (its close frame after it), the replay's rest
        // not.
        wire.stop_inbox();
        assert!(!wire.replaying());
        assert_eq!(
            wire.0.queue.borrow().len,
            live.len() * (MAX_UNWRITTEN / live.len() + 1)
        );
        assert!(!wire.next_replay_slice());
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
