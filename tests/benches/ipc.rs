//! IPC benchmark: lpm's request latency and throughput next to a raw
//! socketpair baseline measured in the same run, so the figures are ratios
//! on one machine.
//!
//! Run with `cargo bench -p lpm-tests --bench ipc`. It prints a table and
//! writes the same figures as JSON to `target/lpm-bench.json`.
//!
//! Environment:
//! - `LPM_BENCH_QUICK=1`: a short run, to check that the benchmark works
//!   (its figures are noisy). Without `--bench` in its arguments (under
//!   `cargo test --benches`), the benchmark always makes the quick run.
//! - `LPM_BENCH_ONLY=r1,r2,r2u,w1,w2,w2t,w2tv,w2j,w2tj,r1c,w1c`: run only
//!   these workloads (profiling, or `w2,w2t,w2j` for the typed-call and codec
//!   ratios alone).
//! - `LPM_BENCH_WORKERS=runtime,raw`: run the lpm workloads only against
//!   these workers.
//! - `LPM_BENCH_ROUNDS=n`: rounds per workload (default 3, quick 1). The
//!   rounds are interleaved and the median round is reported, with the
//!   spread of all rounds.
//!
//! Workloads (every payload is 64 bytes):
//! - R1: raw baseline, sequential round trips over a Unix socketpair to
//!   `socket_echo` (a child that writes back what it reads): p50/p99.
//! - R2: raw baseline, 256 messages in flight, writes batched (as many
//!   messages as the window allows in one write), a reader thread: msg/s.
//!   R2u is the same with one write per message.
//! - W1: lpm, one worker, sequential `Pool::enqueue` round trips: p50/p99.
//! - W2: lpm, two workers, 256 requests in flight: requests/s (the caller's
//!   loop runs on the actix thread, like a handler in an actix app).
//!   Untyped: `Pool::enqueue` of the bytes (`serde_bytes`), postcard; the
//!   caller compares the answer's bytes without decoding them.
//! - W2d: W2 where the caller decodes each answer (`Response::data`), as
//!   any caller that reads its answer does: W2t/W2d is what the typed form
//!   adds over the untyped one used the same way.
//! - W2t: W2 with typed calls, `Pool::call(Echo(..))` (a `Call` named
//!   "echo" that `bench_echo` serves with `Worker::handle`). The caller's
//!   call and reply types hold the bytes inline (`ByteArray<64>`), so the
//!   caller allocates nothing W2 does not and W2t/W2 is the typed-call
//!   path's own cost: call numbers on the frame, the handler lookup, the
//!   decode of the reply into `C::Reply`. The payload bytes are W2's.
//! - W2tv: W2t with `ByteBuf` (a `Vec`) as call and reply type, as
//!   `bench_echo` declares it: W2tv/W2t is what heap-held types add on the
//!   caller's side (a copy into the call, an allocation for the reply).
//! - W2j: W2 with the JSON codec (`Config::codec(Codec::Json)`; the worker
//!   follows it): the same `serde_bytes` value, which JSON writes as an
//!   array of numbers (257 bytes instead of postcard's 65), so W2j/W2 is
//!   what JSON costs for the same Rust value. W2tj: W2t with JSON.
//! - R1c, W1c: R1 and W1 again with the benchmark and its children on one
//!   CPU. Sequential round trips across CPUs mostly measure the machine's
//!   cross-CPU wake-up cost (large and noisy on virtual machines); on one CPU
//!   they measure the software path, so their ratio is the steadier one.
//!
//! W1 and W2 run against `bench_echo` (the lpm worker runtime) and against
//! `raw_echo` (a worker on the bare protocol), so the runtime's share shows.
//! The W2 variants (W2d, W2t, W2tv, W2j, W2tj) run against `bench_echo` only
//! (`raw_echo` serves no typed calls and speaks postcard only); the table
//! gives each one's rate, and its supervisor and worker CPU per request,
//! against W2 of the same run: the ratio of the median rounds, and the
//! median of the ratios of each round to W2's round (`paired`, steadier on
//! a noisy machine). Their order within a round rotates from round to round.
//! Rounds of one workload vary by 10% and more on a shared 2-CPU machine:
//! to resolve a few percent, run `LPM_BENCH_ONLY=w2,w2t` with 10 rounds or
//! more, several times (the JSON has every round's rate and CPU).
//! No figure is asserted; every loop is bounded by a count and a time.

use std::alloc::{GlobalAlloc, Layout, System as SystemAlloc};
use std::cell::Cell;
use std::fmt::Write as _;
use std::future::Future;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use lpm::{Call, Codec, Config, Pool, PoolError, Response, SignalPolicy, WorkerCommand};
use serde::{Deserialize, Serialize};
use serde_bytes::{ByteArray, ByteBuf, Bytes};

/// Bytes in every message and request payload.
const MSG_LEN: usize = 64;
/// Messages (R2) or requests (W2) kept in flight.
const WINDOW: usize = 256;
/// Bound on any single wait for a child or the pool, so nothing hangs.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Allocation counting (per thread, so the actix thread's count is the
// supervisor side's and no counter is shared between threads).

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting allocations made by each thread.
struct CountingAlloc;

