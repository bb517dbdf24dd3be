//! What a stream has written and its client has not taken yet: the queue between the stream's
//! actor and its HTTP response body, on the same thread.
//!
//! The actor writes every event into the [`Outbox`] at once; the body ([`OutboxBody`]) hands
//! the queue to actix-web when it can send more, which is only while the client reads. So the
//! bytes in the outbox are how far the client is behind, and the actor ends a client that falls
//! too far behind. When the body is dropped (the client went away, or the connection failed)
//! it tells the actor; and when the actor asked ([`Outbox::tell_when_taken`]), the body tells
//! it once it has taken everything queued, so that a long resume is written a slice at a time.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use futures::Stream;

#[derive(Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    bytes: usize,
    waker: Option<Waker>,
    closed: bool,
    /// Tell the actor ([`OutboxTaken`]) once the queue is empty.
    tell_when_taken: bool,
}

/// The writing end (the stream's actor).
#[derive(Default)]
pub struct Outbox(Rc<RefCell<Queue>>);

/// The response body of a stream: what its outbox holds, as its client takes it.
pub struct OutboxBody {
    queue: Rc<RefCell<Queue>>,
    /// Told once when the body is dropped.
    gone: Option<Recipient<BodyGone>>,
    /// Told when the body took everything queued, if the actor asked.
    taken: Recipient<OutboxTaken>,
}

/// The response body was dropped: the client went away (or its connection failed).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct BodyGone;

/// The body took everything the outbox held (sent only when asked for, once per asking).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct OutboxTaken;

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Outbox::default()
    }

    /// Its body, which tells `gone` when it is dropped and `taken` when it took everything
    /// queued after [`Outbox::tell_when_taken`].
    pub fn body(&self, gone: Recipient<BodyGone>, taken: Recipient<OutboxTaken>) -> OutboxBody {
        OutboxBody {
            queue: self.0.clone(),
            gone: Some(gone),
            taken,
        }
    }

    /// Have the body send [`OutboxTaken`] once it has taken everything queued; `false` (and
    /// nothing will be sent) when nothing is queued.
    pub fn tell_when_taken(&self) -> bool {
        let mut queue = self.0.borrow_mut();
        if queue.chunks.is_empty() {
            return false;
        }
        queue.tell_when_taken = true;
        true
    }

    /// Queue `chunk` (ignored once closed).
    pub fn write(&self, chunk: Bytes) {
        let mut queue = self.0.borrow_mut();
        if queue.closed || chunk.is_empty() {
            return;
        }
        queue.bytes += chunk.len();
        queue.chunks.push_back(chunk);
        if let Some(waker) = queue.waker.take() {
            waker.wake();
        }
    }

    /// The bytes written and not taken by the body yet.
    pub fn unsent(&self) -> usize {
        self.0.borrow().bytes
    }

    /// End the body once what is queued was taken (what is queued is still sent).
    pub fn close(&self) {
        let mut queue = self.0.borrow_mut();
        queue.closed = true;
        if let Some(waker) = queue.waker.take() {
            waker.wake();
        }
    }
}

impl Stream for OutboxBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut queue = self.queue.borrow_mut();
        let chunk = match queue.chunks.len() {
            0 if queue.closed => return Poll::Ready(None),
            0 => {
                queue.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            1 => queue.chunks.pop_front().expect("one chunk"),
            _ => {
                // Everything queued in one chunk: one write for a burst of events.
                let mut all = BytesMut::with_capacity(queue.bytes);
                queue
                    .chunks
                    .drain(..)
                    .for_each(|c| all.extend_from_slice(&c));
                all.freeze()
            }
        };
        queue.bytes -= chunk.len();
        if queue.tell_when_taken {
            queue.tell_when_taken = false;
            self.taken.do_send(OutboxTaken);
        }
        Poll::Ready(Some(Ok(chunk)))
    }
}

impl Drop for OutboxBody {
    fn drop(&mut self) {
        if let Some(gone) = self.gone.take() {
            gone.do_send(BodyGone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    struct Watcher(std::sync::Arc<std::sync::atomic::AtomicBool>);

    impl Actor for Watcher {
        type Context = actix::Context<Self>;
    }

    impl Handler<BodyGone> for Watcher {
        type Result = ();
        fn handle(&mut self, _: BodyGone, _: &mut Self::Context) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Counts the `OutboxTaken` it is told.
    struct Taken(std::rc::Rc<std::cell::Cell<usize>>);

    impl Actor for Taken {
        type Context = actix::Context<Self>;
    }

    impl Handler<OutboxTaken> for Taken {
        type Result = ();
        fn handle(&mut self, _: OutboxTaken, _: &mut Self::Context) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[actix::test]
    async fn the_body_tells_once_it_took_everything_only_when_asked() {
        let told = std::rc::Rc::new(std::cell::Cell::new(0));
        let taken = Taken(told.clone()).start();
        let gone = Watcher(Default::default()).start();
        let outbox = Outbox::new();
        let mut body = outbox.body(gone.recipient(), taken.recipient());
        assert!(!outbox.tell_when_taken(), "nothing queued: nothing to tell");
        outbox.write(Bytes::from_static(b"a"));
        body.next().await.unwrap().unwrap();
        outbox.write(Bytes::from_static(b"b"));
        assert!(outbox.tell_when_taken());
        outbox.write(Bytes::from_static(b"c"));
        actix::clock::sleep(std::time::Duration::from_millis(10)).await;
        assert_eq!(told.get(), 0, "not taken yet");
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"bc");
        actix::clock::sleep(std::time::Duration::from_millis(10)).await;
        assert_eq!(told.get(), 1);
        outbox.write(Bytes::from_static(b"d"));
        body.next().await.unwrap().unwrap();
        actix::clock::sleep(std::time::Duration::from_millis(10)).await;
        assert_eq!(told.get(), 1, "once per asking");
    }

    #[actix::test]
    async fn the_body_takes_what_was_written_in_order_then_ends_and_tells_when_dropped() {
        let told = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = Watcher(told.clone()).start();
        let taken = Taken(Default::default()).start();
        let outbox = Outbox::new();
        let mut body = outbox.body(watcher.recipient(), taken.recipient());
        outbox.write(Bytes::from_static(b"a"));
        outbox.write(Bytes::from_static(b"bc"));
        assert_eq!(outbox.unsent(), 3);
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"abc");
        assert_eq!(outbox.unsent(), 0);
        let writer = actix::spawn(async move {
            actix::clock::sleep(std::time::Duration::from_millis(10)).await;
            outbox.write(Bytes::from_static(b"d"));
            outbox.close();
            outbox.write(Bytes::from_static(b"e"));
        });
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"d", "woken");
        assert!(body.next().await.is_none(), "closed: nothing after");
        writer.await.unwrap();
        drop(body);
        actix::clock::sleep(std::time::Duration::from_millis(10)).await;
        assert!(told.load(std::sync::atomic::Ordering::SeqCst));
    }
}
