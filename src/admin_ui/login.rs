//! The admin UI's login, as the official server side takes it: a CONNECT to `/admin` whose
//! auth is `{username, password}` is checked against the configured bcrypt hash; a success is
//! given a session id, which the UI keeps and sends back (`{sessionId}`) instead of the
//! password when it reconnects.
//!
//! A bcrypt check takes tens of milliseconds of CPU by design: it runs on the blocking thread
//! pool, never on a session's thread, at most [`MAX_CHECKS_IN_FLIGHT`] at once, and after
//! [`MAX_FAILURES`] failures within [`FAILURE_WINDOW`] further password attempts are refused
//! without being checked until the window has passed (a UI holding a session id is not
//! affected). Session ids are 128 random bits, kept in memory for [`SESSION_LIFETIME`]
//! (the official store's default), at most [`MAX_SESSIONS`] of them; they are never logged.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::Rng;

/// How long a session id stays valid.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// At most this many session ids are kept (the oldest is dropped first).
pub const MAX_SESSIONS: usize = 1_000;
/// Failed logins tolerated within [`FAILURE_WINDOW`] before password attempts are refused.
pub const MAX_FAILURES: usize = 10;
/// The window [`MAX_FAILURES`] is counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Password checks running at once, at most.
pub const MAX_CHECKS_IN_FLIGHT: usize = 2;
/// A longer password is refused without a check (bcrypt reads 72 bytes of it anyway).
pub const MAX_PASSWORD_BYTES: usize = 1_024;

/// What a CONNECT to `/admin` offers.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered<'a> {
    /// A session id given earlier.
    Session(&'a str),
    /// A username and password.
    Password {
        /// The username.
        username: &'a str,
        /// The password.
        password: &'a str,
    },
    /// Nothing usable (no auth, not an object, wrong types, a huge password).
    Nothing,
}

impl<'a> Offered<'a> {
    /// Read a CONNECT's auth: a non-empty `sessionId` string first, then `username` and
    /// `password` strings.
    pub fn read(auth: Option<&'a serde_json::Value>) -> Self {
        let Some(auth) = auth.and_then(|a| a.as_object()) else {
            return Offered::Nothing;
        };
        let text = |key: &str| auth.get(key).and_then(|v| v.as_str());
        if let Some(id) = text("sessionId").filter(|id| !id.is_empty()) {
            return Offered::Session(id);
        }
        match (text("username"), text("password")) {
            (Some(username), Some(password)) if password.len() <= MAX_PASSWORD_BYTES => {
                Offered::Password { username, password }
            }
            _ => Offered::Nothing,
        }
    }
}

/// Session ids given to logged-in UIs, with when each was given.
#[derive(Default)]
pub struct LoginSessions {
    given: Mutex<VecDeque<(String, Instant)>>,
}

impl LoginSessions {
    /// A new session id, kept from `now`.
    pub fn open(&self, now: Instant) -> String {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let mut given = self.given.lock().expect("login sessions lock");
        given.retain(|(_, at)| now.duration_since(*at) < SESSION_LIFETIME);
        if given.len() >= MAX_SESSIONS {
            given.pop_front();
        }
        given.push_back((id.clone(), now));
        id
    }

    /// Whether `id` was given and has not expired at `now`.
    pub fn is_valid(&self, id: &str, now: Instant) -> bool {
        let given = self.given.lock().expect("login sessions lock");
        given.iter().any(|(given, at)| {
            now.duration_since(*at) < SESSION_LIFETIME && constant_time_eq(given, id)
        })
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Failed logins and the checks in flight (see the module documentation).
#[derive(Default)]
pub struct LoginThrottle {
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    failures: VecDeque<Instant>,
    in_flight: usize,
}

/// Why a password is not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotChecked {
    /// Too many failures lately.
    #[error("too many failed admin UI logins lately")]
    TooManyFailures,
    /// Enough checks are running already.
    #[error("too many admin UI logins at once")]
    Busy,
}

impl LoginThrottle {
    /// Take a place for a check at `now`; give it back with [`LoginThrottle::finished`].
    pub fn begin(&self, now: Instant) -> Result<(), NotChecked> {
        let mut state = self.state.lock().expect("login throttle lock");
        while state
            .failures
            .front()
            .is_some_and(|at| now.duration_since(*at) >= FAILURE_WINDOW)
        {
            state.failures.pop_front();
        }
        if state.failures.len() >= MAX_FAILURES {
            return Err(NotChecked::TooManyFailures);
        }
        if state.in_flight >= MAX_CHECKS_IN_FLIGHT {
            return Err(NotChecked::Busy);
        }
        state.in_flight += 1;
        Ok(())
    }

