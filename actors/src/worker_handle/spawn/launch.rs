//! Starting a process without copying the supervisor: `clone(CLONE_VM |
//! CLONE_VFORK)`, as `posix_spawn` does, with the steps `posix_spawn`
//! cannot take (the parent-death signal) between clone and exec.
//!
//! A plain `fork` (what std does as soon as there is `pre_exec` work) copies
//! the supervisor's page tables and write-protects all of its memory, so
//! every thread of the supervisor (the pool's actor thread among them) then
//! takes a page fault on its next write to each page. Measured on a 2-core
//! machine, that was a third of the CPU time it takes to bring a worker up.
//! With `CLONE_VM` the child borrows the parent's memory until it calls
//! `execve`, and the forking thread waits until then (`CLONE_VFORK`).
//!
//! The price is care: the child runs on its own small stack, in memory it
//! shares with the supervisor's other threads, so between clone and exec it
//! makes plain system calls only, on data prepared beforehand: no
//! allocation, no locks, no Rust panics. Signals are blocked around the
//! clone and handlers reset in the child, so no supervisor handler can run
//! on shared memory. Linux only.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

/// Stack of the cloned child between clone and exec; it runs a few system
/// calls, so a small one does. (glibc's posix_spawn uses about as much.)
const CHILD_STACK: usize = 64 * 1024;

/// What a started process left the parent: its pid and our ends of its pipes.
#[derive(Debug)]
pub(crate) struct Launched {
    pub(crate) pid: u32,
    /// The write end of its stdin, when it is piped ([`Plumbing::Stdio`]).
    pub(crate) stdin: Option<OwnedFd>,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
}

/// Where the child's channel goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Plumbing {
    /// This socket becomes its fd 3; stdin reads /dev/null and stdout is
    /// piped to us as a log.
    Fd3(RawFd),
    /// Its stdin and stdout are pipes to us (the channel); no fd 3.
    Stdio,
}

/// What to run: the program (a path, or a name looked up in `PATH`), its
/// arguments (after the program name), and its whole environment.
#[derive(Debug)]
pub(crate) struct Program<'a> {
    pub(crate) program: &'a Path,
    pub(crate) args: &'a [OsString],
    pub(crate) env: BTreeMap<OsString, OsString>,
    pub(crate) cwd: Option<&'a Path>,
}

impl Program<'_> {
    /// The supervisor's own environment with `overrides` on top.
    pub(crate) fn environment<'k>(
        overrides: impl IntoIterator<Item = (&'k OsStr, &'k OsStr)>,
    ) -> BTreeMap<OsString, OsString> {
        let mut env: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
        for (key, value) in overrides {
            env.insert(key.to_owned(), value.to_owned());
        }
        env
    }
}

/// Starts `program` with stdout and stderr piped to us, its channel as
/// `plumbing` says (fd 3 with stdin from /dev/null, or stdin and stdout), no
/// other descriptor, its own process group, and SIGKILL when this thread
/// ends. Returns once the child has called `execve` (or failed to, which is
/// then the error).
pub(crate) fn launch(program: &Program<'_>, plumbing: Plumbing) -> io::Result<Launched> {
    let plan = Plan::new(program)?;
    let (stdout, stdout_w) = pipe()?;
    let (stderr, stderr_w) = pipe()?;
    let (stdin_r, stdin) = match plumbing {
        Plumbing::Fd3(_) => (open_devnull()?, None),
        Plumbing::Stdio => {
            let (r, w) = pipe()?;
            (r, Some(w))
        }
    };
    // Each source sits at 4 or above, so no dup2 onto 0..=3 in the child
    // overwrites a source it still needs.
    let channel = match plumbing {
        Plumbing::Fd3(channel) => Some(above_stdio(borrowed_dup(channel)?)?),
        Plumbing::Stdio => None,
    };
    let sources = [
        above_stdio(stdin_r)?,
        above_stdio(stdout_w)?,
        above_stdio(stderr_w)?,
    ];
    let setup = Setup {
        plan: &plan,
        max_signal: libc::SIGRTMAX(),
        fds: [
            sources[0].as_raw_fd(),
            sources[1].as_raw_fd(),
            sources[2].as_raw_fd(),
            channel.as_ref().map_or(-1, AsRawFd::as_raw_fd),
        ],
        parent_pid: std::process::id() as libc::pid_t,
        error: AtomicI32::new(0),
    };
    let pid = clone_and_exec(&setup)?;
    let error = setup.error.load(Ordering::Acquire);
    if error != 0 {
        // It exited without exec: reap it before reporting why.
        let _ = reap_blocking(pid);
        return Err(io::Error::from_raw_os_error(error));
    }
    Ok(Launched {
        pid: pid as u32,
        stdin,
        stdout,
        stderr,
    })
}

