//! `fd_limit_supervisor`: a supervisor that runs out of descriptors on
//! purpose, in a process of its own (lowering the test harness's own limit
//! would starve every other test). It starts a pool of one
//! `<stream-worker-binary>`, lowers its soft `RLIMIT_NOFILE` to its highest
//! open descriptor and fills the holes below it, so that no descriptor can be
//! opened, then sends requests and prints one line per outcome:
//!
//! ```text
//! warm-up: <outcome>      a request stream before the limit
//! fds: <n>                open descriptors before the limit
//! stream: <outcome>       three request streams (each needs a pipe), at the limit
//! file: <outcome>         a file passed as it is (needs no new descriptor)
//! response: <outcome>     a response stream, whose pipe the kernel cannot hand us
//! fds: <n>                open descriptors once the limit is lifted
//! stream after: <outcome> a request stream once descriptors are free again
//! restarted: <outcome>    a request stream after the worker died out of
//!                         descriptors and the limit was lifted a second later
//! ```
//!
//! where `<outcome>` is `served <len>`, `descriptor <what>: <reason>` for
//! `PoolError::Descriptor`, or `error <debug>` for any other error.
//!
//! Usage: `fd_limit_supervisor <stream-worker-binary>`

use std::io::Write;
use std::time::Duration;

use lpm::{Config, Enqueue, Pool, PoolError, Response, SignalPolicy, WorkerCommand};
use lpm_tests::{open_fds, Digest, PatternReader, StreamOp};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[actix::main]
async fn main() {
    let Some(worker) = std::env::args().nth(1) else {
        eprintln!("usage: fd_limit_supervisor <stream-worker-binary>");
        std::process::exit(2);
    };
    let pool = Pool::start(
        WorkerCommand::new(worker),
        Config::default()
            .workers(1)
            .on_signal(SignalPolicy::Ignore)
            // Two deaths in the window give the slot up: a restart that
            // fails for want of descriptors must not count as one.
            .max_restarts(2)
            .restart_backoff(Duration::from_millis(10))
            .max_restart_backoff(Duration::from_millis(100)),
    );
    pool.online().await.expect("the pool comes online");
    // A stream first, so lazily opened descriptors are in the baseline.
    say("warm-up", &stream_request(&pool).await);
    say("fds", &open_fds().to_string());

    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let mut fillers = exhaust_descriptors();
    for _ in 0..3 {
        say("stream", &stream_request(&pool).await);
    }
    // A file goes as it is: one of the fillers (/dev/null, so 0 bytes).
    let file = fillers.pop().expect("one filler at least");
    let request = Enqueue::new(&StreamOp::Hash).unwrap().file(file);
    say("file", &outcome(pool.send(request).await));
    // Sending the file closed our copy: take that descriptor too.
    fillers.extend(exhaust_descriptors());
    let request = Enqueue::new(&StreamOp::Generate { len: 1000 }).unwrap();
    let response = match pool.send(request).await {
        Ok(response) => format!("served a stream by {}", response.pid()),
        Err(e) => outcome(Err(e)),
    };
    say("response", &response);
    drop(fillers);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("restore RLIMIT_NOFILE");
    say("fds", &open_fds().to_string());
    say("stream after", &stream_request(&pool).await);

    // The worker dies while the supervisor has no descriptor to restart it
    // with: the restarts fail (a socketpair needs two) until the limit goes.
    let pid = pool.health().await.expect("health")[0]
        .pid
        .expect("a worker");
    let mut fillers = exhaust_descriptors();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("SIGKILL the worker");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    fillers.clear();
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("restore RLIMIT_NOFILE");
    say("restarted", &stream_request(&pool).await);
    pool.hard_kill().await.expect("the pool is running");
}

/// Lowers the soft limit to just above the highest open descriptor and opens
/// `/dev/null` until no descriptor is left; the files returned hold them.
fn exhaust_descriptors() -> Vec<std::fs::File> {
    let highest = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .expect("some descriptor is open");
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, highest + 1, hard).expect("lower RLIMIT_NOFILE");
    let mut fillers = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => fillers.push(f),
            Err(e) if e.raw_os_error() == Some(nix::libc::EMFILE) => return fillers,
            Err(e) => panic!("opening /dev/null: {e}"),
        }
    }
}

async fn stream_request(pool: &Pool) -> String {
    let request = Enqueue::new(&StreamOp::Hash)
        .unwrap()
        .stream(PatternReader::new(1000));
    outcome(pool.send(request).await)
}

fn outcome(result: Result<Response, PoolError>) -> String {
    match result {
        Ok(response) => match response.data::<Digest>() {
            Ok(digest) => format!("served {} by {}", digest.len, response.pid()),
            Err(e) => format!("error {e:?}"),
        },
        Err(PoolError::Descriptor { what, reason }) => format!("descriptor {what}: {reason}"),
        Err(other) => format!("error {other:?}"),
    }
}

fn say(what: &str, line: &str) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{what}: {line}").expect("stdout is open");
    stdout.flush().expect("stdout is open");
}
