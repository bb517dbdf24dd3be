//! The Engine.IO endpoint at `/socket.io/` and `/ws/`: validates the handshake request and hands
//! the connection to a transport.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::HandshakeTokens;
use crate::http::{cors, AppState};
use crate::protocol::engineio::EioError;
use crate::session::SocketSession;
use crate::transport::websocket::WsTransport;

/// The paths socket.io-client may use: the default and the admin console's `/ws`.
pub const PATHS: [&str; 4] = ["/socket.io/", "/socket.io", "/ws/", "/ws"];

/// Mount the Engine.IO endpoint.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(PATHS)
            .wrap(actix_web::middleware::from_fn(cors::add_headers))
            .route(web::get().to(get))
            .route(web::method(actix_web::http::Method::OPTIONS).to(cors::preflight))
            .default_service(web::to(|| async {
                eio_error(EioError::BadHandshakeMethod)
            })),
    );
}

/// An Engine.IO error answer: `400 {"code": N, "message": "..."}` (`403` for Forbidden).
pub fn eio_error(e: EioError) -> HttpResponse {
    let mut resp = match e {
        EioError::Forbidden => HttpResponse::Forbidden(),
        _ => HttpResponse::BadRequest(),
    };
    resp.content_type("application/json").body(e.json())
}

/// The handshake query parameters pushgate reads.
struct EioQuery {
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
    token: Option<String>,
}

impl EioQuery {
    fn parse(query: &str) -> Result<Self, EioError> {
        let mut map = web::Query::<HashMap<String, String>>::from_query(query)
            .map_err(|_| EioError::BadRequest)?
            .into_inner();
        Ok(EioQuery {
            eio: map.remove("EIO"),
            transport: map.remove("transport"),
            sid: map.remove("sid"),
            token: map.remove("token"),
        })
    }
}

async fn get(req: HttpRequest, stream: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let q = match EioQuery::parse(req.query_string()) {
        Ok(q) => q,
        Err(e) => return eio_error(e),
    };
    if q.eio.as_deref() != Some("4") {
        return eio_error(EioError::UnsupportedProtocolVersion);
    }
    match q.transport.as_deref() {
        Some("websocket") => websocket(req, stream, state, q),
        _ => eio_error(EioError::TransportUnknown),
    }
}

fn websocket(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
    q: EioQuery,
) -> HttpResponse {
    // Browsers always send Origin; a foreign one is refused. No Origin: not a browser.
    if req.headers().contains_key(header::ORIGIN)
        && cors::allowed_origin(&req, &state.config.cors).is_none()
    {
        return eio_error(EioError::Forbidden);
    }
    if q.sid.is_some() {
        return eio_error(EioError::UnknownSid);
    }
    let is_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_upgrade {
        return eio_error(EioError::BadRequest);
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let tokens = HandshakeTokens::new(q.token.as_deref(), authorization);
    let session = SocketSession::new(state.sessions.clone(), tokens);
    WsTransport::new(session).start(&req, stream)
}