/// Everything the child reads, built before the clone.
struct Plan {
    /// The paths to try in order, as `execvp` would (one unless looked up
    /// in PATH), the arguments and the environment: the strings the
    /// pointers below point into.
    _strings: [Vec<CString>; 3],
    candidate_ptrs: Vec<*const libc::c_char>,
    /// Null-terminated, as execve wants them.
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    cwd: Option<CString>,
}

impl Plan {
    fn new(program: &Program<'_>) -> io::Result<Self> {
        let path_var = program.env.get(OsStr::new("PATH")).map(OsString::as_os_str);
        let candidates = candidates(program.program, path_var)?;
        let argv = std::iter::once(program.program.as_os_str())
            .chain(program.args.iter().map(OsString::as_os_str))
            .map(|arg| c_string(arg.as_bytes().to_vec()))
            .collect::<io::Result<Vec<_>>>()?;
        let envp = program
            .env
            .iter()
            .map(|(key, value)| {
                let mut entry = key.clone().into_vec();
                entry.push(b'=');
                entry.extend_from_slice(value.as_bytes());
                c_string(entry)
            })
            .collect::<io::Result<Vec<_>>>()?;
        let cwd = program
            .cwd
            .map(|dir| c_string(dir.as_os_str().as_bytes().to_vec()))
            .transpose()?;
        let pointers = |strings: &[CString]| {
            strings
                .iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        // Moving the vectors moves no string: the pointers stay valid.
        Ok(Self {
            argv_ptrs: pointers(&argv),
            envp_ptrs: pointers(&envp),
            candidate_ptrs: candidates.iter().map(|c| c.as_ptr()).collect(),
            _strings: [candidates, argv, envp],
            cwd,
        })
    }
}

/// The paths `execvp` would try for `program`: itself when it holds a
/// slash, else each directory of `PATH` (the child's, or the default).
fn candidates(program: &Path, path_var: Option<&OsStr>) -> io::Result<Vec<CString>> {
    let name = program.as_os_str().as_bytes();
    if name.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    if name.contains(&b'/') {
        return Ok(vec![c_string(name.to_vec())?]);
    }
    let path_var = path_var.map_or(&b"/bin:/usr/bin"[..], OsStr::as_bytes);
    path_var
        .split(|&b| b == b':')
        .map(|dir| {
            // An empty entry means the working directory.
            let mut path = if dir.is_empty() {
                b".".to_vec()
            } else {
                dir.to_vec()
            };
            path.push(b'/');
            path.extend_from_slice(name);
            c_string(path)
        })
        .collect()
}

fn c_string(bytes: Vec<u8>) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a worker's program, argument, environment variable or directory holds a NUL byte",
        )
    })
}

/// What the cloned child gets, by pointer, in memory it shares with us.
struct Setup<'a> {
    plan: &'a Plan,
    /// The highest signal number, whose handlers are reset.
    max_signal: libc::c_int,
    /// What becomes its fd 0, 1, 2 and 3 (none when -1).
    fds: [RawFd; 4],
    parent_pid: libc::pid_t,
    /// The errno of the step that failed, set by the child before it exits.
    error: AtomicI32,
}

