//! Transports and worker languages: W1 (sequential round trips, one worker:
//! p50 and p99) and W2 (two workers, 256 requests in flight: requests/s) of
//! the conformance workers' `echo` call, for each implementation and
//! transport. Every worker serves the same call with the JSON codec, so the
//! rows compare like with like; the first row is the baseline of the ratios.
//!
//! ```text
//! cargo bench -p lpm-tests --bench transports
//! LPM_BENCH_ONLY=rust-socketpair,rust-stdio cargo bench -p lpm-tests --bench transports
//! ```
//!
//! `LPM_BENCH_QUICK=1` (and `cargo test --benches`) makes a short run that
//! only checks the bench works. `LPM_BENCH_ONLY` takes row names.

use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use lpm::{Codec, Config, Pool, SignalPolicy, Transport, WorkerCommand};
use lpm_tests::conformance::Echo;
use lpm_tests::sshd::Sshd;
use serde_json::Value;

/// One row: a worker implementation over one transport.
struct Row {
    name: &'static str,
    command: Box<dyn Fn() -> WorkerCommand>,
    /// The server the ssh row's workers log in to, kept running.
    _sshd: Option<std::rc::Rc<Sshd>>,
}

fn rows() -> Vec<Row> {
    let rust = || WorkerCommand::new(env!("CARGO_BIN_EXE_conformance_worker"));
    let python = || {
        WorkerCommand::new("python3").arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../python/examples/conformance_worker.py"
        ))
    };
    let node = || {
        WorkerCommand::new("node").arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../node/examples/conformance_worker.js"
        ))
    };
    let stdio = |command: WorkerCommand| command.transport(Transport::Stdio);
    vec![
        Row::new("rust-socketpair", rust),
        Row::new("rust-stdio", move || stdio(rust())),
        Row::new("python-socketpair", python),
        Row::new("python-stdio", move || stdio(python())),
        Row::new("node-socketpair", node),
        Row::new("node-stdio", move || stdio(node())),
        Row::ssh(),
    ]
}

impl Row {
    fn new(name: &'static str, command: impl Fn() -> WorkerCommand + 'static) -> Row {
        Row {
            name,
            command: Box::new(command),
            _sshd: None,
        }
    }

    /// The Rust worker through `ssh` to a throwaway sshd on 127.0.0.1.
    fn ssh() -> Row {
        let sshd = std::rc::Rc::new(Sshd::start());
        let server = std::rc::Rc::clone(&sshd);
        Row {
            name: "rust-ssh-127.0.0.1",
            command: Box::new(move || {
                WorkerCommand::new("ssh")
                    .args(server.ssh_args())
                    .arg(env!("CARGO_BIN_EXE_conformance_worker"))
                    .transport(Transport::Stdio)
            }),
            _sshd: Some(sshd),
        }
    }
}

struct Params {
    quick: bool,
    only: Option<Vec<String>>,
}

impl Params {
    fn from_env() -> Params {
        let bench = std::env::args().any(|a| a == "--bench");
        Params {
            quick: !bench || std::env::var_os("LPM_BENCH_QUICK").is_some(),
            only: std::env::var("LPM_BENCH_ONLY")
                .ok()
                .map(|v| v.split(',').map(str::to_owned).collect()),
        }
    }

    fn runs(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == name))
    }
}

fn start(command: WorkerCommand, workers: usize) -> Pool {
    Pool::start(
        command,
        Config::default()
            .workers(workers)
            .codec(Codec::Json)
            .on_signal(SignalPolicy::Ignore)
            .timeout(Duration::from_secs(30)),
    )
}

/// The 64-character string every request carries.
fn payload() -> Value {
    Value::String("x".repeat(64))
}

/// W1: `n` sequential calls after a warm-up; (p50, p99) in µs.
async fn w1(command: WorkerCommand, n: usize) -> (f64, f64) {
    let pool = start(command, 1);
    pool.online().await.expect("the pool comes online");
    let value = payload();
    for _ in 0..n / 10 {
        pool.call(Echo(value.clone())).await.expect("echo");
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        pool.call(Echo(value.clone())).await.expect("echo");
        samples.push(t.elapsed().as_nanos() as f64 / 1e3);
    }
    pool.soft_kill().await.expect("soft kill");
    samples.sort_by(f64::total_cmp);
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    (at(0.5), at(0.99))
}

/// W2: two workers, 256 calls in flight for `length`; requests/s.
async fn w2(command: WorkerCommand, length: Duration) -> f64 {
    let pool = start(command, 2);
    pool.online().await.expect("the pool comes online");
    let value = payload();
    let mut in_flight = FuturesUnordered::new();
    for _ in 0..256 {
        in_flight.push(pool.call(Echo(value.clone())));
    }
    // Warm up, then count.
    let warm = Instant::now() + length / 4;
    while Instant::now() < warm {
        in_flight.next().await.expect("in flight").expect("echo");
        in_flight.push(pool.call(Echo(value.clone())));
    }
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < length {
        in_flight.next().await.expect("in flight").expect("echo");
        done += 1;
        in_flight.push(pool.call(Echo(value.clone())));
    }
    let rate = done as f64 / start.elapsed().as_secs_f64();
    while let Some(answer) = in_flight.next().await {
        answer.expect("echo");
    }
    drop(in_flight);
    pool.soft_kill().await.expect("soft kill");
    rate
}

fn main() {
    let params = Params::from_env();
    let (n, length) = if params.quick {
        (200, Duration::from_millis(300))
    } else {
        (5_000, Duration::from_secs(3))
    };
    let system = actix_rt::System::new();
    let mut baseline: Option<(f64, f64)> = None;
    println!(
        "{:<18} {:>10} {:>10} {:>12} {:>8} {:>8}",
        "workers", "W1 p50 µs", "W1 p99 µs", "W2 req/s", "W1 ×", "W2 ×"
    );
    for row in rows().into_iter().filter(|r| params.runs(r.name)) {
        // The ssh row starts its server when the rows are listed.
        let (p50, p99) = system.block_on(w1((row.command)(), n));
        let rate = system.block_on(w2((row.command)(), length));
        let (base_p50, base_rate) = *baseline.get_or_insert((p50, rate));
        println!(
            "{:<18} {:>10.1} {:>10.1} {:>12.0} {:>8.2} {:>8.2}",
            row.name,
            p50,
            p99,
            rate,
            p50 / base_p50,
            rate / base_rate
        );
    }
}
