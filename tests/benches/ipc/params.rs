//! The benchmark's parameters, from the environment (see the crate docs).

use std::time::Duration;

use crate::pool::WorkerKind;

#[derive(Debug, Clone)]
pub(crate) struct Params {
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
    pub(crate) only: Option<Vec<String>>,
    pub(crate) workers: Option<Vec<String>>,
}

impl Params {
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

    pub(crate) fn runs(&self, workload: &str) -> bool {
        match &self.only {
            None => true,
            Some(only) => only.iter().any(|w| w == workload),
        }
    }

    pub(crate) fn uses(&self, worker: WorkerKind) -> bool {
        match &self.workers {
            None => true,
            Some(workers) => workers.iter().any(|w| w == worker.key()),
        }
    }
}
