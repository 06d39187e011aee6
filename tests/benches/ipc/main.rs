//! IPC benchmark: lpm's request latency and throughput next to a raw
//! socketpair baseline measured in the same run, so the figures are ratios
//! on one machine.
//!
//! Run with `cargo bench -p lpm-tests --bench ipc` (the full run takes
//! about 5 minutes on a 2-CPU machine). It prints a table and writes the
//! same figures as JSON to `target/lpm-bench.json`.
//!
//! Environment:
//! - `LPM_BENCH_QUICK=1`: a short run, to check that the benchmark works
//!   (its figures are noisy). Without `--bench` in its arguments (under
//!   `cargo test --benches`), the benchmark always makes the quick run.
//! - `LPM_BENCH_ONLY=r1,r2,r2u,w1,w2,w2d,w2t,w2tv,w2j,w2tj,w2s,w2tr,r1c,w1c,r3,w3,r5,w5,scale,online,storm,mem`:
//!   run only these workloads (profiling, or `w2,w2t,w2j` for the
//!   typed-call and codec ratios alone).
//! - `LPM_BENCH_WORKERS=runtime,raw`: run W1, W2 and W3 only against these
//!   workers (the other lpm workloads use `bench_echo`, the runtime, only).
//! - `LPM_BENCH_ROUNDS=n`: rounds per workload (default 3, quick 1). The
//!   rounds are interleaved and the median round is reported, with the
//!   spread of all rounds.
//! - `LPM_BENCH_POOL=2,64,256`: the pool sizes of the scaling and
//!   online-time workloads (the default); scaling ratios are to the first.
//!
//! One workload alone, e.g.:
//!
//! ```text
//! LPM_BENCH_ONLY=w1c,r1c cargo bench -p lpm-tests --bench ipc          # W1 pinned, and its raw floor
//! LPM_BENCH_ONLY=w2,r2 LPM_BENCH_WORKERS=runtime cargo bench -p lpm-tests --bench ipc
//! LPM_BENCH_ONLY=w3,r3 LPM_BENCH_WORKERS=runtime cargo bench -p lpm-tests --bench ipc
//! LPM_BENCH_ONLY=w5,r5 cargo bench -p lpm-tests --bench ipc
//! LPM_BENCH_ONLY=scale LPM_BENCH_POOL=2,64,256 cargo bench -p lpm-tests --bench ipc
//! LPM_BENCH_ONLY=online LPM_BENCH_POOL=64,256 cargo bench -p lpm-tests --bench ipc
//! LPM_BENCH_ONLY=storm cargo bench -p lpm-tests --bench ipc
//! LPM_BENCH_ONLY=mem cargo bench -p lpm-tests --bench ipc
//! ```
//!
//! The hot path (every payload is 64 bytes):
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
//! - W2s: W2 under a `tracing` fmt subscriber at INFO (writing to
//!   nowhere), which does not listen to the requests' DEBUG spans: what
//!   a service's usual logging costs the pool. W2tr: the same with
//!   `lpm::request=debug`, so every request opens its span, records its
//!   fields, logs `request finished` and carries a `traceparent` to the
//!   worker (whose runtime has no subscriber).
//! - R1c, W1c: R1 and W1 again with the benchmark and its children on one
//!   CPU. Sequential round trips across CPUs mostly measure the machine's
//!   cross-CPU wake-up cost (large and noisy on virtual machines); on one CPU
//!   they measure the software path, so their ratio is the steadier one.
//!
//! W1 and W2 run against `bench_echo` (the lpm worker runtime) and against
//! `raw_echo` (a worker on the bare protocol), so the runtime's share shows.
//! The W2 variants (W2d, W2t, W2tv, W2j, W2tj, W2s, W2tr) run against `bench_echo` only
//! (`raw_echo` serves no typed calls and speaks postcard only); the table
//! gives each one's rate, and its supervisor and worker CPU per request,
//! against W2 of the same run: the ratio of the median rounds, and the
//! median of the ratios of each round to W2's round (`paired`, steadier on
//! a noisy machine). Their order within a round rotates from round to round.
//! Rounds of one workload vary by 10% and more on a shared 2-CPU machine:
//! to resolve a few percent, run `LPM_BENCH_ONLY=w2,w2t` with 10 rounds or
//! more, several times (the JSON has every round's rate and CPU).
//!
//! Beyond the hot path (each in its own module, whose docs say more):
//! - R3, W3 (`bulk.rs`): 1 MiB payloads echoed, 1 and 4 in flight, in MB/s
//!   (10^6 payload bytes echoed per second): the raw socketpair (a writer
//!   and a reader thread) against a one-worker pool, per worker kind.
//! - R5, W5 (`respawn.rs`): SIGKILL to the first answer from the
//!   replacement, p50/p99 of `respawn_reps` kills (40; 6 quick): the raw
//!   parent kills, reaps, respawns `socket_echo` and gets an echo; lpm
//!   restarts its worker and answers a request sent right after the kill.
//! - Scaling (`scale.rs`, key `scale`): W2 over pools of each
//!   `LPM_BENCH_POOL` size, with 256 in flight and with 4 in flight per
//!   worker: req/s and supervisor CPU per request against the first size.
//! - Online time (`online.rs`): `Pool::start` to `Pool::online` for each
//!   `LPM_BENCH_POOL` size, 3 starts per size and round (1 quick), the
//!   median; against as many raw children spawned in turn and echoing once.
//! - Restart storm (`storm.rs`): 4 workers, 16 requests in flight, one
//!   worker SIGKILLed every 10 ms; latency p50/p99 (retries allowed)
//!   against the same pool without the storm just before.
//! - Memory (`memory.rs`, key `mem`): 100,000 (10,000 quick) 64-byte
//!   requests queued to a busy worker through `Pool::enqueue`,
//!   `Addr<Balancer>::send(Enqueue)` and `Recipient::send`: the bytes the
//!   process allocated and still holds per queued request, less the
//!   caller's boxes and the payload; then every request must be answered.
//!
//! No figure is asserted; every loop is bounded by a count and a time.

