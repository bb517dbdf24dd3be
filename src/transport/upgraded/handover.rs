//! The hand-over between the application's WebSocket handler and the upgrade service: the
//! handler leaves the accepted connection's start in the request, instead of streaming its
//! frames as a response body, and the service starts it once the 101 is encoded.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;

use actix_web::web::Bytes;
use futures::Stream;

use super::input::Input;

/// The encoded frames a WebSocket context yields for the socket.
pub type Output = Pin<Box<dyn Stream<Item = Result<Bytes, actix_web::Error>>>>;

/// What an accepted WebSocket leaves in the [`Handover`]: given the connection's input,
/// start the actor and return its output.
pub type Accepted = Box<dyn FnOnce(Input) -> Output>;

/// Put in an upgrade request's extensions by [`serve`](super::serve): a handler that accepts
/// the upgrade leaves its [`Accepted`] here instead of streaming its frames as a response body.
#[derive(Clone, Default)]
pub struct Handover(Rc<Cell<Option<Accepted>>>);

impl Handover {
    /// Leave the accepted connection's start for [`serve`](super::serve).
    pub fn accept(&self, accepted: Accepted) {
        self.0.set(Some(accepted));
    }

    /// The accepted connection's start, if the handler accepted it.
    pub(super) fn take(&self) -> Option<Accepted> {
        self.0.take()
    }
}
