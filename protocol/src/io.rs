//! Reading and writing frames on a tokio [`UnixStream`] without an extra task.
//!
//! Both halves share the stream through an [`Arc`]: tokio's readiness-based
//! `try_read`/`try_write` take `&self`, so one actor (or task) can read in a
//! stream while another part of it writes batches.

use std::collections::VecDeque;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use serde::{de::DeserializeOwned, Serialize};
use tokio::net::UnixStream;

use crate::fd::{recv_with_fds, CarriesFd, FdQueue, MAX_QUEUED_FDS};
use crate::frame_buf::FrameBuf;
use crate::pipe::Pipe;
use crate::{Error, FrameDecoder, RequestId, Timestamp};

const READ_CHUNK: usize = 64 * 1024;

/// A stream of decoded messages, yielded in batches of everything one read delivered.
///
/// Yields `Err` once on a broken or malformed channel and `None` at a clean EOF.
///
/// On a socket it reads with `recvmsg`, so file descriptors the peer passes
/// (`SCM_RIGHTS`) are received close-on-exec, owned at once, and handed to
/// the messages that declare them ([`CarriesFd`]); a descriptor no message
/// claims is closed when the stream is dropped. On a [`Pipe`] no descriptor
/// can arrive: a message that declares one is an error ([`Error::MissingFd`]).
#[derive(Debug)]
pub struct FrameStream<T> {
    source: Source,
    buf: BytesMut,
    decoder: FrameDecoder,
    fds: FdQueue,
    /// An error met after some frames of the same read decoded; yielded after them.
    error: Option<Error>,
    done: bool,
    _msg: PhantomData<fn() -> T>,
}

/// What a [`FrameStream`] reads.
#[derive(Debug)]
enum Source {
    Socket(Arc<UnixStream>),
    Pipe(Arc<Pipe>),
}

impl<T: DeserializeOwned + CarriesFd> FrameStream<T> {
    /// Reads frames of at most `max_frame_len` body bytes from `stream`.
    pub fn new(stream: Arc<UnixStream>, max_frame_len: usize) -> Self {
        Self::with_source(Source::Socket(stream), max_frame_len)
    }

    /// Reads frames of at most `max_frame_len` body bytes from `pipe` (the
    /// stdio transport: no descriptors).
    pub fn from_pipe(pipe: Arc<Pipe>, max_frame_len: usize) -> Self {
        Self::with_source(Source::Pipe(pipe), max_frame_len)
    }

    fn with_source(source: Source, max_frame_len: usize) -> Self {
        Self {
            source,
            buf: BytesMut::with_capacity(READ_CHUNK),
            decoder: FrameDecoder::new(max_frame_len),
            fds: VecDeque::new(),
            error: None,
            done: false,
            _msg: PhantomData,
        }
    }

    /// Waits for the next batch of messages.
    ///
    /// # Errors
    ///
    /// As the stream's items.
    pub async fn next_batch(&mut self) -> Option<Result<Vec<T>, Error>> {
        std::future::poll_fn(|cx| self.poll_batch(cx)).await
    }

    fn decode_buffered(&mut self, out: &mut Vec<T>) -> Result<(), Error> {
        while let Some(mut msg) = self.decoder.decode::<T>(&mut self.buf)? {
            if let Some(slot) = msg.fd_slot() {
                let Some(fd) = self.fds.pop_front() else {
                    return Err(Error::MissingFd {
                        message: std::any::type_name::<T>(),
                    });
                };
                // A dropped descriptor leaves the slot empty; the receiver answers that.
                if let Some(fd) = fd {
                    *slot = crate::Fd::new(fd);
                }
            }
            out.push(msg);
        }
        if self.fds.len() > MAX_QUEUED_FDS {
            return Err(Error::TooManyFds {
                queued: self.fds.len(),
                max: MAX_QUEUED_FDS,
            });
        }
        Ok(())
    }

