//! The application, gated by its connection's [`Pressure`]: a request waits while the write
//! backlog is over the limit, is noted as being served until answered, and each answer is
//! counted into the backlog.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use actix_http::body::{BodySize, MessageBody};
use actix_http::header::CONTENT_LENGTH;
use actix_http::{HttpMessage, Request};
use actix_service::{Service, ServiceFactory};
use actix_web::dev::ServiceResponse;
use futures::future::{FutureExt, Map};

use super::pressure::Pressure;

/// A factory of [`GatedService`]s around the services of `F`.
pub struct Gated<F>(F);

impl<F> Gated<F> {
    /// Gate the services `factory` makes.
    pub fn new(factory: F) -> Self {
        Gated(factory)
    }
}

impl<F, B> ServiceFactory<Request> for Gated<F>
where
    F: ServiceFactory<Request, Config = (), Response = ServiceResponse<B>>,
    <F::Service as Service<Request>>::Future: Unpin,
    B: MessageBody,
{
    type Response = ServiceResponse<B>;
    type Error = F::Error;
    type Config = ();
    type Service = GatedService<F::Service>;
    type InitError = F::InitError;
    #[allow(clippy::type_complexity)]
    type Future = Map<
        F::Future,
        fn(Result<F::Service, F::InitError>) -> Result<GatedService<F::Service>, F::InitError>,
    >;

    fn new_service(&self, config: ()) -> Self::Future {
        self.0
            .new_service(config)
            .map(|made| made.map(|service| GatedService(Rc::new(service))))
    }
}

/// A service whose requests wait while their connection's backlog is over the limit (see
/// the module doc); requests without a backlog (none registered) pass at once.
pub struct GatedService<S>(Rc<S>);

impl<S, B> Service<Request> for GatedService<S>
where
    S: Service<Request, Response = ServiceResponse<B>>,
    S::Future: Unpin,
    B: MessageBody,
{
    type Response = ServiceResponse<B>;
    type Error = S::Error;
    type Future = GatedCall<S>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&self, req: Request) -> Self::Future {
        let Some(pressure) = req.conn_data::<Rc<Pressure>>().cloned() else {
            return GatedCall {
                step: Step::Calling(self.0.call(req)),
                pressure: None,
            };
        };
        let body = if req.head().chunked() {
            None
        } else {
            req.headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.trim().parse().ok())
                .or(Some(0))
        };
        pressure.serving(body);
        let step = if pressure.is_over_limit() {
            Step::Waiting {
                service: self.0.clone(),
                req: Some(req),
            }
        } else {
            Step::Calling(self.0.call(req))
        };
        GatedCall {
            step,
            pressure: Some(pressure),
        }
    }
}

/// A request of a [`GatedService`]: waiting for the write backlog, then served; noted as
/// served when it ends (answered or dropped).
pub struct GatedCall<S: Service<Request>> {
    step: Step<S>,
    /// Its connection's pressure (none for a connection that has none).
    pressure: Option<Rc<Pressure>>,
}

enum Step<S: Service<Request>> {
    /// The write backlog is over the limit.
    Waiting {
        service: Rc<S>,
        req: Option<Request>,
    },
    /// The application serves it.
    Calling(S::Future),
}

impl<S, B> Future for GatedCall<S>
where
    S: Service<Request, Response = ServiceResponse<B>>,
    S::Future: Unpin,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<B>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.step {
                Step::Waiting { service, req } => {
                    let pressure = this.pressure.as_ref().expect("only a gated request waits");
                    if pressure.is_over_limit() {
                        pressure.wake_when_under(cx.waker());
                        return Poll::Pending;
                    }
                    let req = req.take().expect("a waiting request is called once");
                    this.step = Step::Calling(service.call(req));
                }
                Step::Calling(call) => {
                    let result = ready!(Pin::new(call).poll(cx));
                    if let (Some(pressure), Ok(res)) = (&this.pressure, &result) {
                        pressure.produced(match res.response().body().size() {
                            BodySize::Sized(n) => Some(n),
                            BodySize::None => Some(0),
                            BodySize::Stream => None,
                        });
                    }
                    return Poll::Ready(result);
                }
            }
        }
    }
}

impl<S: Service<Request>> Drop for GatedCall<S> {
    fn drop(&mut self) {
        if let Some(pressure) = &self.pressure {
            pressure.served();
        }
    }
}
