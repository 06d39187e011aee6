//! The group guard: a small process, forked once per supervisor process, that
//! kills every worker's process group if the supervisor dies without doing it
//! (SIGKILL, a crash). The parent-death signal ends the workers themselves,
//! but not what they started: their children stay in their process group,
//! which only the guard is left to kill.
//!
//! The supervisor tells the guard each group it starts (`+pgid`) and reaps
//! (`-pgid`) over a `SOCK_SEQPACKET` socketpair; when the guard reads end of
//! file, the supervisor is gone, and it SIGKILLs every group it still holds.
//!
//! The guard is forked from a multi-threaded process without `exec`, so it
//! only makes async-signal-safe system calls on memory allocated before the
//! fork: no allocation, no locks, no destructors.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

/// Most groups the guard tracks at once; past it, new groups go unguarded.
const MAX_GROUPS: usize = 16 * 1024;

/// The supervisor's end of the guard's socket, with the guard's pid; `None`
/// before the first worker, or once the guard is found gone.
static GUARD: Mutex<Option<Guard>> = Mutex::new(None);

#[derive(Debug)]
struct Guard {
    socket: OwnedFd,
    pid: libc::pid_t,
}

/// Has the guard kill group `pgid` should this process die first.
pub(crate) fn watch(pgid: u32) {
    tell(b'+', pgid);
}

/// The group is gone (its leader was reaped and the group killed).
pub(crate) fn unwatch(pgid: u32) {
    tell(b'-', pgid);
}

fn tell(op: u8, pgid: u32) {
    let mut guard = GUARD.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        match start() {
            Ok(started) => *guard = Some(started),
            Err(e) => {
                return tracing::warn!(error = %e, "could not start the group guard: if this process is killed, processes its workers started may outlive it");
            }
        }
    }
    let Some(g) = guard.as_ref() else { return };
    let [a, b, c, d] = pgid.to_le_bytes();
    let record = [op, a, b, c, d];
    // SAFETY: a plain send of a 5-byte buffer on a socket we own.
    let sent = unsafe {
        libc::send(
            g.socket.as_raw_fd(),
            record.as_ptr().cast(),
            record.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if sent != record.len() as isize {
        let e = io::Error::last_os_error();
        tracing::warn!(error = %e, pid = g.pid, "the group guard is gone; starting another");
        // Reap it (it is our child), then guard from scratch on the next call.
        // SAFETY: waitpid on our own child's pid, without blocking.
        unsafe { libc::waitpid(g.pid, std::ptr::null_mut(), libc::WNOHANG) };
        *guard = None;
    }
}

fn start() -> io::Result<Guard> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    // Allocated before the fork: the guard must not allocate.
    let mut groups = vec![0 as libc::pid_t; MAX_GROUPS];
    // SAFETY: the child runs `guard_main` only, which never returns and
    // makes async-signal-safe calls on memory that exists in its copy.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => guard_main(theirs.as_raw_fd(), &mut groups),
        pid => Ok(Guard { socket: ours, pid }),
    }
}

/// The guard process's whole life.
fn guard_main(socket: RawFd, groups: &mut [libc::pid_t]) -> ! {
    // SAFETY: only async-signal-safe system calls on integers and on
    // `groups` and `record`, which this process owns.
    unsafe {
        // A terminal's Ctrl-C or a service manager's SIGTERM for the
        // supervisor's group must not take the guard before it is needed.
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(signal, libc::SIG_IGN);
        }
        close_all_but(socket);
        let mut held = 0;
        let mut record = [0u8; 5];
        loop {
            let n = libc::recv(socket, record.as_mut_ptr().cast(), record.len(), 0);
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            if n != record.len() as isize {
                break; // End of file: the supervisor is gone.
            }
            let pgid = libc::pid_t::from_le_bytes([record[1], record[2], record[3], record[4]]);
            match record[0] {
                b'+' if held < groups.len() => {
                    groups[held] = pgid;
                    held += 1;
                }
                b'-' => {
                    if let Some(i) = groups[..held].iter().position(|&g| g == pgid) {
                        held -= 1;
                        groups[i] = groups[held];
                    }
                }
                _ => {}
            }
        }
        for &pgid in &groups[..held] {
            libc::kill(-pgid, libc::SIGKILL);
        }
        libc::_exit(0)
    }
}

/// Closes every descriptor but `keep`: copies of the supervisor's sockets
/// must not stay open here (a client would never see its connection close).
/// Async-signal-safe; only for the guard process.
fn close_all_but(keep: RawFd) {
    // SAFETY: close_range and close on integers; nothing in this process
    // uses the descriptors it closes.
    unsafe {
        let close_range = |first: RawFd, last: libc::c_uint| {
            libc::syscall(
                libc::SYS_close_range,
                libc::c_long::from(first),
                libc::c_long::from(last),
                0 as libc::c_long,
            )
        };
        let below = if keep > 0 {
            close_range(0, (keep - 1) as libc::c_uint)
        } else {
            0
        };
        let above = close_range(keep + 1, libc::c_uint::MAX);
        if below != 0 || above != 0 {
            // Kernels before 5.9: one by one, as far as descriptors usually go.
            for fd in (0..65_536).filter(|&fd| fd != keep) {
                libc::close(fd);
            }
        }
    }
}
