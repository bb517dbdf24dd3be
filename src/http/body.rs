//! Reading a request body up to a size limit and within `HTTP_BODY_TIMEOUT_MS`: the push
//! API's (`PUSH_MAX_BODY_BYTES`) and a long-polling POST's (`MAX_PAYLOAD_BYTES`).
//!
//! The deadline bounds how long a client can hold a connection (and a file descriptor) by
//! declaring a body and sending it slowly, or not at all; the caller answers a late body with
//! `408` and closes the connection, whose unread rest cannot be told from a next request.

use std::time::Duration;

use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures::StreamExt;

use crate::http::AppState;

/// The most memory reserved up front for a declared body: a client declaring a large body it
/// never sends holds this much, not the declared size.
const MAX_RESERVED_BYTES: usize = 64 * 1024;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// It is (or declares to be) larger than the limit, in bytes.
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// The connection failed while it was read.
    #[error("cannot read body: {0}")]
    Read(#[from] PayloadError),
    /// It was not complete within `HTTP_BODY_TIMEOUT_MS` (counted in
    /// `pushgate_http_body_timeouts_total`).
    #[error("body not received within {0:?}")]
    TimedOut(Duration),
}

/// Read `req`'s body, at most `limit` bytes, within the configured `HTTP_BODY_TIMEOUT_MS`: a
/// larger one is [`BodyError::TooLarge`], found from `Content-Length` before anything is read
/// when the client declares it; a late one is [`BodyError::TimedOut`].
pub async fn read_limited(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    state: &AppState,
) -> Result<web::BytesMut, BodyError> {
    let timeout = state.config.limits.http_body_timeout;
    match actix_web::rt::time::timeout(timeout, read_all(req, payload, limit)).await {
        Ok(read) => read,
        Err(_elapsed) => {
            state.metrics.http_body_timeouts.inc();
            Err(BodyError::TimedOut(timeout))
        }
    }
}

/// [`read_limited`] without the deadline.
async fn read_all(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, BodyError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge(limit));
    }
    let reserved = declared.unwrap_or(1024).min(limit).min(MAX_RESERVED_BYTES);
    let mut body = web::BytesMut::with_capacity(reserved);
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
