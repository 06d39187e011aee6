//! Frames queued for writing, with the descriptors they carry: no socket, so
//! a state machine can queue frames and its shell writes them.

use std::io;
use std::os::fd::OwnedFd;

use tokio::net::UnixStream;

use crate::fd::{CarriesFd, OutFds};
use crate::message::{RequestFrameRef, ToWorkerRef};
use crate::pipe::Pipe;
use crate::{encode_frame, Error, RequestId, Timestamp};

/// Encoded frames waiting to be written, each descriptor with its frame.
#[derive(Debug)]
pub struct FrameBuf {
    buf: Vec<u8>,
    written: usize,
    max_frame_len: usize,
    /// Descriptors to send with the frames that start at their offsets.
    fds: OutFds,
}

impl FrameBuf {
    /// Queues frames of at most `max_frame_len` body bytes.
    pub fn new(max_frame_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            written: 0,
            max_frame_len,
            fds: OutFds::default(),
        }
    }

    /// Queues one message.
    ///
    /// # Errors
    ///
    /// As [`encode_frame`]; the buffer is unchanged on error.
    pub fn push<M: serde::Serialize>(&mut self, msg: &M) -> Result<(), Error> {
        encode_frame(msg, &mut self.buf, self.max_frame_len)
    }

    /// Queues a [`ToWorker::Request`](crate::ToWorker::Request) frame, encoded
    /// straight from a borrowed payload.
    ///
    /// # Errors
    ///
    /// As [`encode_frame`]; the buffer is unchanged on error.
    pub fn push_request(
        &mut self,
        id: RequestId,
        created_at: Timestamp,
        call: u32,
        payload: &[u8],
        trace: Option<&str>,
    ) -> Result<(), Error> {
        let msg = ToWorkerRef::Request(RequestFrameRef {
            id,
            created_at,
            call,
            payload,
            trace,
        });
        encode_frame(&msg, &mut self.buf, self.max_frame_len)
    }

    /// Queues one message together with the descriptor its variant declares
    /// (taken out of its [`Fd`](crate::Fd)); the descriptor is sent with the
    /// frame's first byte and closed once sent.
    ///
    /// # Errors
    ///
    /// As [`encode_frame`], and [`Error::MissingFd`] when the message
    /// declares no descriptor or holds none; the buffer is unchanged and
    /// the descriptor is closed on error.
    pub fn push_with_fd<M: serde::Serialize + CarriesFd>(
        &mut self,
        mut msg: M,
    ) -> Result<(), Error> {
        let fd: Option<OwnedFd> = msg.fd_slot().and_then(crate::Fd::take);
        let Some(fd) = fd else {
            return Err(Error::MissingFd {
                message: std::any::type_name::<M>(),
            });
        };
        let at = self.buf.len();
        encode_frame(&msg, &mut self.buf, self.max_frame_len)?;
        self.fds.push(at, fd);
        Ok(())
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.written
    }

    /// The bytes queued and not yet written (their descriptors aside).
    pub fn unwritten(&self) -> &[u8] {
        &self.buf[self.written..]
    }

    /// Forgets everything queued (the channel is gone); queued descriptors close.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.written = 0;
        self.fds = OutFds::default();
    }

    /// Writes as much as `stream` takes now; `Ok(true)` once nothing is left.
    ///
    /// # Errors
    ///
    /// The socket's error (the peer is gone, usually).
    pub fn write_to(&mut self, stream: &UnixStream) -> io::Result<bool> {
        if self.fds.is_empty() {
            while self.written < self.buf.len() {
                match stream.try_write(&self.buf[self.written..]) {
                    Ok(n) => self.written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        } else if !self.fds.write(stream, &self.buf, &mut self.written)? {
            return Ok(false);
        }
        self.buf.clear();
        self.written = 0;
        Ok(true)
    }

    /// Writes as much as `pipe` takes now; `Ok(true)` once nothing is left.
    ///
    /// # Errors
    ///
    /// The pipe's error (the reader is gone, usually), and `InvalidInput`
    /// when a queued frame carries a descriptor, which no pipe can pass.
    pub fn write_to_pipe(&mut self, pipe: &Pipe) -> io::Result<bool> {
        if !self.fds.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a frame that carries a file descriptor cannot go through a pipe",
            ));
        }
        while self.written < self.buf.len() {
            match pipe.try_write(&self.buf[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.clear();
        self.written = 0;
        Ok(true)
    }
}
