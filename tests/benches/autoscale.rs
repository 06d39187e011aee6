//! Autoscaling on real worker processes: how soon a burst gets a new worker
//! serving, how soon idling gives the workers back, and what that buys in
//! queue wait against fixed pools.
//!
//! ```text
//! cargo bench -p lpm-tests --bench autoscale            # about 1 minute
//! LPM_BENCH_ROUNDS=3 cargo bench -p lpm-tests --bench autoscale
//! ```
//!
//! Each round sends a burst of 16 requests at once, each 100 ms of work
//! (`Op::TimedSleep` to `test_worker`, which answers when it took the
//! request), to four pools that take one request per worker at a time
//! (`max_in_flight(1)`), so the burst queues:
//!
//! - **default**: autoscaling from 1 to 4 workers with `Autoscale::new(1, 4)`'s
//!   defaults (backlog wait 200 ms, cool-down 1 s, a sample every 100 ms);
//! - **tuned**: 1 to 4 with backlog wait 50 ms, cool-down 100 ms, idle for
//!   500 ms, a sample every 20 ms; after the burst it is watched back down
//!   to 1 worker;
//! - **fixed 1** and **fixed 4**: no autoscaling.
//!
//! For the autoscaled pools, from the burst's first request: the first
//! `PoolEvent::Scaled` (the decision), the new worker's `ChildSpawned`, the
//! moment the new worker took its first request (its handshake and ready
//! done), and its first reply. For the tuned pool, from the burst's last
//! reply: the `Scaled` event back at 1 worker and the last retired worker's
//! exit, against the rule's own period (`idle_for` per worker let go). For
//! every pool: each request's wait, from the burst's start to the moment a
//! worker took it (the worker's clock, read in its handler; of 16 requests
//! the p99 is the longest, so the longest is given), its median, and the
//! burst's length (first request to last reply). Each figure is the median
//! and the maximum over the rounds. Round by round the burst starts 0 to
//! 90 ms after the pool is online, so it meets the autoscaler's sampling
//! timer at different points, as real bursts do.
//!
//! Environment:
//! - `LPM_BENCH_ROUNDS=n`: rounds (default 10).
//! - `LPM_BENCH_QUICK=1` (and `cargo test --benches`, which passes no
//!   `--bench`): one round, to check that the bench works.
//!
//! No figure is asserted; every wait is bounded by [`STEP_TIMEOUT`].

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use lpm::{Autoscale, Config, EventStream, Pool, PoolEvent, ScaleReason, SignalPolicy};
use lpm_tests::{test_worker, Op};

/// Requests in a burst, all sent at once.
const BURST: usize = 16;
/// Each request's work.
const WORK: Duration = Duration::from_millis(100);
/// The autoscaled pools' bounds; the fixed pools have one size each.
const MIN: usize = 1;
const MAX: usize = 4;
/// The bursts start 0, 10, ... 90 ms after their pool is online, round by
/// round, so they meet the autoscaler's sampling timer at different points.
const PHASE_STEP: Duration = Duration::from_millis(10);
/// Bound on any wait for the pool, so nothing hangs.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// One pool the burst is sent to.
struct Setup {
    name: &'static str,
    workers: usize,
    autoscale: Option<Autoscale>,
    /// Whether to watch it scale back down after the burst.
    watch_down: bool,
}

fn setups() -> Vec<Setup> {
    let tuned = Autoscale::new(MIN, MAX)
        .backlog_wait(Duration::from_millis(50))
        .cooldown(Duration::from_millis(100))
        .idle_for(Duration::from_millis(500))
        .sample_every(Duration::from_millis(20));
    vec![
        Setup {
            name: "fixed 1",
            workers: 1,
            autoscale: None,
            watch_down: false,
        },
        Setup {
            name: "autoscale 1..4, default",
            workers: MIN,
            autoscale: Some(Autoscale::new(MIN, MAX)),
            watch_down: false,
        },
        Setup {
            name: "autoscale 1..4, tuned",
            workers: MIN,
            autoscale: Some(tuned),
            watch_down: true,
        },
        Setup {
            name: "fixed 4",
            workers: MAX,
            autoscale: None,
            watch_down: false,
        },
    ]
}