/// Clones the calling thread's process with shared memory and runs
/// [`child_main`] in it; returns the child's pid once it has exec'd or exited.
fn clone_and_exec(setup: &Setup<'_>) -> io::Result<libc::pid_t> {
    let mut stack = vec![0u8; CHILD_STACK];
    // The stack grows down from its end, aligned to 16 bytes.
    let top = (stack.as_mut_ptr() as usize + CHILD_STACK) & !15;
    // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask fill
    // and apply it for this thread only.
    let previous = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
        previous
    };
    // SAFETY: `child_main` runs on `stack` (ours, unused until this call
    // returns) and only makes async-signal-safe system calls on `setup`,
    // which outlives the call: CLONE_VFORK suspends this thread until the
    // child has exec'd or exited, and then the child no longer touches our
    // memory. Signals stay blocked until then (the child resets them).
    let pid = unsafe {
        libc::clone(
            child_main,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::from_ref(setup).cast_mut().cast(),
        )
    };
    let clone_error = io::Error::last_os_error();
    // SAFETY: restores this thread's own mask, saved above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
    }
    drop(stack);
    if pid < 0 {
        return Err(clone_error);
    }
    Ok(pid)
}

/// The child, between clone and exec. Never returns: it execs, or records
/// the errno of the step that failed and exits with 127.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Setup` that `clone_and_exec` passed, alive and
    // untouched by the suspended parent thread. Only system calls follow.
    unsafe {
        let setup = &*(arg as *const Setup<'_>);
        let errno = prepare_and_exec(setup);
        setup.error.store(errno, Ordering::Release);
        libc::_exit(127)
    }
}

/// Sets the child up and execs; returns the errno that stopped it.
///
/// # Safety
///
/// Only in the cloned child (see [`child_main`]).
unsafe fn prepare_and_exec(child: &Setup<'_>) -> libc::c_int {
    // SAFETY: system calls on integers and on memory `child` points to.
    unsafe {
        let errno = || *libc::__errno_location();
        // Handlers are the supervisor's code on shared memory: back to
        // the defaults. Ignored signals stay ignored across exec, as with
        // fork, except SIGPIPE, which Rust programs ignore and std resets.
        let mut action: libc::sigaction = std::mem::zeroed();
        for signal in 1..=child.max_signal {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            if libc::sigaction(signal, std::ptr::null(), &mut action) != 0 {
                continue; // A signal the C library keeps for itself.
            }
            let ignored = action.sa_sigaction == libc::SIG_IGN && signal != libc::SIGPIPE;
            if action.sa_sigaction != libc::SIG_DFL && !ignored {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        // SIGKILL when the thread that cloned us ends; the supervisor may
        // already have died before that took hold.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return errno();
        }
        if libc::getppid() != child.parent_pid {
            return libc::ESRCH;
        }
        if libc::setpgid(0, 0) != 0 {
            return errno();
        }
        let mut kept: libc::c_uint = 0;
        for (target, &source) in child.fds.iter().enumerate() {
            if source < 0 {
                break;
            }
            // dup2 leaves the copy without close-on-exec.
            if libc::dup2(source, target as RawFd) < 0 {
                return errno();
            }
            kept += 1;
        }
        // Descriptors the host left inheritable close at exec too: the
        // worker gets 0, 1, 2 (and 3) only. Kernels before 5.11 lack the flag
        // and keep the old rule (every descriptor lpm opens is CLOEXEC).
        libc::syscall(
            libc::SYS_close_range,
            libc::c_long::from(kept),
            libc::c_long::from(libc::c_uint::MAX),
            libc::c_long::from(libc::CLOSE_RANGE_CLOEXEC),
        );
        if let Some(dir) = &child.plan.cwd {
            if libc::chdir(dir.as_ptr()) != 0 {
                return errno();
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        // As execvp: the first candidate that execs wins; "permission
        // denied" is reported over "not found" if any candidate said so.
        let mut denied = false;
        let mut last = libc::ENOENT;
        for &path in &child.plan.candidate_ptrs {
            libc::execve(
                path,
                child.plan.argv_ptrs.as_ptr(),
                child.plan.envp_ptrs.as_ptr(),
            );
            last = errno();
            match last {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::ENAMETOOLONG => {}
                _ => return last,
            }
        }
        if denied {
            libc::EACCES
        } else {
            last
        }
    }
}

fn open_devnull() -> io::Result<OwnedFd> {
    // SAFETY: open with a constant path; the result is ours or -1.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    owned(fd)
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two descriptors the kernel just opened for us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A close-on-exec copy of `fd`, which stays the caller's.
fn borrowed_dup(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor or -1.
    owned(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 4) })
}

/// `fd` itself if it is 4 or above, else a close-on-exec copy that is.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() >= 4 {
        return Ok(fd);
    }
    borrowed_dup(fd.as_raw_fd())
}

