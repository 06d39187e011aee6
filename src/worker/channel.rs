//! The worker's end of its channel: the socket it inherited (`LPM_IPC_FD`),
//! or, without one, its stdin and stdout (the stdio transport: a worker
//! started through `ssh` or `docker run -i`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use lpm_protocol::{FrameStream, OutFds, Pipe, ToWorker};
use tokio::net::UnixStream;

use crate::WorkerError;

/// One end of the channel to the supervisor.
#[derive(Debug, Clone)]
pub(crate) enum Channel {
    /// The socketpair: descriptors pass with `SCM_RIGHTS`.
    Socket(Arc<UnixStream>),
    /// Frames come on `input` (what was stdin) and go out on `output` (what
    /// was stdout); no descriptor can pass.
    Stdio { input: Arc<Pipe>, output: Arc<Pipe> },
}

impl Channel {
    /// Whether descriptors pass on this channel (the `Hello`'s `takes_fds`).
    pub(crate) fn takes_fds(&self) -> bool {
        matches!(self, Channel::Socket(_))
    }

    /// The supervisor's frames.
    pub(crate) fn frames(&self, max_frame_len: usize) -> FrameStream<ToWorker> {
        match self {
            Channel::Socket(socket) => FrameStream::new(Arc::clone(socket), max_frame_len),
            Channel::Stdio { input, .. } => {
                FrameStream::from_pipe(Arc::clone(input), max_frame_len)
            }
        }
    }

    /// Writes all of `buf`, and the descriptors of its frames (only a socket has any).
    pub(crate) async fn write_all(&self, buf: &[u8], fds: &mut OutFds) -> io::Result<()> {
        match self {
            Channel::Socket(socket) if !fds.is_empty() => {
                let mut written = 0;
                while !fds.write(socket, buf, &mut written)? {
                    socket.writable().await?;
                }
                Ok(())
            }
            Channel::Socket(socket) => write_socket(socket, buf).await,
            Channel::Stdio { output, .. } if fds.is_empty() => output.write_all(buf).await,
            Channel::Stdio { .. } => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a frame that carries a file descriptor cannot go over stdio",
            )),
        }
    }
}

/// Writes all of `buf`, waiting for the socket only when it is full.
async fn write_socket(stream: &UnixStream, buf: &[u8]) -> io::Result<()> {
    let mut written = 0;
    while written < buf.len() {
        match stream.try_write(&buf[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The channel over this process's stdin and stdout, for a worker that did
/// not inherit a socket.
///
/// Both are duplicated (close-on-exec) for the channel; then fd 0 reads
/// `/dev/null` and fd 1 writes where fd 2 does, so neither a stray
/// `println!` nor a program the worker starts can touch the frames.
///
/// # Errors
///
/// [`WorkerError::NoChannel`] when stdin or stdout cannot serve as a
/// channel (a regular file, a closed descriptor).
pub(crate) fn take_stdio() -> Result<(OwnedFd, OwnedFd), WorkerError> {
    let no_channel = |what: &str, e: io::Error| WorkerError::NoChannel {
        source: format!("LPM_IPC_FD is not set, and {what} cannot be the channel: {e}").into(),
    };
    // SAFETY: 0, 1 and 2 are this process's standard descriptors, open for
    // its whole life (the checks below fail cleanly when one is not); they are
    // only borrowed here, and replaced with dup2 below, never closed.
    let (stdin, stdout, stderr) = unsafe {
        (
            BorrowedFd::borrow_raw(0),
            BorrowedFd::borrow_raw(1),
            BorrowedFd::borrow_raw(2),
        )
    };
    // A terminal mangles bytes (and means a person started this by hand).
    for (what, fd) in [("stdin", stdin), ("stdout", stdout)] {
        // SAFETY: isatty only looks at the descriptor.
        if unsafe { libc::isatty(fd.as_raw_fd()) } == 1 {
            let e = io::Error::other(
                "it is a terminal (start the worker through an lpm pool; over ssh, without -t)",
            );
            return Err(no_channel(what, e));
        }
    }
    let input = stdin
        .try_clone_to_owned()
        .map_err(|e| no_channel("stdin", e))?;
    let output = stdout
        .try_clone_to_owned()
        .map_err(|e| no_channel("stdout", e))?;
    let devnull = std::fs::File::open("/dev/null").map_err(|e| no_channel("stdin", e))?;
    redirect(devnull.as_fd(), 0).map_err(|e| no_channel("stdin", e))?;
    // Without a stderr, stdout goes nowhere rather than into the channel.
    let log = if is_open(stderr) {
        stderr
    } else {
        devnull.as_fd()
    };
    redirect(log, 1).map_err(|e| no_channel("stdout", e))?;
    Ok((input, output))
}

/// Makes `target` a copy of `source`.
fn redirect(source: BorrowedFd<'_>, target: i32) -> io::Result<()> {
    // SAFETY: dup2 on descriptors this process owns; `target` is one of the
    // standard descriptors, whose old file the channel holds a copy of.
    if unsafe { libc::dup2(source.as_raw_fd(), target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn is_open(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) >= 0 }
}

impl Channel {
    /// The stdio channel over these two descriptors (registered with the
    /// current runtime).
    pub(crate) fn stdio(input: OwnedFd, output: OwnedFd) -> Result<Self, WorkerError> {
        let pipe = |fd: OwnedFd, what: &str| {
            Pipe::new(fd).map_err(|e| WorkerError::NoChannel {
                source: format!("{what} cannot be the channel: {e}").into(),
            })
        };
        Ok(Channel::Stdio {
            input: Arc::new(pipe(input, "stdin")?),
            output: Arc::new(pipe(output, "stdout")?),
        })
    }
}