impl Setup {
    fn config(&self) -> Config {
        let config = Config::default()
            .workers(self.workers)
            .max_in_flight(1)
            .on_signal(SignalPolicy::Ignore);
        match self.autoscale {
            Some(autoscale) => config.autoscale(autoscale),
            None => config,
        }
    }
}

/// What one burst showed.
#[derive(Debug, Default)]
struct Burst {
    /// First request to last reply.
    length: Duration,
    /// Each request's wait, from the burst's start to its worker taking it.
    queue_wait_p50: Duration,
    queue_wait_max: Duration,
    /// The most workers the pool aimed for.
    peak: usize,
    up: Option<ScaleUp>,
    down: Option<ScaleDown>,
}

/// The first scale-up, each step from the burst's first request.
#[derive(Debug)]
struct ScaleUp {
    /// Whether the first `Scaled` gave the backlog as its reason.
    backlog: bool,
    decided: Duration,
    spawned: Duration,
    took_first: Duration,
    first_reply: Duration,
}

/// The way back to the minimum, from the burst's last reply.
#[derive(Debug)]
struct ScaleDown {
    /// Workers let go.
    steps: usize,
    at_min: Duration,
    last_exited: Duration,
}

/// Events and replies as they arrive, timed from the burst's start.
struct Watch {
    t0: Instant,
    wall0: SystemTime,
    before: HashSet<u32>,
    scaled: Vec<(Duration, usize, usize, ScaleReason)>,
    spawned: Vec<(Duration, u32)>,
    exited: Vec<Duration>,
    /// When each request's worker took it.
    took: Vec<Duration>,
    /// Replies from workers started after the burst began: (took, replied).
    new_worker_replies: Vec<(Duration, Duration)>,
}

impl Watch {
    fn event(&mut self, event: PoolEvent) {
        let at = self.t0.elapsed();
        match event {
            PoolEvent::Scaled { from, to, reason } => self.scaled.push((at, from, to, reason)),
            PoolEvent::ChildSpawned { pid, .. } if !self.before.contains(&pid) => {
                self.spawned.push((at, pid));
            }
            PoolEvent::ChildExited { .. } => self.exited.push(at),
            _ => {}
        }
    }

    fn reply(&mut self, answer: Result<lpm::Response, lpm::PoolError>) -> Result<(), String> {
        let at = self.t0.elapsed();
        let response = answer.map_err(|e| format!("a burst request failed: {e}"))?;
        let took: SystemTime = response
            .data()
            .map_err(|e| format!("a reply did not decode: {e}"))?;
        // Both clocks are the same machine's wall clock.
        let took = took.duration_since(self.wall0).unwrap_or_default();
        self.took.push(took);
        if !self.before.contains(&response.pid()) {
            self.new_worker_replies.push((took, at));
        }
        Ok(())
    }

    fn scale_up(&self) -> Option<ScaleUp> {
        let &(decided, _, _, reason) = self.scaled.iter().find(|s| s.2 > s.1)?;
        let spawned = self.spawned.iter().map(|s| s.0).find(|&at| at >= decided)?;
        Some(ScaleUp {
            backlog: matches!(reason, ScaleReason::Backlog { .. }),
            decided,
            spawned,
            took_first: self.new_worker_replies.iter().map(|r| r.0).min()?,
            first_reply: self.new_worker_replies.iter().map(|r| r.1).min()?,
        })
    }

    fn peak(&self, start: usize) -> usize {
        self.scaled.iter().map(|s| s.2).fold(start, usize::max)
    }
}

/// Waits for `future`, or fails after [`STEP_TIMEOUT`] saying what it waited for.
async fn within<F: std::future::Future>(what: &str, future: F) -> Result<F::Output, String> {
    tokio::time::timeout(STEP_TIMEOUT, future)
        .await
        .map_err(|_| format!("{what}: nothing within {STEP_TIMEOUT:?}"))
}

/// Sends one burst to a new pool of `setup`, `phase` after it is online,
/// and measures it.
async fn burst(setup: &Setup, phase: Duration) -> Result<Burst, String> {
    let pool = Pool::start(test_worker!(), setup.config());
    let mut events = pool.events();
    let measured = measure(&pool, &mut events, setup, phase).await;
    let stopped = within("the soft kill", pool.soft_kill()).await;
    let burst = measured?;
    stopped?.map_err(|e| format!("the soft kill failed: {e}"))?;
    Ok(burst)
}

