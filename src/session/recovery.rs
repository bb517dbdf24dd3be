//! Connection-state recovery at the edge: the private session id a session is given, the
//! recovery a CONNECT asks for, and the CONNECT that waits for the supervisor's answer.
//!
//! A CONNECT whose auth carries a `pid` (and perhaps the `offset` of the last push its client
//! received) asks for its kept session back. The session sends
//! [`RegisterSession`](pushgate_actors::RegisterSession) with a [`Recover`] and must write
//! nothing, and read nothing from its inbox, until the [`Registration`] comes back: a recovered
//! session writes its CONNECT reply with its old socket id, then the pushes it missed, then
//! `welcome`, and only then what its inbox holds. The transport takes the answer as a future
//! ([`SocketSession::take_registration`](super::SocketSession::take_registration)) and waits
//! for it without handling anything else of the session meanwhile.

use std::future::Future;
use std::pin::Pin;

use actix::MailboxError;
use base64::Engine as _;
use pushgate_actors::{Recover, Registration};
use rand::Rng;
use serde_json::Value;

use crate::acl;
use crate::auth::Identity;

/// The supervisor's answer to a [`RegisterSession`](pushgate_actors::RegisterSession) asking
/// for recovery, as the transport awaits it.
pub type RegistrationWait = Pin<Box<dyn Future<Output = Result<Registration, MailboxError>>>>;

/// A new private session id: 128 random bits, base64url (22 characters). Known only to its
/// client: never log it.
pub fn new_pid() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The recovery a CONNECT's auth asks for: its `pid` and `offset`, when `pid` is a non-empty
/// string (an `offset` that is not a string counts as none).
pub fn requested(auth: Option<&Value>, identity: &Identity) -> Option<Recover> {
    let auth = auth?;
    let pid = auth.get("pid")?.as_str().filter(|p| !p.is_empty())?;
    let offset = auth
        .get("offset")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let who = identity.clone();
    Some(Recover {
        pid: pid.to_owned(),
        offset,
        may_join: Box::new(move |room| acl::may_join(&who, room).is_ok()),
    })
}

/// A CONNECT waiting for the supervisor's answer.
pub struct AwaitingRegistration {
    /// The namespace it connects.
    pub nsp: String,
    /// The socket id it was registered with (its own, unless it is recovered).
    pub socket_id: String,
    /// The `pid` it was registered with (its own new one, unless it is recovered).
    pub pid: String,
    /// The `pid` it asked back.
    pub asked_pid: String,
    /// The answer, until the transport takes it.
    pub answer: Option<RegistrationWait>,
}

/// A packet the client sent while its CONNECT waited (a polling POST carrying more than the
/// CONNECT), handled once the answer came.
pub enum HeldInput {
    /// An Engine.IO text packet.
    Text(String),
    /// An Engine.IO binary message.
    Binary(Vec<u8>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(is_admin: bool) -> Identity {
        Identity {
            user_id: "42".into(),
            username: None,
            is_admin,
            tenant_id: None,
            expires_at: None,
        }
    }

    #[test]
    fn pids_are_128_random_bits() {
        let (a, b) = (new_pid(), new_pid());
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
    }

    #[test]
    fn a_pid_asks_for_recovery_with_its_offset() {
        let auth = json!({"token": "t", "pid": "p", "offset": "1-2"});
        let r = requested(Some(&auth), &identity(false)).expect("asked");
        assert_eq!((r.pid.as_str(), r.offset.as_deref()), ("p", Some("1-2")));
        let auth = json!({"token": "t", "pid": "p", "offset": 3});
        assert_eq!(
            requested(Some(&auth), &identity(false)).unwrap().offset,
            None
        );
    }

    #[test]
    fn no_pid_or_a_pid_that_is_not_a_string_asks_nothing() {
        for auth in [json!({"token": "t"}), json!({"pid": 1}), json!({"pid": ""})] {
            assert!(requested(Some(&auth), &identity(true)).is_none(), "{auth}");
        }
        assert!(requested(None, &identity(true)).is_none());
    }

    #[test]
    fn rooms_come_back_as_the_new_token_allows() {
        let auth = json!({"pid": "p"});
        let user = requested(Some(&auth), &identity(false)).unwrap();
        assert!((user.may_join)("user:42"));
        assert!(!(user.may_join)("admin"));
        let admin = requested(Some(&auth), &identity(true)).unwrap();
        assert!((admin.may_join)("admin"));
    }
}
