//! Starting a worker process: its channel (a socketpair on fd 3, or its
//! stdin and stdout), its own process group (watched by the group guard),
//! and a parent-death signal so it never outlives the supervisor.
//!
//! The process starts on a spawner thread (`crate::spawner`), never on the
//! actor thread, and without a copy of the supervisor's memory
//! (`launch.rs`); what it produces is tied to the actor thread's runtime
//! once it arrives there ([`spawn_worker`]'s future).

mod child;
mod launch;

use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use lpm_protocol::{Codec, Pipe, CODEC_ENV, IPC_FD, IPC_FD_ENV, MAX_FRAME_LEN_ENV};

pub(crate) use child::Child;
use child::{open_pidfd, Process};
use launch::{launch, Plumbing, Program};

use super::channel::Channel;
use crate::{spawner, Transport, WorkerCommand};

// `launch` gives the child its channel as fd 3.
const _: () = assert!(IPC_FD == 3);

/// A started child and the supervisor's end of its channel.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) channel: Channel,
}

/// A child just started on a spawner thread, not yet tied to any runtime.
#[derive(Debug)]
struct Started {
    process: Process,
    pidfd: Option<OwnedFd>,
    stdout: OwnedFd,
    stderr: OwnedFd,
    channel: StartedChannel,
}

/// Our end of a started child's channel, not yet tied to any runtime.
#[derive(Debug)]
enum StartedChannel {
    Socket(std::os::unix::net::UnixStream),
    /// The write end of its stdin; its stdout (in `Started`) is the read end.
    Stdin(OwnedFd),
}

impl Started {
    /// Ties the process, its pipes and its channel to the current thread's runtime.
    fn register(self) -> io::Result<Spawned> {
        let pid = self.process.id();
        let (channel, log) = match self.channel {
            StartedChannel::Socket(socket) => (
                Channel::Socket(Arc::new(tokio::net::UnixStream::from_std(socket)?)),
                Some(self.stdout),
            ),
            StartedChannel::Stdin(stdin) => (
                Channel::Pipes {
                    from_worker: Arc::new(Pipe::new(self.stdout)?),
                    to_worker: Some(Arc::new(Pipe::new(stdin)?)),
                },
                None,
            ),
        };
        let child = Child::register(self.process, self.pidfd, log, self.stderr)?;
        Ok(Spawned {
            child,
            pid,
            channel,
        })
    }
}

/// Starts one worker process on a spawner thread.
///
/// The future must be polled on the thread whose runtime will serve the
/// worker (the pool's actor thread): that is where its channel, pipes and
/// exit watch are registered. Dropped before it resolves, it leaves nothing
/// behind: a process started meanwhile is killed and reaped.
///
/// The child gets: fd 3 = its end of a fresh socketpair (and `LPM_IPC_FD=3`),
/// stdin from /dev/null, stdout and stderr piped to us; or, over
/// [`Transport::Stdio`], stdin and stdout piped to us as its channel, stderr
/// piped to us, no fd 3 and no `LPM_IPC_FD`; no other descriptor
/// (even one the host left without close-on-exec), its own process group
/// (so a hard kill reaches its own children too, and a terminal's Ctrl-C goes
/// to the supervisor alone), and SIGKILL when the spawner thread that started
/// it ends (which is when this process ends).
pub(crate) fn spawn_worker(
    command: Arc<WorkerCommand>,
    max_frame_len: usize,
    codec: Codec,
) -> impl Future<Output = io::Result<Spawned>> {
    let started = spawner::run(move || start_process(&command, max_frame_len, codec));
    async move {
        let started = started?.await.map_err(|_| {
            io::Error::other("the spawner thread failed while starting the worker")
        })??;
        started.register()
    }
}

/// Starts the worker; blocks until it has exec'd (or failed to).
fn start_process(
    command: &WorkerCommand,
    max_frame_len: usize,
    codec: Codec,
) -> io::Result<Started> {
    // std creates both ends with CLOEXEC: no other child inherits them.
    let socketpair = match command.transport {
        Transport::Socketpair => {
            let (parent_end, child_end) = std::os::unix::net::UnixStream::pair()?;
            parent_end.set_nonblocking(true)?;
            Some((parent_end, child_end))
        }
        Transport::Stdio => None,
    };
    let mut ours = vec![
        (MAX_FRAME_LEN_ENV, max_frame_len.to_string()),
        (CODEC_ENV, codec.name().to_owned()),
    ];
    if socketpair.is_some() {
        ours.push((IPC_FD_ENV, IPC_FD.to_string()));
    }
    let mut env = Program::environment(
        command
            .env
            .iter()
            .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
            .chain(ours.iter().map(|(k, v)| (OsStr::new(k), OsStr::new(v)))),
    );
    if socketpair.is_none() {
        // A worker tells the transports apart by this variable alone.
        env.remove(OsStr::new(IPC_FD_ENV));
    }
    let program = Program {
        program: &command.program,
        args: &command.args,
        env,
        cwd: command.cwd.as_deref(),
    };
    let plumbing = match &socketpair {
        Some((_, child_end)) => Plumbing::Fd3(child_end.as_raw_fd()),
        None => Plumbing::Stdio,
    };
    let launched = launch(&program, plumbing)?;
    let pid = launched.pid;
    let process = Process::new(pid);
    // Should this process die without reaping it, the guard kills its group.
    super::group_guard::watch(pid);
    let channel = match (socketpair, launched.stdin) {
        (Some((parent_end, _child_end)), _) => StartedChannel::Socket(parent_end),
        (None, Some(stdin)) => StartedChannel::Stdin(stdin),
        // Not reached: `launch` pipes stdin over stdio. `process` is killed and reaped.
        (None, None) => {
            return Err(io::Error::other(
                "the worker was started without a stdin pipe",
            ));
        }
    };
    Ok(Started {
        pidfd: open_pidfd(pid),
        process,
        stdout: launched.stdout,
        stderr: launched.stderr,
        channel,
    })
}

/// Sends `signal` to the worker's whole process group.
pub(crate) fn signal_group(pid: u32, signal: nix::sys::signal::Signal) {
    let pgid = nix::unistd::Pid::from_raw(pid as i32);
    if let Err(e) = nix::sys::signal::killpg(pgid, signal) {
        if e != nix::errno::Errno::ESRCH {
            tracing::warn!(pid, ?signal, error = %e, "could not signal worker process group");
        }
    }
}
