//! The raw baseline: a Unix socketpair to `socket_echo`, a child that
//! writes back what it reads, with no framing and no runtime.

use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use crate::measure::{Costs, Latency, Snapshot, Throughput};
use crate::params::Params;
use crate::{MSG_LEN, STEP_TIMEOUT, WINDOW};

/// The raw reader's buffer: a whole window of small messages in one read.
const READ_BUF: usize = 256 * 1024;

/// A running `socket_echo` child and our end of its channel.
pub(crate) struct SocketEcho {
    pub(crate) stream: UnixStream,
    pub(crate) child: Child,
}

impl SocketEcho {
    pub(crate) fn spawn() -> io::Result<Self> {
        // std creates both ends with CLOEXEC; only fd 3 in the child survives exec.
        let (parent, child_end) = UnixStream::pair()?;
        let fd = child_end.as_raw_fd();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_socket_echo"));
        cmd.env(lpm_protocol::IPC_FD_ENV, lpm_protocol::IPC_FD.to_string())
            .stdin(Stdio::null());
        // SAFETY: the closure runs in the forked child before exec; it only
        // calls dup2/fcntl (async-signal-safe) on plain integers, and neither
        // allocates nor takes a lock.
        unsafe {
            cmd.pre_exec(move || channel_to_fd3(fd));
        }
        let child = cmd.spawn()?;
        drop(child_end);
        parent.set_read_timeout(Some(STEP_TIMEOUT))?;
        parent.set_write_timeout(Some(STEP_TIMEOUT))?;
        Ok(Self {
            stream: parent,
            child,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the child and waits until it is reaped (waitpid): the
    /// moment a supervisor learns of the death.
    pub(crate) fn kill_and_reap(&mut self) -> io::Result<()> {
        self.child.kill()?;
        self.child.wait().map(drop)
    }

    /// Closes our end of the channel: the child reads EOF and exits (so
    /// that many can end at once before each is dropped and reaped).
    pub(crate) fn close(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// One 64-byte round trip; whether it came back unchanged.
    pub(crate) fn echo_once(&mut self) -> io::Result<bool> {
        let msg = [0xA5u8; MSG_LEN];
        let mut back = [0u8; MSG_LEN];
        self.stream.write_all(&msg)?;
        self.stream.read_exact(&mut back)?;
        Ok(back == msg)
    }
}

/// In the child, between fork and exec: puts the channel on fd 3, inheritable.
pub(crate) fn channel_to_fd3(fd: RawFd) -> io::Result<()> {
    let target = lpm_protocol::IPC_FD;
    // SAFETY: plain syscalls on integers. dup2 gives the new fd without
    // CLOEXEC; when the channel already is fd 3, dup2 would be a no-op that
    // keeps CLOEXEC, so the flag is cleared instead.
    let rc = unsafe {
        if fd == target {
            libc::fcntl(fd, libc::F_SETFD, 0)
        } else {
            libc::dup2(fd, target)
        }
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Drop for SocketEcho {
    fn drop(&mut self) {
        // EOF makes the child exit; give it a moment, then kill it.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// R1: sequential 64-byte round trips.
pub(crate) fn raw_latency(p: &Params) -> io::Result<Latency> {
    let mut echo = SocketEcho::spawn()?;
    let msg = [0xA5u8; MSG_LEN];
    let mut back = [0u8; MSG_LEN];
    let mut errors = 0;
    for _ in 0..p.warm_iters {
        echo.stream.write_all(&msg)?;
        echo.stream.read_exact(&mut back)?;
    }
    let pids = [echo.pid()];
    let mut samples = Vec::with_capacity(p.latency_iters);
    let before = Snapshot::start(&pids);
    let deadline = before.at + p.latency_max;
    for _ in 0..p.latency_iters {
        let start = Instant::now();
        if start >= deadline {
            break;
        }
        echo.stream.write_all(&msg)?;
        echo.stream.read_exact(&mut back)?;
        samples.push(start.elapsed().as_nanos() as u64);
        if back != msg {
            errors += 1;
        }
    }
    let after = Snapshot::end(&pids);
    let costs = Costs::between(&before, &after, samples.len() as u64);
    Ok(Latency::from_samples(samples, errors, costs))
}

/// How a raw throughput run sends: message size, messages in flight, and
/// whether the writer batches them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flow {
    /// Bytes per message.
    pub(crate) msg_len: usize,
    /// Messages kept in flight.
    pub(crate) window: usize,
    /// As many messages as the window allows in one write, or one write per message.
    pub(crate) batched: bool,
    /// Time before the measured stretch.
    pub(crate) warm: Duration,
    /// The measured stretch.
    pub(crate) measure: Duration,
}

impl Flow {
    /// R2 (batched) and R2u: 64-byte messages, `WINDOW` in flight.
    pub(crate) fn small(p: &Params, batched: bool) -> Self {
        Self {
            msg_len: MSG_LEN,
            window: WINDOW,
            batched,
            warm: p.raw_warm,
            measure: p.raw_measure,
        }
    }
}

/// R2, R2u and R3: `flow.window` messages in flight, a reader thread,
/// messages per second.
pub(crate) fn raw_throughput(flow: Flow) -> io::Result<Throughput> {
    let Flow {
        msg_len,
        window,
        batched,
        warm,
        measure,
    } = flow;
    let echo = SocketEcho::spawn()?;
    let mut writer = echo.stream.try_clone()?;
    let mut reader = echo.stream.try_clone()?;
    // Short read timeout: the reader checks `stop` at least this often.
    reader.set_read_timeout(Some(Duration::from_millis(100)))?;
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (credit_tx, credit_rx) = mpsc::channel::<()>();

    let reader_thread = {
        let received = Arc::clone(&received);
        let stop = Arc::clone(&stop);
        thread::spawn(move || -> io::Result<u64> {
            let mut buf = vec![0u8; READ_BUF];
            // Every byte sent is 0xA5: comparing with this is a cheap check
            // that the echo is right (a memcmp, fast next to the socket).
            let pattern = vec![0xA5u8; READ_BUF];
            let mut bytes = 0u64;
            let mut mismatched = 0u64;
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if buf[..n] != pattern[..n] {
                            mismatched += buf[..n].iter().filter(|&&b| b != 0xA5).count() as u64;
                        }
                        bytes += n as u64;
                        received.store(bytes / msg_len as u64, Ordering::Release);
                        let _ = credit_tx.send(());
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(mismatched)
        })
    };

    let batch = vec![0xA5u8; msg_len * window];
    let pids = [echo.pid()];
    let mut sent = 0u64;
    let start = Instant::now();
    let warm_end = start + warm;
    let end = warm_end + measure;
    let mut before: Option<(Snapshot, u64)> = None;
    let mut result = Ok(());
    loop {
        let now = Instant::now();
        if before.is_none() && now >= warm_end {
            before = Some((Snapshot::start(&pids), received.load(Ordering::Acquire)));
        }
        if now >= end {
            break;
        }
        let done = received.load(Ordering::Acquire);
        let room = window as u64 - (sent - done).min(window as u64);
        if room == 0 {
            let _ = credit_rx.recv_timeout(Duration::from_millis(100));
            while credit_rx.try_recv().is_ok() {}
            continue;
        }
        let room_bytes = room as usize * msg_len;
        let wrote = if batched {
            writer.write_all(&batch[..room_bytes])
        } else {
            batch[..room_bytes]
                .chunks(msg_len)
                .try_for_each(|m| writer.write_all(m))
        };
        if let Err(e) = wrote {
            result = Err(e);
            break;
        }
        sent += room;
    }
    let after = Snapshot::end(&pids);
    let after_count = received.load(Ordering::Acquire);

    // Let the reader collect the echoes still in flight (bounded), then stop it.
    let drain_deadline = Instant::now() + STEP_TIMEOUT;
    while received.load(Ordering::Acquire) < sent && Instant::now() < drain_deadline {
        let _ = credit_rx.recv_timeout(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Release);
    let _ = echo.stream.shutdown(std::net::Shutdown::Both);
    let mismatched = reader_thread
        .join()
        .map_err(|_| io::Error::other("reader thread panicked"))??;
    result?;
    let lost = sent.saturating_sub(received.load(Ordering::Acquire));
    drop(echo);

    let (before, before_count) = before.unwrap_or((after, after_count));
    let ops = after_count.saturating_sub(before_count);
    let secs = after.at.duration_since(before.at).as_secs_f64();
    Ok(Throughput {
        rounds: Vec::new(),
        round_costs: Vec::new(),
        ops,
        secs,
        per_sec: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
        errors: mismatched + lost,
        p50_us: None,
        p99_us: None,
        costs: Costs::between(&before, &after, ops),
    })
}
