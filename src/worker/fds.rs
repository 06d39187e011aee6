//! What rides on a descriptor in the worker: a request's byte stream, a
//! handed-off connection, a shared listener, and the pump that writes a
//! response stream.

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use lpm_protocol::{FdKind, ToSupervisor};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;
use uuid::Uuid;

use super::in_band::InBandReader;
use super::worker::Shared;
use crate::WorkerError;

/// A descriptor that came with a request or an event, with its kind.
pub(crate) type Attached = (FdKind, OwnedFd);

/// The byte stream the caller sent with a request ([`Request::stream`](super::Request::stream)).
///
/// It ends (a read of 0 bytes) when the caller's reader ended. Over the
/// socketpair it reads a pipe or a file; if the supervisor dies first, it
/// ends early: a stream whose length matters should carry it in the
/// request's payload. Over stdio it reads the chunks the supervisor sends
/// in-band (granting it more as it reads), and a stream cut short (the
/// caller's reader failed, the request was cancelled, the supervisor is
/// gone) fails instead of ending early.
pub struct RequestStream {
    inner: StreamInner,
}

enum StreamInner {
    Pipe(pipe::Receiver),
    File(tokio::fs::File),
    InBand(InBandReader),
}

impl RequestStream {
    pub(crate) fn in_band(reader: InBandReader) -> Self {
        Self {
            inner: StreamInner::InBand(reader),
        }
    }

    pub(crate) fn new(kind: FdKind, fd: OwnedFd) -> Result<Self, WorkerError> {
        let inner = match kind {
            FdKind::Pipe => StreamInner::Pipe(pipe::Receiver::from_owned_fd(fd).map_err(|e| {
                WorkerError::Descriptor {
                    what: "the request's stream",
                    source: e.into(),
                }
            })?),
            FdKind::File => StreamInner::File(tokio::fs::File::from_std(std::fs::File::from(fd))),
            other => {
                return Err(WorkerError::Descriptor {
                    what: "the request's stream",
                    source: format!("a {other:?} is not a byte stream").into(),
                })
            }
        };
        Ok(Self { inner })
    }
}

impl AsyncRead for RequestStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            StreamInner::Pipe(p) => Pin::new(p).poll_read(cx, buf),
            StreamInner::File(f) => Pin::new(f).poll_read(cx, buf),
            StreamInner::InBand(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl fmt::Debug for RequestStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner {
            StreamInner::Pipe(_) => "pipe",
            StreamInner::File(_) => "file",
            StreamInner::InBand(_) => "in-band",
        };
        f.debug_struct("RequestStream")
            .field("kind", &kind)
            .finish()
    }
}

/// A connection the supervisor handed to this worker with a request
/// ([`Request::socket`](super::Request::socket)).
///
/// Read and write it directly (it is `AsyncRead + AsyncWrite`) or borrow the
/// tokio stream with [`Socket::tcp`] / [`Socket::unix`]. Dropping it closes
/// the connection and tells the supervisor, which counts the sockets each
/// worker holds to hand new ones to the least loaded.
pub struct Socket {
    inner: SocketInner,
    closed: Option<(Uuid, Arc<Shared>)>,
}

/// The two kinds of connection a worker can be handed.
enum SocketInner {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl Socket {
    pub(crate) fn new(
        kind: FdKind,
        fd: OwnedFd,
        id: Uuid,
        shared: &Arc<Shared>,
    ) -> Result<Self, WorkerError> {
        let failed = |e: io::Error| WorkerError::Descriptor {
            what: "the request's socket",
            source: e.into(),
        };
        let inner = match kind {
            FdKind::TcpStream => {
                let std = std::net::TcpStream::from(fd);
                std.set_nonblocking(true).map_err(failed)?;
                SocketInner::Tcp(tokio::net::TcpStream::from_std(std).map_err(failed)?)
            }
            FdKind::UnixStream => {
                let std = std::os::unix::net::UnixStream::from(fd);
                std.set_nonblocking(true).map_err(failed)?;
                SocketInner::Unix(tokio::net::UnixStream::from_std(std).map_err(failed)?)
            }
            other => {
                return Err(failed(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("a {other:?} is not a connection"),
                )))
            }
        };
        shared.sockets.opened();
        Ok(Self {
            inner,
            closed: Some((id, Arc::clone(shared))),
        })
    }

