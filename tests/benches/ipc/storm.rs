//! Restart storm: a pool of `STORM_WORKERS` `bench_echo` workers serving a
//! window of `STORM_DEPTH` 64-byte echoes while a thread SIGKILLs one of
//! its workers every `KILL_EVERY`; the latency of every request (enqueue
//! to answer, retries included) against the same workload on the same pool
//! just before, without the storm. Every death is restarted at once and a
//! request whose worker dies is tried again (`restarting_config`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lpm::{Codec, Pool, PoolEvent};
use lpm_tests::procfs;

use crate::json::{throughput_json, Json};
use crate::measure::{median_round, Costs, Figure, Throughput};
use crate::params::Params;
use crate::pool::{
    encoded_payload, restarting_config, sigkill, start_pool, stop_pool, timed, window, Stretch,
    WorkerKind,
};
use crate::report::{ok, print_throughput, Row};
use crate::workload::{Section, Workload};
use crate::{MSG_LEN, STEP_TIMEOUT};

const STORM_WORKERS: usize = 4;
const STORM_DEPTH: usize = 16;
const KILL_EVERY: Duration = Duration::from_millis(10);
/// Unmeasured time at the start of each stretch (the storm already blows).
const STORM_WARM: Duration = Duration::from_millis(200);

/// The workers alive now, as the pool's events tell.
type Live = Arc<Mutex<HashSet<u32>>>;

/// One round: the calm stretch, then the storm.
#[derive(Debug, Clone, Default)]
struct StormRound {
    /// The storm's p99 of every round; this is the median round.
    rounds: Vec<f64>,
    calm: Throughput,
    storm: Throughput,
    kills: u64,
}

impl Figure for StormRound {
    fn key(&self) -> f64 {
        self.storm.p99_us.unwrap_or(0.0)
    }
    fn costs(&self) -> Costs {
        self.storm.costs
    }
    fn set_rounds(&mut self, rounds: Vec<f64>, _costs: Vec<Costs>) {
        self.rounds = rounds;
    }
    fn rounds(&self) -> &[f64] {
        &self.rounds
    }
}

/// The rounds of the restart storm.
#[derive(Debug, Default)]
pub(crate) struct StormRuns {
    runs: Vec<Result<StormRound, String>>,
}

impl StormRuns {
    /// The restart storm if `storm` runs.
    pub(crate) fn new(p: &Params) -> Option<Self> {
        p.runs("storm").then(Self::default)
    }
}

impl Workload for StormRuns {
    fn round(&mut self, p: &Params, _round: usize) {
        eprintln!("  restart storm: calm, then a SIGKILL every {KILL_EVERY:?} ...");
        self.runs
            .push(actix_rt::System::new().block_on(storm_round(p)));
    }

    fn finish(self: Box<Self>) -> Box<dyn Section> {
        Box::new(StormFigures {
            round: median_round("restart storm", self.runs),
        })
    }
}

async fn storm_round(p: &Params) -> Result<StormRound, String> {
    let (pool, pids) = start_pool(WorkerKind::Runtime, restarting_config(STORM_WORKERS)).await?;
    let live: Live = Arc::new(Mutex::new(pids.into_iter().collect()));
    follow_workers(&pool, Arc::clone(&live));
    let payload = [0xA5u8; MSG_LEN];
    let expected = encoded_payload(Codec::Postcard, &payload);
    let stretch = Stretch {
        depth: STORM_DEPTH,
        warm: STORM_WARM,
        measure: p.storm_measure,
    };
    let bound = STORM_WARM + p.storm_measure + STEP_TIMEOUT;
    // Workers come and go: no worker CPU is read (`&[]`).
    let calm = window(stretch, &[], || timed(&pool, &payload, &expected));
    let calm = tokio::time::timeout(bound, calm).await;
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (live, stop) = (Arc::clone(&live), Arc::clone(&stop));
        thread::spawn(move || kill_one_every(KILL_EVERY, bound, &live, &stop))
    };
    let storm = window(stretch, &[], || timed(&pool, &payload, &expected));
    let storm = tokio::time::timeout(bound, storm).await;
    stop.store(true, Ordering::Release);
    let kills = killer
        .join()
        .map_err(|_| "the killer thread panicked".to_owned())?;
    stop_pool(&pool).await;
    let late = |what: &str| format!("the {what} stretch did not finish within {bound:?}");
    Ok(StormRound {
        rounds: Vec::new(),
        calm: calm.map_err(|_| late("calm"))?,
        storm: storm.map_err(|_| late("storm"))?,
        kills,
    })
}

