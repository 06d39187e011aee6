//! Starting a worker process: its IPC socketpair on fd 3, its own process
//! group (watched by the group guard), and a parent-death signal so it never
//! outlives the supervisor.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::process::Stdio;

use lpm_protocol::{Codec, CODEC_ENV, IPC_FD, IPC_FD_ENV, MAX_FRAME_LEN_ENV};
use tokio::process::{Child, Command};

use crate::WorkerCommand;

/// A started child and the supervisor's end of its channel.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) channel: tokio::net::UnixStream,
}

/// Starts one worker process.
///
/// The child gets: fd 3 = its end of a fresh socketpair (and `LPM_IPC_FD=3`),
/// stdin from /dev/null, stdout and stderr piped to us, no other descriptor
/// (even one the host left without close-on-exec), its own process group
/// (so a hard kill reaches its own children too, and a terminal's Ctrl-C goes
/// to the supervisor alone), and SIGKILL when the supervisor's thread dies.
pub(crate) fn spawn_worker(
    command: &WorkerCommand,
    max_frame_len: usize,
    codec: Codec,
) -> io::Result<Spawned> {
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
        .process_group(0)
        .kill_on_drop(true);
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
    let child = cmd.spawn()?;
    drop(child_end);
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("worker exited before its pid was read"))?;
    // Should this process die without reaping it, the guard kills its group.
    super::group_guard::watch(pid);
    Ok(Spawned {
        child,
        pid,
        channel: tokio::net::UnixStream::from_std(parent_end)?,
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
