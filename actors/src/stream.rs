//! Streams and sockets that travel with requests: what a caller attaches to
//! an [`Enqueue`], the [`ResponseStream`] a worker answers with, and the
//! [`Listener`] a pool broadcasts.
//!
//! Linux only. Over the socketpair, descriptors go to the worker over its
//! own channel with `SCM_RIGHTS`; every descriptor the supervisor opens is
//! close-on-exec. Over stdio (or to a worker that takes no descriptors),
//! streams travel in-band as chunks with credit-based flow control, and
//! sockets and listeners are refused ([`Error::NoFdPassing`](crate::Error::NoFdPassing)).
//! The retry rule is in the [crate docs](crate#streams-and-sockets).

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use actix::Recipient;
use lpm_protocol::{FdKind, RequestId, STREAM_CHUNK};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};

use crate::worker_handle::{Feedback, StreamFeedback};
use crate::Enqueue;

/// What a request carries besides its payload.
pub(crate) enum Attachment {
    /// A reader the worker's handle pumps into a pipe.
    Reader(Box<dyn AsyncRead + Send + Unpin + 'static>),
    /// A descriptor passed as it is (a file or a connection).
    Fd(FdKind, OwnedFd),
}

impl Attachment {
    /// What it is, for errors and logs.
    pub(crate) fn what(&self) -> &'static str {
        match self {
            Attachment::Reader(_) => "stream",
            Attachment::Fd(FdKind::File, _) => "file",
            Attachment::Fd(_, _) => "socket",
        }
    }

    /// Whether it is a connection handed over to the worker.
    pub(crate) fn is_socket(&self) -> bool {
        matches!(
            self,
            Attachment::Fd(FdKind::TcpStream | FdKind::UnixStream, _)
        )
    }
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attachment::Reader(_) => f.write_str("Reader(..)"),
            Attachment::Fd(kind, fd) => f.debug_tuple("Fd").field(kind).field(fd).finish(),
        }
    }
}

/// Requests that carry a stream or a socket (Linux only; see the
/// [retry rule](crate#streams-and-sockets)).
impl<B: crate::Body> Enqueue<B> {
    /// Sends `reader`'s bytes to the worker as the request's stream
    /// (the worker's `CallContext::stream`, or `Request::stream` when untyped),
    /// which ends when `reader` ends.
    ///
    /// The worker's handle pumps the reader into a pipe at the pace the
    /// worker reads it: memory stays bounded by the pipe and a 64 KiB buffer.
    /// To a worker that takes no descriptors (the stdio transport) the bytes
    /// go in-band, read no faster than the worker grants credit: at most
    /// 256 KiB ahead of what it has read. Such a request is not retried once
    /// its stream was handed over.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpm_actors::Enqueue;
    ///
    /// let body: &'static [u8] = b"bytes for the worker";
    /// let request = Enqueue::new(&"upload")?.stream(body);
    /// # Ok::<(), lpm_actors::Error>(())
    /// ```
    #[must_use]
    pub fn stream(mut self, reader: impl AsyncRead + Send + Unpin + 'static) -> Self {
        self.options.attachment = Some(Attachment::Reader(Box::new(reader)));
        self
    }

    /// Passes an open file to the worker as the request's stream, as its own
    /// descriptor: no copy through the supervisor. The worker reads from the
    /// file's current offset (which it shares with `file`'s other handles).
    /// To a worker that takes no descriptors the supervisor reads the file
    /// and sends it in-band, as [`Enqueue::stream`] does.
    #[must_use]
    pub fn file(mut self, file: std::fs::File) -> Self {
        self.options.attachment = Some(Attachment::Fd(FdKind::File, file.into()));
        self
    }

    /// Hands a TCP connection to the worker (its `CallContext::socket`, or
    /// `Request::socket` when untyped). The supervisor keeps no copy once it
    /// is sent; the worker answers the request at once (an untyped worker
    /// `ack`s it) and serves the connection in a task of its own as long as
    /// it likes. Socket requests
    /// go to the worker holding the fewest sockets, among those that take
    /// descriptors: a pool whose workers take none (the stdio transport)
    /// fails the request with [`Error::NoFdPassing`](crate::Error::NoFdPassing).
    /// A tokio stream converts with `tokio::net::TcpStream::into_std`.
    #[must_use]
    pub fn tcp(mut self, stream: std::net::TcpStream) -> Self {
        self.options.attachment = Some(Attachment::Fd(FdKind::TcpStream, stream.into()));
        self
    }

    /// Hands a Unix stream connection to the worker; as [`Enqueue::tcp`].
    #[must_use]
    pub fn unix(mut self, stream: std::os::unix::net::UnixStream) -> Self {
        self.options.attachment = Some(Attachment::Fd(FdKind::UnixStream, stream.into()));
        self
    }
}

/// How a response stream ended, as the worker reported it: the byte count,
/// or why it stopped.
pub(crate) type StreamEnd = Result<u64, String>;

/// The byte stream a worker answered with
/// ([`Response::take_stream`](crate::Response::take_stream)).
///
/// It reads the worker's pipe, or the chunks the worker sends in-band
/// (granting the worker more as it reads: the worker is never more than
/// 256 KiB ahead). At the end it waits for the worker's report that the
/// stream is complete: a stream cut short (the worker died, or its reader
/// failed) ends with an error, never with a silent short read. The request
/// counts as in flight on its worker until the stream ends. Dropping an
/// in-band stream before its end cancels the request in the worker.
pub struct ResponseStream {
    source: Source,
    end: Option<oneshot::Receiver<StreamEnd>>,
    /// Set once the end was checked: `Ok` or the error to repeat.
    finished: Option<Result<(), (io::ErrorKind, String)>>,
    read: u64,
    pid: u32,
}

