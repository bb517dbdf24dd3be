//! The HTTP edge: the Socket.IO endpoint (Engine.IO's HTTP side), the push API, the probes,
//! and their shared state.

pub mod api;
pub mod body;
pub mod cors;
pub mod error;
pub mod pending_sessions;
pub mod probes;
pub mod same_origin;
pub mod socketio_endpoint;
pub mod sse;

use std::sync::Arc;

use actix::Addr;
use actix_web::web;
use pushgate_actors::metrics::Metrics;
use pushgate_actors::readiness::Readiness;
use pushgate_actors::RoomSupervisor;

use crate::config::Config;
use crate::http::pending_sessions::PendingSessions;
use crate::session::SessionContext;
use crate::transport::polling::PollingRegistry;

/// What every route can reach.
pub struct AppState {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// What sessions share (supervisor, verifier, engine settings).
    pub sessions: Arc<SessionContext>,
    /// The room supervisor.
    pub supervisor: Addr<RoomSupervisor>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Consumer readiness.
    pub readiness: Arc<Readiness>,
    /// Open long-polling sessions by sid.
    pub polling: Arc<PollingRegistry>,
    /// The cap on sessions waiting for their CONNECT (`MAX_PENDING_SESSIONS`).
    pub pending_sessions: Arc<PendingSessions>,
    /// Cluster mode (`CLUSTER=rabbitmq`): pushes go into the cluster's log.
    pub cluster: Option<Arc<crate::cluster::ClusterEdge>>,
    /// Protocol test-suite mode only: the Engine.IO echo sessions served at `/engine.io/`.
    pub engine_echo: Option<Arc<SessionContext>>,
}

/// Mount every route (the caller adds the JSON 404 fallback).
pub fn configure(cfg: &mut web::ServiceConfig, state: &AppState) {
    probes::configure(cfg);
    api::configure(cfg);
    socketio_endpoint::configure(cfg, &socketio_endpoint::PATHS, state.sessions.clone());
    socketio_endpoint::configure_root(cfg, state.sessions.clone());
    if let Some(echo) = &state.engine_echo {
        socketio_endpoint::configure(cfg, &["/engine.io/", "/engine.io"], echo.clone());
    }
}
