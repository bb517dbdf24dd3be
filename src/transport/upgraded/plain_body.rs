//! The body of an upgrade request that is not a WebSocket handshake.
//!
//! actix-http hands over any request that names `Upgrade: websocket` and
//! `Connection: upgrade` (and is not chunked) as an upgrade, with an empty payload: its body
//! is still in the connection's read buffer and socket. A handshake is always a GET (RFC 6455
//! §4.1); any other method (an API POST from a client that adds the headers, say) is an
//! ordinary request, so the upgrade service reads its body here, per its `Content-Length`,
//! and gives it to the application as the request's payload. The read is bounded in size
//! (one byte over the largest body the server takes, enough for the application to refuse
//! it as too large) and in time; the connection closes after the answer.

use std::time::Duration;

use actix_codec::{Framed, FramedParts};
use actix_http::h1::Codec;
use actix_http::header::CONTENT_LENGTH;
use actix_http::{HttpMessage, Request};
use actix_web::rt::net::TcpStream;
use actix_web::web::{Bytes, BytesMut};

use crate::transport::http1_backpressure::BackloggedStream;

/// The room each read gets.
const READ_CHUNK: usize = 8 * 1024;

/// How much of a plain request's body is read, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainBodyLimits {
    /// The largest body the application takes: one byte more is read, no more.
    pub max_bytes: usize,
    /// The whole body must arrive within this.
    pub timeout: Duration,
}

/// Why a plain request's body could not be read (the connection is then closed unanswered).
#[derive(Debug, thiserror::Error)]
pub enum PlainBodyError {
    /// The `Content-Length` header is not a number.
    #[error("invalid Content-Length")]
    InvalidLength,
    /// The body did not arrive in time.
    #[error("the body did not arrive within {0:?}")]
    TimedOut(Duration),
    /// The client closed the connection before its body was complete.
    #[error("the connection ended {0} bytes before the body did")]
    Truncated(usize),
    /// Reading the socket failed.
    #[error("reading the body failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Whether `req`, handed over as an upgrade, is an ordinary request instead: not a GET.
pub(super) fn is_plain(req: &Request) -> bool {
    req.method() != actix_http::Method::GET
}

/// Read the body of the plain request `req` from `framed` (what was read with its head,
/// then the socket), at most `limits.max_bytes + 1` bytes of it; returns the connection and
/// the body.
pub(super) async fn read(
    req: &Request,
    framed: Framed<BackloggedStream, Codec>,
    limits: PlainBodyLimits,
) -> (
    Framed<BackloggedStream, Codec>,
    Result<Bytes, PlainBodyError>,
) {
    let declared = match req.headers().get(CONTENT_LENGTH) {
        None => Ok(0),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or(PlainBodyError::InvalidLength),
    };
    let wanted = match declared {
        Ok(n) => n.min(limits.max_bytes as u64 + 1) as usize,
        Err(e) => return (framed, Err(e)),
    };
    let mut parts = framed.into_parts();
    let mut body = parts.read_buf.split_to(wanted.min(parts.read_buf.len()));
    let read = actix_web::rt::time::timeout(
        limits.timeout,
        read_rest(parts.io.get_ref(), &mut body, wanted),
    )
    .await;
    let body = match read {
        Ok(Ok(())) => Ok(body.freeze()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(PlainBodyError::TimedOut(limits.timeout)),
    };
    let FramedParts {
        io,
        codec,
        read_buf,
        write_buf,
        ..
    } = parts;
    let mut again = FramedParts::with_read_buf(io, codec, read_buf);
    again.write_buf = write_buf;
    (Framed::from_parts(again), body)
}

/// Read from `io` into `body` until it holds `wanted` bytes.
async fn read_rest(
    io: &TcpStream,
    body: &mut BytesMut,
    wanted: usize,
) -> Result<(), PlainBodyError> {
    while body.len() < wanted {
        io.readable().await?;
        let room = (wanted - body.len()).min(READ_CHUNK);
        let mut chunk = BytesMut::with_capacity(room);
        match io.try_read_buf(&mut chunk) {
            Ok(0) => return Err(PlainBodyError::Truncated(wanted - body.len())),
            Ok(_) => body.extend_from_slice(&chunk),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `req` with `body` as its payload.
pub(super) fn with_body(req: Request, body: Bytes) -> Request {
    req.replace_payload(actix_http::Payload::from(body)).0
}
