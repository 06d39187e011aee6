//! File descriptors that ride beside frames as `SCM_RIGHTS` ancillary data.
//!
//! The rule both sides follow (see the wire page, "File descriptors"):
//!
//! * a message that carries a descriptor is sent with a `sendmsg` call of its
//!   own whose data starts at the frame's first byte, with the descriptor
//!   attached, so the kernel delivers the descriptor with that byte;
//! * the receiver reads with `recvmsg` (`MSG_CMSG_CLOEXEC`), takes ownership
//!   of every descriptor at once and queues them in arrival order; a decoded
//!   message that declares a descriptor takes the next one from the queue.
//!
//! Linux never merges the bytes of an `SCM_RIGHTS` message with later bytes
//! in one `recvmsg`, and a descriptor arrives no later than the first byte
//! of its frame, so by the time a frame is whole its descriptor is queued.
//!
//! All the `unsafe` of the crate's descriptor handling is in this file.

use std::collections::VecDeque;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use tokio::net::UnixStream;

/// Most descriptors one message may carry (every message of this protocol carries at most one).
pub const MAX_FDS_PER_FRAME: usize = 1;

/// Most descriptors received and not yet claimed by a whole frame; more is a protocol violation.
pub const MAX_QUEUED_FDS: usize = 64;

/// Room for this many descriptors in one `recvmsg` control buffer: more than a
/// peer may send, so that a peer that sends too many is caught (`MSG_CTRUNC`
/// closes the extra ones, and the channel is ended).
const RECV_FDS: usize = 4;

/// A file descriptor carried beside a message, not in its bytes.
///
/// On the receiving side the stream fills it in; on the sending side
/// [`FrameSink::push_with_fd`](crate::FrameSink::push_with_fd) takes it out
/// and passes it with the frame. It owns its descriptor: dropping a message
/// closes it.
///
/// Equality ignores which descriptor is held: two `Fd`s are equal when both
/// hold one or both are empty (a descriptor's number means nothing across
/// processes). Cloning duplicates the descriptor (`F_DUPFD_CLOEXEC`); if that
/// fails (the process is out of descriptors) the clone is empty, and sending
/// it fails with [`Error::MissingFd`](crate::Error::MissingFd).
#[derive(Debug, Default)]
pub struct Fd(Option<OwnedFd>);

impl Fd {
    /// Holds `fd`.
    pub fn new(fd: impl Into<OwnedFd>) -> Self {
        Fd(Some(fd.into()))
    }

    /// No descriptor (what a decoded body holds until the stream attaches one).
    pub fn none() -> Self {
        Fd(None)
    }

    /// Whether a descriptor is held.
    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// Takes the descriptor out.
    pub fn take(&mut self) -> Option<OwnedFd> {
        self.0.take()
    }

    /// Borrows the descriptor.
    pub fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        self.0.as_ref().map(AsFd::as_fd)
    }
}

impl Clone for Fd {
    fn clone(&self) -> Self {
        Fd(self.0.as_ref().and_then(|fd| fd.try_clone().ok()))
    }
}

impl PartialEq for Fd {
    fn eq(&self, other: &Self) -> bool {
        self.0.is_some() == other.0.is_some()
    }
}

/// What a passed descriptor is, so the receiver wraps it in the right type.
///
/// On the wire: a varint index, in the order listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FdKind {
    /// 0: the read end of a pipe; the sender writes the stream into the other end
    /// and closes it at the end of the stream.
    Pipe,
    /// 1: an open file (or anything else readable that cannot be polled);
    /// read from its current offset to its end.
    File,
    /// 2: a connected TCP socket.
    TcpStream,
    /// 3: a connected Unix stream socket.
    UnixStream,
    /// 4: a listening TCP socket.
    TcpListener,
    /// 5: a listening Unix stream socket.
    UnixListener,
}

/// A message type some of whose variants carry a descriptor beside their bytes.
pub trait CarriesFd {
    /// The slot for this message's descriptor, if its variant declares one.
    fn fd_slot(&mut self) -> Option<&mut Fd>;
}

/// Descriptors received and not yet claimed by a frame, oldest first;
/// `None` stands for one the kernel could not install (this process was out
/// of descriptors), so that its frame still decodes, without it.
pub(crate) type FdQueue = VecDeque<Option<OwnedFd>>;

/// What one `recvmsg` delivered.
pub(crate) struct Received {
    /// Bytes appended to the buffer.
    pub(crate) bytes: usize,
    /// Whether descriptors came with them (the read then stopped at their
    /// message, so the socket may hold more).
    pub(crate) fds: bool,
}

