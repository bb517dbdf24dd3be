//! What one HTTP/1 connection's client has made the server take on, shared (single-threaded)
//! by the connection's stream and the requests it serves: the answers not yet written (the
//! write backlog), the request being served, and how much more of the client's bytes may be
//! read now.

use std::cell::Cell;
use std::task::Waker;

/// Requests of a connection wait, and its bytes are not read, while its write backlog is
/// over this many bytes.
pub const BACKLOG_LIMIT: usize = 64 * 1024;

/// At most this many bytes are read per turn of the connection's task, and while a request is
/// being served, at most this many beyond its body: the bytes actix-http's dispatcher decodes
/// at once into requests (each costs it about 4 KiB, whatever its size on the wire).
pub const READ_AHEAD: usize = 1024;

/// A rough size of an answer's head (status line and headers), counted with its body.
const HEAD_ESTIMATE: usize = 256;

/// See the module doc.
#[derive(Default)]
pub struct Pressure {
    /// What the socket did not take of the last write offered to it.
    unwritten: Cell<usize>,
    /// The answers produced since that write (bodies of known size, plus a head each).
    produced: Cell<usize>,
    /// A request is being served (or waits to be).
    serving: Cell<bool>,
    /// Bytes that may still be read while it is: what is left of its body, then
    /// [`READ_AHEAD`].
    serving_allowance: Cell<usize>,
    /// A read was just handed on: the next one waits for the task's next turn.
    read_this_turn: Cell<bool>,
    /// The request waiting for the backlog to shrink (a connection serves one at a time).
    request_waiting: Cell<Option<Waker>>,
    /// The connection's reads, waiting for the backlog to shrink or the request to be served.
    read_waiting: Cell<Option<Waker>>,
}

impl Pressure {
    /// Whether the answers not yet written are over [`BACKLOG_LIMIT`].
    pub fn is_over_limit(&self) -> bool {
        self.unwritten.get().saturating_add(self.produced.get()) > BACKLOG_LIMIT
    }

    /// Wake `waker` once a write brings the backlog under the limit.
    pub fn wake_when_under(&self, waker: &Waker) {
        self.request_waiting.set(Some(waker.clone()));
    }

    /// A request is being served, with a body of `body` bytes (`None`: of unknown length).
    pub fn serving(&self, body: Option<u64>) {
        let body = body.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        self.serving.set(true);
        self.serving_allowance.set(body.saturating_add(READ_AHEAD));
    }

    /// The request being served was answered (or dropped): reads may go on.
    pub fn served(&self) {
        self.serving.set(false);
        self.wake_reads();
    }

    /// An answer with a body of `body` bytes (`None`: streamed, written as it comes) was
    /// produced.
    pub fn produced(&self, body: Option<u64>) {
        let body = body.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let total = self
            .produced
            .get()
            .saturating_add(body)
            .saturating_add(HEAD_ESTIMATE);
        self.produced.set(total);
    }

    /// A write offered `offered` bytes (everything produced until then) and the socket took
    /// `taken` of them.
    pub fn wrote(&self, offered: usize, taken: usize) {
        self.unwritten.set(offered - taken);
        self.produced.set(0);
        if !self.is_over_limit() {
            if let Some(waker) = self.request_waiting.take() {
                waker.wake();
            }
            self.wake_reads();
        }
    }

    /// How many bytes may be read now (`0`: none; `waker` is woken when more may be).
    pub fn readable(&self, waker: &Waker) -> usize {
        if self.read_this_turn.replace(false) {
            // Let the dispatcher decode and serve what it has first.
            waker.wake_by_ref();
            return 0;
        }
        let allowed = if self.is_over_limit() {
            0
        } else if self.serving.get() {
            self.serving_allowance.get()
        } else {
            READ_AHEAD
        };
        if allowed == 0 {
            self.read_waiting.set(Some(waker.clone()));
        }
        allowed
    }

    /// `n` bytes were read.
    pub fn read(&self, n: usize) {
        self.read_this_turn.set(n > 0);
        if self.serving.get() {
            self.serving_allowance
                .set(self.serving_allowance.get().saturating_sub(n));
        }
    }

    fn wake_reads(&self) {
        if let Some(waker) = self.read_waiting.take() {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn answers_and_unwritten_bytes_add_up_until_a_write_takes_them_back() {
        let p = Pressure::default();
        p.produced(Some(40_000));
        assert!(!p.is_over_limit());
        p.produced(Some(40_000));
        assert!(
            p.is_over_limit(),
            "two answers produced since the last write"
        );
        let (woken, w) = waker();
        p.wake_when_under(&w);
        assert_eq!(p.readable(&w), 0, "nothing is read while over the limit");
        p.wrote(80_512, 10_000);
        assert!(p.is_over_limit());
        assert_eq!(woken.0.load(Ordering::Relaxed), 0);
        p.wrote(70_512, 70_000);
        assert!(!p.is_over_limit());
        // The waiting request and the waiting read.
        assert_eq!(woken.0.load(Ordering::Relaxed), 2);
        // A streamed answer counts its head only; one larger than the limit still goes out.
        p.produced(None);
        assert!(!p.is_over_limit());
        p.produced(Some(u64::MAX));
        assert!(p.is_over_limit());
    }

    #[test]
    fn reads_take_a_little_per_turn_and_a_served_request_its_body_and_a_little() {
        let p = Pressure::default();
        let (woken, w) = waker();
        assert_eq!(p.readable(&w), READ_AHEAD);
        p.read(100);
        assert_eq!(p.readable(&w), 0, "the next read waits for the next turn");
        assert_eq!(woken.0.load(Ordering::Relaxed), 1, "which comes at once");
        assert_eq!(p.readable(&w), READ_AHEAD);
        p.read(0);
        // A request with a 5,000-byte body.
        p.serving(Some(5_000));
        assert_eq!(p.readable(&w), 5_000 + READ_AHEAD);
        p.read(5_000 + READ_AHEAD);
        p.readable(&w); // the turn ends
        assert_eq!(p.readable(&w), 0, "nothing more until it is served");
        p.served();
        assert_eq!(woken.0.load(Ordering::Relaxed), 3);
        assert_eq!(p.readable(&w), READ_AHEAD);
        // A body of unknown length may be read whole.
        p.serving(None);
        assert_eq!(p.readable(&w), usize::MAX);
    }
}
