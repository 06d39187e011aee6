//! Starting a worker process: its IPC socketpair on fd 3, its own process
//! group (watched by the group guard), and a parent-death signal so it never
//! outlives the supervisor.
//!
//! The fork and exec run on a spawner thread (`crate::spawner`), never on
//! the actor thread; what they produce is tied to the actor thread's
//! runtime once it arrives there ([`spawn_worker`]'s future).

mod child;

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;

use lpm_protocol::{Codec, CODEC_ENV, IPC_FD, IPC_FD_ENV, MAX_FRAME_LEN_ENV};

pub(crate) use child::Child;
use child::{open_pidfd, Process};

use crate::{spawner, WorkerCommand};

/// A started child and the supervisor's end of its channel.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) channel: tokio::net::UnixStream,
}

/// A child just forked on a spawner thread, not yet tied to any runtime.
#[derive(Debug)]
struct Forked {
    process: Process,
    pidfd: Option<OwnedFd>,
    channel: std::os::unix::net::UnixStream,
}

impl Forked {
    /// Ties the process, its pipes and its channel to the current thread's runtime.
    fn register(self) -> io::Result<Spawned> {
        let pid = self.process.id();
        let channel = tokio::net::UnixStream::from_std(self.channel)?;
        let child = Child::register(self.process, self.pidfd)?;
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
/// stdin from /dev/null, stdout and stderr piped to us, no other descriptor
/// (even one the host left without close-on-exec), its own process group
/// (so a hard kill reaches its own children too, and a terminal's Ctrl-C goes
/// to the supervisor alone), and SIGKILL when the spawner thread that forked
/// it ends (which is when this process ends).
pub(crate) fn spawn_worker(
    command: Arc<WorkerCommand>,
    max_frame_len: usize,
    codec: Codec,
) -> impl Future<Output = io::Result<Spawned>> {
    let forked = spawner::run(move || fork_worker(&command, max_frame_len, codec));
    async move {
        let forked = forked?.await.map_err(|_| {
            io::Error::other("the spawner thread failed while starting the worker")
        })??;
        forked.register()
    }
}

/// Forks and execs the worker; blocks until it has exec'd (or failed to).
fn fork_worker(command: &WorkerCommand, max_frame_len: usize, codec: Codec) -> io::Result<Forked> {
    // std creates both ends with CLOEXEC: no other child inherits them.
    let (parent_end, child_end) = std::os::unix::net::UnixStream::pair()?;
    parent_end.set_nonblocking(true)?;

    let mut cmd = Command::new(&command.program);
    cmd.args(&command.args)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .env(IPC_FD_ENV, IPC_FD.to_string())
        .env(MAX_FRAME_LEN_ENV, max_frame_len.to_string())
        .env(CODEC_ENV, codec.name())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = &command.cwd {
        cmd.current_dir(dir);
    }
    let child_fd = child_end.as_raw_fd();
    let parent_pid = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (prctl, getppid, dup2, fcntl, close_range)
    // on plain integers.
    unsafe {
        cmd.pre_exec(move || prepare_child(child_fd, parent_pid));
    }
    let process = Process::new(cmd.spawn()?);
    drop(child_end);
    let pid = process.id();
    // Should this process die without reaping it, the guard kills its group.
    super::group_guard::watch(pid);
    Ok(Forked {
        pidfd: open_pidfd(pid),
        process,
        channel: parent_end,
    })
}

/// In the child, between fork and exec.
fn prepare_child(channel: RawFd, parent_pid: u32) -> io::Result<()> {
    // SAFETY: plain syscalls on integers; no allocation, no locks.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(io::Error::last_os_error());
        }
        // The supervisor may have died between fork and prctl.
        if libc::getppid() as u32 != parent_pid {
            return Err(io::Error::other("supervisor died while the worker started"));
        }
        if channel == IPC_FD {
            // Already in place: only clear CLOEXEC so it survives exec.
            if libc::fcntl(channel, libc::F_SETFD, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
        } else if libc::dup2(channel, IPC_FD) < 0 {
            // dup2 gives fd 3 without CLOEXEC; the original closes at exec.
            return Err(io::Error::last_os_error());
        }
        // Descriptors the host left inheritable (its own parent's, a C
        // library's) close at exec too: the worker gets 0, 1, 2 and 3 only.
        // Marked rather than closed, so std's exec-error pipe keeps working.
        // Kernels before 5.11 lack the flag; they keep the old rule (every
        // descriptor lpm opens is CLOEXEC), so the error is ignored.
        // (Arguments as c_long: that is what the variadic syscall() reads.)
        libc::syscall(
            libc::SYS_close_range,
            libc::c_long::from(IPC_FD + 1),
            libc::c_long::from(libc::c_uint::MAX),
            libc::c_long::from(libc::CLOSE_RANGE_CLOEXEC),
        );
    }
    Ok(())
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
