//! Who may join which room, and what a valid room name and user id look like.

use pushgate_actors::routing::USER_ROOM_PREFIX;
use serde_json::Value;

use crate::auth::Identity;

/// Longest room name.
pub const MAX_ROOM_LEN: usize = 128;
/// Largest integer accepted as a user id (2^53, the largest exact JSON integer in JS).
pub const MAX_INTEGER_ID: u64 = 1 << 53;
/// Longest user id accepted in `subscribe` / `unsubscribe` and the HTTP API.
pub const MAX_USER_ID_LEN: usize = 128;

/// Why a room request is refused; `code()` is what clients see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The client is over its client event rate (the event was dropped).
    #[error("{0}")]
    RateLimited(String),
}

impl Refusal {
    /// `bad_request`, `forbidden` or `rate_limited`.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::BadRequest(_) => "bad_request",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::RateLimited(_) => "rate_limited",
        }
    }
}

/// The room of one user: `user:<user_id>`.
pub fn user_room(user_id: &str) -> String {
    format!("{USER_ROOM_PREFIX}{user_id}")
}

/// The user whose room `room` is, if it is a user room (`user:<user_id>`).
pub fn user_of_room(room: &str) -> Option<&str> {
    room.strip_prefix(USER_ROOM_PREFIX)
}

/// What a refused room name is told: the rule of [`is_valid_room_name`].
pub const INVALID_ROOM_NAME: &str = "room must be 1-128 characters of A-Z a-z 0-9 : _ . @ -";

/// The refusal of a room name that breaks [`is_valid_room_name`].
pub fn invalid_room_name() -> Refusal {
    Refusal::BadRequest(INVALID_ROOM_NAME.into())
}

/// 1–128 characters of `[A-Za-z0-9:_.@-]`.
pub fn is_valid_room_name(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= MAX_ROOM_LEN
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_.@-".contains(&b))
}

/// A room a push may target: a valid room name, or `user:<id>` for any accepted user id
/// (whatever its characters, as JWT subjects may hold any).
pub fn is_valid_target_room(room: &str) -> bool {
    is_valid_room_name(room)
        || user_of_room(room)
            .is_some_and(|id| !id.is_empty() && id.chars().count() <= MAX_USER_ID_LEN)
}

/// A user id from JSON: a non-empty string (at most 128 characters) or a non-negative integer
/// up to 2^53, as its decimal string.
pub fn parse_user_id(value: Option<&Value>) -> Result<String, Refusal> {
    match value {
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_USER_ID_LEN => {
            Ok(s.clone())
        }
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= MAX_INTEGER_ID) => {
            Ok(n.to_string())
        }
        Some(_) => Err(Refusal::BadRequest(
            "userId must be a non-empty string of at most 128 characters or a non-negative integer up to 2^53".into(),
        )),
        None => Err(Refusal::BadRequest("userId is required".into())),
    }
}

/// May `who` subscribe to (or unsubscribe from) `user_id`'s room?
pub fn may_subscribe(who: &Identity, user_id: &str) -> Result<(), Refusal> {
    if who.is_admin || who.user_id == user_id {
        Ok(())
    } else {
        Err(Refusal::Forbidden(format!(
            "only admins may subscribe to another user's notifications ({})",
            user_room(user_id)
        )))
    }
}

/// May `who` join `room`? `admin` and any other room: admins only; `user:<id>`: its owner or
/// an admin. The caller's own user room is valid whatever its characters.
pub fn may_join(who: &Identity, room: &str) -> Result<(), Refusal> {
    if user_of_room(room) == Some(who.user_id.as_str()) {
        return Ok(());
    }
    if !is_valid_room_name(room) {
        return Err(invalid_room_name());
    }
    if who.is_admin {
        Ok(())
    } else if user_of_room(room).is_some() {
        Err(Refusal::Forbidden(format!(
            "only admins may join another user's room ({room})"
        )))
    } else {
        Err(Refusal::Forbidden(format!(
            "only admins may join room {room}"
        )))
    }
}

/// May `who` leave `room`? Always, when the name is valid (or is the caller's own room).
pub fn may_leave(who: &Identity, room: &str) -> Result<(), Refusal> {
    if user_of_room(room) == Some(who.user_id.as_str()) || is_valid_room_name(room) {
        Ok(())
    } else {
        Err(invalid_room_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn who(id: &str, admin: bool) -> Identity {
        Identity {
            user_id: id.into(),
            username: None,
            is_admin: admin,
            tenant_id: None,
            expires_at: None,
        }
    }

    #[test]
    fn room_names() {
        assert!(is_valid_room_name("admin"));
        assert!(is_valid_room_name("user:42"));
        assert!(is_valid_room_name("a.b_c-d@e:f"));
        assert!(is_valid_room_name(&"x".repeat(128)));
        for bad in ["", "with space", "slash/", "é", "<script>", "\0"] {
            assert!(!is_valid_room_name(bad), "{bad:?}");
        }
        assert!(!is_valid_room_name(&"x".repeat(129)));
        assert!(is_valid_target_room("user:a b/é"));
        assert!(!is_valid_target_room("a b"));
        assert!(!is_valid_target_room(&format!("user:{}", "x".repeat(129))));
    }

    #[test]
    fn user_ids() {
        assert_eq!(parse_user_id(Some(&json!("42"))).unwrap(), "42");
        assert_eq!(parse_user_id(Some(&json!(42))).unwrap(), "42");
        assert_eq!(
            parse_user_id(Some(&json!(9007199254740992u64))).unwrap(),
            "9007199254740992"
        );
        for bad in [
            json!(""),
            json!(-1),
            json!(1.5),
            json!(9007199254740993u64),
            json!(null),
            json!(true),
            json!({}),
            json!(["1"]),
            json!("x".repeat(129)),
        ] {
            assert_eq!(parse_user_id(Some(&bad)).unwrap_err().code(), "bad_request");
        }
        assert!(parse_user_id(None).is_err());
    }

    #[test]
    fn join_rules() {
        let user = who("42", false);
        let admin = who("1", true);
        assert!(may_join(&user, "user:42").is_ok());
        assert_eq!(may_join(&user, "user:43").unwrap_err().code(), "forbidden");
        assert_eq!(may_join(&user, "admin").unwrap_err().code(), "forbidden");
        assert_eq!(may_join(&user, "lobby").unwrap_err().code(), "forbidden");
        assert_eq!(
            may_join(&user, "bad room").unwrap_err().code(),
            "bad_request"
        );
        assert!(may_join(&admin, "admin").is_ok());
        assert!(may_join(&admin, "user:43").is_ok());
        assert!(may_join(&admin, "lobby").is_ok());
        assert_eq!(may_join(&admin, "").unwrap_err().code(), "bad_request");
        // An odd subject still owns its room.
        let odd = who("a b/é", false);
        assert!(may_join(&odd, "user:a b/é").is_ok());
        assert!(may_leave(&odd, "user:a b/é").is_ok());
        assert!(may_leave(&user, "admin").is_ok());
        assert_eq!(may_leave(&user, "a b").unwrap_err().code(), "bad_request");
    }

    #[test]
    fn subscribe_rules() {
        assert!(may_subscribe(&who("42", false), "42").is_ok());
        assert_eq!(
            may_subscribe(&who("42", false), "43").unwrap_err().code(),
            "forbidden"
        );
        assert!(may_subscribe(&who("1", true), "43").is_ok());
    }
}
