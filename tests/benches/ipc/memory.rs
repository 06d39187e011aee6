//! Memory per queued request: `queued_requests` 64-byte requests (100,000
//! in the full run) held in the queue of a one-worker pool whose worker
//! said busy (`bench_echo` serves `Pause` with `Worker::busy`), their
//! futures held by the caller. Measured as the bytes the whole process
//! allocated and still holds once the pool has queued them all (a counting
//! allocator, see `alloc.rs`), per request, less the caller's boxes of the
//! futures and less the encoded payload: what lpm keeps for a queued
//! request beyond its payload. Then the worker resumes and every request
//! must come back with its echo.
//!
//! Three intake paths: `Pool::enqueue` (as `Pool::send`), and the actix
//! message `Enqueue` sent to `Pool::balancer()`'s `Addr` and to
//! `Pool::recipient()`. An actix request whose mailbox is full keeps its
//! message until it is polled, so every held future is polled once.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use actix::MailboxError;
use futures::stream::{FuturesUnordered, StreamExt};
use lpm::{Codec, Enqueue, Pool, PoolError, Raw, Response};
use lpm_tests::bench::{Pause, Resume};
use serde_bytes::Bytes;

use crate::alloc::LiveBytes;
use crate::json::Json;
use crate::measure::{median_round, Costs, Figure};
use crate::params::Params;
use crate::pool::{bench_config, encoded_payload, is_echo, start_pool, stop_pool, WorkerKind};
use crate::report::{ok, Row};
use crate::workload::{Section, Workload};
use crate::{MSG_LEN, STEP_TIMEOUT};

/// Requests sent through the pool before the measurement, so that one-time
/// allocations (buffers, maps at their working size) are made by then.
const WARM_REQUESTS: usize = 2_000;
/// How often the live bytes are read while the pool takes in the requests.
const SETTLE_TICK: Duration = Duration::from_millis(20);
/// Readings in a row that must agree within `SETTLE_SLACK` bytes.
const SETTLE_READINGS: usize = 3;
const SETTLE_SLACK: i64 = 4 * 1024;

/// How the caller hands its requests to the pool.
#[derive(Debug, Clone, Copy)]
enum Intake {
    /// `Pool::enqueue`: the pool's own channel to the Balancer.
    Send,
    /// `Addr<Balancer>::send(Enqueue)`: the actix message.
    Addr,
    /// `Recipient<Enqueue>::send`, from `Pool::recipient`.
    Recipient,
}

impl Intake {
    const ALL: [Intake; 3] = [Intake::Send, Intake::Addr, Intake::Recipient];

    fn label(self) -> &'static str {
        match self {
            Intake::Send => "Pool::enqueue (send)",
            Intake::Addr => "Addr<Balancer>::send(Enqueue)",
            Intake::Recipient => "Recipient<Enqueue>::send",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Intake::Send => "Pool::enqueue",
            Intake::Addr => "Addr::send(Enqueue)",
            Intake::Recipient => "Recipient::send",
        }
    }

    fn json_key(self) -> &'static str {
        match self {
            Intake::Send => "pool_send",
            Intake::Addr => "actix_addr",
            Intake::Recipient => "actix_recipient",
        }
    }
}

/// One round's measurement of one intake path.
#[derive(Debug, Clone, Default)]
struct Queued {
    /// Bytes per request beyond the payload, of every round; this is the median round.
    rounds: Vec<f64>,
    requests: usize,
    /// Live bytes per queued request, less the caller's boxes.
    bytes_per_request: f64,
    /// The encoded payload, subtracted from `bytes_per_request` for `beyond_payload`.
    payload_bytes: usize,
    beyond_payload: f64,
    /// Live allocations per queued request, less the caller's boxes.
    allocs_per_request: f64,
    /// Size of the future the caller holds per request (boxed here, not counted above).
    future_bytes: usize,
    /// Whether the live bytes stopped changing before they were read.
    settled: bool,
    /// Requests answered with their echo after the worker resumed.
    answered: usize,
    errors: usize,
}

impl Figure for Queued {
    fn key(&self) -> f64 {
        self.beyond_payload
    }
    fn costs(&self) -> Costs {
        Costs::default()
    }
    fn set_rounds(&mut self, rounds: Vec<f64>, _costs: Vec<Costs>) {
        self.rounds = rounds;
    }
    fn rounds(&self) -> &[f64] {
        &self.rounds
    }
}

/// The rounds of the memory workload, by intake path.
#[derive(Debug, Default)]
pub(crate) struct MemoryRuns {
    runs: [Vec<Result<Queued, String>>; 3],
}

