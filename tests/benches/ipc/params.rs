//! The benchmark's parameters, from the environment (see the crate docs).

use std::time::Duration;

use crate::pool::WorkerKind;

/// How long and how often each workload runs, and which run.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    /// The short run (`LPM_BENCH_QUICK=1`, or under `cargo test`).
    pub(crate) quick: bool,
    /// Each workload runs this many times, interleaved with the others; the
    /// report keeps the median round, so a burst of noise on a shared
    /// machine hits every workload alike.
    pub(crate) rounds: usize,
    pub(crate) warm_iters: usize,
    pub(crate) latency_iters: usize,
    pub(crate) latency_max: Duration,
    pub(crate) raw_warm: Duration,
    pub(crate) raw_measure: Duration,
    pub(crate) lpm_warm: Duration,
    pub(crate) lpm_measure: Duration,
    /// W3 and R3 (1 MiB messages): warm-up and measured stretch.
    pub(crate) bulk_warm: Duration,
    pub(crate) bulk_measure: Duration,
    /// W5 and R5: kills measured per round, after `respawn_warm` unmeasured ones.
    pub(crate) respawn_reps: usize,
    pub(crate) respawn_warm: usize,
    /// Pool sizes of the scaling and online-time workloads (`LPM_BENCH_POOL`).
    pub(crate) pool_sizes: Vec<usize>,
    /// Scaling: warm-up and measured stretch of each window.
    pub(crate) scale_warm: Duration,
    pub(crate) scale_measure: Duration,
    /// Online time: pool starts per size and round.
    pub(crate) online_reps: usize,
    /// Restart storm: the measured stretch, with and without the storm.
    pub(crate) storm_measure: Duration,
    /// Memory: requests held queued.
    pub(crate) queued_requests: usize,
    /// `LPM_BENCH_ONLY`: the workloads to run (all when `None`).
    pub(crate) only: Option<Vec<String>>,
    /// `LPM_BENCH_WORKERS`: the worker kinds of W1, W2 and W3 (all when `None`).
    pub(crate) workers: Option<Vec<String>>,
}

/// Pool sizes when `LPM_BENCH_POOL` does not say: the 2, 64 and 256 workers.
const POOL_SIZES: [usize; 3] = [2, 64, 256];
/// The most workers `LPM_BENCH_POOL` may ask for.
const MAX_POOL: usize = 1024;

impl Params {
    /// Reads the environment; see the crate docs.
    pub(crate) fn from_env() -> Self {
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
        let pool_sizes = list("LPM_BENCH_POOL")
            .map(|sizes: Vec<String>| {
                sizes
                    .iter()
                    .filter_map(|s| s.parse::<usize>().ok())
                    .map(|n| n.clamp(1, MAX_POOL))
                    .collect::<Vec<_>>()
            })
            .filter(|sizes| !sizes.is_empty())
            .unwrap_or_else(|| POOL_SIZES.to_vec());
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
                bulk_warm: Duration::from_millis(100),
                bulk_measure: Duration::from_millis(300),
                respawn_reps: 6,
                respawn_warm: 1,
                pool_sizes,
                scale_warm: Duration::from_millis(100),
                scale_measure: Duration::from_millis(300),
                online_reps: 1,
                storm_measure: Duration::from_millis(500),
                queued_requests: 10_000,
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
                bulk_warm: Duration::from_millis(300),
                bulk_measure: Duration::from_secs(2),
                respawn_reps: 40,
                respawn_warm: 2,
                pool_sizes,
                scale_warm: Duration::from_millis(300),
                scale_measure: Duration::from_secs(2),
                online_reps: 3,
                storm_measure: Duration::from_secs(2),
                queued_requests: 100_000,
                only,
                workers,
            }
        }
    }

    /// Whether `workload` (its `LPM_BENCH_ONLY` key) runs.
    pub(crate) fn runs(&self, workload: &str) -> bool {
        match &self.only {
            None => true,
            Some(only) => only.iter().any(|w| w == workload),
        }
    }

    /// Whether W1, W2 and W3 run against `worker`.
    pub(crate) fn uses(&self, worker: WorkerKind) -> bool {
        match &self.workers {
            None => true,
            Some(workers) => workers.iter().any(|w| w == worker.key()),
        }
    }
}
