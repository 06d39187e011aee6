//! The supervisor's end of one worker's channel, whatever its transport: a
//! socket (the socketpair, which also passes descriptors) or a pair of
//! pipes (the worker's stdin and stdout). Both read frames in batches and
//! write the session's queued frames with as few calls as the kernel allows.

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use lpm_protocol::{FrameBuf, FrameStream, Pipe, ToSupervisor};
use tokio::net::UnixStream;

use crate::Transport;

/// One worker's channel.
#[derive(Debug)]
pub(crate) enum Channel {
    /// The socketpair: full duplex, descriptors pass with `SCM_RIGHTS`.
    Socket(Arc<UnixStream>),
    /// The worker's stdout (read) and stdin (written); the stdin end is
    /// dropped when the input is closed.
    Pipes {
        from_worker: Arc<Pipe>,
        to_worker: Option<Arc<Pipe>>,
    },
}

impl Channel {
    /// The transport this channel is.
    pub(crate) fn transport(&self) -> Transport {
        match self {
            Channel::Socket(_) => Transport::Socketpair,
            Channel::Pipes { .. } => Transport::Stdio,
        }
    }

    /// The worker's frames, in batches of what each read delivered.
    pub(crate) fn frames(&self, max_frame_len: usize) -> FrameStream<ToSupervisor> {
        match self {
            Channel::Socket(socket) => FrameStream::new(Arc::clone(socket), max_frame_len),
            Channel::Pipes { from_worker, .. } => {
                FrameStream::from_pipe(Arc::clone(from_worker), max_frame_len)
            }
        }
    }

    /// Writes what the channel takes now of `outbox`; `Ok(true)` once it is
    /// empty. After [`Channel::close_input`] nothing can reach the worker:
    /// the frames are dropped.
    pub(crate) fn write(&self, outbox: &mut FrameBuf) -> io::Result<bool> {
        match self {
            Channel::Socket(socket) => outbox.write_to(socket),
            Channel::Pipes {
                to_worker: Some(pipe),
                ..
            } => outbox.write_to_pipe(pipe),
            Channel::Pipes {
                to_worker: None, ..
            } => {
                outbox.clear();
                Ok(true)
            }
        }
    }

    /// Resolves when a write may make progress (at once if the input is closed).
    pub(crate) fn writable(&self) -> impl Future<Output = io::Result<()>> + 'static {
        let target = match self {
            Channel::Socket(socket) => Some(Ok(Arc::clone(socket))),
            Channel::Pipes { to_worker, .. } => to_worker.as_ref().map(|p| Err(Arc::clone(p))),
        };
        async move {
            match target {
                Some(Ok(socket)) => socket.writable().await,
                Some(Err(pipe)) => pipe.writable().await,
                None => Ok(()),
            }
        }
    }

    /// The worker reads end of file from now on: the socket is shut down for
    /// writing, or the stdin pipe closed. How a worker that is not ours to
    /// signal (a remote one) learns to stop.
    pub(crate) fn close_input(&mut self) {
        match self {
            Channel::Socket(socket) => {
                use nix::sys::socket::{shutdown, Shutdown};
                if let Err(e) = shutdown(socket.as_raw_fd(), Shutdown::Write) {
                    tracing::debug!(error = %e, "could not shut the worker's channel down for writing");
                }
            }
            Channel::Pipes { to_worker, .. } => *to_worker = None,
        }
    }
}