impl MemoryRuns {
    /// The memory workload if `mem` runs.
    pub(crate) fn new(p: &Params) -> Option<Self> {
        p.runs("mem").then(Self::default)
    }
}

impl Workload for MemoryRuns {
    fn round(&mut self, p: &Params, _round: usize) {
        for (runs, intake) in self.runs.iter_mut().zip(Intake::ALL) {
            eprintln!(
                "  memory, {} requests queued through {} ...",
                p.queued_requests,
                intake.label()
            );
            runs.push(actix_rt::System::new().block_on(queued_memory(intake, p)));
        }
    }

    fn finish(self: Box<Self>) -> Box<dyn Section> {
        let mut i = 0;
        let paths = self.runs.map(|r| {
            let intake = Intake::ALL[i];
            i += 1;
            (
                intake,
                median_round(&format!("memory, {}", intake.label()), r),
            )
        });
        Box::new(MemoryFigures { paths })
    }
}

/// One round of one intake path: queue, measure, resume, collect the answers.
async fn queued_memory(intake: Intake, p: &Params) -> Result<Queued, String> {
    let n = p.queued_requests;
    let config = bench_config(1, Codec::Postcard).queue_capacity(n + WARM_REQUESTS);
    let (pool, _) = start_pool(WorkerKind::Runtime, config).await?;
    let result = measure(&pool, intake, n).await;
    stop_pool(&pool).await;
    result
}

async fn measure(pool: &Pool, intake: Intake, n: usize) -> Result<Queued, String> {
    let payload = [0xA5u8; MSG_LEN];
    let expected = encoded_payload(Codec::Postcard, &payload);
    let warm: FuturesUnordered<_> = (0..WARM_REQUESTS)
        .map(|_| pool.enqueue(Bytes::new(&payload)))
        .collect();
    let warmed = tokio::time::timeout(STEP_TIMEOUT, warm.collect::<Vec<_>>()).await;
    if !warmed.is_ok_and(|all| all.iter().all(|r| is_echo(r, &expected))) {
        return Err("the warm-up requests did not all come back".to_owned());
    }
    match tokio::time::timeout(STEP_TIMEOUT, pool.call(Pause)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("the worker did not pause: {e}")),
        Err(_) => return Err(format!("the worker did not pause within {STEP_TIMEOUT:?}")),
    }
    let request = || Enqueue::encoded(pool.codec(), Bytes::new(&payload)).expect("bytes encode");
    let actix_echo = |r: &Result<Result<Response, PoolError>, MailboxError>| matches!(r, Ok(answer) if is_echo(answer, &expected));
    let held = match intake {
        Intake::Send => {
            let make = || pool.enqueue(Bytes::new(&payload));
            hold(pool, n, make, |r| is_echo(r, &expected)).await
        }
        Intake::Addr => {
            let addr = pool.balancer().clone();
            hold(pool, n, || addr.send(request()), actix_echo).await
        }
        Intake::Recipient => {
            let recipient = pool.recipient::<Raw>();
            hold(pool, n, || recipient.send(request()), actix_echo).await
        }
    };
    let mut queued = held?;
    queued.payload_bytes = expected.len();
    queued.beyond_payload = queued.bytes_per_request - expected.len() as f64;
    Ok(queued)
}

/// Makes `n` requests with `make` and holds their futures (boxed, each
/// polled once) while the live bytes are read; then resumes the worker
/// and collects the answers, checked with `is_right`.
async fn hold<F, Fut>(
    pool: &Pool,
    n: usize,
    mut make: F,
    is_right: impl Fn(&Fut::Output) -> bool,
) -> Result<Queued, String>
where
    F: FnMut() -> Fut,
    Fut: Future,
{
    // Everything the caller keeps is allocated before the tracking starts,
    // except the boxes, whose size is known.
    let mut held: Vec<Pin<Box<Fut>>> = Vec::with_capacity(n);
    let mut done = vec![false; n];
    let mut errors = 0;
    let live = LiveBytes::start();
    let (bytes_before, allocs_before) = (live.bytes(), live.allocs());
    for _ in 0..n {
        held.push(Box::pin(make()));
    }
    poll_fn(|cx| {
        for (future, done) in held.iter_mut().zip(&mut done) {
            if let Poll::Ready(out) = future.as_mut().poll(cx) {
                *done = true;
                errors += usize::from(!is_right(&out));
            }
        }
        Poll::Ready(())
    })
    .await;
    let settled = settle(&live).await;
    let boxes = (n * size_of::<Fut>()) as i64;
    let bytes = live.bytes() - bytes_before - boxes;
    let allocs = live.allocs() - allocs_before - n as i64;
    drop(live);

    let resumed = tokio::time::timeout(STEP_TIMEOUT, pool.publish(&Resume)).await;
    if !matches!(resumed, Ok(Ok(1))) {
        return Err(format!("the worker was not told to resume: {resumed:?}"));
    }
    let mut pending: FuturesUnordered<_> = held
        .into_iter()
        .zip(done)
        .filter(|(_, done)| !done)
        .map(|(future, _)| future)
        .collect();
    let mut answered = n - pending.len() - errors;
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, pending.next()).await {
            Ok(Some(out)) if is_right(&out) => answered += 1,
            Ok(Some(_)) => errors += 1,
            Ok(None) => break,
            Err(_) => {
                errors += pending.len();
                break;
            }
        }
    }
    Ok(Queued {
        requests: n,
        bytes_per_request: bytes as f64 / n as f64,
        allocs_per_request: allocs as f64 / n as f64,
        future_bytes: size_of::<Fut>(),
        settled,
        answered,
        errors,
        ..Queued::default()
    })
}

