//! How the pool scales with its number of workers (`LPM_BENCH_POOL`,
//! 2, 64 and 256 by default), on `bench_echo`:
//! - Scaling: W2 (64-byte untyped echoes) with (a) 256 requests in flight
//!   whatever the pool's size, and (b) 4 in flight per worker; requests
//!   per second and supervisor CPU per request, each against the first
//!   pool size's.
//! - Online time: from `Pool::start` to `Pool::online` answering, the
//!   median over rounds (each round starts each size `online_reps` times).

use std::time::Instant;

use lpm::{Codec, Pool, WorkerCommand};

use crate::json::{latency_json, throughput_json, Json};
use crate::measure::{median_round, Costs, Latency, Throughput};
use crate::params::Params;
use crate::pool::{
    bench_config, encoded_payload, online, start_pool, stop_pool, timed, window, Stretch,
    WorkerKind,
};
use crate::report::{ok, print_latency, print_throughput, Row};
use crate::workload::{Section, Workload};
use crate::{MSG_LEN, STEP_TIMEOUT, WINDOW};

/// Requests in flight per worker in mode (b).
const PER_WORKER: usize = 4;

/// The two ways the window is sized.
#[derive(Debug, Clone, Copy)]
enum Depth {
    /// (a): `WINDOW` in flight, whatever the pool's size.
    Shared,
    /// (b): `PER_WORKER` in flight per worker.
    PerWorker,
}

impl Depth {
    const BOTH: [Depth; 2] = [Depth::Shared, Depth::PerWorker];

    fn of(self, workers: usize) -> usize {
        match self {
            Depth::Shared => WINDOW,
            Depth::PerWorker => PER_WORKER * workers,
        }
    }

    fn label(self) -> String {
        match self {
            Depth::Shared => format!("{WINDOW} in flight"),
            Depth::PerWorker => format!("{PER_WORKER}/worker in flight"),
        }
    }

    fn json_key(self) -> &'static str {
        match self {
            Depth::Shared => "shared_window",
            Depth::PerWorker => "per_worker_window",
        }
    }
}

/// One pool size's rounds.
#[derive(Debug)]
struct SizeRuns {
    workers: usize,
    /// By `Depth`, when scaling runs.
    scale: Option<[Vec<Result<Throughput, String>>; 2]>,
    online: Option<Vec<Result<Latency, String>>>,
}

/// The rounds of the scaling and online-time workloads.
#[derive(Debug)]
pub(crate) struct ScaleRuns {
    sizes: Vec<SizeRuns>,
}

impl ScaleRuns {
    /// Scaling if `scale` runs, online time if `online` runs; `None` if neither.
    pub(crate) fn new(p: &Params) -> Option<Self> {
        let (scale, online) = (p.runs("scale"), p.runs("online"));
        let sizes = p
            .pool_sizes
            .iter()
            .map(|&workers| SizeRuns {
                workers,
                scale: scale.then(Default::default),
                online: online.then(Vec::new),
            })
            .collect();
        (scale || online).then_some(Self { sizes })
    }
}

impl Workload for ScaleRuns {
    fn round(&mut self, p: &Params, _round: usize) {
        for size in &mut self.sizes {
            let n = size.workers;
            if let Some(scale) = &mut size.scale {
                eprintln!("  W2 scaling, {n} workers ...");
                let results = actix_rt::System::new().block_on(scaled_w2(n, p));
                for (runs, run) in scale.iter_mut().zip(results) {
                    runs.push(run);
                }
            }
            if let Some(online) = &mut size.online {
                eprintln!("  online time, {n} workers ...");
                online.push(actix_rt::System::new().block_on(online_time(n, p)));
            }
        }
    }

    fn finish(self: Box<Self>) -> Box<dyn Section> {
        let sizes = self
            .sizes
            .into_iter()
            .map(|s| {
                let n = s.workers;
                let mut i = 0;
                SizeFigures {
                    workers: n,
                    scale: s.scale.map(|runs| {
                        runs.map(|r| {
                            let label = format!("W2 {n} workers, {}", Depth::BOTH[i].label());
                            i += 1;
                            median_round(&label, r)
                        })
                    }),
                    online: s
                        .online
                        .and_then(|r| median_round(&format!("online, {n} workers"), r)),
                }
            })
            .collect();
        Box::new(ScaleFigures { sizes })
    }
}

