//! Shared pieces of the lpm integration tests: [`Op`], the request language
//! of the `test_worker` binary, and helpers that wait for pool events and
//! conditions with a deadline, so that no test sleeps and then asserts.
//!
//! A test starts a pool of real `test_worker` processes with [`start`]
//! (which also subscribes to the pool's events), sends [`Op`]s, waits with
//! [`recv_or_fail`] or [`wait_for_health`], and ends by killing its pool.

pub mod bench;
pub mod capture;
pub mod conformance;
pub mod procfs;
pub mod sshd;
pub mod typed;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use futures::{FutureExt, StreamExt};
use lpm::{
    Config, EventStream, Pool, PoolError, PoolEvent, Response, SignalPolicy, WorkerCommand,
    WorkerHealth,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long any single wait in a test may take before it fails. Generous:
/// the machines that run the suite are shared and noisy, and a passing test
/// never waits this long.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// How often [`wait_until`] checks its condition.
pub const POLL: Duration = Duration::from_millis(20);

/// Event a worker answers to with [`PONG`] (broadcast by tests).
pub const PING: &str = "ping";
/// Event a worker emits on [`PING`], with its pid (`u32`) as payload.
pub const PONG: &str = "pong";
/// Event a worker started with `--ready-on-go <slot>` waits for before it says ready.
pub const GO: &str = "go";
/// Event [`Op::Ask`] emits with a reply awaited; payload: the question (`String`).
pub const ASK: &str = "ask";
/// Event the `--soft-kill-hook` hook emits first, with the worker's pid.
pub const HOOK_STARTED: &str = "hook-started";
/// Event the `--soft-kill-hook` hook emits right before it calls `done`, with the worker's pid.
pub const HOOK_DONE: &str = "hook-done";
/// How long the `--soft-kill-hook` hook works between [`HOOK_STARTED`] and [`HOOK_DONE`].
pub const HOOK_WORK: Duration = Duration::from_millis(200);
/// Exit code of a worker started with `--exit-at-start`.
pub const EXIT_AT_START_CODE: i32 = 17;
/// The stderr line a worker started with `--exit-at-start` writes before it exits.
pub const EXIT_AT_START_LINE: &str = "test_worker: exiting at start as asked";

/// A request that holds its worker for a minute: until a kill, a cancel or
/// its timeout ends it.
pub const HOLD: Op = Op::Sleep {
    ms: 60_000,
    reply: 0,
};

/// A request for `test_worker`: what its handler does, and what it answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Answers the same bytes (`Vec<u8>`).
    Echo(Vec<u8>),
    /// Sleeps `ms` milliseconds, then answers `reply` (`u32`).
    Sleep {
        /// How long to sleep.
        ms: u64,
        /// What to answer.
        reply: u32,
    },
    /// Answers the worker's process id (`u32`).
    Pid,
    /// Answers what the worker saw of the request ([`Seen`]).
    Inspect,
    /// Exits the process with this code in the middle of the request.
    Exit(i32),
    /// Exits with `code` when `marker` does not exist yet, creating it first;
    /// when it exists, answers the pid (`u32`). So the first attempt dies and
    /// a retry succeeds.
    ExitOnce {
        /// The file whose creation marks the first attempt.
        marker: PathBuf,
        /// Exit code of the first attempt.
        code: i32,
    },
    /// Stalls forever when `marker` does not exist yet, creating it first
    /// (with the worker's pid in it);
    /// when it exists, answers the pid (`u32`). So the first attempt times
    /// out and a retry succeeds.
    StallOnce {
        /// The file whose creation marks the first attempt.
        marker: PathBuf,
    },
    /// Aborts the process (SIGABRT) in the middle of the request.
    Abort,
    /// Writes bytes that are no valid frame (a length prefix of 4 GiB) to the
    /// channel, as a broken worker would, and stalls.
    Garbage,
    /// Answers this many bytes (`Vec<u8>`): more than a frame may hold
    /// makes the answer impossible to send.
    Big {
        /// Size of the answer.
        bytes: u64,
    },
    /// The handler panics with this message.
    Panic(String),
    /// The handler returns this error.
    Fail(String),
    /// Says busy, sleeps `ms`, then answers the time (`SystemTime`) just
    /// before it says ready again.
    BusyFor {
        /// How long to stay busy.
        ms: u64,
    },
    /// Answers the time (`SystemTime`) the handler ran.
    Now,
    /// Allocates and touches this many bytes and never frees them; answers the count (`u64`).
    Leak {
        /// Bytes to leak.
        bytes: u64,
    },
    /// Emits [`ASK`] with this question, awaits the reply, and answers
    /// `Result<String, String>`: the reply, or the emit's error as text.
    Ask(String),
    /// Answers how many requests the worker holds, this one included (`u64`).
    Requests,
    /// Sleeps `ms`, answers the most requests the worker held (`u64`) when
    /// it looked, at the start and at the end of the sleep.
    HoldAndCount {
        /// How long to hold the request.
        ms: u64,
    },
    /// Acknowledges the request without a payload.
    Ack,
    /// Reports these statistics with `Worker::report_stats`, then acknowledges.
    Stats(Vec<(String, f64)>),
    /// Starts `sleep 1000` (a grandchild of the supervisor, in the worker's
    /// process group) and answers its pid (`u32`).
    SpawnChild,
    /// Blocks the worker's only runtime thread for `ms`, as a handler stuck
    /// in synchronous code does (no heartbeat answer meanwhile), then answers `ms`.
    Block {
        /// How long to block.
        ms: u64,
    },
    /// Never answers; when the supervisor cancels the request, emits
    /// [`CANCELLED`] with the request's id (`Uuid`).
    AwaitCancel,
    /// Answers the descriptors the worker had open at the very start of
    /// `main`, before its runtime opened any (`Vec<i32>`, sorted).
    InheritedFds,
    /// Answers the worker's [`VERSION_ENV`] (`String`, empty when unset), so
    /// a test can tell workers started before and after a reload apart.
    Version,
    /// Prints this line to stdout with `println!`, then answers it
    /// (`String`): over stdio the line must go to the log, not the channel.
    Print(String),
    /// Sleeps `ms` milliseconds, then answers the time (`SystemTime`) its
    /// handler started: when the worker took the request, for the
    /// autoscaling bench.
    TimedSleep {
        /// How long to sleep.
        ms: u64,
    },
}

