//! The Consul watcher (docs/socketio.md): an edge actor that follows Consul's service health with
//! blocking queries and tells admins about each announced change.
//!
//! It asks `GET {CONSUL_URL}/v1/health/state/any?index=N&wait=60s` (with `X-Consul-Token`
//! when `CONSUL_TOKEN` is set), the way Consul's HTTP API documents blocking queries: Consul
//! holds the request until its state moves past index `N` or the wait elapses, and answers
//! with the current checks and the new index in `X-Consul-Index`; the next query carries that
//! index ([`next_index`]: one that went backwards starts over at 0). Each answer goes through
//! the [`Debounce`]; each change it announces is pushed to room `admin` as a
//! `service.health.changed` notification through the room supervisor, and the snapshot on the
//! [`HealthBoard`] is rewritten. A failed query (Consul down, an error status, a malformed
//! answer) is logged on one line and retried after the [`Backoff`] (500 ms doubling, at most
//! 30 s); `/ready` shows `consul: unreachable` and `pushgate_consul_up` is 0 until a query is
//! answered again.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use pushgate_actors::metrics::Metrics;
use pushgate_actors::readiness::{ConsulState, Readiness};
use pushgate_actors::routing::ADMIN_ROOM;
use pushgate_actors::service_health::{
    next_index, notices, parse_health_state, Backoff, Debounce, HealthBoard, HealthState,
    MalformedAnswer,
};
use pushgate_actors::{Accepted, Push, PushEvent, PushSource, PushTarget, RoomSupervisor};

use crate::config::ConsulConfig;

/// How long Consul may hold one blocking query waiting for a change (`wait=`).
pub const BLOCKING_WAIT: Duration = Duration::from_secs(60);
/// Consul adds up to a sixteenth of the wait as jitter; a query is given up after the wait,
/// that jitter and this margin.
const ANSWER_MARGIN: Duration = Duration::from_secs(10);
/// The largest answer read (a cluster's every check).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Why a query brought no usable state.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No answer: Consul cannot be reached, or the answer did not come in time.
    #[error("no answer: {0}")]
    NoAnswer(String),
    /// Consul answered with an error status (e.g. 403 for a missing or wrong token).
    #[error("answered HTTP {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The answer lacks a numeric `X-Consul-Index`.
    #[error("the answer has no numeric X-Consul-Index header")]
    MissingIndex,
    /// The answer's body could not be read.
    #[error("reading the answer: {0}")]
    Body(String),
    /// The body is not what Consul documents.
    #[error(transparent)]
    Malformed(#[from] MalformedAnswer),
}

/// One answered query: the index it carried and the state it described.
struct Answer {
    index: u64,
    state: HealthState,
}

/// The watcher.
pub struct ConsulWatcher {
    settings: ConsulConfig,
    supervisor: Addr<RoomSupervisor>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    board: Arc<HealthBoard>,
    /// Made when the actor starts, on its own thread (the client is not `Send`).
    client: Option<awc::Client>,
    index: u64,
    backoff: Backoff,
    debounce: Debounce,
    /// The timer for the next pending change, if one is set.
    flush_timer: Option<SpawnHandle>,
}

impl ConsulWatcher {
    /// A watcher for `settings`, pushing through `supervisor` and writing `board`.
    pub fn new(
        settings: ConsulConfig,
        supervisor: Addr<RoomSupervisor>,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        board: Arc<HealthBoard>,
    ) -> Self {
        let debounce = Debounce::new(settings.debounce);
        ConsulWatcher {
            settings,
            supervisor,
            metrics,
            readiness,
            board,
            client: None,
            index: 0,
            backoff: Backoff::default(),
            debounce,
            flush_timer: None,
        }
    }

    /// Send the next blocking query; its answer comes back to [`ConsulWatcher::answered`].
    fn query(&mut self, ctx: &mut Context<Self>) {
        let client = self.client.get_or_insert_with(awc::Client::new).clone();
        let url = format!(
            "{}/v1/health/state/any?index={}&wait={}s",
            self.settings.url,
            self.index,
            BLOCKING_WAIT.as_secs()
        );
        let mut request = client
            .get(url)
            .timeout(BLOCKING_WAIT + BLOCKING_WAIT / 16 + ANSWER_MARGIN);
        if let Some(token) = &self.settings.token {
            request = request.insert_header(("X-Consul-Token", token.as_str()));
        }
        ctx.spawn(
            fetch(request)
                .into_actor(self)
                .map(|result, act, ctx| act.answered(result, ctx)),
        );
    }

    fn answered(&mut self, result: Result<Answer, QueryError>, ctx: &mut Context<Self>) {
        match result {
            Ok(answer) => {
                if self.readiness.consul() != ConsulState::Watching {
                    log::info!("consul: watching {}", self.settings.url);
                }
                self.set_up(true);
                self.backoff.succeeded();
                self.index = next_index(self.index, answer.index);
                self.debounce.observe(answer.state, Instant::now());
                self.flush(ctx);
                self.query(ctx);
            }
            Err(e) => {
                self.set_up(false);
                let delay = self.backoff.failed();
                log::warn!(
                    "consul: {} at {}; asking again in {delay:?}",
                    e,
                    self.settings.url
                );
                ctx.run_later(delay, |act, ctx| act.query(ctx));
            }
        }
    }

    fn set_up(&self, up: bool) {
        let state = if up {
            ConsulState::Watching
        } else {
            ConsulState::Unreachable
        };
        self.readiness.set_consul(state);
        self.metrics.consul_up.set(i64::from(up));
    }

    /// Push the changes that fell due, rewrite the snapshot, and set the timer for the next.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let now = SystemTime::now();
        for transition in self.debounce.due(Instant::now()) {
            log::info!(
                "consul: {} {} on {}: {:?} -> {:?}",
                transition.key.service,
                transition.key.service_id,
                transition.key.node,
                transition.old_status,
                transition.new_status
            );
            self.supervisor.do_send(Push {
                target: PushTarget::Room(ADMIN_ROOM.to_owned()),
                event: PushEvent::Notification,
                payload: Arc::from(notices::changed(&transition, now)),
                // Not one of the alerts docs/limits.md puts first; a room window may hold it.
                priority: false,
                accepted: Accepted::now(PushSource::Consul),
            });
        }
        self.board.publish(&self.debounce);
        if let Some(timer) = self.flush_timer.take() {
            ctx.cancel_future(timer);
        }
        if let Some(deadline) = self.debounce.next_deadline() {
            let delay = deadline.saturating_duration_since(Instant::now());
            self.flush_timer = Some(ctx.run_later(delay, |act, ctx| {
                act.flush_timer = None;
                act.flush(ctx);
            }));
        }
    }
}

/// Send one query and read its answer.
async fn fetch(request: awc::ClientRequest) -> Result<Answer, QueryError> {
    let mut response = request
        .send()
        .await
        .map_err(|e| QueryError::NoAnswer(e.to_string()))?;
    let body = response
        .body()
        .limit(MAX_ANSWER_BYTES)
        .await
        .map_err(|e| QueryError::Body(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
        return Err(QueryError::Status {
            status: status.as_u16(),
            body: text.trim().to_owned(),
        });
    }
    let index = response
        .headers()
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or(QueryError::MissingIndex)?;
    Ok(Answer {
        index,
        state: parse_health_state(&body)?,
    })
}

impl Actor for ConsulWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.set_up(false);
        self.query(ctx);
    }
}
