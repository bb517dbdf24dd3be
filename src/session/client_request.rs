//! The four client events (`subscribe`, `unsubscribe`, `join_room`, `leave_room`) as one
//! table: each is parsed once into a [`ClientRequest`], checked against the caller's rights,
//! and answers with its reply event (also sent through the ack when the client asked for one).

use serde_json::{json, Value};

use crate::acl::{self, Refusal};
use crate::auth::Identity;

/// A client's request to enter or leave a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRequest {
    /// `subscribe {userId}`: join `user:<userId>` (own id, or an admin).
    Subscribe {
        /// The user whose room to join.
        user_id: String,
    },
    /// `unsubscribe {userId}`: leave `user:<userId>` (own id, or an admin).
    Unsubscribe {
        /// The user whose room to leave.
        user_id: String,
    },
    /// `join_room {room}`: join a room (its own user room, else admins only).
    JoinRoom {
        /// The room.
        room: String,
    },
    /// `leave_room {room}`: leave a room (always allowed for a valid name).
    LeaveRoom {
        /// The room.
        room: String,
    },
}

/// Whether an accepted request adds the session to its room or removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// Join the room.
    Join,
    /// Leave the room.
    Leave,
}

/// An allowed request: what to do, and what to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The room to join or leave.
    pub room: String,
    /// Join or leave.
    pub membership: Membership,
    /// The reply event, e.g. `subscribed`.
    pub reply_event: &'static str,
    /// Its payload, e.g. `{"userId": "42", "message": "Subscribed to user:42"}`.
    pub reply: Value,
}

impl ClientRequest {
    /// The request an event named `event` with first argument `arg` makes: `None` when the
    /// event is not one of the four, a refusal when its argument is malformed.
    pub fn parse(event: &str, arg: &Value) -> Option<Result<ClientRequest, Refusal>> {
        let user_id = || acl::parse_user_id(arg.get("userId"));
        let room = || match arg.get("room") {
            Some(Value::String(room)) => Ok(room.clone()),
            _ => Err(Refusal::BadRequest("room must be a string".into())),
        };
        Some(match event {
            "subscribe" => user_id().map(|user_id| ClientRequest::Subscribe { user_id }),
            "unsubscribe" => user_id().map(|user_id| ClientRequest::Unsubscribe { user_id }),
            "join_room" => room().map(|room| ClientRequest::JoinRoom { room }),
            "leave_room" => room().map(|room| ClientRequest::LeaveRoom { room }),
            _ => return None,
        })
    }

    /// Check the request against `who`'s rights: what to do and answer, or the refusal.
    pub fn authorize(self, who: &Identity) -> Result<Accepted, Refusal> {
        use Membership::{Join, Leave};
        let (membership, reply_event, reply) = match self {
            ClientRequest::Subscribe { user_id } => {
                acl::may_subscribe(who, &user_id)?;
                let room = acl::user_room(&user_id);
                let message = format!("Subscribed to {room}");
                (Join, "subscribed", about_user(room, user_id, message))
            }
            ClientRequest::Unsubscribe { user_id } => {
                acl::may_subscribe(who, &user_id)?;
                let room = acl::user_room(&user_id);
                let message = format!("Unsubscribed from {room}");
                (Leave, "unsubscribed", about_user(room, user_id, message))
            }
            ClientRequest::JoinRoom { room } => {
                acl::may_join(who, &room)?;
                let message = format!("Joined room {room}");
                (Join, "room_joined", about_room(room, message))
            }
            ClientRequest::LeaveRoom { room } => {
                acl::may_leave(who, &room)?;
                let message = format!("Left room {room}");
                (Leave, "room_left", about_room(room, message))
            }
        };
        let (room, reply) = reply;
        Ok(Accepted {
            room,
            membership,
            reply_event,
            reply,
        })
    }
}

/// The room and reply payload of a request naming a user.
fn about_user(room: String, user_id: String, message: String) -> (String, Value) {
    (room, json!({"userId": user_id, "message": message}))
}

/// The room and reply payload of a request naming a room.
fn about_room(room: String, message: String) -> (String, Value) {
    let reply = json!({"room": room, "message": message});
    (room, reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> Identity {
        Identity {
            user_id: id.into(),
            username: None,
            is_admin: false,
            tenant_id: None,
            expires_at: None,
        }
    }

    #[test]
    fn only_the_four_events_are_requests() {
        let arg = json!({"userId": "42", "room": "user:42"});
        for event in ["subscribe", "unsubscribe", "join_room", "leave_room"] {
            assert!(ClientRequest::parse(event, &arg).is_some(), "{event}");
        }
        assert!(ClientRequest::parse("ping", &arg).is_none());
    }

    #[test]
    fn malformed_arguments_are_refused_as_bad_requests() {
        let bad = |event, arg: Value| ClientRequest::parse(event, &arg).unwrap().unwrap_err();
        assert_eq!(bad("subscribe", json!({})).code(), "bad_request");
        assert_eq!(
            bad("join_room", json!({"room": 1})),
            Refusal::BadRequest("room must be a string".into())
        );
    }

    #[test]
    fn each_request_answers_with_its_reply_event() {
        let me = user("42");
        let accept = |event, arg: Value| {
            ClientRequest::parse(event, &arg)
                .unwrap()
                .and_then(|r| r.authorize(&me))
        };
        let sub = accept("subscribe", json!({"userId": 42})).unwrap();
        assert_eq!(
            (sub.room.as_str(), sub.membership, sub.reply_event),
            ("user:42", Membership::Join, "subscribed")
        );
        assert_eq!(
            sub.reply,
            json!({"userId": "42", "message": "Subscribed to user:42"})
        );
        let left = accept("leave_room", json!({"room": "admin"})).unwrap();
        assert_eq!(
            (left.membership, left.reply_event),
            (Membership::Leave, "room_left")
        );
        assert_eq!(
            left.reply,
            json!({"room": "admin", "message": "Left room admin"})
        );
        let refused = accept("join_room", json!({"room": "admin"})).unwrap_err();
        assert_eq!(refused.code(), "forbidden");
    }
}
