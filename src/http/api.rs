//! The service-to-service push API (`/api/v1`), guarded by `PUSH_API_KEY`.
//!
//! Errors are checked in the contract's order: unknown route (404) and wrong method (405) by
//! [`ApiRoute::parse`], then disabled API (403), API key (401), body size (413), body shape
//! (400).
//!
//! The routes are matched by hand, segment by segment, rather than by actix-router: its
//! patterns with a `{param}` are regular expressions, and matching them was about a quarter of
//! the instructions of an HTTP push to one user (BENCHMARKS.md, finding 15). Path parameters
//! are percent-decoded by the handlers, exactly once ([`path_param`]).

use std::sync::Arc;

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use pushgate_actors::{GetStats, Push, PushEvent, PushTarget, RoomSize};
use serde_json::json;
use serde_json::value::RawValue;

use crate::acl;
use crate::http::error::{method_not_allowed, not_found, ApiError};
use crate::http::{cors, AppState};

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
}

impl ApiRoute {
    /// The route of a request path, if it is one (each `{param}` one non-empty segment, as
    /// raw, still percent-encoded text).
    fn parse(path: &str) -> Option<ApiRoute> {
        let rest = path.strip_prefix(PREFIX)?.strip_prefix('/')?;
        let mut segments = rest.split('/');
        let segments = [
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ];
        Some(match segments {
            [Some("users"), Some(id), Some("notifications"), None] if !id.is_empty() => {
                ApiRoute::Push(PushRoute::User)
            }
            [Some("rooms"), Some(room), Some("messages"), None] if !room.is_empty() => {
                ApiRoute::Push(PushRoute::RoomMessage)
            }
            [Some("rooms"), Some(room), Some("notifications"), None] if !room.is_empty() => {
                ApiRoute::Push(PushRoute::RoomNotification)
            }
            [Some("broadcast"), None, None, None] => ApiRoute::Push(PushRoute::Broadcast),
            [Some("rooms"), Some(room), None, None] if !room.is_empty() => ApiRoute::RoomSize,
            [Some("stats"), None, None, None] => ApiRoute::Stats,
            _ => return None,
        })
    }

    fn method(self) -> Method {
        match self {
            ApiRoute::Push(_) => Method::POST,
            ApiRoute::RoomSize | ApiRoute::Stats => Method::GET,
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
    let Some(route) = ApiRoute::parse(req.path()) else {
        return Ok(not_found(req).await);
    };
    if req.method() == Method::OPTIONS {
        return Ok(cors::preflight(req, state).await);
    }
    if *req.method() != route.method() {
        return Ok(method_not_allowed(req).await);
    }
    match route {
        ApiRoute::Push(route) => push(req, payload, state, route).await,
        ApiRoute::RoomSize => room_size(req, state).await,
        ApiRoute::Stats => stats(req, state).await,
    }
}

/// Constant-time comparison, so the key cannot be guessed byte by byte from response times.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 403 when the API is disabled, 401 unless `X-API-Key` or `Authorization: Bearer` holds the key.
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
                .and_then(|v| v.strip_prefix("Bearer "))
        });
    match given {
        Some(g) if same_key(g.trim().as_bytes(), key.as_bytes()) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

/// Read the body, at most `limit` bytes (`PUSH_MAX_BODY_BYTES`): a larger one is a 413, found
/// from `Content-Length` before anything is read when the client declares it.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("cannot read body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
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

/// One push route: key (401), body size (413), path, then body (400, in the contract's order),
/// then hand the push to the supervisor; answers `202 {"clients": n}`.
async fn push(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    route: PushRoute,
) -> Result<HttpResponse, ApiError> {
    check_key(&req, &state)?;
    let body = read_body(&req, payload, state.config.push_max_body_bytes).await?;
    let (target, event) = match route {
        PushRoute::User => {
            let user = path_param(&req, 4)?;
            let user = acl::parse_user_id(Some(&serde_json::Value::String(user)))
                .map_err(|r| ApiError::BadRequest(r.to_string()))?;
            (
                PushTarget::Room(acl::user_room(&user)),
                PushEvent::Notification,
            )
        }
        PushRoute::RoomMessage => (PushTarget::Room(room_param(&req)?), PushEvent::Message),
        PushRoute::RoomNotification => {
            (PushTarget::Room(room_param(&req)?), PushEvent::Notification)
        }
        PushRoute::Broadcast => (PushTarget::Everyone, PushEvent::Notification),
    };
    let body = json_object(&body)?;
    let clients = state
        .supervisor
        .send(Push {
            target,
            event,
            payload: body,
        })
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(HttpResponse::Accepted().json(json!({ "clients": clients })))
}

/// Path segment `index` of the raw request path (`/api/v1/rooms/{room}`: room is 4), decoded
/// exactly once here so that `%25`, `%2F` and invalid UTF-8 are handled strictly.
fn path_param(req: &HttpRequest, index: usize) -> Result<String, ApiError> {
    let raw = req.uri().path().split('/').nth(index).unwrap_or_default();
    percent_decode(raw)
}

fn room_param(req: &HttpRequest) -> Result<String, ApiError> {
    let room = path_param(req, 4)?;
    if acl::is_valid_target_room(&room) {
        Ok(room)
    } else {
        Err(ApiError::BadRequest(
            "room must be 1-128 characters of A-Z a-z 0-9 : _ . @ -".into(),
        ))
    }
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

async fn room_size(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    check_key(&req, &state)?;
    let room = room_param(&req)?;
    let clients = state
        .supervisor
        .send(RoomSize { room: room.clone() })
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(HttpResponse::Ok().json(json!({ "room": room, "clients": clients })))
}

async fn stats(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    check_key(&req, &state)?;
    let stats = state
        .supervisor
        .send(GetStats)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(HttpResponse::Ok().json(stats))
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
        let cases = [
            (
                "/api/v1/users/42/notifications",
                Some(Push(PushRoute::User)),
            ),
            (
                "/api/v1/users/a%2Fb/notifications",
                Some(Push(PushRoute::User)),
            ),
            (
                "/api/v1/rooms/admin/messages",
                Some(Push(PushRoute::RoomMessage)),
            ),
            (
                "/api/v1/rooms/user%3A42/notifications",
                Some(Push(PushRoute::RoomNotification)),
            ),
            ("/api/v1/broadcast", Some(Push(PushRoute::Broadcast))),
            ("/api/v1/rooms/admin", Some(RoomSize)),
            ("/api/v1/stats", Some(Stats)),
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
            assert_eq!(ApiRoute::parse(path), route, "{path}");
        }
        assert_eq!(Push(PushRoute::User).method(), Method::POST);
        assert_eq!(Stats.method(), Method::GET);
    }

    #[test]
    fn key_comparison() {
        assert!(same_key(b"abc", b"abc"));
        assert!(!same_key(b"abc", b"abd"));
        assert!(!same_key(b"abc", b"abcd"));
        assert!(!same_key(b"", b"a"));
    }
}