/// Where a [`ResponseStream`]'s bytes come from.
enum Source {
    Pipe(pipe::Receiver),
    InBand(InBand),
}

/// The chunks of an in-band stream, and the credit given back for them.
struct InBand {
    id: RequestId,
    chunks: mpsc::UnboundedReceiver<Vec<u8>>,
    current: Vec<u8>,
    /// How much of `current` was read.
    at: usize,
    /// Bytes read and not yet granted back to the worker.
    ungranted: u64,
    feedback: Recipient<StreamFeedback>,
}

impl InBand {
    /// Copies buffered bytes into `buf`, waiting for the next chunk when
    /// none are left; `Ok(0)` once the chunks ended.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<usize> {
        while self.at == self.current.len() {
            match ready!(self.chunks.poll_recv(cx)) {
                Some(chunk) => {
                    self.current = chunk;
                    self.at = 0;
                }
                None => return Poll::Ready(0),
            }
        }
        let n = buf.remaining().min(self.current.len() - self.at);
        buf.put_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        self.ungranted += n as u64;
        // Credit goes back a chunk at a time: one frame per 64 KiB read.
        if self.ungranted >= STREAM_CHUNK as u64 {
            self.feedback.do_send(StreamFeedback {
                id: self.id,
                feedback: Feedback::Consumed(self.ungranted),
            });
            self.ungranted = 0;
        }
        Poll::Ready(n)
    }
}

impl ResponseStream {
    pub(crate) fn new(
        fd: OwnedFd,
        end: oneshot::Receiver<StreamEnd>,
        pid: u32,
    ) -> io::Result<Self> {
        Ok(Self {
            source: Source::Pipe(pipe::Receiver::from_owned_fd(fd)?),
            end: Some(end),
            finished: None,
            read: 0,
            pid,
        })
    }

    /// A stream whose chunks arrive in-band on `chunks`; reads and an early
    /// drop are reported to `feedback`.
    pub(crate) fn in_band(
        id: RequestId,
        chunks: mpsc::UnboundedReceiver<Vec<u8>>,
        end: oneshot::Receiver<StreamEnd>,
        pid: u32,
        feedback: Recipient<StreamFeedback>,
    ) -> Self {
        Self {
            source: Source::InBand(InBand {
                id,
                chunks,
                current: Vec::new(),
                at: 0,
                ungranted: 0,
                feedback,
            }),
            end: Some(end),
            finished: None,
            read: 0,
            pid,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }
}

impl AsyncRead for ResponseStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(finished) = &this.finished {
            return Poll::Ready(
                finished
                    .clone()
                    .map_err(|(kind, m)| io::Error::new(kind, m)),
            );
        }
        let n = match &mut this.source {
            Source::Pipe(pipe) => {
                let before = buf.filled().len();
                ready!(Pin::new(pipe).poll_read(cx, buf))?;
                buf.filled().len() - before
            }
            Source::InBand(in_band) => ready!(in_band.poll_read(cx, buf)),
        };
        if n > 0 || buf.remaining() == 0 {
            this.read += n as u64;
            return Poll::Ready(Ok(()));
        }
        // The pipe's end: complete only if the worker says so.
        let Some(end) = this.end.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let outcome = ready!(Pin::new(end).poll(cx));
        this.end = None;
        let pid = this.pid;
        let read = this.read;
        let finished = match outcome {
            Ok(Ok(total)) if total == read => Ok(()),
            Ok(Ok(total)) => Err((
                io::ErrorKind::UnexpectedEof,
                format!("the response stream of worker pid {pid} ended after {read} of its {total} bytes"),
            )),
            Ok(Err(reason)) => Err((io::ErrorKind::Other, reason)),
            Err(_) => Err((
                io::ErrorKind::UnexpectedEof,
                format!(
                    "worker pid {pid} died before its response stream was complete \
                     ({read} bytes read); the data is cut short"
                ),
            )),
        };
        this.finished = Some(finished.clone());
        Poll::Ready(finished.map_err(|(kind, m)| io::Error::new(kind, m)))
    }
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        // Dropped before the worker's end: the worker must stop sending.
        if let (Source::InBand(in_band), Some(_)) = (&self.source, &self.end) {
            in_band.feedback.do_send(StreamFeedback {
                id: in_band.id,
                feedback: Feedback::Dropped,
            });
        }
    }
}

impl fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match self.source {
            Source::Pipe(_) => "pipe",
            Source::InBand(_) => "in-band",
        };
        f.debug_struct("ResponseStream")
            .field("source", &source)
            .field("pid", &self.pid)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

/// A response stream shared by the clones of one [`Response`](crate::Response): the first taker gets it.
pub(crate) type SharedStream = Arc<Mutex<Option<ResponseStream>>>;

/// A listening socket to share with every worker
/// ([`Pool::broadcast_listener`](crate::Pool::broadcast_listener)).
#[derive(Debug)]
#[non_exhaustive]
pub enum Listener {
    /// A TCP listener (a tokio one converts with `into_std`).
    Tcp(std::net::TcpListener),
    /// A Unix stream listener.
    Unix(std::os::unix::net::UnixListener),
}

impl Listener {
    pub(crate) fn into_parts(self) -> (FdKind, OwnedFd) {
        match self {
            Listener::Tcp(l) => (FdKind::TcpListener, l.into()),
            Listener::Unix(l) => (FdKind::UnixListener, l.into()),
        }
    }
}

impl From<std::net::TcpListener> for Listener {
    fn from(l: std::net::TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

impl From<std::os::unix::net::UnixListener> for Listener {
    fn from(l: std::os::unix::net::UnixListener) -> Self {
        Listener::Unix(l)
    }
}
