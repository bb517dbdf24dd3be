//! The service-health snapshot a client gets right after `room_joined` when it joins `admin`
//! (docs/socketio.md), read from the Consul watcher's board; nothing when Consul is not watched.

use pushgate_actors::routing::ADMIN_ROOM;

use super::{Accepted, Membership, Outbound, SessionContext};
use crate::protocol::socketio;

/// The `service.health.snapshot` notification for an accepted request that joins `admin`.
pub(super) fn snapshot_on_admin_join(
    ctx: &SessionContext,
    accepted: &Accepted,
) -> Option<Outbound> {
    if accepted.membership != Membership::Join || accepted.room != ADMIN_ROOM {
        return None;
    }
    let snapshot = ctx.service_health.as_ref()?.snapshot();
    Some(Outbound::Text(
        socketio::encode_event_message("notification", &snapshot).into(),
    ))
}
