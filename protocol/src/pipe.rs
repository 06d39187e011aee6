//! One direction of a channel that carries bytes but no descriptors: the
//! pipes of the stdio transport (the worker's stdin and stdout), read and
//! written with plain `read`/`write` through tokio's reactor.
//!
//! Unlike tokio's own pipe types it takes any descriptor the reactor can
//! poll (a pipe, a socket, a terminal), since a launcher such as `ssh` may
//! give a worker a socket for its stdin.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A descriptor read or written without blocking, through the reactor of the
/// runtime it was made in.
#[derive(Debug)]
pub struct Pipe {
    fd: AsyncFd<OwnedFd>,
}

impl Pipe {
    /// Takes `fd`, makes it non-blocking and registers it with the current
    /// tokio runtime (call it inside one).
    ///
    /// # Errors
    ///
    /// The reactor cannot poll `fd` (a regular file, `/dev/null`), or there
    /// is no runtime.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        set_nonblocking(&fd)?;
        let interest = Interest::READABLE | Interest::WRITABLE;
        // SAFETY: the AsyncFd owns the descriptor: it stays open, and the
        // same, for as long as the AsyncFd lives.
        let fd = unsafe { AsyncFd::register_with_interest(fd, interest)? };
        Ok(Self { fd })
    }

    /// Waits until a read may make progress.
    ///
    /// # Errors
    ///
    /// The reactor's error.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The guard is dropped without clearing: `read_buf` clears readiness
        // when a read finds nothing.
        drop(ready!(self.fd.poll_read_ready(cx))?);
        Poll::Ready(Ok(()))
    }

    /// Waits until a write may make progress.
    ///
    /// # Errors
    ///
    /// The reactor's error.
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // As above: `try_write` clears readiness when the pipe is full.
        drop(ready!(self.fd.poll_write_ready(cx))?);
        Poll::Ready(Ok(()))
    }

    /// Resolves when a write may make progress.
    ///
    /// # Errors
    ///
    /// The reactor's error.
    pub async fn writable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_write_ready(cx)).await
    }

    /// Reads what the descriptor holds into `buf`'s spare capacity; `Ok(0)`
    /// is the end of the stream, `WouldBlock` means nothing is there yet.
    ///
    /// A read that leaves room in the buffer has drained the descriptor, so
    /// the readiness is cleared now rather than by one more failing read
    /// (as [`FrameStream`](crate::FrameStream) does for sockets).
    ///
    /// # Errors
    ///
    /// The system's error.
    pub fn read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let room = buf.capacity() - buf.len();
        let mut drained = None;
        let res = self.fd.try_io(Interest::READABLE, |fd| {
            let spare = buf.spare_capacity_mut();
            // SAFETY: `read` writes at most `spare.len()` bytes into memory
            // we own and that stays alive for the call.
            let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            // SAFETY: the kernel initialised the first `n` spare bytes.
            unsafe { buf.set_len(buf.len() + n) };
            if n > 0 && n < room {
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

    /// Writes what the descriptor takes now of `buf`; `WouldBlock` when it
    /// takes nothing.
    ///
    /// # Errors
    ///
    /// The system's error (`BrokenPipe` once the reader is gone).
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.fd.try_io(Interest::WRITABLE, |fd| {
            // SAFETY: `write` reads at most `buf.len()` bytes of `buf`.
            let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(n as usize)
        })
    }

    /// Writes all of `buf`, waiting for room as needed.
    ///
    /// # Errors
    ///
    /// The system's error.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        let mut written = 0;
        while written < buf.len() {
            match self.try_write(&buf[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_written_to_one_end_are_read_from_the_other() {
        let (r, w) = crate::pipe().unwrap();
        let (reader, writer) = (Pipe::new(r).unwrap(), Pipe::new(w).unwrap());
        writer.write_all(b"hello").await.unwrap();
        drop(writer);
        let mut buf = BytesMut::with_capacity(64);
        let mut got = Vec::new();
        loop {
            std::future::poll_fn(|cx| reader.poll_read_ready(cx))
                .await
                .unwrap();
            match reader.read_buf(&mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    got.extend_from_slice(&buf);
                    buf.clear();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, b"hello");
    }

    #[tokio::test]
    async fn a_descriptor_the_reactor_cannot_poll_is_refused() {
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(Pipe::new(file.into()).is_err());
    }
}