/// The environment variable [`Op::Version`] answers with.
pub const VERSION_ENV: &str = "LPM_TEST_VERSION";

/// The event [`Op::AwaitCancel`] emits when its request is cancelled.
pub const CANCELLED: &str = "cancelled";

/// What the worker saw of a request: the answer to [`Op::Inspect`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// `Request::id` on the worker's side.
    pub id: Uuid,
    /// `Request::created_at` on the worker's side.
    pub created_at: SystemTime,
    /// The worker's process id.
    pub pid: u32,
    /// The worker's slot.
    pub slot: u32,
}

/// The `test_worker` binary as a [`WorkerCommand`](lpm::WorkerCommand).
///
/// A macro because `CARGO_BIN_EXE_test_worker` is only set while an
/// integration test of this package compiles: `env!` must expand there.
#[macro_export]
macro_rules! test_worker {
    () => {
        ::lpm::WorkerCommand::new(env!("CARGO_BIN_EXE_test_worker"))
    };
}

/// Pool settings for tests: quick samples, restarts and kills, and signals
/// left alone (tests run in one process; a pool must not take its SIGINT).
pub fn config(workers: usize) -> Config {
    Config::default()
        .workers(workers)
        .on_signal(SignalPolicy::Ignore)
        .sample_interval(Duration::from_millis(50))
        .restart_backoff(Duration::from_millis(10))
        .max_restart_backoff(Duration::from_millis(100))
        .soft_kill_grace(Duration::from_secs(5))
        .term_grace(Duration::from_secs(1))
        .spawn_timeout(DEADLINE)
}

