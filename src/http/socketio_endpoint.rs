//! The Socket.IO endpoint at `/socket.io/` and `/ws/`, and at `/` for requests whose query
//! carries `EIO=` (a dev proxy that strips `/ws` sends those) — Engine.IO's HTTP side; the codec
//! is [`crate::protocol::engineio`]: validates each request and hands it to a transport: a new session over WebSocket or long-polling, a poll (GET) or packets (POST)
//! of a polling session, or a polling session's upgrade to WebSocket.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::{header, Method};
use actix_web::{guard, web, HttpRequest, HttpResponse, ResponseError};

use crate::auth::HandshakeTokens;
use crate::disconnect::CloseReason;
use crate::http::body::{self, BodyError};
use crate::http::error::ApiError;
use crate::http::{cors, same_origin, AppState};
use crate::protocol::engineio::{self, EioError};
use crate::session::{SessionContext, SocketSession};
use crate::transport::polling::{
    encode_poll_payload, ClaimUpgrade, EndSession, LongPoll, PollAnswer, PollingSession,
    PostPayload,
};
use crate::transport::websocket::{self, WsTransport};

/// The paths socket.io-client may use: the default and the admin console's `/ws`.
pub const PATHS: [&str; 4] = ["/socket.io/", "/socket.io", "/ws/", "/ws"];

/// Which sessions an endpoint opens.
pub struct Endpoint {
    /// Their shared context (and so their mode).
    pub sessions: Arc<SessionContext>,
}

/// Mount an Engine.IO endpoint at `paths` opening sessions with `sessions`.
pub fn configure(cfg: &mut web::ServiceConfig, paths: &[&str], sessions: Arc<SessionContext>) {
    let endpoint = web::Data::new(Endpoint { sessions });
    // One resource per path: a plain path is matched by comparing strings, where one resource
    // for several paths is matched with a regular expression on every request.
    for path in paths {
        cfg.service(resource(path, &endpoint));
    }
}

/// Mount an Engine.IO endpoint at `/` for the requests whose query carries `EIO=` (what
/// socket.io-client sends through a proxy that rewrites its path away); other requests to `/`
/// keep the fallback's answer.
pub fn configure_root(cfg: &mut web::ServiceConfig, sessions: Arc<SessionContext>) {
    let endpoint = web::Data::new(Endpoint { sessions });
    cfg.service(
        resource("/", &endpoint)
            .guard(guard::fn_guard(|ctx| has_eio_param(ctx.head().uri.query()))),
    );
}

/// Whether a query string has an `EIO` parameter.
fn has_eio_param(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|param| param.starts_with("EIO=")))
}

/// The Engine.IO resource at `path`.
fn resource(
    path: &str,
    endpoint: &web::Data<Endpoint>,
) -> actix_web::Resource<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::resource(path)
        .app_data(endpoint.clone())
        .wrap(actix_web::middleware::from_fn(cors::add_headers))
        .route(web::get().to(get))
        .route(web::post().to(post))
        .route(web::method(Method::OPTIONS).to(cors::preflight))
        .default_service(web::to(|| async {
            eio_error(EioError::BadHandshakeMethod)
        }))
}

/// An Engine.IO error answer: `{"code": N, "message": "..."}` with its HTTP status.
pub fn eio_error(e: EioError) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(e.http_status())
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(status)
        .content_type("application/json")
        .body(e.json())
}

/// An Engine.IO error as an actix error (for the query extractor).
#[derive(Debug)]
struct Rejected(EioError);

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.message())
    }
}

impl actix_web::ResponseError for Rejected {
    fn error_response(&self) -> HttpResponse {
        eio_error(self.0)
    }
}

/// The handshake query parameters pushgate reads; extracting them checks `EIO` and
/// `transport`.
struct EioQuery {
    transport: Transport,
    sid: Option<String>,
    token: Option<String>,
}