/// Reads what the socket holds into `buf`'s spare room and queues every
/// descriptor that came with it, owned and close-on-exec.
///
/// # Errors
///
/// The socket's error (`WouldBlock` when it is empty); `InvalidData` when the
/// peer sent more descriptors than fit (they are closed).
pub(crate) fn recv_with_fds(
    stream: &UnixStream,
    buf: &mut BytesMut,
    fds: &mut FdQueue,
) -> io::Result<Received> {
    let spare = buf.spare_capacity_mut();
    let mut iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len(),
    };
    // u64 elements keep the control buffer aligned for `cmsghdr`.
    let mut control = [0u64; 16];
    // SAFETY: CMSG_SPACE is a pure computation on its argument.
    let space = unsafe { libc::CMSG_SPACE((RECV_FDS * size_of::<RawFd>()) as u32) } as usize;
    debug_assert!(space <= size_of::<[u64; 16]>());
    // SAFETY: an all-zero msghdr is a valid value (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = stream.try_io(tokio::io::Interest::READABLE, || {
        // SAFETY: `msg` points at `iov` (the buffer's spare room, writable for
        // its length) and at `control` (writable for `space` bytes), which all
        // outlive the call.
        let n = unsafe {
            libc::recvmsg(
                stream.as_raw_fd(),
                &mut msg,
                libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    })?;
    let before = fds.len();
    // SAFETY: the kernel filled `msg.msg_control`/`msg_controllen` with
    // well-formed control messages; the CMSG macros walk them within bounds,
    // and each SCM_RIGHTS payload is an array of descriptors now open in this
    // process and owned by nobody else, so each is wrapped in an `OwnedFd` at once.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let len = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                for i in 0..len / size_of::<RawFd>() {
                    let raw = std::ptr::read_unaligned(data.add(i));
                    fds.push_back(Some(OwnedFd::from_raw_fd(raw)));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    // SAFETY: the kernel wrote `n` bytes into the spare room, starting at its beginning.
    unsafe { buf.set_len(buf.len() + n) };
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        // A peer that sends too many fills every slot first; fewer means the
        // kernel dropped the frame's descriptor (EMFILE): not the peer's fault.
        if fds.len() - before >= RECV_FDS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the peer passed more file descriptors than a frame may carry",
            ));
        }
        fds.push_back(None);
    }
    Ok(Received {
        bytes: n,
        fds: fds.len() > before,
    })
}

/// Sends `bytes` with `fds` attached to the first of them, in one `sendmsg`.
///
/// # Errors
///
/// The socket's error (`WouldBlock` when it is full: nothing was sent).
pub(crate) fn send_with_fds(
    stream: &UnixStream,
    bytes: &[u8],
    fds: &[OwnedFd],
) -> io::Result<usize> {
    debug_assert!(!bytes.is_empty() && fds.len() <= RECV_FDS);
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    let mut control = [0u64; 16];
    let data_len = fds.len() * size_of::<RawFd>();
    // SAFETY: pure computations on their argument.
    let (space, cmsg_len) = unsafe {
        (
            libc::CMSG_SPACE(data_len as u32) as usize,
            libc::CMSG_LEN(data_len as u32) as usize,
        )
    };
    // SAFETY: an all-zero msghdr is a valid value.
    let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `control` has room for `space` bytes (at most 4 descriptors), so
    // the first header and its data are inside it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = cmsg_len as _;
        let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
        for (i, fd) in fds.iter().enumerate() {
            std::ptr::write_unaligned(data.add(i), fd.as_raw_fd());
        }
    }
    stream.try_io(tokio::io::Interest::WRITABLE, || {
        // SAFETY: `msg` points at `iov` (readable for `bytes.len()`) and at the
        // control buffer, which outlive the call; the descriptors are open
        // (borrowed from `fds` for the call).
        let n = unsafe {
            libc::sendmsg(
                stream.as_raw_fd(),
                &msg,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    })
}

/// Descriptors waiting to go out with the frame that starts at `at` in a write buffer.
#[derive(Debug)]
pub(crate) struct OutFd {
    pub(crate) at: usize,
    pub(crate) fds: Vec<OwnedFd>,
}

/// Descriptors queued to go out with some frames of a write buffer, for
/// writers that keep their own buffer (the worker runtime's outbox).
#[derive(Debug, Default)]
pub struct OutFds(VecDeque<OutFd>);

impl OutFds {
    /// Sends `fd` with the frame that starts at offset `at` of the buffer
    /// (offsets must grow from one call to the next).
    pub fn push(&mut self, at: usize, fd: OwnedFd) {
        self.0.push_back(OutFd { at, fds: vec![fd] });
    }

    /// Whether no descriptor waits.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Writes `buf[*written..]` as far as the socket takes it now, each
    /// descriptor with the first byte of its frame; `Ok(true)` once all is
    /// written. Sent descriptors are closed here.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn write(
        &mut self,
        stream: &UnixStream,
        buf: &[u8],
        written: &mut usize,
    ) -> io::Result<bool> {
        write_with_fds(stream, buf, written, &mut self.0)
    }
}

/// Writes `buf[*written..]` as far as the socket takes it, sending each
/// queued descriptor with the first byte of its frame.
///
/// Returns `Ok(true)` once everything is written, `Ok(false)` when the
/// socket is full. Descriptors are dropped (closed here) once sent.
///
/// # Errors
///
/// The socket's error.
pub(crate) fn write_with_fds(
    stream: &UnixStream,
    buf: &[u8],
    written: &mut usize,
    fds: &mut VecDeque<OutFd>,
) -> io::Result<bool> {
    while *written < buf.len() {
        let (res, with_fds) = match fds.front() {
            Some(front) if front.at <= *written => {
                let end = fds.get(1).map_or(buf.len(), |next| next.at);
                (send_with_fds(stream, &buf[*written..end], &front.fds), true)
            }
            Some(front) => (stream.try_write(&buf[*written..front.at]), false),
            None => (stream.try_write(&buf[*written..]), false),
        };
        match res {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                *written += n;
                if with_fds {
                    fds.pop_front();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A pipe whose both ends are close-on-exec: `(read, write)`.
///
/// # Errors
///
/// The system's error (out of descriptors, usually).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// A duplicate of `fd` that is close-on-exec.
///
/// # Errors
///
/// The system's error (out of descriptors, or `fd` is not open).
pub fn dup_cloexec(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    fd.try_clone_to_owned()
}