    fn poll_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Vec<T>, Error>>> {
        if let Some(e) = self.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        if self.done {
            return Poll::Ready(None);
        }
        let mut batch = Vec::new();
        loop {
            if let Err(e) = self.decode_buffered(&mut batch) {
                self.done = true;
                if batch.is_empty() {
                    return Poll::Ready(Some(Err(e)));
                }
                // Deliver the frames that came before the bad one first.
                self.error = Some(e);
                return Poll::Ready(Some(Ok(batch)));
            }
            if !batch.is_empty() {
                return Poll::Ready(Some(Ok(batch)));
            }
            let ready = match &self.source {
                Source::Socket(stream) => stream.poll_read_ready(cx),
                Source::Pipe(pipe) => pipe.poll_read_ready(cx),
            };
            if let Err(e) = ready!(ready) {
                self.done = true;
                return Poll::Ready(Some(Err(e.into())));
            }
            self.buf.reserve(READ_CHUNK);
            let read = match &self.source {
                Source::Socket(stream) => read_draining(stream, &mut self.buf, &mut self.fds),
                Source::Pipe(pipe) => pipe.read_buf(&mut self.buf),
            };
            match read {
                Ok(0) => {
                    self.done = true;
                    let buffered = self.decoder.pending(&self.buf);
                    return Poll::Ready(if buffered == 0 {
                        None
                    } else {
                        Some(Err(Error::Truncated { buffered }))
                    });
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }
}

impl<T: DeserializeOwned + CarriesFd> futures_core::Stream for FrameStream<T> {
    type Item = Result<Vec<T>, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_batch(cx)
    }
}

/// Reads what the socket holds into `buf`.
///
/// A read that leaves room in the buffer has drained the socket, so the
/// readiness tokio cached is cleared now, rather than by one more read that
/// fails with `EAGAIN` (tokio's own `poll_read` does the same; tokio#5866).
/// Returning `WouldBlock` from the `try_io` closure is how tokio is told; it
/// clears only the readiness it saw before this read, so data that arrives
/// meanwhile still wakes the reader. A read that brought descriptors stopped
/// at their message, so it says nothing about what is left.
fn read_draining(stream: &UnixStream, buf: &mut BytesMut, fds: &mut FdQueue) -> io::Result<usize> {
    let room = buf.capacity() - buf.len();
    let mut drained = None;
    let res = stream.try_io(tokio::io::Interest::READABLE, || {
        let got = recv_with_fds(stream, buf, fds)?;
        let n = got.bytes;
        if n > 0 && n < room && !got.fds {
            drained = Some(n);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match (res, drained) {
        (Err(e), Some(n)) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
        (res, _) => res,
    }
}

/// A write buffer of frames ([`FrameBuf`]) and the stream it is flushed to
/// with as few syscalls as possible.
#[derive(Debug)]
pub struct FrameSink {
    stream: Arc<UnixStream>,
    buf: FrameBuf,
}

impl FrameSink {
    /// Writes frames of at most `max_frame_len` body bytes to `stream`.
    pub fn new(stream: Arc<UnixStream>, max_frame_len: usize) -> Self {
        Self {
            stream,
            buf: FrameBuf::new(max_frame_len),
        }
    }

    /// Queues one message; nothing is written until a flush.
    ///
    /// # Errors
    ///
    /// As [`encode_frame`](crate::encode_frame); the buffer is unchanged on error.
    pub fn push<M: Serialize>(&mut self, msg: &M) -> Result<(), Error> {
        self.buf.push(msg)
    }

    /// As [`FrameBuf::push_request`].
    ///
    /// # Errors
    ///
    /// As [`encode_frame`](crate::encode_frame); the buffer is unchanged on error.
    pub fn push_request(
        &mut self,
        id: RequestId,
        created_at: Timestamp,
        call: u32,
        payload: &[u8],
        trace: Option<&str>,
    ) -> Result<(), Error> {
        self.buf.push_request(id, created_at, call, payload, trace)
    }

    /// As [`FrameBuf::push_with_fd`].
    ///
    /// # Errors
    ///
    /// As [`FrameBuf::push_with_fd`].
    pub fn push_with_fd<M: Serialize + CarriesFd>(&mut self, msg: M) -> Result<(), Error> {
        self.buf.push_with_fd(msg)
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.buf.pending()
    }

    /// Writes as much as the socket takes now; `Ok(true)` once the buffer is empty.
    ///
    /// # Errors
    ///
    /// The socket's error (the peer is gone, usually).
    pub fn try_flush(&mut self) -> io::Result<bool> {
        self.buf.write_to(&self.stream)
    }

    /// Writes everything queued, waiting for the socket as needed.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub async fn flush(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Poll form of [`FrameSink::flush`].
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.try_flush()? {
                return Poll::Ready(Ok(()));
            }
            ready!(self.stream.poll_write_ready(cx))?;
        }
    }

    /// The stream, to wait for writability from elsewhere.
    pub fn stream(&self) -> &Arc<UnixStream> {
        &self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RequestFrame, ToWorker, DEFAULT_MAX_FRAME_LEN};

    #[tokio::test]
    async fn push_request_encodes_exactly_like_the_owned_message() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut sink = FrameSink::new(Arc::new(a), DEFAULT_MAX_FRAME_LEN);
        let frame = RequestFrame {
            id: uuid::Uuid::new_v4(),
            created_at: Timestamp(123_456_789),
            call: 300,
            payload: vec![1, 2, 3, 250],
            trace: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned()),
        };
        sink.push_request(
            frame.id,
            frame.created_at,
            frame.call,
            &frame.payload,
            frame.trace.as_deref(),
        )
        .unwrap();
        let owned = crate::frame(&ToWorker::Request(frame), DEFAULT_MAX_FRAME_LEN).unwrap();
        assert_eq!(sink.buf.unwritten(), owned);
    }
}