#[derive(PartialEq)]
enum Transport {
    Polling,
    WebSocket,
}

impl EioQuery {
    fn parse(query: &str) -> Result<Self, EioError> {
        let mut map = web::Query::<HashMap<String, String>>::from_query(query)
            .map_err(|_| EioError::BadRequest)?
            .into_inner();
        if map.get("EIO").map(String::as_str) != Some("4") {
            return Err(EioError::UnsupportedProtocolVersion);
        }
        let transport = match map.get("transport").map(String::as_str) {
            Some("polling") => Transport::Polling,
            Some("websocket") => Transport::WebSocket,
            _ => return Err(EioError::TransportUnknown),
        };
        Ok(EioQuery {
            transport,
            sid: map.remove("sid"),
            token: map.remove("token"),
        })
    }
}

impl actix_web::FromRequest for EioQuery {
    type Error = Rejected;
    type Future = std::future::Ready<Result<Self, Rejected>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(EioQuery::parse(req.query_string()).map_err(Rejected))
    }
}

/// A new session for a handshake, holding a pending slot until its CONNECT is accepted; the
/// `503` answer when `MAX_PENDING_SESSIONS` sessions already wait for theirs.
fn new_session(
    req: &HttpRequest,
    state: &AppState,
    endpoint: &Endpoint,
    q: &EioQuery,
) -> Result<SocketSession, ApiError> {
    let Some(slot) = state.pending_sessions.try_acquire() else {
        let limit = state.config.limits.max_pending_sessions;
        return Err(ApiError::PendingSessionsFull(limit));
    };
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let tokens = HandshakeTokens::new(q.token.as_deref(), authorization);
    let mut session = SocketSession::new(endpoint.sessions.clone(), tokens);
    session.pending_slot = Some(slot);
    if endpoint.sessions.admin_ui.is_some() {
        let transport = match q.transport {
            Transport::Polling => "polling",
            Transport::WebSocket => "websocket",
        };
        session.describe_for_admin_ui(crate::admin_ui::handshake::describe(req), transport);
    }
    Ok(session)
}

async fn get(
    req: HttpRequest,
    q: EioQuery,
    state: web::Data<AppState>,
    endpoint: web::Data<Endpoint>,
) -> HttpResponse {
    match (&q.transport, &q.sid) {
        (Transport::WebSocket, _) => upgrade(req, state, endpoint, q).await,
        (Transport::Polling, None) => match new_session(&req, &state, &endpoint, &q) {
            Ok(session) => polling_response(PollingSession::open(session, state.polling.clone())),
            Err(unavailable) => unavailable.error_response(),
        },
        (Transport::Polling, Some(sid)) => poll(&state, sid).await,
    }
}

fn polling_response(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=UTF-8")
        .body(body)
}

async fn poll(state: &AppState, sid: &str) -> HttpResponse {
    let Some(session) = state.polling.get(sid) else {
        return eio_error(EioError::UnknownSid);
    };
    match session.addr.send(LongPoll).await {
        Ok(Ok(PollAnswer::Ready(packets))) => polling_response(encode_poll_payload(&packets)),
        // The answer is a body that waits for the packets: when the client goes away, actix
        // drops the body, the receiver with it, and the session keeps the packets for the next
        // GET (a handler future would not be dropped, and would swallow them).
        Ok(Ok(PollAnswer::Wait(rx))) => HttpResponse::Ok()
            .content_type("text/plain; charset=UTF-8")
            .streaming(futures::stream::once(async move {
                let packets = rx.await.unwrap_or_else(|_| {
                    // The session ended without answering: tell the client it is closed.
                    vec![crate::session::Outbound::Text(engineio::CLOSE.into())]
                });
                Ok::<_, std::convert::Infallible>(web::Bytes::from(encode_poll_payload(&packets)))
            })),
        Ok(Err(e)) => eio_error(e),
        Err(_) => eio_error(EioError::UnknownSid),
    }
}

