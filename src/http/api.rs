//! The service-to-service push API (`/api/v1`), guarded by `PUSH_API_KEY`; and, beside it, a
//! user's event stream (`GET /api/v1/stream`, `http/sse.rs`), authenticated with the user's JWT.
//!
//! Errors are checked in the documented order: unknown route (404) and wrong method (405) by
//! [`ApiRoute::parse`], then disabled API (403), API key (401), body size (413), body shape
//! (400).
//!
//! The routes are matched by hand, segment by segment, rather than by actix-router: its
//! patterns with a `{param}` are regular expressions, and matching them was about a quarter of
//! the instructions of an HTTP push to one user (BENCHMARKS.md, finding 15). The path is parsed
//! once ([`RoutedPath::parse`]), into the route and its raw `{param}`, which is percent-decoded
//! exactly once, when its handler reaches the path's place in the documented order
//! ([`RoutedPath::param`]).

use std::sync::Arc;

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use pushgate_actors::{Accepted, GetStats, Push, PushEvent, PushSource, PushTarget, RoomSize};
use serde_json::json;
use serde_json::value::RawValue;

use crate::acl;
use crate::http::body::{self, BodyError};
use crate::http::error::{method_not_allowed, not_found, ApiError};
use crate::http::{cors, sse, AppState};

/// Where the API lives.
const PREFIX: &str = "/api/v1";

/// Mount the API: one scope whose requests are all routed by [`dispatch`].
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(PREFIX)
            .wrap(actix_web::middleware::from_fn(cors::add_headers))
            .default_service(web::to(dispatch)),
    );
}

/// The API's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApiRoute {
    /// One of the four push routes (`POST`).
    Push(PushRoute),
    /// `GET /rooms/{room}`.
    RoomSize,
    /// `GET /stats`.
    Stats,
    /// `GET /services`: the service-health snapshot (docs/socketio.md).
    Services,
    /// `GET /stream`: the caller's pushes as Server-Sent Events (`http/sse.rs`).
    Stream,
}

/// A request path parsed once: its route and its `{param}` segment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RoutedPath {
    /// The route.
    route: ApiRoute,
    /// The route's `{param}` (a user id or a room) as raw, still percent-encoded text; empty
    /// for the routes without one.
    raw_param: String,
}

impl RoutedPath {
    /// The route of a request path, if it is one (each `{param}` one non-empty segment).
    fn parse(path: &str) -> Option<RoutedPath> {
        let rest = path.strip_prefix(PREFIX)?.strip_prefix('/')?;
        let mut segments = rest.split('/');
        let segments = [
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ];
        let (route, raw_param) = match segments {
            [Some("users"), Some(id), Some("notifications"), None] if !id.is_empty() => {
                (ApiRoute::Push(PushRoute::User), id)
            }
            [Some("rooms"), Some(room), Some("messages"), None] if !room.is_empty() => {
                (ApiRoute::Push(PushRoute::RoomMessage), room)
            }
            [Some("rooms"), Some(room), Some("notifications"), None] if !room.is_empty() => {
                (ApiRoute::Push(PushRoute::RoomNotification), room)
            }
            [Some("broadcast"), None, None, None] => (ApiRoute::Push(PushRoute::Broadcast), ""),
            [Some("rooms"), Some(room), None, None] if !room.is_empty() => {
                (ApiRoute::RoomSize, room)
            }
            [Some("stats"), None, None, None] => (ApiRoute::Stats, ""),
            [Some("services"), None, None, None] => (ApiRoute::Services, ""),
            [Some("stream"), None, None, None] => (ApiRoute::Stream, ""),
            _ => return None,
        };
        Some(RoutedPath {
            route,
            raw_param: raw_param.to_owned(),
        })
    }

    /// The `{param}`, percent-decoded (strictly: `%25`, `%2F` and invalid UTF-8 included).
    fn param(&self) -> Result<String, ApiError> {
        percent_decode(&self.raw_param)
    }

    /// The `{room}` param, which must be a room a push may target.
    fn room(&self) -> Result<String, ApiError> {
        let room = self.param()?;
        if acl::is_valid_target_room(&room) {
            Ok(room)
        } else {
            Err(ApiError::BadRequest(acl::INVALID_ROOM_NAME.into()))
        }
    }
}

