//! The Socket.IO Admin UI's server side (docs/admin-ui.md): what every session shares to serve the
//! `/admin` namespace the official `@socket.io/admin-ui` UI connects to.
//!
//! The namespace itself is in [`crate::session`] (`session/admin_ui.rs`); what the UI is shown
//! is kept by [`pushgate_actors::admin_view::AdminView`]. Here: the login ([`login`]: the bcrypt
//! check run off the session's thread, failed attempts throttled, session ids kept in memory)
//! and the handshake a socket is shown with ([`handshake`], its secrets removed).

pub mod handshake;
pub mod login;

use actix::Addr;
use pushgate_actors::admin_view::AdminView;

use crate::config::AdminUiConfig;
use login::{LoginSessions, LoginThrottle};

/// The features a read-write UI is told it may use: join and leave a room, disconnect, each
/// for one socket or for every socket of a room. Not `EMIT` (pushgate's clients are only
/// pushed to through its API), nor `AGGREGATED_EVENTS` / `ALL_EVENTS` (per-packet counts and
/// every client event: not kept, so that the push path stays as it is).
pub const READ_WRITE_FEATURES: [&str; 6] = [
    "JOIN",
    "LEAVE",
    "DISCONNECT",
    "MJOIN",
    "MLEAVE",
    "MDISCONNECT",
];

/// What every session shares to serve `/admin`.
pub struct AdminUi {
    /// The login and whether the UI may act.
    pub config: AdminUiConfig,
    /// Session ids given to logged-in UIs.
    pub sessions: LoginSessions,
    /// Failed logins, and password checks in flight.
    pub throttle: LoginThrottle,
    /// The view of the node's sockets.
    pub view: Addr<AdminView>,
}

impl AdminUi {
    /// The admin UI for `config`, showing `view`.
    pub fn new(config: AdminUiConfig, view: Addr<AdminView>) -> Self {
        AdminUi {
            config,
            sessions: LoginSessions::default(),
            throttle: LoginThrottle::default(),
            view,
        }
    }

    /// The features the UI is told it may use (`config`'s `supportedFeatures`): none when
    /// read-only.
    pub fn features(&self) -> &'static [&'static str] {
        if self.config.readonly {
            &[]
        } else {
            &READ_WRITE_FEATURES
        }
    }
}
