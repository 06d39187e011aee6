//! A worker process as its actor sees it: the exit awaited without blocking,
//! stdout and stderr as async pipes, and no way to lose it. A [`Process`]
//! dropped before it was reaped has its process group SIGKILLed and is
//! reaped on a spawner thread.
//!
//! The exit is watched through a pidfd (Linux 5.3 and later), which turns
//! readable when the process ends and can be registered with the reactor of
//! whichever thread awaits it; the process itself was started on another
//! thread. Where `pidfd_open` is missing or refused (an older kernel, a
//! seccomp filter), each SIGCHLD is the cue to look again, as tokio does.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use nix::sys::signal::Signal;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::unix::pipe;
use tokio::signal::unix::{signal, SignalKind};

use super::launch::reap_blocking;
use super::signal_group;
use crate::spawner;
use crate::worker_handle::group_guard;

/// A started worker process that this supervisor must reap.
#[derive(Debug)]
pub(crate) struct Process {
    pid: u32,
    /// Set once reaped.
    status: Option<ExitStatus>,
}

impl Process {
    /// Takes charge of `pid`, a child of this process not reaped yet.
    pub(crate) fn new(pid: u32) -> Self {
        Self { pid, status: None }
    }

    pub(crate) fn id(&self) -> u32 {
        self.pid
    }

    /// Its exit status if it has ended (reaping it), `None` while it runs.
    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        while self.status.is_none() {
            let mut raw = 0;
            // SAFETY: waitpid on our own unreaped child, without blocking.
            match unsafe { libc::waitpid(self.pid as libc::pid_t, &mut raw, libc::WNOHANG) } {
                0 => break,
                -1 => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
                _ => self.status = Some(ExitStatus::from_raw(raw)),
            }
        }
        Ok(self.status)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let pid = self.pid;
        // Not reaped, so its process group id cannot have been reused yet.
        signal_group(pid, Signal::SIGKILL);
        // A SIGKILLed process ends at once, but waiting for it would still
        // block this (the actor's) thread.
        spawner::detach(move || {
            if let Err(e) = reap_blocking(pid as libc::pid_t) {
                tracing::warn!(pid, error = %e, "could not reap a dropped worker");
            }
            group_guard::unwatch(pid);
        });
    }
}

/// Opens a pidfd for `pid`, or `None` where the kernel has none to give
/// (then the exit is watched through SIGCHLD).
pub(crate) fn open_pidfd(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; it returns a new descriptor
    // (close-on-exec) that we own, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0 as libc::c_uint) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        tracing::debug!(pid, error = %e, "no pidfd; the worker's exit is watched through SIGCHLD");
        return None;
    }
    // SAFETY: a descriptor the kernel just opened for us, owned by no one else.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// How the exit is noticed.
#[derive(Debug)]
enum ExitWatch {
    /// Readable once the process has ended.
    Pidfd(AsyncFd<OwnedFd>),
    /// Every SIGCHLD (any child's) means: look again.
    Sigchld,
}

/// A running worker process, tied to the reactor of the thread that made it.
#[derive(Debug)]
pub(crate) struct Child {
    process: Process,
    exit: ExitWatch,
    /// Its stdout, for the actor to forward (none when stdout is its channel).
    pub(crate) stdout: Option<pipe::Receiver>,
    /// Its stderr, for the actor to forward and keep the tail of.
    pub(crate) stderr: Option<pipe::Receiver>,
}

impl Child {
    /// Registers the process's pidfd (if it has one) and pipes with the
    /// current thread's tokio runtime.
    ///
    /// # Errors
    ///
    /// The reactor refused a registration; the process is then killed and
    /// reaped (by `Process`'s drop).
    pub(crate) fn register(
        process: Process,
        pidfd: Option<OwnedFd>,
        stdout: Option<OwnedFd>,
        stderr: OwnedFd,
    ) -> io::Result<Self> {
        let stdout = stdout.map(pipe::Receiver::from_owned_fd).transpose()?;
        let stderr = pipe::Receiver::from_owned_fd(stderr)?;
        let exit = match pidfd {
            // SAFETY: the AsyncFd owns the descriptor: it stays open, and the
            // same, for as long as the AsyncFd lives.
            Some(fd) => ExitWatch::Pidfd(unsafe {
                AsyncFd::register_with_interest(fd, Interest::READABLE)?
            }),
            None => ExitWatch::Sigchld,
        };
        Ok(Self {
            process,
            exit,
            stdout,
            stderr: Some(stderr),
        })
    }

