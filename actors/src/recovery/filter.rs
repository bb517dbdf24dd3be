//! Which logged pushes a recovering session gets: exactly those it would have received had it
//! stayed connected in the rooms it is given back.
//!
//! Both push logs keep their pushes as [`KeptPush`]es and answer a lookup with
//! [`received`] over the entries after the offset: where that offset falls is theirs to find.

use bytestring::ByteString;

use super::push_log::entry_bytes;
use crate::messages::PushTarget;

/// One push as a log keeps it: where it went, and the packet that was sent (shared with its
/// receivers by reference count, not copied).
pub struct KeptPush {
    /// Who received it.
    pub target: PushTarget,
    /// The Engine.IO packet, its offset in it.
    pub packet: ByteString,
}

impl KeptPush {
    /// What it counts against the log's bound (see [`entry_bytes`]).
    pub fn bytes(&self) -> usize {
        entry_bytes(&self.target, &self.packet)
    }
}

/// The packets of `pushes` (oldest first) that a session in the rooms `is_member` accepts
/// would have received, in the same order (reference-counted clones).
pub fn received<'a>(
    pushes: impl Iterator<Item = &'a KeptPush>,
    is_member: &dyn Fn(&str) -> bool,
) -> Vec<ByteString> {
    pushes
        .filter(|push| receives(&push.target, is_member))
        .map(|push| push.packet.clone())
        .collect()
}

/// Whether a session that is in the rooms `is_member` accepts would receive a push to
/// `target`: a room's push when it is in the room; a broadcast always; an "except the members
/// of" push when it is in the room and not in the excepted one.
pub fn receives(target: &PushTarget, is_member: &dyn Fn(&str) -> bool) -> bool {
    match target {
        PushTarget::Room(room) => is_member(room),
        PushTarget::Everyone => true,
        PushTarget::RoomExceptMembersOf {
            room,
            except_members_of,
        } => is_member(room) && !is_member(except_members_of),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_receives_what_it_would_have_received_live() {
        let rooms = ["admin", "user:a"];
        let member = |room: &str| rooms.contains(&room);
        let room = |r: &str| PushTarget::Room(r.into());
        let except = |room: &str, except: &str| PushTarget::RoomExceptMembersOf {
            room: room.into(),
            except_members_of: except.into(),
        };
        assert!(receives(&room("admin"), &member));
        assert!(receives(&room("user:a"), &member));
        assert!(!receives(&room("user:b"), &member));
        assert!(receives(&PushTarget::Everyone, &member));
        assert!(receives(&except("admin", "user:b"), &member));
        assert!(
            !receives(&except("admin", "user:a"), &member),
            "its own event"
        );
        assert!(
            !receives(&except("lobby", "user:b"), &member),
            "not in the room"
        );
    }

    #[test]
    fn received_keeps_the_order_and_shares_the_packets() {
        let logged = |room: &str, text: &str| KeptPush {
            target: PushTarget::Room(room.into()),
            packet: ByteString::from(text.to_owned()),
        };
        let pushes = [logged("a", "1"), logged("b", "2"), logged("a", "3")];
        let in_a = |room: &str| room == "a";
        let got = received(pushes.iter(), &in_a);
        assert_eq!(got, ["1", "3"]);
        assert_eq!(got[1].as_ptr(), pushes[2].packet.as_ptr(), "not copied");
        assert!(received(pushes.iter(), &|_: &str| false).is_empty());
    }
}