mod alloc;
mod bulk;
mod hot_path;
mod json;
mod measure;
mod memory;
mod one_cpu;
mod online;
mod params;
mod pool;
mod raw;
mod report;
mod respawn;
mod scale;
mod storm;
mod workload;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::bulk::BulkRuns;
use crate::hot_path::LpmRuns;
use crate::measure::median_round;
use crate::memory::MemoryRuns;
use crate::one_cpu::on_one_cpu;
use crate::online::OnlineRuns;
use crate::params::Params;
use crate::pool::WorkerKind;
use crate::raw::{raw_latency, raw_throughput, Flow};
use crate::report::{Machine, Results};
use crate::respawn::RespawnRuns;
use crate::scale::ScaleRuns;
use crate::storm::StormRuns;
use crate::workload::Workload;

/// Bytes in every message and request payload.
const MSG_LEN: usize = 64;
/// Messages (R2) or requests (W2) kept in flight.
const WINDOW: usize = 256;
/// Bound on any single wait for a child or the pool, so nothing hangs.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The workloads beside the hot path that `p` asks for, in the order
/// each round runs them.
fn beside_the_hot_path(p: &Params) -> Vec<Box<dyn Workload>> {
    fn boxed(w: impl Workload + 'static) -> Box<dyn Workload> {
        Box::new(w)
    }
    let kinds: Vec<WorkerKind> = [WorkerKind::Runtime, WorkerKind::Raw]
        .into_iter()
        .filter(|&k| p.uses(k))
        .collect();
    [
        BulkRuns::new(p, &kinds).map(boxed),
        RespawnRuns::new(p).map(boxed),
        ScaleRuns::new(p).map(boxed),
        OnlineRuns::new(p).map(boxed),
        StormRuns::new(p).map(boxed),
        MemoryRuns::new(p).map(boxed),
    ]
    .into_iter()
    .flatten()
    .collect()
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
    let mut workloads = beside_the_hot_path(&params);
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
            r2.push(lift(raw_throughput(Flow::small(&params, true))));
        }
        if params.runs("r2u") {
            eprintln!("  R2u raw throughput, one write per message ...");
            r2u.push(lift(raw_throughput(Flow::small(&params, false))));
        }
        for (kind, runs) in &mut lpm_runs {
            runs.round(*kind, &params, round);
        }
        for workload in &mut workloads {
            workload.round(&params, round);
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
        sections: workloads.into_iter().map(|w| w.finish()).collect(),
    };
    results.print();
    let path = target_dir().join("lpm-bench.json");
    match std::fs::write(&path, results.json()) {
        Ok(()) => println!("results written to {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}