    /// The TCP connection, if it is one.
    pub fn tcp(&self) -> Option<&tokio::net::TcpStream> {
        match &self.inner {
            SocketInner::Tcp(s) => Some(s),
            SocketInner::Unix(_) => None,
        }
    }

    /// The Unix connection, if it is one.
    pub fn unix(&self) -> Option<&tokio::net::UnixStream> {
        match &self.inner {
            SocketInner::Unix(s) => Some(s),
            SocketInner::Tcp(_) => None,
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Some((id, shared)) = self.closed.take() {
            // The connection closes with `inner` right after this; once the
            // worker stopped there is nobody left to tell.
            let _ = shared.outbox.push(&ToSupervisor::SocketClosed { id });
            shared.sockets.closed();
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            SocketInner::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            SocketInner::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            SocketInner::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            SocketInner::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            SocketInner::Tcp(s) => Pin::new(s).poll_flush(cx),
            SocketInner::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            SocketInner::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            SocketInner::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            SocketInner::Tcp(s) => f.debug_tuple("Socket").field(s).finish(),
            SocketInner::Unix(s) => f.debug_tuple("Socket").field(s).finish(),
        }
    }
}

/// A listening socket the supervisor broadcast with an event
/// ([`Event::listener`](super::Event::listener)): every worker that takes it
/// accepts on the same address, and the kernel spreads the connections.
#[derive(Debug)]
#[non_exhaustive]
pub enum Listener {
    /// A TCP listener.
    Tcp(tokio::net::TcpListener),
    /// A Unix stream listener.
    Unix(tokio::net::UnixListener),
}

impl Listener {
    pub(crate) fn new(kind: FdKind, fd: OwnedFd) -> Result<Self, WorkerError> {
        let failed = |e: io::Error| WorkerError::Descriptor {
            what: "the event's listener",
            source: e.into(),
        };
        match kind {
            FdKind::TcpListener => {
                let std = std::net::TcpListener::from(fd);
                std.set_nonblocking(true).map_err(failed)?;
                Ok(Listener::Tcp(
                    tokio::net::TcpListener::from_std(std).map_err(failed)?,
                ))
            }
            FdKind::UnixListener => {
                let std = std::os::unix::net::UnixListener::from(fd);
                std.set_nonblocking(true).map_err(failed)?;
                Ok(Listener::Unix(
                    tokio::net::UnixListener::from_std(std).map_err(failed)?,
                ))
            }
            other => Err(failed(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a {other:?} is not a listener"),
            ))),
        }
    }
}

/// A descriptor shared by the clones of one [`Event`](super::Event): the first taker gets it.
pub(crate) type SharedAttached = Arc<Mutex<Option<Attached>>>;

/// Writes `reader` into the response stream's pipe, then closes the pipe and
/// reports the end (`StreamEnd`), and only then counts the request as
/// answered, so a soft kill waits for the stream.
pub(crate) async fn pump_response<R>(
    id: Uuid,
    mut reader: R,
    mut writer: pipe::Sender,
    shared: Arc<Shared>,
) where
    R: AsyncRead + Send + Unpin + 'static,
{
    let copied = tokio::io::copy(&mut reader, &mut writer).await;
    drop(writer);
    let outcome = match copied {
        Ok(n) => Ok(n),
        Err(e) => {
            tracing::debug!(request = %id, error = %e, "response stream stopped early");
            Err(format!("the worker's response stream failed: {e}"))
        }
    };
    if let Err(e) = shared.outbox.push(&ToSupervisor::StreamEnd { id, outcome }) {
        tracing::debug!(request = %id, error = %e, "stream end not sent");
    }
    shared.in_flight.answered();
}

/// Counts the connections handed to this worker that are still open: a soft
/// kill waits for them as it does for requests in flight.
#[derive(Debug, Default)]
pub(crate) struct OpenSockets {
    count: std::sync::atomic::AtomicUsize,
    none_left: tokio::sync::Notify,
}

impl OpenSockets {
    fn opened(&self) {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn closed(&self) {
        if self.count.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            self.none_left.notify_waiters();
        }
    }

    /// Waits until every connection handed to this worker is closed.
    pub(crate) async fn wait_none(&self) {
        loop {
            let notified = self.none_left.notified();
            tokio::pin!(notified);
            // Register before checking, so a close in between is not missed.
            notified.as_mut().enable();
            if self.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}