impl ApiRoute {
    fn method(self) -> Method {
        match self {
            ApiRoute::Push(_) => Method::POST,
            ApiRoute::RoomSize | ApiRoute::Stats | ApiRoute::Services | ApiRoute::Stream => {
                Method::GET
            }
        }
    }
}

/// Route one API request: 404 for an unknown route, a CORS preflight for `OPTIONS` on a known
/// one, 405 for another method, else the route's handler.
async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(path) = RoutedPath::parse(req.path()) else {
        return Ok(not_found(req).await);
    };
    if req.method() == Method::OPTIONS {
        return Ok(cors::preflight(req, state).await);
    }
    if *req.method() != path.route.method() {
        return Ok(method_not_allowed(req).await);
    }
    match path.route {
        ApiRoute::Push(route) => push(req, payload, state, route, &path).await,
        ApiRoute::RoomSize => room_size(req, state, &path).await,
        ApiRoute::Stats => stats(req, state).await,
        ApiRoute::Services => services(req, state).await,
        ApiRoute::Stream => sse::stream(req, state).await,
    }
}

/// Constant-time comparison (`subtle`), so the key cannot be guessed byte by byte from
/// response times; only a length mismatch answers early.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// 403 when the API is disabled, 401 unless `X-API-Key` or `Authorization: Bearer` (the scheme
/// in any case) holds the key.
fn check_key(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let Some(key) = state.config.push_api_key.as_deref() else {
        return Err(ApiError::PushApiDisabled);
    };
    let headers = req.headers();
    let given = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(crate::auth::bearer_token)
        });
    match given {
        Some(g) if same_key(g.trim().as_bytes(), key.as_bytes()) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

/// Read the body, at most `PUSH_MAX_BODY_BYTES` (413 beyond), within `HTTP_BODY_TIMEOUT_MS`
/// (408 and the connection closed beyond).
async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<web::BytesMut, ApiError> {
    body::read_limited(req, payload, state.config.push_max_body_bytes, state)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge(limit) => ApiError::PayloadTooLarge(limit),
            read @ BodyError::Read(_) => ApiError::BadRequest(read.to_string()),
            BodyError::TimedOut(timeout) => ApiError::BodyTimeout(timeout.as_millis()),
        })
}

/// Check that `body` is one JSON object; returns its text, which is pushed verbatim
/// (serialized once, never re-encoded).
fn json_object(body: &[u8]) -> Result<Arc<str>, ApiError> {
    let raw: &RawValue = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    if !raw.get().starts_with('{') {
        return Err(ApiError::BadRequest("body must be a JSON object".into()));
    }
    Ok(Arc::from(raw.get()))
}

/// The four push routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PushRoute {
    /// `POST /users/{userId}/notifications`: `notification` to `user:<userId>`.
    User,
    /// `POST /rooms/{room}/messages`: `message` to the room.
    RoomMessage,
    /// `POST /rooms/{room}/notifications`: `notification` to the room.
    RoomNotification,
    /// `POST /broadcast`: `notification` to every session.
    Broadcast,
}

/// One push route: key (401), body size (413), path, then body (400, in the documented order),
/// then hand the push to the supervisor; answers `202 {"clients": n}`.
async fn push(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    route: PushRoute,
    path: &RoutedPath,
) -> Result<HttpResponse, ApiError> {
    check_key(&req, &state)?;
    let body = read_body(&req, payload, &state).await?;
    let (target, event) = match route {
        PushRoute::User => {
            let user = path.param()?;
            let user = acl::parse_user_id(Some(&serde_json::Value::String(user)))
                .map_err(|r| ApiError::BadRequest(r.to_string()))?;
            (
                PushTarget::Room(acl::user_room(&user)),
                PushEvent::Notification,
            )
        }
        PushRoute::RoomMessage => (PushTarget::Room(path.room()?), PushEvent::Message),
        PushRoute::RoomNotification => (PushTarget::Room(path.room()?), PushEvent::Notification),
        PushRoute::Broadcast => (PushTarget::Everyone, PushEvent::Notification),
    };
    let body = json_object(&body)?;
    let push = Push {
        target,
        event,
        payload: body,
        priority: false,
        accepted: Accepted::now(PushSource::Http),
    };
    let clients = match &state.cluster {
        Some(cluster) => {
            cluster
                .push(push, &state.supervisor, &state.metrics)
                .await?
        }
        None => state
            .supervisor
            .send(push)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?,
    };
    Ok(HttpResponse::Accepted().json(json!({ "clients": clients })))
}

