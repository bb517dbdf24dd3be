//! What every session shares, and which behaviour ([`Mode`]) its endpoint serves.

use std::sync::Arc;

use actix::prelude::*;
use pushgate_actors::metrics::Metrics;
use pushgate_actors::service_health::HealthBoard;
use pushgate_actors::RoomSupervisor;

use crate::admin_ui::AdminUi;
use crate::auth::JwtVerifier;
use crate::config::{EngineConfig, Limits};

/// How sessions behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The push gateway: JWT auth, rooms, the four client events.
    Gateway,
    /// What the official Socket.IO protocol test suite expects at `/socket.io/`: no auth, the
    /// `/` and `/custom` namespaces, an `auth` event echoing the CONNECT payload, `message`
    /// answered by `message-back` and `message-with-ack` by an ack (see
    /// [`protocol_suite`](super::protocol_suite)).
    ProtocolTestSuite,
    /// What the official Engine.IO protocol test suite expects at `/engine.io/`: every
    /// Engine.IO message echoed back as it came.
    EngineEcho,
}

/// What every session shares: built once at start.
pub struct SessionContext {
    /// Where sessions register and join rooms.
    pub supervisor: Addr<RoomSupervisor>,
    /// Verifies CONNECT tokens.
    pub verifier: JwtVerifier,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Heartbeat, payload and connect-timeout settings.
    pub engine: EngineConfig,
    /// What one client may cost: its event rate and how many rooms it may hold.
    pub limits: Limits,
    /// Gateway or protocol test-suite behaviour.
    pub mode: Mode,
    /// Whether connection-state recovery is on (`RECOVERY_WINDOW_MS` > 0): CONNECT replies
    /// carry a `pid`, `welcome` says whether the session was recovered.
    pub recovery: bool,
    /// The service-health snapshot a client joining `admin` gets, when Consul is watched.
    pub service_health: Option<Arc<HealthBoard>>,
    /// The Socket.IO Admin UI's `/admin` namespace, when it is configured (gateway mode only).
    pub admin_ui: Option<Arc<AdminUi>>,
}