fn owned(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just opened for us, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits for `pid` to end and reaps it, retrying on EINTR.
pub(crate) fn reap_blocking(pid: libc::pid_t) -> io::Result<libc::c_int> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child, with a status to fill.
        if unsafe { libc::waitpid(pid, &mut status, 0) } >= 0 {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;

    use super::*;

    fn sh<'a>(script: &'a [OsString], env: &[(&str, &str)], cwd: Option<&'a Path>) -> Program<'a> {
        Program {
            program: Path::new("sh"),
            args: script,
            env: Program::environment(env.iter().map(|(k, v)| (OsStr::new(k), OsStr::new(v)))),
            cwd,
        }
    }

    fn script(text: &str) -> Vec<OsString> {
        vec!["-c".into(), text.into()]
    }

    /// The line of `/proc/<pid>/status` that starts with `field`, as a hex mask.
    fn status_mask(pid: u32, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        u64::from_str_radix(line[field.len()..].trim(), 16).unwrap()
    }

    #[test]
    fn the_child_gets_its_stdio_channel_environment_and_directory() {
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let args = script(
            r#"echo "$LPM_LAUNCH_TEST"; pwd; readlink /proc/$$/fd/0; echo oops >&2; read line <&3; echo "got $line""#,
        );
        let program = sh(&args, &[("LPM_LAUNCH_TEST", "set")], Some(&dir));
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        let launched = launch(&program, Plumbing::Fd3(theirs.as_raw_fd())).unwrap();
        drop(theirs);
        let pid = launched.pid;
        let mut out = BufReader::new(std::fs::File::from(launched.stdout)).lines();
        assert_eq!(out.next().unwrap().unwrap(), "set");
        assert_eq!(out.next().unwrap().unwrap(), dir.to_str().unwrap());
        assert_eq!(out.next().unwrap().unwrap(), "/dev/null", "stdin");
        // It waits on its channel now: look at it.
        let fd3 = std::fs::read_link(format!("/proc/{pid}/fd/3")).unwrap();
        assert!(fd3.to_str().unwrap().starts_with("socket:"), "{fd3:?}");
        ours.write_all(b"hello\n").unwrap();
        assert_eq!(out.next().unwrap().unwrap(), "got hello");
        let mut err = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(launched.stderr), &mut err).unwrap();
        assert_eq!(err, "oops\n");
        let status = reap_blocking(pid as libc::pid_t).unwrap();
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }

    #[test]
    fn over_stdio_the_childs_stdin_and_stdout_are_our_pipes_and_it_has_no_fd_3() {
        let args = script(
            r#"read line; echo "got $line"; if [ -e /proc/$$/fd/3 ]; then echo fd3; else echo no-fd3; fi; echo log >&2"#,
        );
        let program = sh(&args, &[], None);
        let launched = launch(&program, Plumbing::Stdio).unwrap();
        let mut stdin = std::fs::File::from(launched.stdin.expect("a piped stdin"));
        stdin.write_all(b"frames\n").unwrap();
        drop(stdin);
        let mut out = BufReader::new(std::fs::File::from(launched.stdout)).lines();
        assert_eq!(out.next().unwrap().unwrap(), "got frames");
        assert_eq!(out.next().unwrap().unwrap(), "no-fd3");
        let mut err = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(launched.stderr), &mut err).unwrap();
        assert_eq!(err, "log\n");
        let status = reap_blocking(launched.pid as libc::pid_t).unwrap();
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }

    #[test]
    fn the_child_leads_its_own_group_with_no_signal_blocked_or_sigpipe_ignored() {
        let args = [OsString::from("60")];
        let sleep = Program {
            program: Path::new("sleep"),
            args: &args,
            env: Program::environment([]),
            cwd: None,
        };
        let (_ours, theirs) = UnixStream::pair().unwrap();
        let pid = launch(&sleep, Plumbing::Fd3(theirs.as_raw_fd()))
            .unwrap()
            .pid;
        // Read before the kill: the process has exec'd by the time launch returns.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let pgrp: u32 = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(pgrp, pid, "it leads a process group of its own");
        assert_eq!(status_mask(pid, "SigBlk:"), 0, "no signal blocked");
        let sigpipe = 1 << (libc::SIGPIPE - 1);
        assert_eq!(
            status_mask(pid, "SigIgn:") & sigpipe,
            0,
            "SIGPIPE not ignored"
        );

        // SAFETY: kill on the pid of our own unreaped child.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        reap_blocking(pid as libc::pid_t).unwrap();
    }

    #[test]
    fn the_child_dies_with_the_thread_that_started_it() {
        let args = script("exec sleep 60");
        let pid = std::thread::spawn(move || {
            let (_ours, theirs) = UnixStream::pair().unwrap();
            launch(&sh(&args, &[], None), Plumbing::Fd3(theirs.as_raw_fd()))
                .unwrap()
                .pid
        })
        .join()
        .unwrap();
        let status = reap_blocking(pid as libc::pid_t).unwrap();
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
            "status {status:#x}"
        );
    }

    #[test]
    fn a_program_that_cannot_run_is_an_error_of_its_kind() {
        let (_ours, theirs) = UnixStream::pair().unwrap();
        let missing = Program {
            program: Path::new("lpm-no-such-program"),
            args: &[],
            env: Program::environment([]),
            cwd: None,
        };
        let e = launch(&missing, Plumbing::Fd3(theirs.as_raw_fd())).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");

        // A file without execute permission.
        let file = std::env::temp_dir().join(format!("lpm-launch-test-{}", std::process::id()));
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        let denied = Program {
            program: &file,
            args: &[],
            env: Program::environment([]),
            cwd: None,
        };
        let e = launch(&denied, Plumbing::Fd3(theirs.as_raw_fd())).unwrap_err();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");

        let nul = [OsString::from("a\0b")];
        let e = launch(&sh(&nul, &[], None), Plumbing::Fd3(theirs.as_raw_fd())).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    }

    #[test]
    fn a_bare_name_is_looked_up_in_the_childs_path() {
        assert_eq!(
            candidates(Path::new("w"), Some(OsStr::new("/a::/b"))).unwrap(),
            [c"/a/w", c"./w", c"/b/w"]
        );
        assert_eq!(candidates(Path::new("./w"), None).unwrap(), [c"./w"]);
        assert_eq!(
            candidates(Path::new("w"), None).unwrap(),
            [c"/bin/w", c"/usr/bin/w"]
        );
        // A PATH given to the worker is the one searched.
        let args = script("exit 0");
        let mut program = sh(&args, &[("PATH", "/nonexistent")], None);
        let (_ours, theirs) = UnixStream::pair().unwrap();
        let e = launch(&program, Plumbing::Fd3(theirs.as_raw_fd())).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        program
            .env
            .insert("PATH".into(), "/nonexistent:/bin:/usr/bin".into());
        let launched = launch(&program, Plumbing::Fd3(theirs.as_raw_fd())).unwrap();
        let status = reap_blocking(launched.pid as libc::pid_t).unwrap();
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
