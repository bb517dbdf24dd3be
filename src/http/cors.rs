//! CORS for the polling transport and the HTTP API (not the probes), from `CORS_ORIGIN`: an
//! allowed `Origin` is echoed with credentials allowed; any other origin gets no CORS headers.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::config::CorsOrigins;
use crate::http::AppState;

/// The allowed origin of a request, when it has one.
pub fn allowed_origin(req: &HttpRequest, origins: &CorsOrigins) -> Option<HeaderValue> {
    let origin = req.headers().get(header::ORIGIN)?;
    origins
        .allows(origin.to_str().ok()?)
        .then(|| origin.clone())
}

/// Middleware adding the CORS headers to every response of the wrapped routes.
pub async fn add_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let origin = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| allowed_origin(req.request(), &s.config.cors));
    let mut res = next.call(req).await?;
    if let Some(origin) = origin {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    Ok(res)
}

/// `OPTIONS` on a CORS-enabled route: a preflight answer, no API key needed. The
/// `Access-Control-Allow-*` headers are only given to an allowed origin.
pub async fn preflight(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let mut resp = HttpResponse::NoContent();
    if allowed_origin(&req, &state.config.cors).is_none() {
        return resp.finish();
    }
    resp.insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"));
    let allow_headers = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("Content-Type, Authorization, X-API-Key"));
    resp.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers));
    resp.finish()
}