/// W2 over a pool of `workers`, with each `Depth` in turn (one pool).
async fn scaled_w2(workers: usize, p: &Params) -> [Result<Throughput, String>; 2] {
    let started = start_pool(WorkerKind::Runtime, bench_config(workers, Codec::Postcard)).await;
    let (pool, pids) = match started {
        Ok(started) => started,
        Err(e) => return [Err(e.clone()), Err(e)],
    };
    let payload = [0xA5u8; MSG_LEN];
    let expected = encoded_payload(Codec::Postcard, &payload);
    let mut out = [Err(String::new()), Err(String::new())];
    for (slot, depth) in out.iter_mut().zip(Depth::BOTH) {
        let stretch = Stretch {
            depth: depth.of(workers),
            warm: p.scale_warm,
            measure: p.scale_measure,
        };
        let run = window(stretch, &pids, || timed(&pool, &payload, &expected));
        let bound = p.scale_warm + p.scale_measure + STEP_TIMEOUT;
        *slot = tokio::time::timeout(bound, run).await.map_err(|_| {
            format!(
                "W2 with {workers} workers, {}, did not finish within {bound:?}",
                depth.label()
            )
        });
    }
    stop_pool(&pool).await;
    out
}

/// `online_reps` pools of `workers` started, each timed until it is online.
async fn online_time(workers: usize, p: &Params) -> Result<Latency, String> {
    let mut samples = Vec::with_capacity(p.online_reps);
    let bin = env!("CARGO_BIN_EXE_bench_echo");
    for _ in 0..p.online_reps {
        let start = Instant::now();
        let pool = Pool::start(
            WorkerCommand::new(bin),
            bench_config(workers, Codec::Postcard),
        );
        let came_online = online(&pool, WorkerKind::Runtime).await;
        let ns = start.elapsed().as_nanos() as u64;
        came_online?;
        samples.push(ns);
        stop_pool(&pool).await;
    }
    Ok(Latency::from_samples(samples, 0, Costs::default()))
}

/// One pool size's median rounds.
#[derive(Debug)]
struct SizeFigures {
    workers: usize,
    scale: Option<[Option<Result<Throughput, String>>; 2]>,
    online: Option<Result<Latency, String>>,
}

/// The median rounds of scaling and online time, by pool size.
#[derive(Debug)]
struct ScaleFigures {
    sizes: Vec<SizeFigures>,
}

impl Section for ScaleFigures {
    fn rows(&self, rows: &mut Vec<Row>) {
        let Some((base, others)) = self.sizes.split_first() else {
            return;
        };
        let b = base.workers;
        for (i, depth) in Depth::BOTH.into_iter().enumerate() {
            let base_fig = base.scale.as_ref().and_then(|s| ok(&s[i]));
            for size in others {
                let Some(scale) = &size.scale else { continue };
                let (n, fig) = (size.workers, ok(&scale[i]));
                let what = format!("W2 {n} workers, {}", depth.label());
                rows.push(Row::vs(
                    format!("{what} vs {b}"),
                    "req/s",
                    fig.map(|t| t.per_sec),
                    base_fig.map(|t| t.per_sec),
                    "smallest pool",
                    "n/base (fraction)",
                ));
                rows.push(Row::vs(
                    format!("{what}, supervisor CPU/req vs {b}"),
                    "us",
                    fig.map(|t| t.costs.parent_cpu_us),
                    base_fig.map(|t| t.costs.parent_cpu_us),
                    "smallest pool",
                    "n/base (x CPU)",
                ));
            }
        }
        for size in &self.sizes {
            if size.online.is_some() {
                let p50_ms = ok(&size.online).map(|l| l.p50_us / 1e3);
                let what = format!("online time, {} workers", size.workers);
                rows.push(Row::alone(what, "ms", p50_ms));
            }
        }
    }

    fn print_details(&self) {
        for size in &self.sizes {
            let n = size.workers;
            if let Some(scale) = &size.scale {
                for (depth, fig) in Depth::BOTH.into_iter().zip(scale) {
                    print_throughput(&format!("W2 {n} workers, {}", depth.label()), fig);
                }
            }
            print_latency(&format!("online time, {n} workers"), &size.online);
        }
    }

    fn json(&self) -> Vec<(&'static str, Json)> {
        let sizes = self
            .sizes
            .iter()
            .map(|s| {
                let mut fields = vec![("workers", Json::Num(s.workers as f64))];
                if let Some(scale) = &s.scale {
                    for (depth, fig) in Depth::BOTH.into_iter().zip(scale) {
                        fields.push((depth.json_key(), throughput_json(fig)));
                    }
                }
                fields.push(("online_time_us", latency_json(&s.online)));
                Json::Obj(fields)
            })
            .collect();
        vec![
            ("scale_per_worker_in_flight", Json::Num(PER_WORKER as f64)),
            ("scale", Json::Arr(sizes)),
        ]
    }
}
