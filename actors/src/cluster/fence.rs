//! Fences: how a node that becomes the active consumer of the shared device queue waits until
//! its log reader has read everything appended before that moment.
//!
//! The device consumer routes with the device status cache, and the status changes the
//! previous active node routed reach this node's cache only through its log reader. So before
//! it routes its first delivery (the first delivery of a single-active-consumer queue is the
//! sign that it became the active consumer), the consumer takes a fence number
//! ([`Fences::next`]), appends a [`LogRecord::Fence`](super::LogRecord::Fence) with it and
//! waits ([`Fences::passed`]) until the reader has read it back ([`Fences::read`]): whatever
//! was confirmed before the number was taken lies before the fence in the log, so its status
//! change is then in the cache.
//!
//! Fence numbers grow per process; the reader notes the highest one of its own process it has
//! read. A fence read before another one that was taken earlier (two appends overtaking each
//! other) passes that one too, rightly: the later fence was appended after the earlier number
//! was taken. A reader that re-attaches or re-reads the log keeps going from where it is and
//! reads the fence all the same; the consumer bounds its wait anyway (see
//! [`EventConsumer`](crate::consumers::event_consumer::EventConsumer)).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use futures::channel::oneshot;

/// The fences of this node process; shared by the device consumer and the log reader.
#[derive(Default)]
pub struct Fences {
    /// The last number taken.
    taken: AtomicU64,
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    /// The highest fence of this process the reader has read (0: none).
    read: u64,
    /// Who waits for which fence.
    waiting: Vec<(u64, oneshot::Sender<()>)>,
}

impl Fences {
    /// A new fence number (1, 2, ...), to append before waiting for it.
    pub fn next(&self) -> u64 {
        self.taken.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The reader read this process's fence `number`: it and every lower one are passed.
    pub fn read(&self, number: u64) {
        let mut book = self.book.lock().expect("fence lock");
        book.read = book.read.max(number);
        let read = book.read;
        let (passed, waiting) = std::mem::take(&mut book.waiting)
            .into_iter()
            .partition(|(n, _)| *n <= read);
        book.waiting = waiting;
        drop(book);
        for (_, waiter) in passed {
            let _ = waiter.send(());
        }
    }

    /// Resolves once the reader has read fence `number` (at once if it already has). Dropping
    /// it gives up waiting.
    pub fn passed(&self, number: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut book = self.book.lock().expect("fence lock");
        if number <= book.read {
            let _ = tx.send(());
        } else {
            book.waiting.retain(|(_, waiter)| !waiter.is_canceled());
            book.waiting.push((number, tx));
        }
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn a_fence_passes_once_it_or_a_later_one_was_read() {
        let fences = Fences::default();
        let (first, second, third) = (fences.next(), fences.next(), fences.next());
        assert_eq!((first, second, third), (1, 2, 3));
        let mut waits = [
            fences.passed(first),
            fences.passed(second),
            fences.passed(third),
        ];
        assert_eq!(waits[0].try_recv(), Ok(None), "nothing read yet");
        fences.read(second);
        assert_eq!(waits[0].try_recv(), Ok(Some(())));
        assert_eq!(waits[1].try_recv(), Ok(Some(())));
        assert_eq!(waits[2].try_recv(), Ok(None));
        assert!(fences.passed(first).now_or_never().is_some(), "read before");
        fences.read(first); // an older fence read late changes nothing
        assert_eq!(waits[2].try_recv(), Ok(None));
        fences.read(third);
        assert_eq!(waits[2].try_recv(), Ok(Some(())));
    }

    #[test]
    fn given_up_waits_are_not_kept() {
        let fences = Fences::default();
        let number = fences.next();
        for _ in 0..100 {
            drop(fences.passed(number));
        }
        let _kept = fences.passed(number);
        assert_eq!(fences.book.lock().unwrap().waiting.len(), 1);
    }
}
