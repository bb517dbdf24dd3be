//! `GET /api/v1/stream`: a user's pushes as Server-Sent Events (the stream itself is
//! [`crate::sse`]).
//!
//! Authenticated with the user's JWT, as a Socket.IO handshake is (`Authorization: Bearer` or
//! `?token=`; not the API key): a missing, invalid or expired token is `401`. `Last-Event-ID`
//! (or `?lastEventId=`, since a browser's `EventSource` cannot set headers; the header wins)
//! resumes after that offset. The API's route table dispatches here after its 404, CORS
//! preflight and 405 checks, and its CORS headers wrap the answer.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::auth::HandshakeTokens;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::refusal_log;
use crate::sse::SseStream;

/// The stream's query.
#[derive(Debug, Default, Deserialize)]
struct StreamQuery {
    /// The user's JWT, when it is not in the `Authorization` header.
    token: Option<String>,
    /// The last event id the client got, when it cannot send `Last-Event-ID`.
    #[serde(rename = "lastEventId")]
    last_event_id: Option<String>,
}

/// Open a stream for the token's user.
pub async fn stream(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<StreamQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::BadRequest(format!("malformed query: {e}")))?;
    let headers = req.headers();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let tokens = HandshakeTokens::new(query.token.as_deref(), authorization);
    let identity = tokens
        .pick(None)
        .and_then(|token| state.sessions.verifier.verify(token))
        .map_err(|e| {
            refusal_log::record(&e);
            state.metrics.auth_rejected.inc();
            ApiError::InvalidToken
        })?;
    let resume_after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query.last_event_id)
        .filter(|id| !id.is_empty());
    let body = SseStream::open(state.sessions.clone(), identity, resume_after);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
