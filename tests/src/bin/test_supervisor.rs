//! `test_supervisor`: a minimal supervisor process for the test that kills
//! a supervisor. It starts a pool of `<workers>` copies of `<worker-binary>`,
//! prints `pid <n>` for each worker once the pool is online, then waits
//! forever.
//!
//! Usage: `test_supervisor <worker-binary> <workers>`

use std::io::Write;

use lpm::{Config, Pool, WorkerCommand};

#[actix::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(worker), Some(workers)) = (args.next(), args.next().and_then(|n| n.parse().ok()))
    else {
        eprintln!("usage: test_supervisor <worker-binary> <workers>");
        std::process::exit(2);
    };
    let pool = Pool::start(
        WorkerCommand::new(worker),
        Config::default().workers(workers),
    );
    pool.online().await.expect("pool did not come online");
    let health = pool.health().await.expect("the pool answers health");
    let mut stdout = std::io::stdout().lock();
    for pid in health.iter().filter_map(|w| w.pid) {
        writeln!(stdout, "pid {pid}").expect("stdout is open");
    }
    stdout.flush().expect("stdout is open");
    drop(stdout);
    std::future::pending::<()>().await;
}
