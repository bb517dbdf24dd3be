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

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures::Stream;

use crate::messages::{Deliver, Frames, SessionId};

thread_local! {
    /// The open inboxes of the sessions living on this thread.
    static OPEN: RefCell<HashMap<SessionId, Inbox>> = RefCell::new(HashMap::new());
}

#[derive(Default)]
struct State {
    batches: VecDeque<Arc<Frames>>,
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
    pub fn push(&self, frames: Arc<Frames>) {
        let mut state = self.0.borrow_mut();
        if state.closed {
            return;
        }
        state.batches.push_back(frames);
        if let Some(waker) = state.waker.take() {
            waker.wake();
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
            return Poll::Ready(Some(Deliver { frames }));
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

    fn frames(f: &[&str]) -> Arc<Frames> {
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
                    .frames
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
        assert_eq!(&*stream.next().await.unwrap().frames[0], "d");
        assert!(stream.next().await.is_none(), "ended, later pushes dropped");
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
        assert_eq!(&*stream.next().await.unwrap().frames[0], "late");
    }
}
