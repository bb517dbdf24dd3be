//! The message by which the log reader hands the room supervisor a push read from the
//! cluster's log.

use actix::prelude::*;

use crate::messages::Push;
use crate::recovery::LogPosition;

/// A push read from the cluster's log, at its position there. The supervisor stores it in
/// the recovery history at that position (its offset is made from it, the same on every node)
/// and, when `live`, delivers it to this node's sessions. In cluster mode this is the only way
/// pushes reach sessions; [`Push`] is not sent to the supervisor.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LoggedPush {
    /// Where it is in the log ([`position::of`](super::position::of)).
    pub position: LogPosition,
    /// The push.
    pub push: Push,
    /// `false` while a starting node rebuilds the history from before its start: stored for
    /// recovery, delivered to nobody.
    pub live: bool,
}