async fn measure(
    pool: &Pool,
    events: &mut EventStream,
    setup: &Setup,
    phase: Duration,
) -> Result<Burst, String> {
    within("online", pool.online())
        .await?
        .map_err(|e| format!("the pool did not come online: {e}"))?;
    // The pool samples on a timer started with it: a burst that always came
    // right after the start would always meet the timer at the same point.
    tokio::time::sleep(phase).await;
    let health = pool.health().await.map_err(|e| e.to_string())?;
    // What happened while the pool started is not part of the burst.
    while let Some(Some(_)) = events.next().now_or_never() {}
    let mut watch = Watch {
        t0: Instant::now(),
        wall0: SystemTime::now(),
        before: health.iter().filter_map(|w| w.pid).collect(),
        scaled: Vec::new(),
        spawned: Vec::new(),
        exited: Vec::new(),
        took: Vec::with_capacity(BURST),
        new_worker_replies: Vec::new(),
    };
    let op = Op::TimedSleep {
        ms: WORK.as_millis() as u64,
    };
    let mut replies: FuturesUnordered<_> = (0..BURST).map(|_| pool.enqueue(&op)).collect();
    let deadline = tokio::time::Instant::from_std(watch.t0 + STEP_TIMEOUT);
    while !replies.is_empty() {
        tokio::select! {
            Some(answer) = replies.next() => watch.reply(answer)?,
            Some(event) = events.next() => watch.event(event),
            () = tokio::time::sleep_until(deadline) => {
                return Err(format!("the burst was not answered within {STEP_TIMEOUT:?}"));
            }
        }
    }
    let length = watch.t0.elapsed();
    watch.took.sort();
    let mut burst = Burst {
        length,
        queue_wait_p50: watch.took[(BURST - 1) / 2],
        queue_wait_max: watch.took[BURST - 1],
        ..Burst::default()
    };
    if setup.watch_down {
        burst.down = Some(scale_down(&mut watch, events, length).await?);
    }
    burst.peak = watch.peak(setup.workers);
    burst.up = watch.scale_up();
    Ok(burst)
}

/// Follows the events until the pool is back at [`MIN`] and every worker
/// it let go has exited; times from the burst's last reply, `last_reply`.
async fn scale_down(
    watch: &mut Watch,
    events: &mut EventStream,
    last_reply: Duration,
) -> Result<ScaleDown, String> {
    let peak = watch.peak(MIN);
    let steps = peak - MIN;
    // Exits seen before the last reply are no scale-down's.
    let exited_before = watch.exited.len();
    let at_min = |w: &Watch| w.scaled.iter().find(|s| s.2 == MIN).map(|s| s.0);
    while at_min(watch).is_none() || watch.exited.len() - exited_before < steps {
        let event = within("the scale-down", events.next())
            .await?
            .ok_or("the event stream ended")?;
        watch.event(event);
    }
    let at_min = at_min(watch).expect("the loop ran until it was found");
    let last_exited = watch.exited.last().copied().unwrap_or(at_min);
    Ok(ScaleDown {
        steps,
        at_min: at_min.saturating_sub(last_reply),
        last_exited: last_exited.saturating_sub(last_reply),
    })
}