/// Keeps `live` up to date from the pool's events, until the pool stops.
fn follow_workers(pool: &Pool, live: Live) {
    let mut events = pool.events();
    actix_rt::spawn(async move {
        while let Some(event) = events.next().await {
            let mut live = live.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                PoolEvent::ChildSpawned { pid, .. } => {
                    live.insert(pid);
                }
                PoolEvent::ChildExited { pid, .. } => {
                    live.remove(&pid);
                }
                _ => {}
            }
        }
    });
}

/// Every `every`, SIGKILLs one live worker (taking it out of `live`), until
/// `stop` or `bound`; answers how many it killed. It kills only children of
/// this process, so a pid reused meanwhile is left alone.
fn kill_one_every(every: Duration, bound: Duration, live: &Live, stop: &AtomicBool) -> u64 {
    let me = std::process::id();
    let start = Instant::now();
    let mut next = start + every;
    let mut kills = 0;
    while !stop.load(Ordering::Acquire) && start.elapsed() < bound {
        thread::sleep(next.saturating_duration_since(Instant::now()));
        next += every;
        let victim = {
            let mut live = live.lock().unwrap_or_else(|e| e.into_inner());
            let victim = live.iter().next().copied();
            if let Some(pid) = victim {
                live.remove(&pid);
            }
            victim
        };
        let ours =
            victim.filter(|&pid| procfs::stat(pid).is_some_and(|s| s.ppid == me && !s.is_zombie()));
        if let Some(pid) = ours {
            kills += u64::from(sigkill(pid).is_ok());
        }
    }
    kills
}

/// The median round of the restart storm.
#[derive(Debug)]
struct StormFigures {
    round: Option<Result<StormRound, String>>,
}

impl Section for StormFigures {
    fn rows(&self, rows: &mut Vec<Row>) {
        let r = ok(&self.round);
        let label = format!(
            "{STORM_WORKERS} workers, {STORM_DEPTH} in flight, SIGKILL/{} ms",
            KILL_EVERY.as_millis()
        );
        for (what, pick) in [
            (
                "p50",
                (|t: &Throughput| t.p50_us) as fn(&Throughput) -> Option<f64>,
            ),
            ("p99", |t: &Throughput| t.p99_us),
        ] {
            rows.push(Row::vs(
                format!("storm {what}, {label} vs calm"),
                "us",
                r.and_then(|r| pick(&r.storm)),
                r.and_then(|r| pick(&r.calm)),
                "same pool, calm",
                "storm/calm (x slower)",
            ));
        }
        rows.push(Row::vs(
            format!("storm req/s, {label} vs calm"),
            "req/s",
            r.map(|r| r.storm.per_sec),
            r.map(|r| r.calm.per_sec),
            "same pool, calm",
            "storm/calm (fraction)",
        ));
    }

    fn print_details(&self) {
        match &self.round {
            None => {}
            Some(Err(e)) => println!("{:<36} FAILED: {e}", "restart storm"),
            Some(Ok(r)) => {
                print_throughput("storm: calm", &Some(Ok(r.calm.clone())));
                let name = format!("storm: {} kills", r.kills);
                print_throughput(&name, &Some(Ok(r.storm.clone())));
            }
        }
    }

    fn json(&self) -> Vec<(&'static str, Json)> {
        let storm = match &self.round {
            None => Json::Null,
            Some(Err(e)) => Json::Obj(vec![("error", Json::Str(e.clone()))]),
            Some(Ok(r)) => Json::Obj(vec![
                (
                    "storm_p99_us_of_each_round",
                    Json::Arr(r.rounds.iter().map(|&v| Json::Num(v)).collect()),
                ),
                ("workers", Json::Num(STORM_WORKERS as f64)),
                ("in_flight", Json::Num(STORM_DEPTH as f64)),
                ("kill_every_ms", Json::Num(KILL_EVERY.as_secs_f64() * 1e3)),
                ("kills", Json::Num(r.kills as f64)),
                ("calm", throughput_json(&Some(Ok(r.calm.clone())))),
                ("storm", throughput_json(&Some(Ok(r.storm.clone())))),
            ]),
        };
        vec![("restart_storm", storm)]
    }
}
