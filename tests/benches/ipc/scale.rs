//! Scaling: W2 (64-byte untyped echoes to `bench_echo`) over pools of each
//! `LPM_BENCH_POOL` size (2, 64 and 256 workers by default), with (a) 256
//! requests in flight whatever the pool's size, and (b) 4 in flight per
//! worker; requests per second and supervisor CPU per request (the whole
//! benchmark process's CPU: the actors and the calling loop), each against
//! the first pool size's.

use lpm::Codec;

use crate::json::{throughput_json, Json};
use crate::measure::{median_round, Throughput};
use crate::params::Params;
use crate::pool::{
    bench_config, encoded_payload, start_pool, stop_pool, timed, window, Stretch, WorkerKind,
};
use crate::report::{ok, print_throughput, Row};
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

/// One pool size's rounds, by `Depth`.
#[derive(Debug)]
struct SizeRuns {
    workers: usize,
    scale: [Vec<Result<Throughput, String>>; 2],
}

/// The rounds of the scaling workload.
#[derive(Debug)]
pub(crate) struct ScaleRuns {
    sizes: Vec<SizeRuns>,
}

impl ScaleRuns {
    /// The scaling workload if `scale` runs.
    pub(crate) fn new(p: &Params) -> Option<Self> {
        let sizes = p
            .pool_sizes
            .iter()
            .map(|&workers| SizeRuns {
                workers,
                scale: Default::default(),
            })
            .collect();
        p.runs("scale").then_some(Self { sizes })
    }
}

impl Workload for ScaleRuns {
    fn round(&mut self, p: &Params, _round: usize) {
        for size in &mut self.sizes {
            let n = size.workers;
            eprintln!("  W2 scaling, {n} workers ...");
            let results = actix_rt::System::new().block_on(scaled_w2(n, p));
            for (runs, run) in size.scale.iter_mut().zip(results) {
                runs.push(run);
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
                    scale: s.scale.map(|r| {
                        let label = format!("W2 {n} workers, {}", Depth::BOTH[i].label());
                        i += 1;
                        median_round(&label, r)
                    }),
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

/// One pool size's median rounds.
#[derive(Debug)]
struct SizeFigures {
    workers: usize,
    scale: [Option<Result<Throughput, String>>; 2],
}

/// The median rounds of scaling, by pool size.
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
            let base_fig = ok(&base.scale[i]);
            for size in others {
                let (n, fig) = (size.workers, ok(&size.scale[i]));
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
    }

    fn print_details(&self) {
        for size in &self.sizes {
            let n = size.workers;
            for (depth, fig) in Depth::BOTH.into_iter().zip(&size.scale) {
                print_throughput(&format!("W2 {n} workers, {}", depth.label()), fig);
            }
        }
    }

    fn json(&self) -> Vec<(&'static str, Json)> {
        let sizes = self
            .sizes
            .iter()
            .map(|s| {
                let mut fields = vec![("workers", Json::Num(s.workers as f64))];
                for (depth, fig) in Depth::BOTH.into_iter().zip(&s.scale) {
                    fields.push((depth.json_key(), throughput_json(fig)));
                }
                Json::Obj(fields)
            })
            .collect();
        vec![
            ("scale_per_worker_in_flight", Json::Num(PER_WORKER as f64)),
            ("scale", Json::Arr(sizes)),
        ]
    }
}