fn count_alloc() {
    // `try_with`: a thread being torn down may still allocate.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to the system allocator with the caller's
// arguments unchanged; the counter touches only a const-initialised
// thread-local `Cell` (no allocation, no destructor, no lock).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { SystemAlloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        // SAFETY: as above.
        unsafe { SystemAlloc.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_alloc();
        // SAFETY: as above.
        unsafe { SystemAlloc.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { SystemAlloc.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations (and reallocations) made so far by the calling thread.
fn thread_allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

// ---------------------------------------------------------------------------
// CPU accounting from /proc: nanoseconds on CPU, summed over a process's threads.

/// Total CPU time of `pid`'s threads, from `/proc/<pid>/task/*/schedstat`
/// (first field: nanoseconds on CPU); also the voluntary and involuntary
/// context switches from `status`.
fn proc_cpu(pid: u32) -> (u64, u64) {
    let mut cpu = 0;
    let mut switches = 0;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    for task in tasks.flatten() {
        let dir = task.path();
        if let Ok(s) = std::fs::read_to_string(dir.join("schedstat")) {
            cpu += s
                .split_whitespace()
                .next()
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(s) = std::fs::read_to_string(dir.join("status")) {
            for line in s.lines() {
                if line.starts_with("voluntary_ctxt_switches:")
                    || line.starts_with("nonvoluntary_ctxt_switches:")
                {
                    switches += line
                        .split_whitespace()
                        .nth(1)
                        .and_then(|f| f.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
    }
    (cpu, switches)
}

/// CPU and allocation counters of the benchmark process and its children at one moment.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    at: Instant,
    parent_cpu_ns: u64,
    parent_switches: u64,
    child_cpu_ns: u64,
    allocs: u64,
}

impl Snapshot {
    fn take(children: &[u32]) -> Self {
        let (parent_cpu_ns, parent_switches) = proc_cpu(std::process::id());
        let child_cpu_ns = children.iter().map(|&pid| proc_cpu(pid).0).sum();
        Self {
            at: Instant::now(),
            parent_cpu_ns,
            parent_switches,
            child_cpu_ns,
            allocs: thread_allocs(),
        }
    }
}

/// Per-operation costs between two snapshots.
#[derive(Debug, Clone, Copy, Default)]
struct Costs {
    /// CPU of the benchmark process (the supervisor side, or the raw
    /// writer and reader), microseconds per operation.
    parent_cpu_us: f64,
    /// CPU of the child processes, microseconds per operation.
    child_cpu_us: f64,
    /// Context switches of the benchmark process per operation.
    parent_switches: f64,
    /// Allocations per operation on the measuring thread (for lpm: the
    /// actix thread, where all the supervisor's actors run).
    allocs: f64,
}

impl Costs {
    fn between(a: &Snapshot, b: &Snapshot, ops: u64) -> Self {
        let ops = ops.max(1) as f64;
        Self {
            parent_cpu_us: b.parent_cpu_ns.saturating_sub(a.parent_cpu_ns) as f64 / ops / 1e3,
            child_cpu_us: b.child_cpu_ns.saturating_sub(a.child_cpu_ns) as f64 / ops / 1e3,
            parent_switches: b.parent_switches.saturating_sub(a.parent_switches) as f64 / ops,
            allocs: b.allocs.saturating_sub(a.allocs) as f64 / ops,
        }
    }
}

// ---------------------------------------------------------------------------
// Figures.

/// Sequential round-trip latency.
#[derive(Debug, Clone, Default)]
struct Latency {
    /// p50 of every round (µs); this figure is the median round.
    rounds: Vec<f64>,
    /// The costs of every round, in the order they ran.
    round_costs: Vec<Costs>,
    samples: usize,
    errors: u64,
    p50_us: f64,
    p99_us: f64,
    mean_us: f64,
    costs: Costs,
}

impl Latency {
    fn from_samples(mut ns: Vec<u64>, errors: u64, costs: Costs) -> Self {
        ns.sort_unstable();
        let mean = if ns.is_empty() {
            0.0
        } else {
            ns.iter().sum::<u64>() as f64 / ns.len() as f64
        };
        Self {
            rounds: Vec::new(),
            round_costs: Vec::new(),
            samples: ns.len(),
            errors,
            p50_us: percentile(&ns, 50.0) / 1e3,
            p99_us: percentile(&ns, 99.0) / 1e3,
            mean_us: mean / 1e3,
            costs,
        }
    }
}

/// Throughput with a window of operations in flight.
#[derive(Debug, Clone, Default)]
struct Throughput {
    /// Rate of every round, in the order they ran; this figure is the median round.
    rounds: Vec<f64>,
    /// The costs of every round, in the order they ran.
    round_costs: Vec<Costs>,
    ops: u64,
    secs: f64,
    per_sec: f64,
    errors: u64,
    /// Per-request latency under load (lpm only: the raw baseline does not time messages).
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    costs: Costs,
}

/// Nearest-rank percentile of sorted nanoseconds.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// A figure measured in rounds: the value the median is taken by.
trait Figure {
    fn key(&self) -> f64;
    fn costs(&self) -> Costs;
    fn set_rounds(&mut self, rounds: Vec<f64>, costs: Vec<Costs>);
    fn rounds(&self) -> &[f64];
}

impl Figure for Latency {
    fn key(&self) -> f64 {
        self.p50_us
    }
    fn costs(&self) -> Costs {
        self.costs
    }
    fn set_rounds(&mut self, rounds: Vec<f64>, costs: Vec<Costs>) {
        self.rounds = rounds;
        self.round_costs = costs;
    }
    fn rounds(&self) -> &[f64] {
        &self.rounds
    }
}

impl Figure for Throughput {
    fn key(&self) -> f64 {
        self.per_sec
    }
    fn costs(&self) -> Costs {
        self.costs
    }
    fn set_rounds(&mut self, rounds: Vec<f64>, costs: Vec<Costs>) {
        self.rounds = rounds;
        self.round_costs = costs;
    }
    fn rounds(&self) -> &[f64] {
        &self.rounds
    }
}

/// The median round of a workload (`None` when it did not run; the first
/// error when every round failed).
fn median_round<T: Figure>(name: &str, runs: Vec<Result<T, String>>) -> Option<Result<T, String>> {
    let mut good = Vec::new();
    let mut first_error = None;
    for run in runs {
        match run {
            Ok(figure) => good.push(figure),
            Err(e) => {
                eprintln!("  {name}: a round failed: {e}");
                first_error.get_or_insert(e);
            }
        }
    }
    if good.is_empty() {
        return first_error.map(Err);
    }
    let values: Vec<f64> = good.iter().map(Figure::key).collect();
    let costs: Vec<Costs> = good.iter().map(Figure::costs).collect();
    good.sort_by(|a, b| a.key().total_cmp(&b.key()));
    let mut median = good.swap_remove(good.len() / 2);
    median.set_rounds(values, costs);
    Some(Ok(median))
}

/// The median of `a[i] / b[i]` over the rounds: rounds of one workload
/// paired with the same rounds of another, so that a slow stretch of the
/// machine weighs on both sides of each ratio. `None` unless both have the
/// same number of rounds (a failed round breaks the pairing).
fn paired_ratio(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.is_empty() || a.len() != b.len() {
        return None;
    }
    let mut ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    Some(if n % 2 == 1 {
        ratios[n / 2]
    } else {
        (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0
    })
}

/// The spread of the rounds: (max - min) / median, in percent.
fn spread(figure: &impl Figure) -> Option<f64> {
    let rounds = figure.rounds();
    if rounds.len() < 2 {
        return None;
    }
    let max = rounds.iter().copied().fold(f64::MIN, f64::max);
    let min = rounds.iter().copied().fold(f64::MAX, f64::min);
    let mid = figure.key();
    (mid > 0.0).then(|| (max - min) / mid * 100.0)
}

// ---------------------------------------------------------------------------
// Parameters.

#[derive(Debug, Clone)]
struct Params {
    quick: bool,
    /// Each workload runs this many times, interleaved with the others; the
    /// report keeps the median round, so a burst of noise on a shared
    /// machine hits every workload alike.
    rounds: usize,
    warm_iters: usize,
    latency_iters: usize,
    latency_max: Duration,
    raw_warm: Duration,
    raw_measure: Duration,
    lpm_warm: Duration,
    lpm_measure: Duration,
    only: Option<Vec<String>>,
    workers: Option<Vec<String>>,
}

impl Params {
    fn from_env() -> Self {
        // `cargo bench` passes `--bench`; `cargo test --benches` (or
        // `--all-targets`) does not, and gets the quick run as a smoke test.
        let benching = std::env::args().any(|a| a == "--bench");
        let quick =
            !benching || std::env::var("LPM_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let list = |var: &str| {
            std::env::var(var).ok().map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
        };
        let only = list("LPM_BENCH_ONLY");
        let rounds = std::env::var("LPM_BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .map(|n| n.clamp(1, 20));
        let workers = list("LPM_BENCH_WORKERS");
        if quick {
            Self {
                quick,
                rounds: rounds.unwrap_or(1),
                warm_iters: 200,
                latency_iters: 2_000,
                latency_max: Duration::from_secs(5),
                raw_warm: Duration::from_millis(100),
                raw_measure: Duration::from_millis(300),
                lpm_warm: Duration::from_millis(200),
                lpm_measure: Duration::from_millis(500),
                only,
                workers,
            }
        } else {
            Self {
                quick,
                rounds: rounds.unwrap_or(3),
                warm_iters: 2_000,
                latency_iters: 20_000,
                latency_max: Duration::from_secs(30),
                raw_warm: Duration::from_millis(300),
                raw_measure: Duration::from_secs(2),
                lpm_warm: Duration::from_millis(500),
                lpm_measure: Duration::from_secs(3),
                only,
                workers,
            }
        }
    }

    fn runs(&self, workload: &str) -> bool {
        match &self.only {
            None => true,
            Some(only) => only.iter().any(|w| w == workload),
        }
    }

    fn uses(&self, worker: WorkerKind) -> bool {
        match &self.workers {
            None => true,
            Some(workers) => workers.iter().any(|w| w == worker.key()),
        }
    }
}

// ---------------------------------------------------------------------------
// Raw baseline: a socketpair and `socket_echo`.

/// A running `socket_echo` child and our end of its channel.
struct SocketEcho {
    stream: UnixStream,
    child: Child,
}

impl SocketEcho {
    fn spawn() -> io::Result<Self> {
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

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// In the child, between fork and exec: puts the channel on fd 3, inheritable.
fn channel_to_fd3(fd: RawFd) -> io::Result<()> {
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
fn raw_latency(p: &Params) -> io::Result<Latency> {
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
    let before = Snapshot::take(&pids);
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
    let after = Snapshot::take(&pids);
    let costs = Costs::between(&before, &after, samples.len() as u64);
    Ok(Latency::from_samples(samples, errors, costs))
}

/// R2 (batched) and R2u (one write per message): `WINDOW` messages in
/// flight, a reader thread, messages per second.
fn raw_throughput(p: &Params, batched: bool) -> io::Result<Throughput> {
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
            let mut buf = vec![0u8; 256 * 1024];
            let mut bytes = 0u64;
            let mut mismatched = 0u64;
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        // Every byte sent is 0xA5: a cheap check that the echo is right.
                        mismatched += buf[..n].iter().filter(|&&b| b != 0xA5).count() as u64;
                        bytes += n as u64;
                        received.store(bytes / MSG_LEN as u64, Ordering::Release);
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

    let batch = vec![0xA5u8; MSG_LEN * WINDOW];
    let pids = [echo.pid()];
    let mut sent = 0u64;
    let start = Instant::now();
    let warm_end = start + p.raw_warm;
    let end = warm_end + p.raw_measure;
    let mut before: Option<(Snapshot, u64)> = None;
    let mut result = Ok(());
    loop {
        let now = Instant::now();
        if before.is_none() && now >= warm_end {
            before = Some((Snapshot::take(&pids), received.load(Ordering::Acquire)));
        }
        if now >= end {
            break;
        }
        let done = received.load(Ordering::Acquire);
        let room = WINDOW as u64 - (sent - done).min(WINDOW as u64);
        if room == 0 {
            let _ = credit_rx.recv_timeout(Duration::from_millis(100));
            while credit_rx.try_recv().is_ok() {}
            continue;
        }
        let room_bytes = room as usize * MSG_LEN;
        let wrote = if batched {
            writer.write_all(&batch[..room_bytes])
        } else {
            batch[..room_bytes]
                .chunks(MSG_LEN)
                .try_for_each(|m| writer.write_all(m))
        };
        if let Err(e) = wrote {
            result = Err(e);
            break;
        }
        sent += room;
    }
    let after = Snapshot::take(&pids);
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

// ---------------------------------------------------------------------------
// One-CPU runs: the calling thread's affinity, inherited by the threads and
// processes it starts.

/// The calling thread's CPU affinity.
fn affinity() -> io::Result<libc::cpu_set_t> {
    // SAFETY: `cpu_set_t` is a plain bit array, for which all zeroes is the
    // empty set; the kernel writes at most `size_of::<cpu_set_t>()` bytes into
    // it; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(set)
    }
}

/// Sets the calling thread's CPU affinity.
fn set_affinity(set: &libc::cpu_set_t) -> io::Result<()> {
    // SAFETY: the kernel reads `size_of::<cpu_set_t>()` bytes from a valid
    // set; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` with this thread, and all it starts meanwhile, on the first CPU
/// it may use; restores the affinity after.
fn on_one_cpu<T>(f: impl FnOnce() -> T) -> io::Result<T> {
    let saved = affinity()?;
    let cpu = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET only reads the set; `i` is below CPU_SETSIZE.
        .find(|&i| unsafe { libc::CPU_ISSET(i, &saved) })
        .ok_or_else(|| io::Error::other("empty CPU affinity"))?;
    // SAFETY: as in `affinity`: all zeroes is the empty set; `cpu` < CPU_SETSIZE.
    let one = unsafe {
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        one
    };
    set_affinity(&one)?;
    let out = f();
    set_affinity(&saved)?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// lpm: a Pool of `bench_echo` or `raw_echo` workers in an actix System.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkerKind {
    /// `bench_echo`: the lpm worker runtime.
    Runtime,
    /// `raw_echo`: the bare protocol, no runtime.
    Raw,
}

impl WorkerKind {
    fn key(self) -> &'static str {
        match self {
            WorkerKind::Runtime => "runtime",
            WorkerKind::Raw => "raw",
        }
    }

    fn bin(self) -> &'static str {
        match self {
            WorkerKind::Runtime => env!("CARGO_BIN_EXE_bench_echo"),
            WorkerKind::Raw => env!("CARGO_BIN_EXE_raw_echo"),
        }
    }

    fn label(self) -> &'static str {
        match self {
            WorkerKind::Runtime => "bench_echo (worker runtime)",
            WorkerKind::Raw => "raw_echo (protocol only)",
        }
    }
}

/// W2 and its variants: how the caller sends its requests, in which codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum W2Variant {
    /// W2: `Pool::enqueue` of the bytes, postcard.
    Untyped,
    /// W2d: W2, and the caller decodes each answer (`Response::data`), as a
    /// typed call does: the like-for-like baseline of W2t.
    UntypedDecoded,
    /// W2t: `Pool::call(Echo)`, the bytes held inline, postcard.
    Typed,
    /// W2tv: `Pool::call(EchoVec)`, the bytes in a `Vec`, postcard.
    TypedVec,
    /// W2j: W2 with the JSON codec.
    Json,
    /// W2tj: W2t with the JSON codec.
    TypedJson,
}

impl W2Variant {
    const ALL: [W2Variant; 6] = [
        W2Variant::Untyped,
        W2Variant::UntypedDecoded,
        W2Variant::Typed,
        W2Variant::TypedVec,
        W2Variant::Json,
        W2Variant::TypedJson,
    ];

    /// Its name in `LPM_BENCH_ONLY`.
    fn key(self) -> &'static str {
        match self {
            W2Variant::Untyped => "w2",
            W2Variant::UntypedDecoded => "w2d",
            W2Variant::Typed => "w2t",
            W2Variant::TypedVec => "w2tv",
            W2Variant::Json => "w2j",
            W2Variant::TypedJson => "w2tj",
        }
    }

    /// Its name in the report.
    fn name(self) -> &'static str {
        match self {
            W2Variant::Untyped => "W2",
            W2Variant::UntypedDecoded => "W2d",
            W2Variant::Typed => "W2t",
            W2Variant::TypedVec => "W2tv",
            W2Variant::Json => "W2j",
            W2Variant::TypedJson => "W2tj",
        }
    }

    /// What it sends, for the report.
    fn what(self) -> &'static str {
        match self {
            W2Variant::Untyped => "untyped, postcard",
            W2Variant::UntypedDecoded => "untyped, answer decoded, postcard",
            W2Variant::Typed => "typed, postcard",
            W2Variant::TypedVec => "typed ByteBuf, postcard",
            W2Variant::Json => "untyped, JSON",
            W2Variant::TypedJson => "typed, JSON",
        }
    }

    /// Its key in the JSON results.
    fn json_key(self) -> &'static str {
        match self {
            W2Variant::Untyped => "w2_throughput",
            W2Variant::UntypedDecoded => "w2d_throughput_decoded",
            W2Variant::Typed => "w2t_throughput_typed",
            W2Variant::TypedVec => "w2tv_throughput_typed_bytebuf",
            W2Variant::Json => "w2j_throughput_json",
            W2Variant::TypedJson => "w2tj_throughput_typed_json",
        }
    }

    fn codec(self) -> Codec {
        match self {
            W2Variant::Json | W2Variant::TypedJson => Codec::Json,
            _ => Codec::Postcard,
        }
    }

    /// Whether it can run against `kind`: `raw_echo` serves no typed call
    /// and announces postcard only.
    fn runs_on(self, kind: WorkerKind) -> bool {
        matches!(self, W2Variant::Untyped | W2Variant::UntypedDecoded)
            || kind == WorkerKind::Runtime
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The typed echo as W2t's caller declares it: the wire name and encoding
/// of `bench_echo`'s `Echo(ByteBuf)` (bytes: a length and the bytes in
/// postcard, an array of numbers in JSON), the bytes held inline.
#[derive(Serialize, Deserialize)]
struct Echo(ByteArray<MSG_LEN>);

impl Call for Echo {
    const NAME: &'static str = "echo";
    type Reply = ByteArray<MSG_LEN>;
}

/// The same call with `bench_echo`'s own types, the bytes in a `Vec` (W2tv).
#[derive(Serialize, Deserialize)]
struct EchoVec(ByteBuf);

impl Call for EchoVec {
    const NAME: &'static str = "echo";
    type Reply = ByteBuf;
}

/// Starts a pool of `workers` and waits (bounded) until it is online.
async fn start_pool(
    kind: WorkerKind,
    workers: usize,
    codec: Codec,
) -> Result<(Pool, Vec<u32>), String> {
    let config = Config::default()
        .workers(workers)
        .max_in_flight(4 * WINDOW)
        .queue_capacity(1 << 20)
        .on_signal(SignalPolicy::Ignore)
        .codec(codec);
    let pool = Pool::start(WorkerCommand::new(kind.bin()), config);
    match tokio::time::timeout(STEP_TIMEOUT, pool.online()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            stop_pool(&pool).await;
            return Err(format!("{} pool cannot come online: {e}", kind.key()));
        }
        Err(_) => {
            stop_pool(&pool).await;
            return Err(format!(
                "{} pool not online within {STEP_TIMEOUT:?}",
                kind.key()
            ));
        }
    }
    let pids = match tokio::time::timeout(STEP_TIMEOUT, pool.health()).await {
        Ok(Ok(health)) => health.iter().filter_map(|w| w.pid).collect(),
        _ => Vec::new(),
    };
    Ok((pool, pids))
}

/// Soft kill, bounded; a hard kill if that does not finish.
async fn stop_pool(pool: &Pool) {
    if tokio::time::timeout(STEP_TIMEOUT, pool.soft_kill())
        .await
        .is_err()
    {
        let _ = tokio::time::timeout(STEP_TIMEOUT, pool.hard_kill()).await;
    }
}

/// The payload's encoding in `codec`: what an echo must answer.
fn encoded_payload(codec: Codec, payload: &[u8]) -> Vec<u8> {
    codec
        .encode(Bytes::new(payload))
        .expect("bytes always encode")
}

fn is_echo(result: &Result<Response, PoolError>, expected: &[u8]) -> bool {
    matches!(result, Ok(r) if r.bytes() == expected)
}

/// W1: sequential round trips through a one-worker pool.
async fn lpm_latency(kind: WorkerKind, p: &Params) -> Result<Latency, String> {
    let (pool, pids) = start_pool(kind, 1, Codec::Postcard).await?;
    let payload = [0xA5u8; MSG_LEN];
    let expected = encoded_payload(Codec::Postcard, &payload);
    let run = async {
        let mut errors = 0;
        for _ in 0..p.warm_iters {
            let r = pool.enqueue(Bytes::new(&payload)).await;
            errors += u64::from(!is_echo(&r, &expected));
        }
        let mut samples = Vec::with_capacity(p.latency_iters);
        let before = Snapshot::take(&pids);
        let deadline = before.at + p.latency_max;
        for _ in 0..p.latency_iters {
            let start = Instant::now();
            if start >= deadline {
                break;
            }
            let r = pool.enqueue(Bytes::new(&payload)).await;
            samples.push(start.elapsed().as_nanos() as u64);
            errors += u64::from(!is_echo(&r, &expected));
        }
        let after = Snapshot::take(&pids);
        let costs = Costs::between(&before, &after, samples.len() as u64);
        Latency::from_samples(samples, errors, costs)
    };
    let bound = p.latency_max + STEP_TIMEOUT;
    let result = tokio::time::timeout(bound, run).await;
    stop_pool(&pool).await;
    result.map_err(|_| format!("W1 {} did not finish within {bound:?}", kind.key()))
}

/// One timed untyped request (W2, W2j): its time, and whether it came back right.
async fn timed(pool: &Pool, payload: &[u8], expected: &[u8]) -> (u64, bool) {
    let start = Instant::now();
    let r = pool.enqueue(Bytes::new(payload)).await;
    (start.elapsed().as_nanos() as u64, is_echo(&r, expected))
}

/// One timed untyped request whose answer is decoded, as W2t's is (W2d).
async fn timed_decoded(pool: &Pool, payload: &[u8; MSG_LEN]) -> (u64, bool) {
    let start = Instant::now();
    let r = pool.enqueue(Bytes::new(payload)).await;
    let back = r.and_then(|r| r.data::<ByteArray<MSG_LEN>>());
    let ns = start.elapsed().as_nanos() as u64;
    (
        ns,
        matches!(back, Ok(back) if back.into_array() == *payload),
    )
}

/// One timed typed call, the bytes inline (W2t, W2tj).
async fn timed_call(pool: &Pool, payload: &[u8; MSG_LEN]) -> (u64, bool) {
    let start = Instant::now();
    let r = pool.call(Echo(ByteArray::new(*payload))).await;
    let ns = start.elapsed().as_nanos() as u64;
    (ns, matches!(r, Ok(back) if back.into_array() == *payload))
}

/// One timed typed call, the bytes in a `Vec` (W2tv).
async fn timed_call_vec(pool: &Pool, payload: &[u8]) -> (u64, bool) {
    let start = Instant::now();
    let r = pool.call(EchoVec(ByteBuf::from(payload))).await;
    let ns = start.elapsed().as_nanos() as u64;
    (ns, matches!(r, Ok(back) if back.as_slice() == payload))
}

/// W2 and its variants: `WINDOW` requests in flight over a two-worker pool.
async fn lpm_throughput(
    kind: WorkerKind,
    variant: W2Variant,
    p: &Params,
) -> Result<Throughput, String> {
    let codec = variant.codec();
    let (pool, pids) = start_pool(kind, 2, codec).await?;
    let payload = [0xA5u8; MSG_LEN];
    let expected = encoded_payload(codec, &payload);
    // One loop, monomorphised per kind of request: no dynamic call per request.
    let run = async {
        match variant {
            W2Variant::Untyped | W2Variant::Json => {
                window(p, &pids, || timed(&pool, &payload, &expected)).await
            }
            W2Variant::UntypedDecoded => window(p, &pids, || timed_decoded(&pool, &payload)).await,
            W2Variant::Typed | W2Variant::TypedJson => {
                window(p, &pids, || timed_call(&pool, &payload)).await
            }
            W2Variant::TypedVec => window(p, &pids, || timed_call_vec(&pool, &payload)).await,
        }
    };
    let bound = p.lpm_warm + p.lpm_measure + STEP_TIMEOUT;
    let result = tokio::time::timeout(bound, run).await;
    stop_pool(&pool).await;
    result.map_err(|_| {
        format!(
            "{} {} did not finish within {bound:?}",
            variant.name(),
            kind.key()
        )
    })
}

/// Keeps `WINDOW` requests made by `next` in flight: warm-up, then the
/// measured stretch, then the drain.
async fn window<F, Fut>(p: &Params, pids: &[u32], mut next: F) -> Throughput
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (u64, bool)>,
{
    let mut in_flight = FuturesUnordered::new();
    for _ in 0..WINDOW {
        in_flight.push(next());
    }
    let start = Instant::now();
    let warm_end = start + p.lpm_warm;
    let end = warm_end + p.lpm_measure;
    let mut before: Option<Snapshot> = None;
    let mut after: Option<Snapshot> = None;
    let mut ops = 0u64;
    let mut errors = 0u64;
    let mut samples = Vec::new();
    while let Some((ns, echoed)) = in_flight.next().await {
        let now = Instant::now();
        errors += u64::from(!echoed);
        if now < end {
            if before.is_some() {
                ops += 1;
                samples.push(ns);
            } else if now >= warm_end {
                before = Some(Snapshot::take(pids));
            }
            in_flight.push(next());
        } else if after.is_none() {
            after = Some(Snapshot::take(pids));
        }
    }
    let after = after.unwrap_or_else(|| Snapshot::take(pids));
    let before = before.unwrap_or(after);
    let secs = after.at.duration_since(before.at).as_secs_f64();
    let lat = Latency::from_samples(samples, 0, Costs::default());
    Throughput {
        rounds: Vec::new(),
        round_costs: Vec::new(),
        ops,
        secs,
        per_sec: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
        errors,
        p50_us: Some(lat.p50_us),
        p99_us: Some(lat.p99_us),
        costs: Costs::between(&before, &after, ops),
    }
}

#[derive(Debug, Default)]
struct LpmFigures {
    latency: Option<Result<Latency, String>>,
    /// W2 and its variants, by `W2Variant::index`.
    throughput: [Option<Result<Throughput, String>>; W2Variant::ALL.len()],
    /// W1 on one CPU.
    latency_one_cpu: Option<Result<Latency, String>>,
}

impl LpmFigures {
    fn w2(&self, variant: W2Variant) -> &Option<Result<Throughput, String>> {
        &self.throughput[variant.index()]
    }
}

/// The rounds of W1, W2 (and its variants) and W1c for one worker kind.
#[derive(Debug, Default)]
struct LpmRuns {
    latency: Vec<Result<Latency, String>>,
    throughput: [Vec<Result<Throughput, String>>; W2Variant::ALL.len()],
    latency_one_cpu: Vec<Result<Latency, String>>,
}

impl LpmRuns {
    /// One round (`round` counts from 1) of W1, W2 and its variants, and
    /// W1c, each in a fresh actix System. The W2 variants take turns going
    /// first, so that none always runs right after another.
    fn round(&mut self, kind: WorkerKind, p: &Params, round: usize) {
        if p.runs("w1") {
            eprintln!("  W1 {} ...", kind.key());
            let run = actix_rt::System::new().block_on(lpm_latency(kind, p));
            self.latency.push(run);
        }
        let variants: Vec<W2Variant> = W2Variant::ALL
            .into_iter()
            .filter(|v| v.runs_on(kind) && p.runs(v.key()))
            .collect();
        for i in 0..variants.len() {
            let variant = variants[(i + round - 1) % variants.len()];
            eprintln!(
                "  {} {} ({}) ...",
                variant.name(),
                kind.key(),
                variant.what()
            );
            let run = actix_rt::System::new().block_on(lpm_throughput(kind, variant, p));
            self.throughput[variant.index()].push(run);
        }
        if p.runs("w1c") {
            eprintln!("  W1c {} (one CPU) ...", kind.key());
            let run = on_one_cpu(|| actix_rt::System::new().block_on(lpm_latency(kind, p)));
            self.latency_one_cpu
                .push(run.map_err(|e| e.to_string()).and_then(|r| r));
        }
    }

    fn medians(mut self, kind: WorkerKind) -> LpmFigures {
        let k = kind.key();
        LpmFigures {
            latency: median_round(&format!("W1 {k}"), self.latency),
            throughput: W2Variant::ALL.map(|v| {
                let runs = std::mem::take(&mut self.throughput[v.index()]);
                median_round(&format!("{} {k}", v.name()), runs)
            }),
            latency_one_cpu: median_round(&format!("W1c {k}"), self.latency_one_cpu),
        }
    }

    /// Whether any of these workloads runs against `kind`.
    fn any(kind: WorkerKind, p: &Params) -> bool {
        p.uses(kind)
            && (p.runs("w1")
                || p.runs("w1c")
                || W2Variant::ALL
                    .iter()
                    .any(|v| v.runs_on(kind) && p.runs(v.key())))
    }
}

// ---------------------------------------------------------------------------
// Report: table and JSON.

#[derive(Debug)]
struct Machine {
    nproc: usize,
    cpu: String,
    kernel: String,
}

impl Machine {
    fn probe() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Self {
            nproc: thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            kernel,
        }
    }
}

/// A tiny JSON value, enough for the results file.
#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(&'static str, Json)>),
}

impl Json {
    fn write(&self, out: &mut String, indent: usize) {
        let pad = "  ".repeat(indent + 1);
        let close = "  ".repeat(indent);
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) if n.is_finite() => {
                let rounded = (n * 1e3).round() / 1e3;
                let _ = write!(out, "{rounded}");
            }
            Json::Num(_) => out.push_str("null"),
            Json::Str(s) => {
                out.push('"');
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c if (c as u32) < 0x20 => {
                            let _ = write!(out, "\\u{:04x}", c as u32);
                        }
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            Json::Arr(items) => {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    out.push_str(&pad);
                    item.write(out, indent + 1);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                out.push_str(&close);
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push_str("{\n");
                for (i, (k, v)) in fields.iter().enumerate() {
                    let _ = write!(out, "{pad}\"{k}\": ");
                    v.write(out, indent + 1);
                    out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                out.push_str(&close);
                out.push('}');
            }
        }
    }
}

fn num(n: f64) -> Json {
    Json::Num(n)
}

fn costs_json(c: &Costs) -> Json {
    Json::Obj(vec![
        ("parent_cpu_us_per_op", num(c.parent_cpu_us)),
        ("child_cpu_us_per_op", num(c.child_cpu_us)),
        ("parent_context_switches_per_op", num(c.parent_switches)),
        ("allocs_per_op_measuring_thread", num(c.allocs)),
    ])
}

fn latency_json(r: &Option<Result<Latency, String>>) -> Json {
    match r {
        None => Json::Null,
        Some(Err(e)) => Json::Obj(vec![("error", Json::Str(e.clone()))]),
        Some(Ok(l)) => Json::Obj(vec![
            (
                "p50_us_of_each_round",
                Json::Arr(l.rounds.iter().map(|&v| num(v)).collect()),
            ),
            ("samples", num(l.samples as f64)),
            ("errors", num(l.errors as f64)),
            ("p50_us", num(l.p50_us)),
            ("p99_us", num(l.p99_us)),
            ("mean_us", num(l.mean_us)),
            ("costs", costs_json(&l.costs)),
        ]),
    }
}

fn throughput_json(r: &Option<Result<Throughput, String>>) -> Json {
    match r {
        None => Json::Null,
        Some(Err(e)) => Json::Obj(vec![("error", Json::Str(e.clone()))]),
        Some(Ok(t)) => Json::Obj(vec![
            (
                "per_sec_of_each_round",
                Json::Arr(t.rounds.iter().map(|&v| num(v)).collect()),
            ),
            ("ops", num(t.ops as f64)),
            ("secs", num(t.secs)),
            ("per_sec", num(t.per_sec)),
            ("errors", num(t.errors as f64)),
            ("p50_us", t.p50_us.map_or(Json::Null, num)),
            ("p99_us", t.p99_us.map_or(Json::Null, num)),
            ("costs", costs_json(&t.costs)),
            (
                "parent_cpu_us_per_op_of_each_round",
                Json::Arr(t.round_costs.iter().map(|c| num(c.parent_cpu_us)).collect()),
            ),
            (
                "child_cpu_us_per_op_of_each_round",
                Json::Arr(t.round_costs.iter().map(|c| num(c.child_cpu_us)).collect()),
            ),
        ]),
    }
}

/// One row of the comparison table.
struct Row {
    workload: String,
    lpm: Option<f64>,
    /// The figure compared with: the raw baseline's, or W2's for its variants.
    base: Option<f64>,
    /// What `base` is.
    base_is: &'static str,
    unit: &'static str,
    /// `lpm / base`: for latency, how many times slower; for throughput,
    /// the fraction of the baseline's rate; for CPU, how many times more.
    ratio: Option<f64>,
    /// The same ratio per round, paired (see `paired_ratio`), the median of them.
    paired: Option<f64>,
    ratio_note: &'static str,
}

/// The p50 and p99 rows of one latency workload against its raw baseline.
fn latency_rows(
    rows: &mut Vec<Row>,
    workload: &str,
    label: &str,
    lpm: Option<&Latency>,
    raw: Option<&Latency>,
) {
    for (what, pick) in [
        ("p50", (|l: &Latency| l.p50_us) as fn(&Latency) -> f64),
        ("p99", |l: &Latency| l.p99_us),
    ] {
        let (lpm, raw) = (lpm.map(pick), raw.map(pick));
        rows.push(Row {
            workload: format!("{workload} {what} {label}"),
            lpm,
            base: raw,
            base_is: "raw socketpair",
            unit: "us",
            ratio: lpm.zip(raw).map(|(l, r)| l / r),
            paired: None,
            ratio_note: "lpm/raw (x slower)",
        });
    }
}

fn ok<T>(r: &Option<Result<T, String>>) -> Option<&T> {
    r.as_ref().and_then(|r| r.as_ref().ok())
}

fn fmt_spread(figure: &impl Figure) -> String {
    spread(figure).map_or("-".to_owned(), |s| format!("{s:.0}%"))
}

fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) if unit == "req/s" || unit == "msg/s" => format!("{:.0} {unit}", v),
        Some(v) => format!("{v:.2} {unit}"),
        None => "-".to_owned(),
    }
}

struct Results {
    machine: Machine,
    params: Params,
    r1: Option<Result<Latency, String>>,
    r1c: Option<Result<Latency, String>>,
    r2: Option<Result<Throughput, String>>,
    r2u: Option<Result<Throughput, String>>,
    lpm: Vec<(WorkerKind, LpmFigures)>,
}

impl Results {
    fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let r1 = ok(&self.r1);
        let r2 = ok(&self.r2);
        let r2u = ok(&self.r2u);
        for (kind, f) in &self.lpm {
            let name = kind.key();
            if f.latency.is_some() {
                let label = format!("round trip, {name} vs R1");
                latency_rows(&mut rows, "W1", &label, ok(&f.latency), r1);
            }
            if f.latency_one_cpu.is_some() {
                let label = format!("round trip 1 CPU, {name} vs R1c");
                latency_rows(
                    &mut rows,
                    "W1c",
                    &label,
                    ok(&f.latency_one_cpu),
                    ok(&self.r1c),
                );
            }
            let w2 = ok(f.w2(W2Variant::Untyped));
            if f.w2(W2Variant::Untyped).is_some() {
                for (what, raw) in [("R2 batched", r2), ("R2u 1 write/msg", r2u)] {
                    let lpm = w2.map(|t| t.per_sec);
                    let raw = raw.map(|t| t.per_sec);
                    rows.push(Row {
                        workload: format!("W2 throughput, {name} vs {what}"),
                        lpm,
                        base: raw,
                        base_is: "raw socketpair",
                        unit: "req/s",
                        ratio: lpm.zip(raw).map(|(l, r)| l / r),
                        paired: None,
                        ratio_note: "lpm/raw (fraction)",
                    });
                }
            }
            // The variants against W2 of the same run: rate, and supervisor CPU per request.
            for variant in W2Variant::ALL.into_iter().skip(1) {
                if f.w2(variant).is_none() {
                    continue;
                }
                let v = ok(f.w2(variant));
                let n = variant.name();
                type Pick = fn(&Throughput) -> f64;
                type PickRounds = fn(&Throughput) -> Vec<f64>;
                for (what, unit, pick, rounds, note) in [
                    (
                        "throughput",
                        "req/s",
                        (|t: &Throughput| t.per_sec) as Pick,
                        (|t: &Throughput| t.rounds.clone()) as PickRounds,
                        "W2x/W2 (fraction)",
                    ),
                    (
                        "supervisor CPU/req",
                        "us",
                        |t: &Throughput| t.costs.parent_cpu_us,
                        |t: &Throughput| t.round_costs.iter().map(|c| c.parent_cpu_us).collect(),
                        "W2x/W2 (x CPU)",
                    ),
                    (
                        "worker CPU/req",
                        "us",
                        |t: &Throughput| t.costs.child_cpu_us,
                        |t: &Throughput| t.round_costs.iter().map(|c| c.child_cpu_us).collect(),
                        "W2x/W2 (x CPU)",
                    ),
                ] {
                    let (lpm, base) = (v.map(pick), w2.map(pick));
                    rows.push(Row {
                        workload: format!("{n} {what}, {name} vs W2"),
                        lpm,
                        base,
                        base_is: "W2 of this run",
                        unit,
                        ratio: lpm.zip(base).map(|(l, b)| l / b),
                        paired: v
                            .zip(w2)
                            .and_then(|(v, w2)| paired_ratio(&rounds(v), &rounds(w2))),
                        ratio_note: note,
                    });
                }
            }
        }
        rows
    }

    fn print(&self) {
        let m = &self.machine;
        println!();
        println!(
            "lpm IPC benchmark ({} run): {} | nproc {} | Linux {}",
            if self.params.quick { "QUICK" } else { "full" },
            m.cpu,
            m.nproc,
            m.kernel
        );
        println!("payload {MSG_LEN} B; W2/R2 window {WINDOW} in flight; W2 uses 2 workers");
        println!(
            "encoded payload: postcard {} B, JSON {} B (serde_bytes in JSON is an array of numbers)",
            encoded_payload(Codec::Postcard, &[0xA5; MSG_LEN]).len(),
            encoded_payload(Codec::Json, &[0xA5; MSG_LEN]).len()
        );
        println!();
        println!(
            "{:<48} {:>14} {:>14} {:>8} {:>8}  ratio is",
            "workload", "lpm", "baseline", "ratio", "paired"
        );
        println!("{}", "-".repeat(117));
        for row in self.rows() {
            println!(
                "{:<48} {:>14} {:>14} {:>8} {:>8}  {}",
                row.workload,
                fmt_opt(row.lpm, row.unit),
                fmt_opt(row.base, row.unit),
                row.ratio.map_or("-".to_owned(), |r| format!("{r:.3}")),
                row.paired.map_or("-".to_owned(), |r| format!("{r:.3}")),
                row.ratio_note
            );
        }
        println!(
            "(ratio: of the median rounds; paired: the median over rounds of each round's ratio)"
        );
        println!();
        println!(
            "details ({} round(s) per workload, median round shown; spread = (max-min)/median of the rounds'",
            self.params.rounds
        );
        println!("p50 or rate. Per op: parent/child us = CPU of this process (supervisor side, or the raw writer and");
        println!("reader) / of the worker or echo processes; ctxsw = this process's context switches; allocs = on the");
        println!("measuring thread, for lpm the actix thread that runs every actor and the calling loop)");
        println!(
            "{:<36} {:>12} {:>7} {:>9} {:>9} {:>7} {:>11} {:>10} {:>9} {:>8}",
            "figure",
            "value",
            "spread",
            "p50 us",
            "p99 us",
            "errors",
            "parent us",
            "child us",
            "ctxsw",
            "allocs"
        );
        let lat = |name: &str, r: &Option<Result<Latency, String>>| match r {
            None => {}
            Some(Err(e)) => println!("{name:<36} FAILED: {e}"),
            Some(Ok(l)) => println!(
                "{:<36} {:>12} {:>7} {:>9.2} {:>9.2} {:>7} {:>11.2} {:>10.2} {:>9.2} {:>8.1}",
                name,
                format!("{} rt", l.samples),
                fmt_spread(l),
                l.p50_us,
                l.p99_us,
                l.errors,
                l.costs.parent_cpu_us,
                l.costs.child_cpu_us,
                l.costs.parent_switches,
                l.costs.allocs
            ),
        };
        let thr = |name: &str, r: &Option<Result<Throughput, String>>| match r {
            None => {}
            Some(Err(e)) => println!("{name:<36} FAILED: {e}"),
            Some(Ok(t)) => println!(
                "{:<36} {:>12} {:>7} {:>9} {:>9} {:>7} {:>11.2} {:>10.2} {:>9.2} {:>8.1}",
                name,
                format!("{:.0}/s", t.per_sec),
                fmt_spread(t),
                t.p50_us.map_or("-".to_owned(), |v| format!("{v:.1}")),
                t.p99_us.map_or("-".to_owned(), |v| format!("{v:.1}")),
                t.errors,
                t.costs.parent_cpu_us,
                t.costs.child_cpu_us,
                t.costs.parent_switches,
                t.costs.allocs
            ),
        };
        lat("R1 raw latency", &self.r1);
        lat("R1c raw latency, 1 CPU", &self.r1c);
        thr("R2 raw batched", &self.r2);
        thr("R2u raw 1 write/msg", &self.r2u);
        for (kind, f) in &self.lpm {
            lat(&format!("W1 {}", kind.label()), &f.latency);
            lat(&format!("W1c {}, 1 CPU", kind.key()), &f.latency_one_cpu);
            thr(&format!("W2 {}", kind.label()), f.w2(W2Variant::Untyped));
            for variant in W2Variant::ALL.into_iter().skip(1) {
                let name = format!("{} {}, {}", variant.name(), kind.key(), variant.what());
                thr(&name, f.w2(variant));
            }
        }
        println!();
    }

    fn json(&self) -> String {
        let m = &self.machine;
        let p = &self.params;
        let lpm = self
            .lpm
            .iter()
            .map(|(kind, f)| {
                let mut fields = vec![
                    ("worker", Json::Str(kind.key().to_owned())),
                    ("binary", Json::Str(kind.label().to_owned())),
                    ("w1_latency", latency_json(&f.latency)),
                ];
                for variant in W2Variant::ALL {
                    fields.push((variant.json_key(), throughput_json(f.w2(variant))));
                }
                fields.push(("w1c_latency_one_cpu", latency_json(&f.latency_one_cpu)));
                Json::Obj(fields)
            })
            .collect();
        let rows = self
            .rows()
            .into_iter()
            .map(|r| {
                Json::Obj(vec![
                    ("workload", Json::Str(r.workload)),
                    ("unit", Json::Str(r.unit.to_owned())),
                    ("lpm", r.lpm.map_or(Json::Null, num)),
                    ("baseline", r.base.map_or(Json::Null, num)),
                    ("baseline_is", Json::Str(r.base_is.to_owned())),
                    ("ratio", r.ratio.map_or(Json::Null, num)),
                    ("paired_ratio", r.paired.map_or(Json::Null, num)),
                    ("ratio_is", Json::Str(r.ratio_note.to_owned())),
                ])
            })
            .collect();
        let doc = Json::Obj(vec![
            (
                "machine",
                Json::Obj(vec![
                    ("nproc", num(m.nproc as f64)),
                    ("cpu", Json::Str(m.cpu.clone())),
                    ("kernel", Json::Str(m.kernel.clone())),
                ]),
            ),
            (
                "params",
                Json::Obj(vec![
                    ("quick", Json::Bool(p.quick)),
                    ("payload_bytes", num(MSG_LEN as f64)),
                    (
                        "payload_bytes_postcard",
                        num(encoded_payload(Codec::Postcard, &[0xA5; MSG_LEN]).len() as f64),
                    ),
                    (
                        "payload_bytes_json",
                        num(encoded_payload(Codec::Json, &[0xA5; MSG_LEN]).len() as f64),
                    ),
                    ("window", num(WINDOW as f64)),
                    ("rounds", num(p.rounds as f64)),
                    ("latency_iters", num(p.latency_iters as f64)),
                    ("raw_measure_secs", num(p.raw_measure.as_secs_f64())),
                    ("lpm_measure_secs", num(p.lpm_measure.as_secs_f64())),
                ]),
            ),
            ("r1_raw_latency", latency_json(&self.r1)),
            ("r1c_raw_latency_one_cpu", latency_json(&self.r1c)),
            ("r2_raw_batched", throughput_json(&self.r2)),
            ("r2u_raw_unbatched", throughput_json(&self.r2u)),
            ("lpm", Json::Arr(lpm)),
            ("table", Json::Arr(rows)),
        ]);
        let mut out = String::new();
        doc.write(&mut out, 0);
        out.push('\n');
        out
    }
}

/// An I/O failure as the text the report shows.
fn lift<T>(r: io::Result<T>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

/// `target/` of this build: the bench binary lives in `target/<profile>/deps/`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")))
}

fn main() {
    let params = Params::from_env();
    let machine = Machine::probe();
    eprintln!(
        "lpm IPC benchmark: {} run on {} CPUs",
        if params.quick { "quick" } else { "full" },
        machine.nproc
    );

    let kinds: Vec<WorkerKind> = [WorkerKind::Runtime, WorkerKind::Raw]
        .into_iter()
        .filter(|&k| LpmRuns::any(k, &params))
        .collect();
    let (mut r1, mut r1c, mut r2, mut r2u) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut lpm_runs: Vec<(WorkerKind, LpmRuns)> =
        kinds.iter().map(|&k| (k, LpmRuns::default())).collect();
    for round in 1..=params.rounds {
        eprintln!("round {round}/{}", params.rounds);
        if params.runs("r1") {
            eprintln!("  R1 raw latency ...");
            r1.push(lift(raw_latency(&params)));
        }
        if params.runs("r1c") {
            eprintln!("  R1c raw latency, one CPU ...");
            r1c.push(lift(on_one_cpu(|| raw_latency(&params)).and_then(|r| r)));
        }
        if params.runs("r2") {
            eprintln!("  R2 raw throughput, batched ...");
            r2.push(lift(raw_throughput(&params, true)));
        }
        if params.runs("r2u") {
            eprintln!("  R2u raw throughput, one write per message ...");
            r2u.push(lift(raw_throughput(&params, false)));
        }
        for (kind, runs) in &mut lpm_runs {
            runs.round(*kind, &params, round);
        }
    }
    let r1 = median_round("R1", r1);
    let r1c = median_round("R1c", r1c);
    let r2 = median_round("R2", r2);
    let r2u = median_round("R2u", r2u);
    let lpm = lpm_runs
        .into_iter()
        .map(|(kind, runs)| (kind, runs.medians(kind)))
        .collect();

    let results = Results {
        machine,
        params,
        r1,
        r1c,
        r2,
        r2u,
        lpm,
    };
    results.print();
    let path = target_dir().join("lpm-bench.json");
    match std::fs::write(&path, results.json()) {
        Ok(()) => println!("results written to {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}
