//! Streams and sockets while workers are SIGKILLed at random: every request
//! resolves once, with a correct answer or an error that says the worker
//! died; a response stream is either whole or fails (never silently short);
//! and once the chaos stops the pool is back at strength, holds no socket and
//! no request, and has not leaked a single descriptor.
//!
//! `LPM_STREAM_CHAOS_REQUESTS` sets the number of requests (300 by default).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lpm::{Config, Enqueue, Pool, PoolError, WorkerCommand, WorkerState};
use lpm_tests::{
    assert_no_fd_leaked, connection, hash_reader, open_fds, start_stream_pool, wait_for_health,
    PatternReader, StreamOp, DEADLINE,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const WORKERS: usize = 3;

/// How one request ended.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Outcome {
    /// Answered, and its stream or connection checked out.
    Whole,
    /// Its worker died: a typed error, or a response stream that failed.
    WorkerDied,
}

/// A small xorshift generator: the chaos is repeatable from its printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn died(e: &PoolError) -> bool {
    matches!(
        e,
        PoolError::WorkerDied { .. } | PoolError::NotRetried { .. } | PoolError::Quarantined { .. }
    )
}

async fn request_stream(pool: &Pool, len: u64) -> Outcome {
    let request = Enqueue::new(&StreamOp::Hash)
        .unwrap()
        .stream(PatternReader::new(len));
    match pool.send(request).await {
        Ok(response) => {
            let digest: lpm_tests::Digest = response.data().unwrap();
            let expected = hash_reader(PatternReader::new(len)).await.unwrap();
            assert_eq!(digest, expected, "the worker read the whole stream");
            Outcome::Whole
        }
        Err(e) if died(&e) => Outcome::WorkerDied,
        Err(e) => panic!("a request stream failed with {e:?}"),
    }
}

async fn response_stream(pool: &Pool, len: u64) -> Outcome {
    match pool.enqueue(&StreamOp::Generate { len }).await {
        Ok(response) => match hash_reader(response.take_stream().unwrap()).await {
            Ok(digest) => {
                let expected = hash_reader(PatternReader::new(len)).await.unwrap();
                assert_eq!(digest, expected, "a stream that ends is whole");
                Outcome::Whole
            }
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
                Outcome::WorkerDied
            }
        },
        Err(e) if died(&e) => Outcome::WorkerDied,
        Err(e) => panic!("a response stream request failed with {e:?}"),
    }
}

async fn socket(pool: &Pool, listener: &TcpListener) -> Outcome {
    let (client, request) = connection(listener, &StreamOp::Serve).await;
    match pool.send(request).await {
        Ok(response) => {
            let (read, mut write) = client.into_split();
            let mut lines = BufReader::new(read).lines();
            let asked = write.write_all(b"ping\n").await;
            match (asked, lines.next_line().await) {
                (Ok(()), Ok(Some(line))) => {
                    assert_eq!(line, format!("{} ping", response.pid()));
                    Outcome::Whole
                }
                // The worker serving it was killed after its ack.
                _ => Outcome::WorkerDied,
            }
        }
        Err(e) if died(&e) => Outcome::WorkerDied,
        Err(e) => panic!("a socket request failed with {e:?}"),
    }
}

#[actix_rt::test]
async fn streams_and_sockets_survive_chaos_without_leaking() {
    let requests: u64 = std::env::var("LPM_STREAM_CHAOS_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("stream chaos: {requests} requests, seed {seed}");
    let pool = start_stream_pool(
        WorkerCommand::new(env!("CARGO_BIN_EXE_stream_worker")),
        Config::default()
            .workers(WORKERS)
            .retries(2)
            .max_restarts(u32::MAX)
            .restart_backoff(Duration::from_millis(5))
            .max_restart_backoff(Duration::from_millis(50)),
    )
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // One of each first, so lazily opened descriptors are in the baseline.
    assert_eq!(request_stream(&pool, 10).await, Outcome::Whole);
    assert_eq!(response_stream(&pool, 10).await, Outcome::Whole);
    assert_eq!(socket(&pool, &listener).await, Outcome::Whole);
    wait_for_health(&pool, "the warm-up socket closed", DEADLINE, |h| {
        h.iter().all(|w| w.sockets == 0)
    })
    .await;
    let before = open_fds();

    let stop = Arc::new(AtomicBool::new(false));
    let chaos = {
        let pool = pool.clone();
        let stop = Arc::clone(&stop);
        async move {
            let mut rng = Rng(seed);
            let mut kills = 0u32;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100 + rng.next() % 100)).await;
                let pids: Vec<u32> = pool
                    .health()
                    .await
                    .unwrap()
                    .iter()
                    .filter_map(|w| w.pid)
                    .collect();
                if let Some(&pid) = pids.get(rng.next() as usize % pids.len().max(1)) {
                    if kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok() {
                        kills += 1;
                    }
                }
            }
            kills
        }
    };
    let work = {
        let pool = &pool;
        let listener = &listener;
        futures::stream::iter(0..requests)
            .map(move |i| async move {
                let len = 64 * 1024 + (i * 7919) % (512 * 1024);
                match i % 3 {
                    0 => request_stream(pool, len).await,
                    1 => response_stream(pool, len).await,
                    _ => socket(pool, listener).await,
                }
            })
            .buffer_unordered(12)
            .collect::<Vec<Outcome>>()
    };
    let all_resolve = Duration::from_secs(20 + requests / 20);
    let (outcomes, kills) = tokio::time::timeout(all_resolve, async {
        let chaos = tokio::task::spawn_local(chaos);
        let outcomes = work.await;
        stop.store(true, Ordering::Relaxed);
        (outcomes, chaos.await.unwrap())
    })
    .await
    .unwrap_or_else(|_| panic!("not every request resolved within {all_resolve:?}"));
    let whole = outcomes.iter().filter(|&&o| o == Outcome::Whole).count();
    println!(
        "stream chaos: {} resolved, whole={whole}, worker died={}, kills={kills}",
        outcomes.len(),
        outcomes.len() - whole
    );
    assert_eq!(outcomes.len() as u64, requests);
    assert!(whole > 0);

    wait_for_health(&pool, "the pool back at strength, idle", DEADLINE, |h| {
        h.len() == WORKERS
            && h.iter()
                .all(|w| w.state == WorkerState::Ready && w.sockets == 0 && w.in_flight == 0)
    })
    .await;
    assert_no_fd_leaked(before).await;
    pool.hard_kill().await.expect("the pool is running");
}
