//! The upgrade service: it answers each upgrade request that actix-http hands over with the
//! application itself, then either starts the accepted WebSocket's task on the worker's
//! thread, without the dispatcher's buffers, or closes the connection. A request that is no
//! handshake (not a GET) gets its body read first (see `plain_body.rs`) and is answered as
//! any request.

use std::io;
use std::rc::Rc;

use actix_codec::Framed;
use actix_http::body::{BodySize, MessageBody};
use actix_http::h1::{Codec, Message};
use actix_http::{ConnectionType, HttpMessage, Request, Response, StatusCode};
use actix_service::{fn_factory, fn_service, IntoServiceFactory, Service, ServiceFactory};
use actix_web::dev::{AppConfig, ServiceResponse};
use actix_web::web::Bytes;
use futures::SinkExt;

use super::connections::Connections;
use super::driver::{shutdown_write, Driver};
use super::handover::Handover;
use super::input::Input;
use super::plain_body::{self, PlainBodyLimits};
use super::wire::Wire;
use crate::transport::http1_backpressure::BackloggedStream;

/// The upgrade service factory for `HttpService::build().upgrade(..)`: each worker builds its
/// own instance of the application (`make_app`) to answer the upgrade requests with; the
/// accepted connections are counted in `connections`; the body of a plain request (not a
/// GET) is read within `limits`.
pub fn service<F, A, S, B>(
    make_app: F,
    connections: Connections,
    limits: PlainBodyLimits,
) -> impl ServiceFactory<
    (Request, Framed<BackloggedStream, Codec>),
    Config = (),
    Response = (),
    Error = actix_web::Error,
    InitError = (),
>
where
    F: Fn() -> A + 'static,
    A: IntoServiceFactory<S, Request>,
    S: ServiceFactory<
            Request,
            Config = AppConfig,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
        > + 'static,
    S::Service: 'static,
    S::InitError: std::fmt::Debug,
    B: MessageBody + 'static,
{
    fn_factory(move || {
        let factory = make_app().into_factory();
        let connections = connections.clone();
        async move {
            let app = factory
                .new_service(AppConfig::default())
                .await
                .map_err(|e| {
                    log::error!("cannot build the upgrade service's application: {e:?}");
                })?;
            let app = Rc::new(app);
            Ok(fn_service(
                move |(req, framed): (Request, Framed<BackloggedStream, Codec>)| {
                    let app = app.clone();
                    let connections = connections.clone();
                    async move {
                        serve(&*app, req, framed, &connections, limits).await;
                        Ok::<_, actix_web::Error>(())
                    }
                },
            ))
        }
    })
}

/// Answer one upgrade request with `app`, then either start a task driving the accepted
/// WebSocket (counted in `connections`) or close the connection. A plain request's body is
/// read first, within `limits`.
pub async fn serve<S, B>(
    app: &S,
    req: Request,
    framed: Framed<BackloggedStream, Codec>,
    connections: &Connections,
    limits: PlainBodyLimits,
) where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let (req, mut framed) = if plain_body::is_plain(&req) {
        let (framed, body) = plain_body::read(&req, framed, limits).await;
        match body {
            Ok(body) => (plain_body::with_body(req, body), framed),
            Err(e) => {
                log::debug!("closing a connection: a request naming Upgrade: {e}");
                return;
            }
        }
    } else {
        (req, framed)
    };
    let handover = Handover::default();
    req.extensions_mut().insert(handover.clone());
    let res: Response<_> = match app.call(req).await {
        Ok(res) => res.map_into_boxed_body().into(),
        Err(e) => e.error_response().into(),
    };
    let accepted = handover.take();
    let upgrade = accepted.is_some() && res.status() == StatusCode::SWITCHING_PROTOCOLS;
    let (mut head, body) = res.into_parts();
    let size = body.size();
    let body = match actix_http::body::to_bytes(body).await {
        Ok(b) => b,
        Err(e) => {
            log::debug!("upgrade request: the answer's body failed: {e}");
            return;
        }
    };
    let size = match size {
        BodySize::None => BodySize::None,
        _ => BodySize::Sized(body.len() as u64),
    };
    if !upgrade {
        head.head_mut().set_connection_type(ConnectionType::Close);
    }
    let encoded = async {
        framed.feed(Message::Item((head, size))).await?;
        if size != BodySize::None {
            framed.feed(Message::Chunk(Some(body))).await?;
            framed.feed(Message::Chunk(None)).await?;
        }
        Ok::<_, io::Error>(())
    }
    .await;
    // Not an accepted upgrade: the answer is the last thing on this connection.
    let Some(accepted) = accepted.filter(|_| upgrade) else {
        if encoded.is_ok() && framed.flush().await.is_ok() {
            let _ = shutdown_write(framed.io_ref().get_ref());
        }
        return;
    };
    // Keep what the client sent after its handshake and the encoded 101, which goes out with
    // the first frames (the Engine.IO open packet) in one write; drop the dispatcher's buffers.
    let parts = framed.into_parts();
    let early = (!parts.read_buf.is_empty()).then(|| Bytes::copy_from_slice(&parts.read_buf));
    let answer = Bytes::copy_from_slice(&parts.write_buf);
    let io = Rc::new(parts.io.into_inner()); // it buffers nothing
    drop((parts.read_buf, parts.write_buf, parts.codec));
    let wire = Wire::default();
    wire.push(answer);
    // (An accepted upgrade whose 101 could not be encoded still starts and stops its actor, so
    // that its session is closed the usual way.)
    let output = accepted(Input::new(io.clone(), wire.clone(), early));
    if let Err(e) = encoded {
        log::debug!("cannot encode the 101 answer: {e}");
        return; // dropping `output` stops the actor
    }
    actix_web::rt::spawn(Driver::new(io, output, wire, connections.enter()));
}
