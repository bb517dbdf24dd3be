//! The read side of an upgraded connection, as its WebSocket context's input: the socket's
//! bytes, read only when the context asks for them, with the frame size limit enforced on
//! their raw bytes.

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use actix_http::error::PayloadError;
use actix_web::rt::net::TcpStream;
use actix_web::web::{Bytes, BytesMut};
use futures::Stream;

use super::wire::Wire;
use crate::transport::frame_limit::FrameLimit;

/// How many bytes are read in a row before the context gets to decode them.
pub const READ_BUDGET: usize = 32 * 1024;

/// The room each read gets in the thread's read buffer.
const READ_CHUNK: usize = 8 * 1024;

thread_local! {
    /// Where every upgraded connection of this worker thread reads into. A read leaves with
    /// the bytes it got as a chunk of this buffer; once the WebSocket context has decoded and
    /// dropped those chunks (it copies them into its own buffer at once), the buffer's memory
    /// is used again from its start. Nothing is zeroed before a read: a stack array would
    /// cost a zeroing of [`READ_CHUNK`] bytes per read, a sixth of a connect's instructions.
    static READ_BUFFER: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// The bytes of an upgraded connection, as the WebSocket context's input.
pub struct Input {
    io: Rc<TcpStream>,
    wire: Wire,
    /// What arrived with (after) the handshake request.
    early: Option<Bytes>,
    eof: bool,
    /// Bytes handed on since the socket last had nothing to read.
    read_in_a_row: usize,
    limit: Option<FrameLimit>,
    fault: Rc<Cell<Option<InputFault>>>,
    settle: Rc<Cell<bool>>,
}

/// Why an [`Input`] ended with an error (the WebSocket context sees both as an I/O error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFault {
    /// A frame header announced more than the limit.
    Oversized,
    /// Reading the socket failed.
    ReadFailed,
}

impl Input {
    /// The input of the connection `io`, whose write side is `wire`, starting with `early`
    /// (what the client sent after its handshake request, read with it).
    pub(super) fn new(io: Rc<TcpStream>, wire: Wire, early: Option<Bytes>) -> Self {
        Input {
            io,
            wire,
            early,
            eof: false,
            read_in_a_row: 0,
            limit: None,
            fault: Rc::default(),
            settle: Rc::default(),
        }
    }

    /// Refuse frames of more than `max` payload bytes as soon as their header arrives: the
    /// input then ends with [`PayloadError::Overflow`] and [`Input::fault`] is
    /// [`InputFault::Oversized`].
    pub fn limit_frames(&mut self, max: usize) {
        self.limit = Some(FrameLimit::new(max));
    }

    /// The connection's write side, for frames the actor encodes itself.
    pub fn wire(&self) -> Wire {
        self.wire.clone()
    }

    /// Set when the input ended with an error, to why (shared: it stays readable after the
    /// input moved into the WebSocket context).
    pub fn fault(&self) -> Rc<Cell<Option<InputFault>>> {
        self.fault.clone()
    }

    /// Set it to have the next poll read what the socket holds at once, whatever the
    /// runtime knows of its readiness yet (shared, as [`Input::fault`]): so that the frames a
    /// client sent before a request on another connection are handled before it is answered
    /// (see `PollingSession`'s `LongPoll`).
    pub fn settle(&self) -> Rc<Cell<bool>> {
        self.settle.clone()
    }

    /// Read what the socket holds now, without waiting for its readiness.
    fn read_now(&mut self) -> Option<Poll<Option<Result<Bytes, PayloadError>>>> {
        use std::io::Read;
        let mut chunk = BytesMut::zeroed(READ_CHUNK);
        match (&*socket2::SockRef::from(&*self.io)).read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                Some(Poll::Ready(None))
            }
            Ok(n) => {
                chunk.truncate(n);
                self.read_in_a_row += n;
                Some(self.checked(chunk.freeze()))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
            Err(e) => Some(self.fail(InputFault::ReadFailed, PayloadError::Io(e))),
        }
    }

    /// End the input with `error`, noting why.
    fn fail(
        &mut self,
        fault: InputFault,
        error: PayloadError,
    ) -> Poll<Option<Result<Bytes, PayloadError>>> {
        self.eof = true;
        self.fault.set(Some(fault));
        Poll::Ready(Some(Err(error)))
    }

    /// Pass `chunk` on, unless it completes a header over the limit.
    fn checked(&mut self, chunk: Bytes) -> Poll<Option<Result<Bytes, PayloadError>>> {
        if let Some(Err(e)) = self.limit.as_mut().map(|l| l.check(&chunk)) {
            log::debug!("closing a WebSocket: {e}");
            return self.fail(InputFault::Oversized, PayloadError::Overflow);
        }
        Poll::Ready(Some(Ok(chunk)))
    }
}

impl Stream for Input {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(early) = this.early.take() {
            return this.checked(early);
        }
        if this.eof {
            return Poll::Ready(None);
        }
        if this.settle.replace(false) {
            if let Some(read) = this.read_now() {
                return read;
            }
        }
        if this.read_in_a_row >= READ_BUDGET {
            // Let the context decode what it has before reading on.
            this.read_in_a_row = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        loop {
            if let Err(e) = ready!(this.io.poll_read_ready(cx)) {
                return this.fail(InputFault::ReadFailed, PayloadError::Io(e));
            }
            let read = READ_BUFFER.with_borrow_mut(|buf| {
                buf.reserve(READ_CHUNK);
                this.io.try_read_buf(buf).map(|_| buf.split().freeze())
            });
            match read {
                Ok(chunk) if chunk.is_empty() => {
                    this.eof = true;
                    return Poll::Ready(None);
                }
                Ok(chunk) => {
                    this.read_in_a_row += chunk.len();
                    return this.checked(chunk);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    this.read_in_a_row = 0;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return this.fail(InputFault::ReadFailed, PayloadError::Io(e)),
            }
        }
    }
}
