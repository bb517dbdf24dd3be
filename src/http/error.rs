//! HTTP errors: one enum, each variant a status code and a JSON body
//! `{"error": "<code>", "message": "..."}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

/// Every error an HTTP route can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: no such route.
    #[error("no route for {0}")]
    NotFound(String),
    /// 405: the route exists, the method does not.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// 403: `PUSH_API_KEY` is unset.
    #[error("push API disabled: PUSH_API_KEY is not set")]
    PushApiDisabled,
    /// 401: missing or wrong API key.
    #[error("missing or invalid API key (send X-API-Key or Authorization: Bearer)")]
    Unauthorized,
    /// 401: a route for users (the event stream) without a valid user JWT.
    #[error("missing, invalid or expired token (send Authorization: Bearer <JWT> or ?token=)")]
    InvalidToken,
    /// 413: body over `PUSH_MAX_BODY_BYTES`.
    #[error("body larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 503: the room supervisor did not answer.
    #[error("push pipeline unavailable: {0}")]
    Unavailable(String),
    /// 503: an Engine.IO handshake while `MAX_PENDING_SESSIONS` sessions wait for their
    /// CONNECT.
    #[error("too many sessions waiting for their CONNECT (limit {0}); retry later")]
    PendingSessionsFull(usize),
    /// 503: `GET /api/v1/services` while `CONSUL_URL` is unset.
    #[error("service health is off: CONSUL_URL is not set")]
    ServiceHealthOff,
    /// 408: the body did not arrive within `HTTP_BODY_TIMEOUT_MS`; the connection is closed.
    #[error("request body not received within {0} ms")]
    BodyTimeout(u128),
}

impl ApiError {
    /// The `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PushApiDisabled => "push_api_disabled",
            ApiError::Unauthorized | ApiError::InvalidToken => "unauthorized",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unavailable(_) | ApiError::PendingSessionsFull(_) => "unavailable",
            ApiError::BodyTimeout(_) => "request_timeout",
            ApiError::ServiceHealthOff => "service_health_off",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PushApiDisabled => StatusCode::FORBIDDEN,
            ApiError::Unauthorized | ApiError::InvalidToken => StatusCode::UNAUTHORIZED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable(_) | ApiError::PendingSessionsFull(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::ServiceHealthOff => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized | ApiError::InvalidToken => {
                resp.insert_header(("WWW-Authenticate", "Bearer"));
            }
            // The rest of the body may still come: the connection cannot be reused.
            ApiError::BodyTimeout(_) => {
                resp.force_close();
            }
            _ => {}
        }
        resp.json(serde_json::json!({"error": self.code(), "message": self.to_string()}))
    }
}

/// The fallback for unknown routes.
pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    ApiError::NotFound(req.path().to_owned()).error_response()
}

/// The fallback for known routes with a wrong method.
pub async fn method_not_allowed(req: actix_web::HttpRequest) -> HttpResponse {
    ApiError::MethodNotAllowed(req.method().to_string()).error_response()
}
