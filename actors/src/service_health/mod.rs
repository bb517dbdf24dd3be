//! Service health from Consul (docs/socketio.md), the parts that do not speak HTTP: the state of
//! Consul's `/v1/health/state/any` answer ([`health_state`]), the debounce that decides which
//! status changes admins are told about ([`debounce`]), the two notification bodies
//! ([`notices`]), the snapshot a joining admin and the API read ([`board`]) and the retry
//! delays ([`backoff`]). The blocking queries themselves are an edge actor of the server crate
//! (`src/consul_watcher.rs`), which pushes through the room supervisor.

pub mod backoff;
pub mod board;
pub mod debounce;
pub mod health_state;
pub mod notices;

pub use backoff::Backoff;
pub use board::HealthBoard;
pub use debounce::{Debounce, Transition};
pub use health_state::{
    next_index, parse_health_state, Check, HealthState, Instance, InstanceKey, MalformedAnswer,
    Status,
};