    /// A check begun earlier ended at `now`, `ok` or not.
    pub fn finished(&self, ok: bool, now: Instant) {
        let mut state = self.state.lock().expect("login throttle lock");
        state.in_flight = state.in_flight.saturating_sub(1);
        if !ok {
            state.failures.push_back(now);
        }
    }

    /// Count a failure that needed no check (a wrong username) at `now`.
    pub fn failed(&self, now: Instant) {
        self.state
            .lock()
            .expect("login throttle lock")
            .failures
            .push_back(now);
    }
}

/// Whether `password` matches the bcrypt `hash`, checked on the blocking thread pool. A hash
/// that cannot be read (checked at start, so never) or a failed task is a mismatch.
pub fn check_password(password: String, hash: String) -> impl Future<Output = bool> {
    let task = actix_web::rt::task::spawn_blocking(move || bcrypt::verify(password, &hash));
    async move { matches!(task.await, Ok(Ok(true))) }
}

/// How many session ids are kept, for tests.
#[cfg(test)]
fn kept(sessions: &LoginSessions) -> usize {
    sessions.given.lock().unwrap().len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_offer_is_a_session_id_or_a_username_and_password() {
        let session = json!({"sessionId": "abc", "password": "x"});
        assert_eq!(Offered::read(Some(&session)), Offered::Session("abc"));
        let login = json!({"username": "ops", "password": "pw", "sessionId": ""});
        let expected = Offered::Password {
            username: "ops",
            password: "pw",
        };
        assert_eq!(Offered::read(Some(&login)), expected);
        let huge = json!({"username": "ops", "password": "x".repeat(MAX_PASSWORD_BYTES + 1)});
        for nothing in [
            json!("ops:pw"),
            json!([1, 2]),
            json!({"username": "ops"}),
            json!({"username": 1, "password": "pw"}),
            huge,
        ] {
            assert_eq!(Offered::read(Some(&nothing)), Offered::Nothing, "{nothing}");
        }
        assert_eq!(Offered::read(None), Offered::Nothing);
    }

    #[test]
    fn session_ids_are_valid_until_they_expire_and_are_bounded() {
        let sessions = LoginSessions::default();
        let t0 = Instant::now();
        let id = sessions.open(t0);
        assert_eq!(id.len(), 22);
        assert!(sessions.is_valid(&id, t0 + Duration::from_secs(60)));
        assert!(!sessions.is_valid("other", t0));
        assert!(!sessions.is_valid(&id, t0 + SESSION_LIFETIME));
        for _ in 0..MAX_SESSIONS + 5 {
            sessions.open(t0);
        }
        assert_eq!(kept(&sessions), MAX_SESSIONS);
        assert!(!sessions.is_valid(&id, t0), "the oldest was dropped");
    }

    #[test]
    fn failures_stop_checks_for_a_while_and_checks_in_flight_are_bounded() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        for _ in 0..MAX_CHECKS_IN_FLIGHT {
            throttle.begin(t0).unwrap();
        }
        assert_eq!(throttle.begin(t0), Err(NotChecked::Busy));
        for _ in 0..MAX_CHECKS_IN_FLIGHT {
            throttle.finished(false, t0);
        }
        for _ in MAX_CHECKS_IN_FLIGHT..MAX_FAILURES {
            throttle.failed(t0);
        }
        assert_eq!(throttle.begin(t0), Err(NotChecked::TooManyFailures));
        assert_eq!(throttle.begin(t0 + FAILURE_WINDOW), Ok(()));
        throttle.finished(true, t0 + FAILURE_WINDOW);
    }
}
