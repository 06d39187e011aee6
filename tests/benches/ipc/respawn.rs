//! W5: a worker is SIGKILLed; the time until its replacement's first
//! answer. A request is sent right after the kill (with retries, so one
//! that meets the dead worker is tried again) and sent again until a
//! process other than the dead one answers it. Against R5, the raw floor:
//! a parent that SIGKILLs its `socket_echo` child, reaps it (waitpid),
//! spawns a new one and gets its first echo.

use std::io;
use std::time::Instant;

use lpm::{Codec, Pool};
use serde_bytes::Bytes;

use crate::json::{latency_json, Json};
use crate::measure::{median_round, Costs, Latency};
use crate::params::Params;
use crate::pool::{encoded_payload, restarting_config, sigkill, start_pool, stop_pool, WorkerKind};
use crate::raw::SocketEcho;
use crate::report::{latency_rows, ok, print_latency, Row};
use crate::workload::{Section, Workload};
use crate::{lift, MSG_LEN, STEP_TIMEOUT};

/// Requests one kill may take until a replacement answers: a bound, far
/// above what a restart takes (each request waits for its answer).
const MAX_ATTEMPTS: u64 = 1_000;

/// The rounds of R5 and W5.
#[derive(Debug, Default)]
pub(crate) struct RespawnRuns {
    raw: Option<Vec<Result<Latency, String>>>,
    lpm: Option<Vec<Result<Latency, String>>>,
}

impl RespawnRuns {
    /// R5 if `r5` runs, W5 if `w5` runs; `None` if neither.
    pub(crate) fn new(p: &Params) -> Option<Self> {
        let runs = Self {
            raw: p.runs("r5").then(Vec::new),
            lpm: p.runs("w5").then(Vec::new),
        };
        (runs.raw.is_some() || runs.lpm.is_some()).then_some(runs)
    }
}

impl Workload for RespawnRuns {
    fn round(&mut self, p: &Params, _round: usize) {
        if let Some(raw) = &mut self.raw {
            eprintln!("  R5 raw kill, reap, respawn, first echo ...");
            raw.push(lift(raw_respawn(p)));
        }
        if let Some(lpm) = &mut self.lpm {
            eprintln!("  W5 kill a worker, first answer of its replacement ...");
            lpm.push(actix_rt::System::new().block_on(lpm_respawn(p)));
        }
    }

    fn finish(self: Box<Self>) -> Box<dyn Section> {
        Box::new(RespawnFigures {
            raw: self.raw.and_then(|r| median_round("R5", r)),
            lpm: self.lpm.and_then(|r| median_round("W5", r)),
        })
    }
}

/// R5: kill, reap, respawn and first echo of a raw child, `respawn_reps` times.
fn raw_respawn(p: &Params) -> io::Result<Latency> {
    let mut echo = SocketEcho::spawn()?;
    let mut errors = u64::from(!echo.echo_once()?);
    let mut samples = Vec::with_capacity(p.respawn_reps);
    for rep in 0..p.respawn_warm + p.respawn_reps {
        let start = Instant::now();
        echo.kill_and_reap()?;
        drop(echo);
        echo = SocketEcho::spawn()?;
        errors += u64::from(!echo.echo_once()?);
        if rep >= p.respawn_warm {
            samples.push(start.elapsed().as_nanos() as u64);
        }
    }
    Ok(Latency::from_samples(samples, errors, Costs::default()))
}

/// W5: a one-worker pool whose worker is SIGKILLed `respawn_reps` times.
async fn lpm_respawn(p: &Params) -> Result<Latency, String> {
    let (pool, _) = start_pool(WorkerKind::Runtime, restarting_config(1)).await?;
    let payload = [0xA5u8; MSG_LEN];
    let expected = encoded_payload(Codec::Postcard, &payload);
    let run = async {
        let (mut pid, mut errors) = answer_not_from(&pool, None, &payload, &expected).await?;
        let mut samples = Vec::with_capacity(p.respawn_reps);
        for rep in 0..p.respawn_warm + p.respawn_reps {
            let start = Instant::now();
            sigkill(pid)?;
            let (next, failed) = answer_not_from(&pool, Some(pid), &payload, &expected).await?;
            if rep >= p.respawn_warm {
                samples.push(start.elapsed().as_nanos() as u64);
            }
            errors += failed;
            pid = next;
        }
        Ok(Latency::from_samples(samples, errors, Costs::default()))
    };
    let result = run.await;
    stop_pool(&pool).await;
    result
}

/// Sends the echo until a process other than `dead` answers it right
/// (bounded by `MAX_ATTEMPTS` and `STEP_TIMEOUT`); answers that process's
/// pid and the attempts that failed.
async fn answer_not_from(
    pool: &Pool,
    dead: Option<u32>,
    payload: &[u8],
    expected: &[u8],
) -> Result<(u32, u64), String> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    let mut failed = 0;
    while failed < MAX_ATTEMPTS {
        match tokio::time::timeout_at(deadline, pool.enqueue(Bytes::new(payload))).await {
            Err(_) => break,
            Ok(Ok(r)) if Some(r.pid()) != dead && r.bytes() == expected => {
                return Ok((r.pid(), failed))
            }
            Ok(_) => failed += 1,
        }
    }
    Err(format!(
        "no answer from a live worker within {STEP_TIMEOUT:?} ({failed} failed attempts)"
    ))
}

/// The median rounds of R5 and W5.
#[derive(Debug)]
struct RespawnFigures {
    raw: Option<Result<Latency, String>>,
    lpm: Option<Result<Latency, String>>,
}

impl Section for RespawnFigures {
    fn rows(&self, rows: &mut Vec<Row>) {
        if self.lpm.is_some() {
            latency_rows(
                rows,
                "W5",
                "kill to first answer vs R5",
                ok(&self.lpm),
                ok(&self.raw),
            );
        }
    }

    fn print_details(&self) {
        print_latency("R5 raw kill, reap, respawn, echo", &self.raw);
        print_latency("W5 kill to replacement's answer", &self.lpm);
    }

    fn json(&self) -> Vec<(&'static str, Json)> {
        vec![
            ("r5_raw_respawn", latency_json(&self.raw)),
            ("w5_respawn", latency_json(&self.lpm)),
        ]
    }
}
