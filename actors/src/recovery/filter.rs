//! Which logged pushes a recovering session gets: exactly those it would have received had it
//! stayed connected in the rooms it is given back.

use crate::messages::PushTarget;

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
}