/// Sends `RUST_LOG`-filtered tracing output to the test's captured output.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Starts a pool and subscribes to its events at once.
///
/// Call it inside a running actix System (`#[actix_rt::test]`).
pub fn start(command: WorkerCommand, config: Config) -> (Pool, EventStream) {
    init_tracing();
    let pool = Pool::start(command, config);
    let events = pool.events();
    (pool, events)
}

/// Waits until every worker of `pool` has said ready, or fails the test.
pub async fn online(pool: &Pool) {
    tokio::time::timeout(DEADLINE, pool.online())
        .await
        .unwrap_or_else(|_| panic!("the pool did not come online within {DEADLINE:?}"))
        .expect("the pool cannot come online");
}

/// Waits for the first event that satisfies `predicate` and returns it;
/// fails the test, naming `what` and the events seen instead, when none
/// comes within `deadline`.
pub async fn recv_or_fail(
    events: &mut EventStream,
    what: &str,
    deadline: Duration,
    mut predicate: impl FnMut(&PoolEvent) -> bool,
) -> PoolEvent {
    let until = tokio::time::Instant::now() + deadline;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(until, events.next()).await {
            Ok(Some(event)) if predicate(&event) => return event,
            Ok(Some(event)) => seen.push(describe(&event)),
            Ok(None) => panic!("the event stream ended before {what}; saw {seen:?}"),
            Err(_) => panic!("no {what} within {deadline:?}; saw {seen:?}"),
        }
    }
}

/// Collects `count` events that satisfy `predicate`, each within `deadline`
/// of the previous one; see [`recv_or_fail`].
pub async fn recv_n_or_fail(
    events: &mut EventStream,
    what: &str,
    count: usize,
    deadline: Duration,
    mut predicate: impl FnMut(&PoolEvent) -> bool,
) -> Vec<PoolEvent> {
    let mut got = Vec::with_capacity(count);
    for i in 0..count {
        let what = format!("{what} ({} of {count})", i + 1);
        got.push(recv_or_fail(events, &what, deadline, &mut predicate).await);
    }
    got
}

/// The events already delivered to `events`, without waiting.
pub fn drain_now(events: &mut EventStream) -> Vec<PoolEvent> {
    let mut out = Vec::new();
    while let Some(Some(event)) = events.next().now_or_never() {
        out.push(event);
    }
    out
}

fn describe(event: &PoolEvent) -> String {
    match event {
        PoolEvent::Custom(c) => format!("Custom({} from pid {})", c.name(), c.pid()),
        other => format!("{other:?}"),
    }
}

