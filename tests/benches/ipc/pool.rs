//! lpm's side of the workloads: a `Pool` of `bench_echo` or `raw_echo`
//! workers in an actix System, started and stopped with bounded waits, and
//! the loop that keeps a window of timed requests in flight.

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use lpm::{Codec, Config, Pool, PoolError, Response, SignalPolicy, WorkerCommand};
use serde_bytes::Bytes;

use crate::measure::{Costs, Latency, Snapshot, Throughput};
use crate::{STEP_TIMEOUT, WINDOW};

/// The worker binary a pool runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkerKind {
    /// `bench_echo`: the lpm worker runtime.
    Runtime,
    /// `raw_echo`: the bare protocol, no runtime.
    Raw,
}

impl WorkerKind {
    /// Its name in `LPM_BENCH_WORKERS` and in the report.
    pub(crate) fn key(self) -> &'static str {
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

    /// The binary and what it is, for the report.
    pub(crate) fn label(self) -> &'static str {
        match self {
            WorkerKind::Runtime => "bench_echo (worker runtime)",
            WorkerKind::Raw => "raw_echo (protocol only)",
        }
    }
}

/// The benchmark's pool settings: room for every window in flight and
/// queued, and signals left to the benchmark.
pub(crate) fn bench_config(workers: usize, codec: Codec) -> Config {
    Config::default()
        .workers(workers)
        .max_in_flight(4 * WINDOW)
        .queue_capacity(1 << 20)
        .on_signal(SignalPolicy::Ignore)
        .codec(codec)
}

/// Settings for the workloads that kill workers: every death restarted at
/// once, without limit, and a request whose worker dies tried again.
pub(crate) fn restarting_config(workers: usize) -> Config {
    bench_config(workers, Codec::Postcard)
        .max_restarts(u32::MAX)
        .restart_backoff(Duration::ZERO)
        .max_restart_backoff(Duration::ZERO)
        .retries(10)
}

/// Starts a pool of `kind` with `config` and waits (bounded) until it is
/// online; answers it with its workers' pids.
pub(crate) async fn start_pool(
    kind: WorkerKind,
    config: Config,
) -> Result<(Pool, Vec<u32>), String> {
    let pool = Pool::start(WorkerCommand::new(kind.bin()), config);
    online(&pool, kind).await?;
    let pids = match tokio::time::timeout(STEP_TIMEOUT, pool.health()).await {
        Ok(Ok(health)) => health.iter().filter_map(|w| w.pid).collect(),
        _ => Vec::new(),
    };
    Ok((pool, pids))
}

/// Waits (bounded) until `pool` is online; stops it if it cannot get there.
pub(crate) async fn online(pool: &Pool, kind: WorkerKind) -> Result<(), String> {
    let failure = match tokio::time::timeout(STEP_TIMEOUT, pool.online()).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => format!("{} pool cannot come online: {e}", kind.key()),
        Err(_) => format!("{} pool not online within {STEP_TIMEOUT:?}", kind.key()),
    };
    stop_pool(pool).await;
    Err(failure)
}

/// Soft kill, bounded; a hard kill if that does not finish.
pub(crate) async fn stop_pool(pool: &Pool) {
    if tokio::time::timeout(STEP_TIMEOUT, pool.soft_kill())
        .await
        .is_err()
    {
        let _ = tokio::time::timeout(STEP_TIMEOUT, pool.hard_kill()).await;
    }
}

/// SIGKILLs a worker of ours.
pub(crate) fn sigkill(pid: u32) -> Result<(), String> {
    let pid = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    // SAFETY: kill(2) on a pid this benchmark's pool reported; no memory is touched.
    if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
        Ok(())
    } else {
        Err(format!("kill {pid}: {}", io::Error::last_os_error()))
    }
}

/// The payload's encoding in `codec`: what an echo must answer.
pub(crate) fn encoded_payload(codec: Codec, payload: &[u8]) -> Vec<u8> {
    codec
        .encode(Bytes::new(payload))
        .expect("bytes always encode")
}

/// Whether `result` is the echo of a payload encoded as `expected`.
pub(crate) fn is_echo(result: &Result<Response, PoolError>, expected: &[u8]) -> bool {
    matches!(result, Ok(r) if r.bytes() == expected)
}

/// One timed untyped request: its time, and whether it came back right.
pub(crate) async fn timed(pool: &Pool, payload: &[u8], expected: &[u8]) -> (u64, bool) {
    let start = Instant::now();
    let r = pool.enqueue(Bytes::new(payload)).await;
    (start.elapsed().as_nanos() as u64, is_echo(&r, expected))
}

/// How a window of requests runs: how many in flight, for how long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stretch {
    /// Requests kept in flight.
    pub(crate) depth: usize,
    /// Time before the measured stretch.
    pub(crate) warm: Duration,
    /// The measured stretch.
    pub(crate) measure: Duration,
}

/// Keeps `stretch.depth` requests made by `next` in flight: warm-up, then
/// the measured stretch, then the drain. `pids` are the processes whose CPU
/// counts as the workers'.
pub(crate) async fn window<F, Fut>(stretch: Stretch, pids: &[u32], mut next: F) -> Throughput
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (u64, bool)>,
{
    let mut in_flight = FuturesUnordered::new();
    for _ in 0..stretch.depth {
        in_flight.push(next());
    }
    let start = Instant::now();
    let warm_end = start + stretch.warm;
    let end = warm_end + stretch.measure;
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
                before = Some(Snapshot::start(pids));
            }
            in_flight.push(next());
        } else if after.is_none() {
            after = Some(Snapshot::end(pids));
        }
    }
    let after = after.unwrap_or_else(|| Snapshot::end(pids));
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
