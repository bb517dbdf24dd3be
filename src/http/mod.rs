//! The HTTP edge: the Engine.IO endpoint, the push API, the probes, and their shared state.

pub mod api;
pub mod cors;
pub mod engineio;
pub mod error;
pub mod probes;

use std::sync::Arc;

use actix::Addr;
use actix_web::web;
use pushgate_actors::metrics::Metrics;
use pushgate_actors::readiness::Readiness;
use pushgate_actors::RoomSupervisor;

use crate::config::Config;
use crate::session::SessionContext;

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
}

/// Mount every route, with a JSON 404 for anything else.
pub fn configure(cfg: &mut web::ServiceConfig) {
    probes::configure(cfg);
    api::configure(cfg);
    engineio::configure(cfg);
}