async fn upgrade(
    req: HttpRequest,
    state: web::Data<AppState>,
    endpoint: web::Data<Endpoint>,
    q: EioQuery,
) -> HttpResponse {
    // Browsers always send Origin; a foreign one is refused unless it is this host itself.
    // No Origin: not a browser.
    if req.headers().contains_key(header::ORIGIN)
        && cors::allowed_origin(&req, &state.config.cors).is_none()
        && !same_origin::is_same_origin(&req)
    {
        return eio_error(EioError::Forbidden);
    }
    if !websocket::is_handshake(&req) {
        return eio_error(EioError::BadRequest);
    }
    let Some(sid) = &q.sid else {
        return match new_session(&req, &state, &endpoint, &q) {
            Ok(session) => WsTransport::owner(session).start(&req),
            Err(unavailable) => unavailable.error_response(),
        };
    };
    let Some(session) = state.polling.get(sid) else {
        return eio_error(EioError::UnknownSid);
    };
    match session.addr.send(ClaimUpgrade).await {
        Ok(true) => {
            WsTransport::carrier(session.addr, endpoint.sessions.engine.max_payload).start(&req)
        }
        Ok(false) => WsTransport::refused().start(&req),
        Err(_) => eio_error(EioError::UnknownSid),
    }
}

async fn post(
    req: HttpRequest,
    q: EioQuery,
    payload: web::Payload,
    state: web::Data<AppState>,
    endpoint: web::Data<Endpoint>,
) -> HttpResponse {
    let Some(sid) = q.sid.as_deref() else {
        return eio_error(EioError::BadHandshakeMethod);
    };
    let Some(session) = state.polling.get(sid) else {
        return eio_error(EioError::UnknownSid);
    };
    let addr = session.addr.clone();
    if q.transport != Transport::Polling {
        return eio_error(EioError::BadRequest);
    }
    // A POST that cannot be taken ends the session, for `reason`, and answers `response`.
    let end = |reason, response| {
        addr.do_send(EndSession { reason });
        response
    };
    // Spec: a client MUST NOT have two POSTs in flight; if it does, 400, and the session ends.
    let Some(_posting) = session.begin_post() else {
        return end(CloseReason::ProtocolError, eio_error(EioError::BadRequest));
    };
    let limit = endpoint.sessions.engine.max_payload;
    let bytes = match body::read_limited(&req, payload, limit, &state).await {
        Ok(bytes) => bytes,
        Err(BodyError::Read(_)) => {
            return end(CloseReason::TransportError, eio_error(EioError::BadRequest))
        }
        // As when the connection breaks mid-body (engine.io ends the session then too): the
        // client is gone or hostile, and it holds the session's one POST until answered.
        Err(timed_out @ BodyError::TimedOut(_)) => {
            log::debug!("polling session {sid}: {timed_out}");
            let timeout = HttpResponse::RequestTimeout()
                .force_close()
                .content_type("application/json")
                .body(r#"{"code":3,"message":"Request body timeout"}"#);
            return end(CloseReason::TransportError, timeout);
        }
        Err(BodyError::TooLarge(_)) => {
            let too_large = HttpResponse::PayloadTooLarge()
                .content_type("application/json")
                .body(r#"{"code":3,"message":"Payload too large"}"#);
            return end(CloseReason::PayloadTooLarge, too_large);
        }
    };
    let Ok(text) = engineio::payload_str(&bytes) else {
        return end(CloseReason::ProtocolError, eio_error(EioError::BadRequest));
    };
    match addr
        .send(PostPayload {
            body: text.to_owned(),
        })
        .await
    {
        Ok(Ok(())) => HttpResponse::Ok()
            .content_type("text/html; charset=UTF-8")
            .body("ok"),
        Ok(Err(e)) => eio_error(e),
        Err(_) => eio_error(EioError::UnknownSid),
    }
}