/// Waits (bounded by `STEP_TIMEOUT`) until the live bytes stop changing:
/// the pool has taken in every request. False if they never did.
async fn settle(live: &LiveBytes) -> bool {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut last = live.bytes();
    let mut steady = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(SETTLE_TICK).await;
        let now = live.bytes();
        steady = if (now - last).abs() <= SETTLE_SLACK {
            steady + 1
        } else {
            0
        };
        if steady >= SETTLE_READINGS {
            return true;
        }
        last = now;
    }
    false
}

/// The median rounds of each intake path.
#[derive(Debug)]
struct MemoryFigures {
    paths: [(Intake, Option<Result<Queued, String>>); 3],
}

impl Section for MemoryFigures {
    fn rows(&self, rows: &mut Vec<Row>) {
        for (intake, figure) in &self.paths {
            let q = ok(figure);
            let what = format!("memory/queued request beyond payload, {}", intake.short());
            rows.push(Row::alone(what, "B", q.map(|q| q.beyond_payload)));
        }
    }

    fn print_details(&self) {
        println!();
        println!(
            "memory per queued request (live bytes of the process once every request is queued, per request,"
        );
        println!(
            "less the caller's boxes of its futures; beyond payload = less the encoded payload)"
        );
        println!(
            "{:<36} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>7} {:>8}",
            "intake",
            "requests",
            "B/req",
            "payload",
            "beyond",
            "allocs",
            "future",
            "answered",
            "errors",
            "settled"
        );
        for (intake, figure) in &self.paths {
            match figure {
                None => {}
                Some(Err(e)) => println!("{:<36} FAILED: {e}", intake.label()),
                Some(Ok(q)) => println!(
                    "{:<36} {:>9} {:>9.1} {:>9} {:>9.1} {:>9.2} {:>8} {:>9} {:>7} {:>8}",
                    intake.label(),
                    q.requests,
                    q.bytes_per_request,
                    q.payload_bytes,
                    q.beyond_payload,
                    q.allocs_per_request,
                    q.future_bytes,
                    q.answered,
                    q.errors,
                    q.settled
                ),
            }
        }
    }

    fn json(&self) -> Vec<(&'static str, Json)> {
        let paths = self
            .paths
            .iter()
            .map(|(intake, figure)| {
                let fields = match figure {
                    None => vec![("skipped", Json::Bool(true))],
                    Some(Err(e)) => vec![("error", Json::Str(e.clone()))],
                    Some(Ok(q)) => vec![
                        (
                            "beyond_payload_bytes_of_each_round",
                            Json::Arr(q.rounds.iter().map(|&v| Json::Num(v)).collect()),
                        ),
                        ("requests", Json::Num(q.requests as f64)),
                        ("bytes_per_request", Json::Num(q.bytes_per_request)),
                        ("payload_bytes", Json::Num(q.payload_bytes as f64)),
                        ("beyond_payload_bytes", Json::Num(q.beyond_payload)),
                        ("allocs_per_request", Json::Num(q.allocs_per_request)),
                        ("caller_future_bytes", Json::Num(q.future_bytes as f64)),
                        ("settled", Json::Bool(q.settled)),
                        ("answered", Json::Num(q.answered as f64)),
                        ("errors", Json::Num(q.errors as f64)),
                    ],
                };
                let mut all = vec![("intake", Json::Str(intake.json_key().to_owned()))];
                all.extend(fields);
                Json::Obj(all)
            })
            .collect();
        vec![("memory_per_queued_request", Json::Arr(paths))]
    }
}
