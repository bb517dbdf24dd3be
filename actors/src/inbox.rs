//! A session's inbox on its own thread: how the fan-out actors hand it packets without the
//! actor mailbox.
//!
//! Each worker thread has one fan-out actor, next to the sessions it serves (see
//! [`RoomSupervisor`](crate::RoomSupervisor)). A delivery through an actor's mailbox costs a
//! boxed envelope, a multi-producer queue made for crossing threads, and its wake-up; on the
//! same thread a shared queue does the same job.
//!
//! The order this needs is held by the types: a session [`Inbox::open`]s its inbox, which
//! gives an [`OpenedInbox`], the only way to register ([`RegisterSession`] carries it). The
//! opened inbox names the thread it was opened on ([`OpenedInbox::home`]), where the
//! supervisor starts the fan-out actor that gets it, and it turns back into the [`Inbox`]
//! only on that thread ([`OpenedInbox::claim`]): a room holds its members' inboxes themselves,
//! never looking them up.
//!
//! The session's actor reads its inbox as a message stream of [`Deliver`]s
//! (`ctx.add_message_stream(inbox.stream())`), so the packets are handled exactly like mailbox
//! deliveries; a transport that writes the packets to its socket itself takes them straight
//! from the inbox instead ([`Inbox::drain`]), without running the session's actor for each
//! batch. The reader wakes once per batch: a push to an inbox that already holds packets adds
//! to them.
//!
//! [`RegisterSession`]: crate::RegisterSession

use std::cell::RefCell;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::{self, ThreadId};

use futures::Stream;

use crate::messages::{Deliver, Home, Packets};

#[derive(Default)]
struct State {
    batches: VecDeque<Arc<Packets>>,
    waker: Option<Waker>,
    closed: bool,
}

/// What the handles of one inbox share: its state, only ever touched on the thread that made
/// it.
struct Shared {
    state: RefCell<State>,
    /// The thread the inbox lives on.
    thread: ThreadId,
}

// SAFETY: `state` is only borrowed through an `Inbox`, which is neither `Send` nor `Sync` and
// exists only on `thread`: `Inbox::new` makes it there, and `OpenedInbox::claim` (the only
// other way to get one) checks that it is called there. An `OpenedInbox` elsewhere only moves
// the `Arc` around. The state itself is `Send` (packets behind `Arc`s, a `Waker`), so the last
// handle may drop it on any thread: no other handle is left then.
unsafe impl Sync for Shared {}

/// One session's inbox (a cheap handle on its thread: clones share it).
#[derive(Clone)]
pub struct Inbox {
    shared: Arc<Shared>,
    /// Keeps it on its thread (neither `Send` nor `Sync`).
    _thread_bound: PhantomData<Rc<()>>,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox::new()
    }
}

/// A session's inbox as opened to the rooms of its thread (see [`Inbox::open`]): what
/// [`RegisterSession`](crate::RegisterSession) carries to the supervisor and the supervisor
/// hands the fan-out actor of [`OpenedInbox::home`]. It can cross threads, but gives
/// the inbox back only on its own.
#[derive(Clone)]
pub struct OpenedInbox {
    shared: Arc<Shared>,
    home: Home,
}

impl Inbox {
    /// An empty inbox on this thread.
    pub fn new() -> Inbox {
        Inbox::on(Arc::new(Shared {
            state: RefCell::default(),
            thread: thread::current().id(),
        }))
    }

    fn on(shared: Arc<Shared>) -> Inbox {
        Inbox {
            shared,
            _thread_bound: PhantomData,
        }
    }

    fn state(&self) -> &RefCell<State> {
        &self.shared.state
    }

    /// Open it to the rooms: what the session registers with. Call it on the inbox's thread
    /// from within its actor system (the rooms are started on this thread's arbiter).
    pub fn open(&self) -> OpenedInbox {
        OpenedInbox {
            shared: self.shared.clone(),
            home: Home::current(),
        }
    }

    /// End the stream once the packets already in it are read (the session is gone).
    pub fn end(&self) {
        let mut state = self.state().borrow_mut();
        state.closed = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// Hand over packets; dropped when the stream has ended.
    pub fn push(&self, packets: Arc<Packets>) {
        let mut state = self.state().borrow_mut();
        if state.closed {
            return;
        }
        state.batches.push_back(packets);
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// Hand every batch waiting, in order, to `each`, and have `waker` woken by the next push:
    /// for a reader that is not the session's actor (a transport writing the packets itself).
    /// Returns `false` once the inbox has ended and nothing is left in it.
    pub fn drain(&self, waker: &Waker, mut each: impl FnMut(Arc<Packets>)) -> bool {
        {
            let mut state = self.state().borrow_mut();
            match &state.waker {
                Some(w) if w.will_wake(waker) => {}
                _ => state.waker = Some(waker.clone()),
            }
        }
        loop {
            // Not borrowed while `each` runs: it may be anything, even a push to this inbox.
            let next = self.state().borrow_mut().batches.pop_front();
            match next {
                Some(packets) => each(packets),
                None => return !self.state().borrow().closed,
            }
        }
    }

    /// The deliveries, in order, as a stream for the session actor.
    pub fn stream(&self) -> InboxStream {
        InboxStream(self.clone())
    }
}

impl OpenedInbox {
    /// The thread the inbox lives on, where the rooms that hold it must run.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The inbox, when called on its own thread; `None` anywhere else.
    pub fn claim(&self) -> Option<Inbox> {
        (thread::current().id() == self.shared.thread).then(|| Inbox::on(self.shared.clone()))
    }
}

/// The [`Deliver`]s handed to an [`Inbox`].
pub struct InboxStream(Inbox);

impl Stream for InboxStream {
    type Item = Deliver;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Deliver>> {
        let mut state = self.0.state().borrow_mut();
        if let Some(packets) = state.batches.pop_front() {
            return Poll::Ready(Some(Deliver { packets }));
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

    fn packets(f: &[&str]) -> Arc<Packets> {
        Arc::new(f.iter().map(|s| ByteString::from(s.to_string())).collect())
    }

    #[actix::test]
    async fn packets_come_out_in_order_and_an_opened_inbox_is_claimed_on_its_thread_only() {
        let inbox = Inbox::new();
        let opened = inbox.open();
        let elsewhere = opened.clone();
        let claimed_elsewhere = std::thread::spawn(move || elsewhere.claim().is_some());
        assert!(!claimed_elsewhere.join().unwrap(), "not on another thread");
        let room = opened.claim().expect("on its own thread");
        room.push(packets(&["a"]));
        room.push(packets(&["b", "c"]));
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
        // A room holding it still delivers until the session ends it.
        room.push(packets(&["d"]));
        inbox.end();
        room.push(packets(&["e"]));
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
        inbox.push(packets(&["a"]));
        inbox.push(packets(&["b", "c"]));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "woken by the first push only"
        );
        assert!(take(&inbox));
        inbox.push(packets(&["d"]));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "the drain registered it again"
        );
        inbox.end();
        inbox.push(packets(&["e"]));
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
            pusher.push(packets(&["late"]));
        });
        assert_eq!(&*stream.next().await.unwrap().packets[0], "late");
    }
}
