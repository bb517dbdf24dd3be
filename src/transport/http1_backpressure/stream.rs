//! The socket of an HTTP/1 connection, wrapped to keep its [`Pressure`] up to date and to
//! read only as much as it allows.

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use actix_codec::{AsyncRead, AsyncWrite, ReadBuf};
use actix_web::rt::net::TcpStream;

use super::pressure::Pressure;

/// A connection's `TcpStream` and its [`Pressure`]: every write notes how much of what it
/// offered the socket did not take, every read takes at most what the pressure allows.
/// Buffers nothing itself.
pub struct BackloggedStream {
    io: TcpStream,
    pressure: Rc<Pressure>,
}

impl BackloggedStream {
    /// Wrap the socket of a new connection.
    pub fn new(io: TcpStream) -> Self {
        BackloggedStream {
            io,
            pressure: Rc::default(),
        }
    }

    /// The connection's pressure, for the requests it serves.
    pub fn pressure(&self) -> Rc<Pressure> {
        self.pressure.clone()
    }

    /// The socket.
    pub fn get_ref(&self) -> &TcpStream {
        &self.io
    }

    /// The socket, unwrapped (an upgraded connection no longer needs the backlog).
    pub fn into_inner(self) -> TcpStream {
        self.io
    }
}

impl AsyncRead for BackloggedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let allowed = this.pressure.readable(cx.waker());
        if allowed == 0 {
            return Poll::Pending;
        }
        let n = if allowed >= buf.remaining() {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
            buf.filled().len() - before
        } else {
            let mut limited = buf.take(allowed);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut limited))?;
            let n = limited.filled().len();
            // SAFETY: the `n` bytes after the filled part were just initialised by the read
            // into `limited`, which covers the same memory.
            unsafe { buf.assume_init(n) };
            buf.advance(n);
            n
        };
        this.pressure.read(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for BackloggedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        match &result {
            Poll::Ready(Ok(n)) => this.pressure.wrote(buf.len(), *n),
            Poll::Pending => this.pressure.wrote(buf.len(), 0),
            Poll::Ready(Err(_)) => {}
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
