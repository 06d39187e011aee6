//! The wire protocol between an lpm supervisor and its worker processes.
//!
//! Each worker inherits one end of a Unix socketpair as file descriptor 3
//! (the environment variable [`IPC_FD_ENV`] names it), so its stdout and
//! stderr stay free for its own logs. Both sides exchange length-prefixed
//! [postcard] frames: [`ToWorker`] one way, [`ToSupervisor`] the other. The
//! exact byte layout, precise enough to write a worker in another language,
//! is in the [`wire`] module.
//!
//! This crate has no actix dependency, so a child binary can link it cheaply.
//!
//! # Examples
//!
//! ```
//! use lpm_protocol::{frame, FrameDecoder, ToWorker, DEFAULT_MAX_FRAME_LEN, PROTOCOL_VERSION};
//!
//! let hello = ToWorker::Hello { version: PROTOCOL_VERSION, slot: 2, codec: lpm_protocol::Codec::Postcard };
//! let bytes = frame(&hello, DEFAULT_MAX_FRAME_LEN)?;
//!
//! let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
//! let mut buf = bytes::BytesMut::from(&bytes[..]);
//! assert_eq!(decoder.decode::<ToWorker>(&mut buf)?, Some(hello));
//! # Ok::<(), lpm_protocol::Error>(())
//! ```
//!
//! [postcard]: https://docs.rs/postcard

mod codec;
mod credit;
mod error;
mod fd;
mod frame_buf;
mod id_map;
mod io;
mod message;
mod payload;
mod pipe;
mod trace;
mod typed;

pub mod wire {
    #![doc = include_str!("../WIRE.md")]
}

pub use codec::{encode_frame, frame, FrameDecoder, DEFAULT_MAX_FRAME_LEN, HEADER_LEN};
pub use credit::Credit;
pub use error::Error;
pub use fd::{dup_cloexec, pipe, CarriesFd, Fd, FdKind, OutFds, MAX_FDS_PER_FRAME, MAX_QUEUED_FDS};
pub use frame_buf::FrameBuf;
pub use id_map::{IdHasher, IdMap};
pub use io::{FrameSink, FrameStream};
pub use message::{RequestFrame, RequestId, Timestamp, ToSupervisor, ToWorker};
pub use payload::Codec;
pub use pipe::Pipe;
pub use trace::{TraceParent, TRACE_SAMPLED};
pub use typed::{Call, Query, Topic};

/// Version of this protocol; both sides send it in their `Hello`.
///
/// Version 2 added the messages that carry file descriptors; version 3 the
/// payload codec and the call names in the `Hello`s, the call number in
/// request frames, and `NotHandled`; version 4 the stdio transport: in-band
/// streams with credit, `takes_fds` in the worker's `Hello`, usage reports,
/// and the trace context in request frames.
pub const PROTOCOL_VERSION: u16 = 4;

/// The credit each side of an in-band stream starts with: the sender may
/// send this many bytes of a stream before the receiver grants more.
pub const STREAM_WINDOW: u64 = 256 * 1024;

/// The largest `data` of one in-band `StreamData` frame.
pub const STREAM_CHUNK: usize = 64 * 1024;

/// The largest `data` a sender puts in one `StreamData` frame under a frame
/// limit of `max_frame_len`: [`STREAM_CHUNK`], or less when the limit is
/// lower (a `StreamData` body holds up to 32 bytes besides its data), and
/// never 0.
pub fn stream_chunk(max_frame_len: usize) -> usize {
    STREAM_CHUNK.min(max_frame_len.saturating_sub(32)).max(1)
}

/// Environment variable naming the pool's payload [`Codec`] (`postcard` or
/// `json`), so a worker uses the codec its pool does.
pub const CODEC_ENV: &str = "LPM_CODEC";

/// Environment variable naming the worker's end of the IPC socketpair.
pub const IPC_FD_ENV: &str = "LPM_IPC_FD";

/// Environment variable carrying the supervisor's frame size limit, so the
/// worker accepts every frame the supervisor may send.
pub const MAX_FRAME_LEN_ENV: &str = "LPM_MAX_FRAME_LEN";

/// The frame size limit the supervisor announced in [`MAX_FRAME_LEN_ENV`],
/// else [`DEFAULT_MAX_FRAME_LEN`].
pub fn max_frame_len_from_env() -> usize {
    std::env::var(MAX_FRAME_LEN_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_FRAME_LEN)
}

/// The file descriptor number the supervisor gives the worker's channel.
pub const IPC_FD: i32 = 3;

/// Takes the IPC channel this process inherited from its supervisor.
///
/// Reads [`IPC_FD_ENV`], checks the descriptor is a socket, and takes
/// ownership of it. Call it once: a second call would claim the same fd.
///
/// # Errors
///
/// [`Error::NoChannel`] when the variable is missing, not a number, or names
/// something that is not an open Unix socket.
pub fn inherited_channel() -> Result<std::os::unix::net::UnixStream, Error> {
    use std::os::fd::{FromRawFd, RawFd};

    let value = std::env::var(IPC_FD_ENV).ok();
    let no_channel = |reason: &str| Error::NoChannel {
        var: IPC_FD_ENV,
        value: value.clone(),
        reason: reason.to_owned(),
    };
    let fd: RawFd = value
        .as_deref()
        .ok_or_else(|| no_channel("not set"))?
        .parse()
        .map_err(|_| no_channel("not a file descriptor number"))?;
    if fd < 0 {
        return Err(no_channel("negative file descriptor"));
    }
    if !is_socket(fd) {
        return Err(no_channel("not an open socket"));
    }
    // SAFETY: `fd` is open and a socket (checked above); the supervisor gave it
    // to this process for exactly this use and nothing else in the process owns it.
    let stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    // Don't pass the channel on to programs this worker starts.
    set_cloexec(&stream)?;
    Ok(stream)
}

fn is_socket(fd: std::os::fd::RawFd) -> bool {
    use nix::sys::stat::{fstat, SFlag};
    // SAFETY: the fd is only borrowed for the duration of the fstat call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    fstat(fd)
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK)
        .unwrap_or(false)
}

fn set_cloexec(stream: &std::os::unix::net::UnixStream) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    fcntl(stream, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(std::io::Error::from)?;
    Ok(())
}