    /// Waits for the process to end and reaps it.
    ///
    /// # Errors
    ///
    /// Waiting failed (the reactor is gone, or the status could not be read).
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let ExitWatch::Pidfd(pidfd) = &self.exit {
            if let Some(status) = self.process.try_wait()? {
                return Ok(status);
            }
            drop(pidfd.readable().await?);
            if let Some(status) = self.process.try_wait()? {
                return Ok(status);
            }
            // Readable before it could be reaped (not seen in practice): the
            // next news comes with SIGCHLD, as a pidfd makes no second edge.
            self.exit = ExitWatch::Sigchld;
        }
        // Listening first, then looking: an exit in between is not missed.
        let mut sigchld = signal(SignalKind::child())?;
        loop {
            if let Some(status) = self.process.try_wait()? {
                return Ok(status);
            }
            if sigchld.recv().await.is_none() {
                return Err(io::Error::other("the SIGCHLD listener ended"));
            }
        }
    }

    /// SIGKILLs its process group and reaps it: for a worker started after
    /// the pool stopped wanting it.
    ///
    /// # Errors
    ///
    /// As [`Child::wait`].
    pub(crate) async fn kill(mut self) -> io::Result<ExitStatus> {
        let pid = self.process.id();
        signal_group(pid, Signal::SIGKILL);
        let status = self.wait().await?;
        group_guard::unwatch(pid);
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::fd::AsRawFd;
    use std::path::Path;
    use std::time::Duration;

    use tokio::io::AsyncReadExt;

    use super::super::launch::{launch, Plumbing, Program};
    use super::*;

    /// `sh -c script` in a process group of its own: the process and its
    /// stdout and stderr.
    fn sh(script: &str) -> (Process, OwnedFd, OwnedFd) {
        let args = [OsString::from("-c"), OsString::from(script)];
        let program = Program {
            program: Path::new("sh"),
            args: &args,
            env: Program::environment([]),
            cwd: None,
        };
        let (_ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let launched = launch(&program, Plumbing::Fd3(theirs.as_raw_fd())).expect("sh starts");
        (Process::new(launched.pid), launched.stdout, launched.stderr)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Whether `pid` still exists, as a process or as a zombie.
    fn exists(pid: u32) -> bool {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
    }

    #[test]
    fn a_process_started_on_another_thread_is_awaited_through_its_pidfd() {
        // The starting thread lives until the end: its end would SIGKILL
        // the process (the parent-death signal).
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let starter = std::thread::spawn(move || {
            let (process, stdout, stderr) = sh("echo out; echo err >&2; exit 7");
            let pidfd = open_pidfd(process.id());
            started_tx.send((process, stdout, stderr, pidfd)).unwrap();
            let _ = done_rx.recv();
        });
        let (process, stdout, stderr, pidfd) = started_rx.recv().unwrap();
        assert!(pidfd.is_some(), "this kernel gives pidfds (Linux 5.3+)");
        let (status, out, err) = runtime().block_on(async {
            let mut child = Child::register(process, pidfd, Some(stdout), stderr).unwrap();
            let (mut out, mut err) = (String::new(), String::new());
            let mut stdout = child.stdout.take().unwrap();
            let mut stderr = child.stderr.take().unwrap();
            stdout.read_to_string(&mut out).await.unwrap();
            stderr.read_to_string(&mut err).await.unwrap();
            (child.wait().await.unwrap(), out, err)
        });
        drop(done_tx);
        starter.join().unwrap();
        assert_eq!(
            (status.code(), out.as_str(), err.as_str()),
            (Some(7), "out\n", "err\n")
        );
    }

    #[test]
    fn without_a_pidfd_sigchld_tells_of_the_exit() {
        let (process, stdout, stderr) = sh("echo up; exec sleep 60");
        let pid = process.id();
        let status = runtime().block_on(async {
            let mut child = Child::register(process, None, Some(stdout), stderr).unwrap();
            let mut up = [0; 3];
            let mut stdout = child.stdout.take().unwrap();
            stdout.read_exact(&mut up).await.unwrap();
            let waiting = tokio::spawn(async move { child.wait().await });
            // The wait listens for SIGCHLD before the process ends.
            tokio::task::yield_now().await;
            signal_group(pid, Signal::SIGTERM);
            waiting.await.unwrap().unwrap()
        });
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn kill_ends_the_process_group_and_reaps() {
        let (process, stdout, stderr) = sh("sleep 60 & wait");
        let pid = process.id();
        let pidfd = open_pidfd(pid);
        let status = runtime().block_on(async {
            let child = Child::register(process, pidfd, Some(stdout), stderr).unwrap();
            child.kill().await
        });
        assert_eq!(status.unwrap().signal(), Some(libc::SIGKILL));
        assert!(!exists(pid), "reaped");
    }

    #[test]
    fn a_process_dropped_before_its_exit_is_killed_and_reaped() {
        let (process, _stdout, _stderr) = sh("sleep 60");
        let pid = process.id();
        drop(process);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while exists(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "{pid} was neither killed nor reaped"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
