//! Online time: from `Pool::start` to `Pool::online` answering, for pools
//! of `bench_echo` of each `LPM_BENCH_POOL` size; each round starts each
//! size `online_reps` times, and the median round is reported. Against the
//! raw floor in the same run: as many `socket_echo` children spawned one
//! after another from one thread (fork and exec, as `std::process` does
//! with a `pre_exec`), then one echo from each.

use std::io;
use std::time::Instant;

use lpm::{Codec, Pool, WorkerCommand};

use crate::json::{latency_json, Json};
use crate::lift;
use crate::measure::{median_round, Costs, Latency};
use crate::params::Params;
use crate::pool::{bench_config, online, stop_pool, WorkerKind};
use crate::raw::SocketEcho;
use crate::report::{ok, print_latency, Row};
use crate::workload::{Section, Workload};

/// One pool size's rounds.
#[derive(Debug)]
struct SizeRuns {
    workers: usize,
    lpm: Vec<Result<Latency, String>>,
    raw: Vec<Result<Latency, String>>,
}

/// The rounds of the online-time workload.
#[derive(Debug)]
pub(crate) struct OnlineRuns {
    sizes: Vec<SizeRuns>,
}

impl OnlineRuns {
    /// The online-time workload if `online` runs.
    pub(crate) fn new(p: &Params) -> Option<Self> {
        let sizes = p
            .pool_sizes
            .iter()
            .map(|&workers| SizeRuns {
                workers,
                lpm: Vec::new(),
                raw: Vec::new(),
            })
            .collect();
        p.runs("online").then_some(Self { sizes })
    }
}

impl Workload for OnlineRuns {
    fn round(&mut self, p: &Params, _round: usize) {
        for size in &mut self.sizes {
            let n = size.workers;
            eprintln!("  online time, {n} workers, raw floor then lpm ...");
            size.raw.push(lift(raw_online(n, p)));
            let lpm = actix_rt::System::new().block_on(lpm_online(n, p));
            size.lpm.push(lpm);
        }
    }

    fn finish(self: Box<Self>) -> Box<dyn Section> {
        let sizes = self
            .sizes
            .into_iter()
            .map(|s| {
                let n = s.workers;
                SizeFigures {
                    workers: n,
                    lpm: median_round(&format!("online, {n} workers"), s.lpm),
                    raw: median_round(&format!("raw online, {n} children"), s.raw),
                }
            })
            .collect();
        Box::new(OnlineFigures { sizes })
    }
}

/// `online_reps` pools of `workers` started, each timed until it is online.
async fn lpm_online(workers: usize, p: &Params) -> Result<Latency, String> {
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

/// The raw floor: `workers` children spawned in turn, then one echo from each.
fn raw_online(workers: usize, p: &Params) -> io::Result<Latency> {
    let mut samples = Vec::with_capacity(p.online_reps);
    let mut errors = 0;
    for _ in 0..p.online_reps {
        let start = Instant::now();
        let mut children = Vec::with_capacity(workers);
        for _ in 0..workers {
            children.push(SocketEcho::spawn()?);
        }
        for child in &mut children {
            errors += u64::from(!child.echo_once()?);
        }
        samples.push(start.elapsed().as_nanos() as u64);
        children.iter().for_each(SocketEcho::close);
    }
    Ok(Latency::from_samples(samples, errors, Costs::default()))
}

/// One pool size's median rounds.
#[derive(Debug)]
struct SizeFigures {
    workers: usize,
    lpm: Option<Result<Latency, String>>,
    raw: Option<Result<Latency, String>>,
}

/// The median rounds of online time, by pool size.
#[derive(Debug)]
struct OnlineFigures {
    sizes: Vec<SizeFigures>,
}

impl Section for OnlineFigures {
    fn rows(&self, rows: &mut Vec<Row>) {
        let ms = |l: &Latency| l.p50_us / 1e3;
        for size in &self.sizes {
            rows.push(Row::vs(
                format!("online time, {} workers vs raw spawns", size.workers),
                "ms",
                ok(&size.lpm).map(ms),
                ok(&size.raw).map(ms),
                "raw spawn in turn + echo",
                "lpm/raw (x slower)",
            ));
        }
    }

    fn print_details(&self) {
        for size in &self.sizes {
            let n = size.workers;
            print_latency(&format!("online raw, {n} spawns + echo"), &size.raw);
            print_latency(&format!("online time, {n} workers"), &size.lpm);
        }
    }

    fn json(&self) -> Vec<(&'static str, Json)> {
        let sizes = self
            .sizes
            .iter()
            .map(|s| {
                Json::Obj(vec![
                    ("workers", Json::Num(s.workers as f64)),
                    ("lpm_start_to_online_us", latency_json(&s.lpm)),
                    ("raw_spawn_and_echo_us", latency_json(&s.raw)),
                ])
            })
            .collect();
        vec![("online_time", Json::Arr(sizes))]
    }
}