/// Decode `%XX` escapes; malformed escapes and invalid UTF-8 are errors.
fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ApiError::BadRequest("malformed percent-encoding in path".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::BadRequest("path is not UTF-8".into()))
}

async fn room_size(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: &RoutedPath,
) -> Result<HttpResponse, ApiError> {
    check_key(&req, &state)?;
    let room = path.room()?;
    let clients = match &state.cluster {
        Some(cluster) => cluster.room_size(room.clone(), &state.supervisor).await?,
        None => state
            .supervisor
            .send(RoomSize { room: room.clone() })
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?,
    };
    Ok(HttpResponse::Ok().json(json!({ "room": room, "clients": clients })))
}

/// Sessions, rooms, per-event counters, the push statistics by event and source, and the
/// busiest rooms of the last minute (see the README's API section for the shape); in cluster
/// mode the whole cluster's sessions and rooms, and each node.
async fn stats(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    check_key(&req, &state)?;
    if let Some(cluster) = &state.cluster {
        return Ok(HttpResponse::Ok().json(cluster.stats(&state.supervisor).await?));
    }
    let stats = state
        .supervisor
        .send(GetStats)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(HttpResponse::Ok().json(stats))
}

/// The `service.health.snapshot` a client joining `admin` gets; 503 when Consul is not
/// watched.
async fn services(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    check_key(&req, &state)?;
    let board = state
        .sessions
        .service_health
        .as_ref()
        .ok_or(ApiError::ServiceHealthOff)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(board.snapshot()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("user%3A42").unwrap(), "user:42");
        assert_eq!(percent_decode("a%2Fb").unwrap(), "a/b");
        assert_eq!(percent_decode("plain").unwrap(), "plain");
        assert!(percent_decode("bad%2").is_err());
        assert!(percent_decode("bad%zz").is_err());
        assert!(percent_decode("%ff").is_err());
    }

    #[test]
    fn routes_are_whole_segments_under_the_prefix() {
        use ApiRoute::*;
        let routed = |route, raw_param: &str| {
            Some(RoutedPath {
                route,
                raw_param: raw_param.into(),
            })
        };
        let cases = [
            (
                "/api/v1/users/42/notifications",
                routed(Push(PushRoute::User), "42"),
            ),
            (
                "/api/v1/users/a%2Fb/notifications",
                routed(Push(PushRoute::User), "a%2Fb"),
            ),
            (
                "/api/v1/rooms/admin/messages",
                routed(Push(PushRoute::RoomMessage), "admin"),
            ),
            (
                "/api/v1/rooms/user%3A42/notifications",
                routed(Push(PushRoute::RoomNotification), "user%3A42"),
            ),
            ("/api/v1/broadcast", routed(Push(PushRoute::Broadcast), "")),
            ("/api/v1/rooms/admin", routed(RoomSize, "admin")),
            ("/api/v1/stats", routed(Stats, "")),
            ("/api/v1/services", routed(Services, "")),
            ("/api/v1/stream", routed(Stream, "")),
            ("/api/v1/stream/", None),
            ("/api/v1/services/web", None),
            ("/api/v1/users//notifications", None),
            ("/api/v1/users/42/notifications/", None),
            ("/api/v1/users/42", None),
            ("/api/v1/rooms/", None),
            ("/api/v1/rooms", None),
            ("/api/v1/stats/", None),
            ("/api/v1/broadcast/x", None),
            ("/api/v1/", None),
            ("/api/v1", None),
            ("/api/v10/stats", None),
            ("/api/v2/stats", None),
            ("/api/v1//stats", None),
            ("/API/v1/stats", None),
        ];
        for (path, route) in cases {
            assert_eq!(RoutedPath::parse(path), route, "{path}");
        }
        assert_eq!(Push(PushRoute::User).method(), Method::POST);
        assert_eq!(Stats.method(), Method::GET);
        assert_eq!(Services.method(), Method::GET);
    }

    #[test]
    fn key_comparison() {
        assert!(same_key(b"abc", b"abc"));
        assert!(!same_key(b"abc", b"abd"));
        assert!(!same_key(b"abc", b"abcd"));
        assert!(!same_key(b"", b"a"));
    }
}
