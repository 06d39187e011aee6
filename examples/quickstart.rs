//! Quickstart: a supervisor with four workers serving a few thousand typed
//! calls (`CountPrimes` answers `Primes`, checked by the compiler on both sides),
//! with a progress line from `Pool::metrics` every 500 ms and the health
//! table at the end.
//!
//! The binary is both sides: started normally it is the supervisor and
//! re-executes itself as each worker (the worker sees `LPM_IPC_FD` in its
//! environment). Run it with:
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lpm::worker::{CallContext, Worker};
use lpm::{Call, Config, Enqueue, HealthTable, Pool, PoolEvent, WorkerCommand};
use serde::{Deserialize, Serialize};

/// What the supervisor asks: count the primes below `below`.
#[derive(Serialize, Deserialize)]
struct CountPrimes {
    below: u64,
}

/// What a worker answers.
#[derive(Serialize, Deserialize)]
struct Primes {
    count: u64,
}

/// The call's wire name, and the reply type it promises.
impl Call for CountPrimes {
    const NAME: &'static str = "count_primes";
    type Reply = Primes;
}

const REQUESTS: u64 = 4_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os(lpm::IPC_FD_ENV).is_some() {
        return worker_main();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    actix_rt::System::new().block_on(supervisor_main())
}

async fn supervisor_main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::start(
        WorkerCommand::new(std::env::current_exe()?),
        Config::default()
            .workers(4)
            .timeout(Duration::from_secs(5))
            .retries(1),
    );
    let mut events = pool.events();
    pool.online().await?;
    println!("pool online: 4 workers ready");

    let started = Instant::now();
    let progress = actix_rt::spawn(show_progress(pool.clone()));
    let jobs = (0..REQUESTS).map(|i| {
        let pool = pool.clone();
        async move {
            let call = CountPrimes {
                below: 20_000 + i % 10_000,
            };
            // `pool.call(call)` answers the `Primes` alone; this also keeps
            // the response's id, creation time and pid.
            pool.send(Enqueue::call(call).with_response()).await
        }
    });
    let results = futures::future::join_all(jobs).await;
    let elapsed = started.elapsed();
    progress.abort();

    let mut served_by: BTreeMap<u32, u64> = BTreeMap::new();
    let mut failed = 0;
    let mut first = None;
    for result in &results {
        match result {
            Ok((primes, response)) => {
                *served_by.entry(response.pid()).or_default() += 1;
                first.get_or_insert((primes, response));
            }
            Err(e) => {
                failed += 1;
                eprintln!("request failed: {e}");
            }
        }
    }
    if let Some((primes, r)) = first {
        println!(
            "first response: id {} created {:?} ago, served by pid {}: {} primes",
            r.id(),
            r.created_at().elapsed().unwrap_or_default(),
            r.pid(),
            primes.count
        );
    }
    println!(
        "{} requests in {:.1?} ({:.0} req/s), {} failed",
        REQUESTS,
        elapsed,
        REQUESTS as f64 / elapsed.as_secs_f64(),
        failed
    );
    for (pid, n) in &served_by {
        println!("  pid {pid:>7} served {n}");
    }

    println!("metrics: {}", pool.metrics().await?);
    print!("{}", HealthTable(&pool.health().await?));

    let report = pool.soft_kill().await?;
    println!(
        "soft kill done: served {}, failed {}, killed {}",
        report.served, report.failed, report.killed
    );
    let mut exits = 0;
    while let Ok(Some(event)) = tokio::time::timeout(
        Duration::from_millis(100),
        futures::StreamExt::next(&mut events),
    )
    .await
    {
        if let PoolEvent::ChildExited { .. } = event {
            exits += 1;
        }
    }
    println!("{exits} worker exits observed");
    Ok(())
}

/// Prints a line from the pool's metrics every 500 ms: served, in flight, queue.
async fn show_progress(pool: Pool) {
    let mut every = tokio::time::interval(Duration::from_millis(500));
    every.tick().await;
    loop {
        every.tick().await;
        match pool.metrics().await {
            Ok(metrics) => println!("  {metrics}"),
            Err(_) => return,
        }
    }
}

#[tokio::main]
async fn worker_main() -> Result<(), Box<dyn std::error::Error>> {
    let worker = Worker::from_env().await?;
    worker.handle(|job: CountPrimes, _: CallContext| async move {
        let count = (2..job.below).filter(|&n| is_prime(n)).count() as u64;
        Ok(Primes { count })
    });
    worker.ready();
    worker.run().await?;
    Ok(())
}

fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}