/// Polls `condition` every [`POLL`] until it holds; fails the test, naming
/// `what`, when it does not within `deadline`.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if condition().await {
            return;
        }
        if start.elapsed() >= deadline {
            panic!("timed out after {deadline:?} waiting until {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The pool's health.
///
/// # Panics
///
/// When the pool has stopped.
pub async fn health(pool: &Pool) -> Vec<WorkerHealth> {
    pool.health().await.expect("the pool answers health")
}

/// Polls the pool's health until `condition` holds and returns that health;
/// fails the test, naming `what` and showing the last health, when it does
/// not within `deadline`.
pub async fn wait_for_health(
    pool: &Pool,
    what: &str,
    deadline: Duration,
    mut condition: impl FnMut(&[WorkerHealth]) -> bool,
) -> Vec<WorkerHealth> {
    let start = Instant::now();
    loop {
        let h = health(pool).await;
        if condition(&h) {
            return h;
        }
        if start.elapsed() >= deadline {
            panic!("timed out after {deadline:?} waiting until {what}; last health: {h:#?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The pids in a health report, slot order.
pub fn pids(health: &[WorkerHealth]) -> Vec<u32> {
    health.iter().filter_map(|w| w.pid).collect()
}

/// Enqueues every op now and returns a future of their answers, in order.
///
/// Each request has reached the pool's balancer when this returns, so what
/// the test does next happens after them.
pub async fn submit_all(
    pool: &Pool,
    ops: impl IntoIterator<Item = Op>,
) -> impl Future<Output = Vec<Result<Response, PoolError>>> {
    type Answer = Pin<Box<dyn Future<Output = Result<Response, PoolError>>>>;
    let mut answers: Vec<Answer> = Vec::new();
    for op in ops {
        let pool = pool.clone();
        let mut answer: Answer = Box::pin(async move { pool.enqueue(&op).await });
        // The first poll sends the request; only then does it wait.
        if let Poll::Ready(result) = futures::poll!(answer.as_mut()) {
            answer = Box::pin(futures::future::ready(result));
        }
        answers.push(answer);
    }
    futures::future::join_all(answers)
}

/// Enqueues `op` and decodes the answer as `T`; fails the test on any error.
pub async fn call<T: serde::de::DeserializeOwned>(pool: &Pool, op: &Op) -> (T, Response) {
    let response = tokio::time::timeout(DEADLINE, pool.enqueue(op))
        .await
        .unwrap_or_else(|_| panic!("no answer to {op:?} within {DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("{op:?} failed: {e}"));
    let value = response
        .data()
        .unwrap_or_else(|e| panic!("answer to {op:?} does not decode: {e}"));
    (value, response)
}

/// Sends a request whose first attempt makes its worker exit with code 3
/// (a marker file in `dir` tells the attempts apart) and whose retry answers
/// its pid; waits for that worker's exit. Returns the pid that answered,
/// the response, and the slot of the worker that died. The pool needs a
/// retry (`Config::retries(1)`) and `events` from its start.
pub async fn retried_after_a_death(
    pool: &Pool,
    events: &mut EventStream,
    dir: &std::path::Path,
) -> (u32, Response, usize) {
    let op = Op::ExitOnce {
        marker: dir.join("first-attempt"),
        code: 3,
    };
    let (pid, response): (u32, _) = call(pool, &op).await;
    let exited = recv_or_fail(events, "ChildExited with code 3", DEADLINE, |e| {
        matches!(e, PoolEvent::ChildExited { code: Some(3), .. })
    })
    .await;
    let PoolEvent::ChildExited {
        slot: dead_slot, ..
    } = exited
    else {
        unreachable!()
    };
    (pid, response, dead_slot)
}

/// True while the process exists and is not a zombie (reading `/proc`).
pub fn process_alive(pid: u32) -> bool {
    match proc_stat_fields(pid) {
        Some(fields) => !matches!(fields.first().map(String::as_str), Some("Z" | "X")),
        None => false,
    }
}

/// The parent pid of a live process (reading `/proc`).
pub fn parent_pid(pid: u32) -> Option<u32> {
    proc_stat_fields(pid)?.get(1)?.parse().ok()
}

/// The fields of `/proc/<pid>/stat` after the command name: state, ppid, ...
fn proc_stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold spaces or ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// A request for the `stream_worker` binary (streams, sockets, listeners).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StreamOp {
    /// Reads the request's stream to its end; answers [`Digest`].
    Hash,
    /// As [`StreamOp::Hash`], sleeping `ms` after every `every` bytes read (a slow reader).
    SlowHash {
        /// Bytes between pauses.
        every: u64,
        /// Pause length.
        ms: u64,
    },
    /// Reads `bytes` of the request's stream, then exits with status 3.
    ReadThenExit {
        /// Bytes to read first.
        bytes: u64,
    },
    /// Reads `bytes` of the request's stream, then reads no more and never
    /// answers (the caller's reader must stop being read).
    ReadThenHold {
        /// Bytes to read first.
        bytes: u64,
    },
    /// Answers `len` (`u64`) with a stream of `len` bytes of [`pattern`].
    Generate {
        /// Stream length.
        len: u64,
    },
    /// Answers with a stream of [`pattern`] bytes and exits with status 3
    /// after writing `bytes` of it.
    GenerateThenExit {
        /// Bytes written before the exit.
        bytes: u64,
    },
    /// Acks, then serves the handed connection: answers each line with
    /// `"<pid> <line>\n"` until the client closes it.
    Serve,
    /// Holds the handed connection, unanswered, until the client closes
    /// it; then acks. So the request keeps a descriptor in flight until then.
    HoldUntilClosed,
    /// Answers how many requests the worker holds, this one included (`u64`).
    Held,
    /// Answers how many bytes the worker's [`StreamOp::Generate`] streams
    /// have produced so far, in all (`u64`): what it read of them to send.
    Generated,
}

/// What [`StreamOp::Hash`] answers: the stream's length and SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Bytes read.
    pub len: u64,
    /// SHA-256 of them, lower-case hex.
    pub sha256: String,
}

/// Event a `stream_worker` takes a listener with: it accepts on it and
/// writes its pid (`"<pid>\n"`) to each connection, then closes it.
pub const LISTEN: &str = "listen";

/// Byte `i` of the deterministic test stream.
pub fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(31).wrapping_add(i >> 11) % 251) as u8
}

/// `len` bytes of [`pattern`], from offset 0.
pub fn pattern_bytes(len: u64) -> Vec<u8> {
    (0..len).map(pattern).collect()
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A [`PatternReader`] that counts in its second field the bytes it has
/// yielded, so a test can see how far ahead of a worker its stream was read.
#[derive(Debug)]
pub struct Counted(
    pub PatternReader,
    pub std::sync::Arc<std::sync::atomic::AtomicU64>,
);

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        self.1.fetch_add(read, std::sync::atomic::Ordering::Relaxed);
        polled
    }
}

/// An `AsyncRead` of `len` bytes of [`pattern`], generated as it is read
/// (so 64 MiB streams take no memory).
#[derive(Debug)]
pub struct PatternReader {
    pos: u64,
    len: u64,
}

impl PatternReader {
    /// `len` bytes of the pattern.
    pub fn new(len: u64) -> Self {
        Self { pos: 0, len }
    }
}

impl tokio::io::AsyncRead for PatternReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.len - self.pos);
        let start = self.pos;
        let chunk: Vec<u8> = (start..start + n).map(pattern).collect();
        buf.put_slice(&chunk);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// SHA-256 (hex) and length of everything `reader` yields.
///
/// # Errors
///
/// The reader's error.
pub async fn hash_reader(mut reader: impl tokio::io::AsyncRead + Unpin) -> std::io::Result<Digest> {
    use sha2::Digest as _;
    use tokio::io::AsyncReadExt;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Digest { len, sha256 })
}

/// Starts a pool of `command` (the `stream_worker` binary) and waits until it is online.
pub async fn start_stream_pool(command: WorkerCommand, config: Config) -> Pool {
    let pool = Pool::start(command, config.on_signal(SignalPolicy::Ignore));
    within("the pool to come online", pool.online())
        .await
        .expect("pool online");
    pool
}

/// Awaits `fut`, failing the test after [`DEADLINE`] with `what` in the message.
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// Open descriptors of this process (entries of `/proc/self/fd`).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Fails the test unless this process is back to `before` open descriptors
/// within [`DEADLINE`] (closes happen on other tasks, so it polls).
pub async fn assert_no_fd_leaked(before: usize) {
    let deadline = Instant::now() + DEADLINE;
    while open_fds() != before && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(open_fds(), before, "descriptors leaked");
}

/// Opens a loopback connection to `listener`: the client end, and a request
/// for `op` that hands the accepted end to a worker.
pub async fn connection(
    listener: &tokio::net::TcpListener,
    op: &StreamOp,
) -> (tokio::net::TcpStream, lpm::Enqueue) {
    let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    let request = lpm::Enqueue::new(op)
        .unwrap()
        .tcp(accepted.into_std().unwrap());
    (client, request)
}
