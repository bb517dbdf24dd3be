//! A session's inbox on its own thread: how room actors hand it frames without the actor
//! mailbox.
//!
//! Each room has one actor per worker thread, next to the sessions it serves (see
//! [`RoomSupervisor`](crate::RoomSupervisor)). A delivery through a session's
//! `Recipient<Deliver>` costs a boxed envelope, a multi-producer queue made for crossing
//! threads, and its wake-up; on the same thread a shared queue does the same job. A session
//! [`Inbox::open`]s its inbox on its thread when it registers and reads it as a message stream
//! of [`Deliver`]s (`ctx.add_message_stream(inbox.stream())`), so the frames are handled exactly
//! like mailbox deliveries; a room on that thread finds it with [`Inbox::find`] when the member
//! is added, and falls back to the recipient otherwise (a session elsewhere, a test probe).
//!
//! The session wakes once per batch: a push to an inbox that already holds frames adds to them.
//!
//! A transport that writes the frames to its socket itself can take them straight from the
//! inbox instead ([`Inbox::drain`]), without running the session's actor for each batch.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures::Stream;

use crate::messages::{Deliver, Packets, SessionId};

thread_local! {
    /// The open inboxes of the sessions living on this thread.
    static OPEN: RefCell<HashMap<SessionId, Inbox>> = RefCell::new(HashMap::new());
}

#[derive(Default)]
struct State {
    batches: VecDeque<Arc<Packets>>,
    waker: Option<Waker>,
    closed: bool,
}

/// One session's inbox (a cheap handle: clones share it).
#[derive(Clone, Default)]
pub struct Inbox(Rc<RefCell<State>>);

impl Inbox {
    /// An inbox not yet open to rooms.
    pub fn new() -> Inbox {
        Inbox::default()
    }

    /// Open it to the rooms of this thread as `session`'s (replacing any inbox the id had).
    pub fn open(&self, session: SessionId) {
        OPEN.with(|open| open.borrow_mut().insert(session, self.clone()));
    }

    /// Close it to the rooms of this thread; frames already in it are still read.
    pub fn shut(session: SessionId) {
        OPEN.with(|open| open.borrow_mut().remove(&session));
    }

    /// The open inbox of `session` on this thread, if any.
    pub fn find(session: SessionId) -> Option<Inbox> {
        OPEN.with(|open| open.borrow().get(&session).cloned())
    }

    /// End the stream once the frames already in it are read (the session is gone).
    pub fn end(&self) {
        let mut state = self.0.borrow_mut();
        state.closed = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// Hand over frames; dropped when the stream has ended.
    pub fn push(&self, frames: Arc<Packets>) {
        let mut state = self.0.borrow_mut();
        if state.closed {
            return;
        }
        state.batches.push_back(frames);
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// Hand every batch waiting, in order, to `each`, and have `waker` woken by the next push:
    /// for a reader that is not the session's actor (a transport writing the frames itself).
    /// Returns `false` once the inbox has ended and nothing is left in it.
    pub fn drain(&self, waker: &Waker, mut each: impl FnMut(Arc<Packets>)) -> bool {
        {
            let mut state = self.0.borrow_mut();
            match &state.waker {
                Some(w) if w.will_wake(waker) => {}
                _ => state.waker = Some(waker.clone()),
            }
        }
        loop {
            // Not borrowed while `each` runs: it may be anything, even a push to this inbox.
            let next = self.0.borrow_mut().batches.pop_front();
            match next {
                Some(frames) => each(frames),
                None => return !self.0.borrow().closed,
            }
        }
    }

    /// The deliveries, in order, as a stream for the session actor.
    pub fn stream(&self) -> InboxStream {
        InboxStream(self.clone())
    }
}

/// The [`Deliver`]s handed to an [`Inbox`].
pub struct InboxStream(Inbox);

impl Stream for InboxStream {
    type Item = Deliver;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Deliver>> {
        let mut state = (self.0).0.borrow_mut();
        if let Some(frames) = state.batches.pop_front() {
            return Poll::Ready(Some(Deliver { packets: frames }));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        match &state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytestring::ByteString;
    use futures::StreamExt;

    fn frames(f: &[&str]) -> Arc<Packets> {
        Arc::new(f.iter().map(|s| ByteString::from(s.to_string())).collect())
    }

    #[actix::test]
    async fn frames_come_out_in_order_and_rooms_find_only_open_inboxes() {
        let inbox = Inbox::new();
        assert!(Inbox::find(7).is_none());
        inbox.open(7);
        let found = Inbox::find(7).expect("open");
        found.push(frames(&["a"]));
        found.push(frames(&["b", "c"]));
        let mut stream = inbox.stream();
        let got: Vec<String> = [stream.next().await, stream.next().await]
            .into_iter()
            .flat_map(|d| {
                d.unwrap()
                    .packets
                    .iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(got, ["a", "b", "c"]);
        Inbox::shut(7);
        assert!(Inbox::find(7).is_none(), "shut to rooms");
        // A room that found it before still delivers until the session ends it.
        found.push(frames(&["d"]));
        inbox.end();
        found.push(frames(&["e"]));
        assert_eq!(&*stream.next().await.unwrap().packets[0], "d");
        assert!(stream.next().await.is_none(), "ended, later pushes dropped");
    }

    #[test]
    fn a_drain_takes_every_batch_in_order_and_the_next_push_wakes_its_waker() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;

        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let inbox = Inbox::new();
        let mut got = Vec::new();
        let mut take =
            |inbox: &Inbox| inbox.drain(&waker, |f| got.extend(f.iter().map(|s| s.to_string())));
        assert!(take(&inbox), "open and empty");
        inbox.push(frames(&["a"]));
        inbox.push(frames(&["b", "c"]));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "woken by the first push only"
        );
        assert!(take(&inbox));
        inbox.push(frames(&["d"]));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "the drain registered it again"
        );
        inbox.end();
        inbox.push(frames(&["e"]));
        assert!(!take(&inbox), "ended, and now empty");
        assert_eq!(
            got,
            ["a", "b", "c", "d"],
            "what came before the end, and only that"
        );
    }

    #[actix::test]
    async fn a_waiting_stream_is_woken_by_a_push() {
        let inbox = Inbox::new();
        let mut stream = inbox.stream();
        let pusher = inbox.clone();
        actix::spawn(async move {
            actix::clock::sleep(std::time::Duration::from_millis(10)).await;
            pusher.push(frames(&["late"]));
        });
        assert_eq!(&*stream.next().await.unwrap().packets[0], "late");
    }
}
