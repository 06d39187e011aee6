//! `test_supervisor`: a minimal supervisor process for the tests that kill or
//! signal a supervisor. It starts a pool of `<workers>` copies of
//! `<worker-binary>` with the given signal policy (`soft`, `hard` or
//! `ignore`; `soft` by default), prints `pid <n>` for each worker once the
//! pool is online, then `signal <n>` and `stopped killed=<n>` as those pool
//! events arrive, and runs until it is killed.
//!
//! Usage: `test_supervisor <worker-binary> <workers> [soft|hard|ignore] [worker args...]`
//!
//! With `LPM_TEST_TRANSPORT=stdio` its workers use the stdio transport (the
//! ssh tests start `ssh ... WORKER` this way).

use std::io::Write;

use futures::StreamExt;
use lpm::{Config, Pool, PoolEvent, SignalPolicy, Transport, WorkerCommand};

#[actix::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(worker), Some(workers)) = (args.next(), args.next().and_then(|n| n.parse().ok()))
    else {
        eprintln!("usage: test_supervisor <worker-binary> <workers> [soft|hard|ignore]");
        std::process::exit(2);
    };
    let policy = match args.next().as_deref() {
        None | Some("soft") => SignalPolicy::SoftKill,
        Some("hard") => SignalPolicy::HardKill,
        Some("ignore") => SignalPolicy::Ignore,
        Some(other) => {
            eprintln!("unknown signal policy {other:?}");
            std::process::exit(2);
        }
    };
    if policy == SignalPolicy::Ignore {
        // A shell may start background jobs with SIGINT ignored; the test of
        // this policy needs the default action, as a terminal would give it.
        // SAFETY: no other thread exists yet, and SIG_DFL installs no handler code.
        unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGINT,
                nix::sys::signal::SigHandler::SigDfl,
            )
        }
        .expect("restore SIGINT's default action");
    }
    let transport = match std::env::var("LPM_TEST_TRANSPORT").as_deref() {
        Ok("stdio") => Transport::Stdio,
        _ => Transport::Socketpair,
    };
    let pool = Pool::start(
        WorkerCommand::new(worker).args(args).transport(transport),
        Config::default().workers(workers).on_signal(policy),
    );
    let mut events = pool.events();
    pool.online().await.expect("pool did not come online");
    let health = pool.health().await.expect("the pool answers health");
    for pid in health.iter().filter_map(|w| w.pid) {
        say(&format!("pid {pid}"));
    }
    while let Some(event) = events.next().await {
        match event {
            PoolEvent::Signal { signal } => say(&format!("signal {signal}")),
            PoolEvent::Stopped(report) => say(&format!("stopped killed={}", report.killed)),
            _ => {}
        }
    }
    std::future::pending::<()>().await;
}

fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").expect("stdout is open");
    stdout.flush().expect("stdout is open");
}