/// Median and maximum of some rounds' durations.
fn spread(mut samples: Vec<Duration>) -> String {
    if samples.is_empty() {
        return "-".into();
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "{:.1} / {:.1}",
        ms(samples[(samples.len() - 1) / 2]),
        ms(samples[samples.len() - 1])
    )
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn print_scale_up(setups: &[Setup], results: &[Vec<Burst>]) {
    println!("\nScaling up, from the burst's first request (ms, median / max of the rounds):");
    let autoscaled: Vec<(&Setup, &Vec<Burst>)> = setups
        .iter()
        .zip(results)
        .filter(|(s, _)| s.autoscale.is_some())
        .collect();
    print!("{:<46}", "");
    for (setup, _) in &autoscaled {
        print!(" {:>24}", setup.name);
    }
    println!();
    type Step = fn(&ScaleUp) -> Duration;
    let steps: [(&str, Step); 5] = [
        ("first Scaled event (the decision)", |u| u.decided),
        ("  then its process is spawned (ChildSpawned)", |u| {
            u.spawned.saturating_sub(u.decided)
        }),
        ("  then it starts, says ready, takes a request", |u| {
            u.took_first.saturating_sub(u.spawned)
        }),
        ("the new worker takes its first request", |u| u.took_first),
        ("its first reply (100 ms of work later)", |u| u.first_reply),
    ];
    for (label, step) in steps {
        print!("{label:<46}");
        for (_, bursts) in &autoscaled {
            let samples = bursts.iter().filter_map(|b| b.up.as_ref()).map(step);
            print!(" {:>24}", spread(samples.collect()));
        }
        println!();
    }
    print!("{:<46}", "rounds scaled up first for the backlog");
    for (_, bursts) in &autoscaled {
        let backlog = bursts
            .iter()
            .filter(|b| b.up.as_ref().is_some_and(|u| u.backlog));
        print!(
            " {:>24}",
            format!("{} of {}", backlog.count(), bursts.len())
        );
    }
    println!();
}

fn print_scale_down(setups: &[Setup], results: &[Vec<Burst>]) {
    for (setup, bursts) in setups.iter().zip(results).filter(|(s, _)| s.watch_down) {
        let idle_for = setup.autoscale.map(|a| a.idle_for).unwrap_or_default();
        let downs: Vec<&ScaleDown> = bursts.iter().filter_map(|b| b.down.as_ref()).collect();
        println!(
            "\nScaling down, {}: idle_for {idle_for:?} per worker let go, from the burst's last reply (ms, median / max):",
            setup.name
        );
        let steps: Vec<usize> = downs.iter().map(|d| d.steps).collect();
        println!("  workers let go per round: {steps:?}");
        println!(
            "  back at {MIN} worker (the last Scaled event) {:>20}",
            spread(downs.iter().map(|d| d.at_min).collect())
        );
        println!(
            "  the rule's own period (steps × idle_for)  {:>20}",
            spread(downs.iter().map(|d| idle_for * d.steps as u32).collect())
        );
        println!(
            "  the last worker let go has exited         {:>20}",
            spread(downs.iter().map(|d| d.last_exited).collect())
        );
    }
}

fn print_bursts(setups: &[Setup], results: &[Vec<Burst>]) {
    println!(
        "\nThe burst: each request's wait until a worker took it, and first request to last reply (ms, median / max):"
    );
    println!(
        "{:<26} {:>18} {:>18} {:>18} {:>12}",
        "pool", "wait p50", "longest wait", "burst length", "peak workers"
    );
    for (setup, bursts) in setups.iter().zip(results) {
        let peaks: Vec<usize> = bursts.iter().map(|b| b.peak).collect();
        println!(
            "{:<26} {:>18} {:>18} {:>18} {:>12}",
            setup.name,
            spread(bursts.iter().map(|b| b.queue_wait_p50).collect()),
            spread(bursts.iter().map(|b| b.queue_wait_max).collect()),
            spread(bursts.iter().map(|b| b.length).collect()),
            format!(
                "{}..{}",
                peaks.iter().min().unwrap_or(&0),
                peaks.iter().max().unwrap_or(&0)
            ),
        );
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let quick = !bench || std::env::var_os("LPM_BENCH_QUICK").is_some();
    let rounds: usize = if quick {
        1
    } else {
        std::env::var("LPM_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(10)
    };
    let setups = setups();
    println!(
        "lpm autoscaling bench: {rounds} rounds of a burst of {BURST} requests of {WORK:?} each, \
         sent at once, one request per worker at a time; load average {} at the start",
        load_average()
    );
    let system = actix_rt::System::new();
    let mut results: Vec<Vec<Burst>> = setups.iter().map(|_| Vec::new()).collect();
    for round in 1..=rounds {
        eprintln!("round {round}/{rounds}");
        let phase = PHASE_STEP * ((round - 1) % 10) as u32;
        for (setup, bursts) in setups.iter().zip(&mut results) {
            match system.block_on(burst(setup, phase)) {
                Ok(burst) => bursts.push(burst),
                Err(e) => eprintln!("  {}: round {round} failed: {e}", setup.name),
            }
        }
    }
    print_scale_up(&setups, &results);
    print_scale_down(&setups, &results);
    print_bursts(&setups, &results);
    println!("\nload average {} at the end", load_average());
}
