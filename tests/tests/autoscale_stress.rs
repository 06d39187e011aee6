//! Autoscaling under bursts and pauses, hunting for a request that is never
//! answered: scale-ups and scale-downs race the dispatch for about a minute,
//! and every request must resolve within a generous bound.
//!
//! Run (about 60 s; `LPM_STRESS_BUSY=2` adds two busy-looping threads, like
//! `stress -c 2`; `LPM_STRESS_SECS` sets the length):
//! `cargo test -p lpm-tests --test autoscale_stress -- --ignored --nocapture`

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lpm::{Autoscale, Pool, PoolEvent};
use lpm_tests::{config, online, start, test_worker, Op};

/// Long enough that only a request the pool lost or holds for no reason
/// misses it: jobs last at most 20 ms and the pool's timeout is 30 s.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// What went wrong with one request, naming its client and sequence number.
type Miss = String;

/// A small deterministic generator, so each client's rhythm is reproducible.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One request, checked: answered in time, without an error, with its own reply.
async fn request(pool: &Pool, client: usize, seq: u32, ms: u64) -> Option<Miss> {
    let op = Op::Sleep { ms, reply: seq };
    let sent = Instant::now();
    let answer = tokio::time::timeout(ANSWER_WITHIN, pool.enqueue(&op)).await;
    let name = format!("client {client} request {seq}");
    match answer {
        Err(_) => Some(format!("{name}: unanswered after {ANSWER_WITHIN:?}")),
        Ok(Err(error)) => Some(format!(
            "{name}: failed after {:?}: {error}",
            sent.elapsed()
        )),
        Ok(Ok(response)) => match response.data::<u32>() {
            Ok(got) if got == seq => None,
            Ok(got) => Some(format!("{name}: got the reply {got}")),
            Err(error) => Some(format!("{name}: undecodable reply: {error}")),
        },
    }
}

/// A client that sends bursts of concurrent requests, then pauses long
/// enough for the pool to scale down.
async fn bursts(pool: Pool, client: usize, until: Instant, misses: Rc<RefCell<Vec<Miss>>>) -> u32 {
    let mut rng = Lcg(client as u64 + 1);
    let mut seq = 0;
    while Instant::now() < until {
        let size = 1 + rng.below(24) as u32;
        let burst = (0..size).map(|i| {
            let ms = rng.below(20);
            let pool = pool.clone();
            async move { request(&pool, client, seq + i, ms).await }
        });
        let burst: Vec<_> = burst.collect();
        seq += size;
        for miss in futures::future::join_all(burst).await.into_iter().flatten() {
            misses.borrow_mut().push(miss);
        }
        tokio::time::sleep(Duration::from_millis(rng.below(400))).await;
    }
    seq
}

/// A client that sends one request at a time, with short gaps: each request
/// may be the only thing happening in the pool when it arrives.
async fn trickle(pool: Pool, client: usize, until: Instant, misses: Rc<RefCell<Vec<Miss>>>) -> u32 {
    let mut rng = Lcg(client as u64 + 1);
    let mut seq = 0;
    while Instant::now() < until {
        if let Some(miss) = request(&pool, client, seq, rng.below(3)).await {
            misses.borrow_mut().push(miss);
        }
        seq += 1;
        tokio::time::sleep(Duration::from_millis(rng.below(15))).await;
    }
    seq
}

/// Runs `bursting` and `trickling` clients against one pool for `length`; returns the requests
/// sent, the scalings seen and what went wrong (a request the soft kill
/// at the end failed, too).
async fn round(
    autoscale: Autoscale,
    max_in_flight: Option<usize>,
    (bursting, trickling): (usize, usize),
    length: Duration,
) -> (u32, usize, Vec<Miss>) {
    let mut settings = config(1).retries(2).timeout(Duration::from_secs(30));
    if let Some(n) = max_in_flight {
        settings = settings.max_in_flight(n);
    }
    let (pool, mut events) = start(test_worker!(), settings.autoscale(autoscale));
    online(&pool).await;
    // Counted as they come: the stream holds only so many undelivered events.
    let scalings = Rc::new(std::cell::Cell::new(0));
    let counter = tokio::task::spawn_local({
        let scalings = Rc::clone(&scalings);
        async move {
            while let Some(event) = events.next().await {
                if matches!(event, PoolEvent::Scaled { .. }) {
                    scalings.set(scalings.get() + 1);
                }
            }
        }
    });
    let until = Instant::now() + length;
    let misses = Rc::new(RefCell::new(Vec::new()));
    let mut clients = Vec::new();
    for client in 0..bursting {
        let task = bursts(pool.clone(), client, until, Rc::clone(&misses));
        clients.push(tokio::task::spawn_local(task));
    }
    for client in bursting..bursting + trickling {
        let task = trickle(pool.clone(), client, until, Rc::clone(&misses));
        clients.push(tokio::task::spawn_local(task));
    }
    let mut sent = 0;
    for client in clients {
        sent += client.await.expect("a client panicked");
    }
    counter.abort();
    let report = pool.soft_kill().await.expect("the pool is running");
    let mut misses = misses.take();
    if report.failed > 0 {
        misses.push(format!("the soft kill's report: {report:?}"));
    }
    (sent, scalings.get(), misses)
}

#[actix_rt::test]
#[ignore = "about a minute of load: run by hand (see the file's header)"]
async fn every_request_is_answered_while_the_pool_scales() {
    let busy = Arc::new(AtomicBool::new(true));
    let spinners: Vec<_> = (0..env_number("LPM_STRESS_BUSY", 0))
        .map(|_| {
            let busy = Arc::clone(&busy);
            std::thread::spawn(move || {
                while busy.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let total = Duration::from_secs(env_number("LPM_STRESS_SECS", 60));
    // Bursts and pauses scale the pool up and down; a request trickling in
    // alone meets a quiet pool, where nothing else would move a request the
    // pool forgot (at the minimum of 2, one busy worker and one idle one
    // make no scaling either).
    let rounds = [
        ((1, 4), 20, 10, Some(1), (4, 2)),
        ((1, 4), 300, 50, None, (4, 2)),
        ((2, 4), 20, 10, None, (0, 1)),
        ((1, 4), 300, 50, Some(1), (0, 1)),
    ];
    let mut misses = Vec::new();
    for ((min, max), idle_ms, cooldown_ms, max_in_flight, clients) in rounds {
        let autoscale = Autoscale::new(min, max)
            .backlog_wait(Duration::from_millis(20))
            .no_idle_for(Duration::from_millis(50))
            .idle_for(Duration::from_millis(idle_ms))
            .cooldown(Duration::from_millis(cooldown_ms))
            .sample_every(Duration::from_millis(10));
        let length = total / rounds.len() as u32;
        let (sent, scalings, missed) = round(autoscale, max_in_flight, clients, length).await;
        println!(
            "{min}..{max} workers, idle_for {idle_ms} ms, cooldown {cooldown_ms} ms, \
             max_in_flight {max_in_flight:?}, (bursting, trickling) clients {clients:?}: \
             {sent} requests, {scalings} scalings, {} missed",
            missed.len()
        );
        misses.extend(missed);
    }
    busy.store(false, Ordering::Relaxed);
    for spinner in spinners {
        spinner.join().expect("a busy thread panicked");
    }
    assert!(misses.is_empty(), "{misses:#?}");
}
