//! Reading a request body up to a size limit: the push API's (`PUSH_MAX_BODY_BYTES`) and a
//! long-polling POST's (`MAX_PAYLOAD_BYTES`).

use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures::StreamExt;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// It is (or declares to be) larger than the limit, in bytes.
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// The connection failed while it was read.
    #[error("cannot read body: {0}")]
    Read(#[from] PayloadError),
}

/// Read `req`'s body, at most `limit` bytes: a larger one is [`BodyError::TooLarge`], found
/// from `Content-Length` before anything is read when the client declares it.
pub async fn read_limited(
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
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
