//! The workers' fate when their supervisor process is killed or signalled:
//! no orphans, ever.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use lpm_tests::{process_alive, wait_until, DEADLINE};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts `test_supervisor` with `workers` workers; returns it with the
/// worker pids it printed once online.
async fn start_supervisor(workers: usize) -> (Child, Vec<u32>) {
    let mut supervisor = Command::new(env!("CARGO_BIN_EXE_test_supervisor"))
        .arg(env!("CARGO_BIN_EXE_test_worker"))
        .arg(workers.to_string())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("test_supervisor starts");
    let mut lines = BufReader::new(supervisor.stdout.take().unwrap()).lines();
    let mut pids = Vec::new();
    while pids.len() < workers {
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no worker pid from test_supervisor within {DEADLINE:?}"))
            .expect("reading test_supervisor's stdout")
            .expect("test_supervisor printed every worker pid");
        let pid: u32 = line
            .strip_prefix("pid ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        assert!(process_alive(pid), "worker {pid} runs");
        pids.push(pid);
    }
    (supervisor, pids)
}

async fn wait_all_gone(what: &str, pids: &[u32]) {
    wait_until(what, DEADLINE, || async move {
        pids.iter().all(|pid| !process_alive(*pid))
    })
    .await;
}

/// SIGKILL a supervisor process: none of its workers is left alive.
#[actix_rt::test]
async fn killing_the_supervisor_leaves_no_worker_alive() {
    let (mut supervisor, pids) = start_supervisor(3).await;
    supervisor.start_kill().expect("SIGKILL the supervisor");
    let status = tokio::time::timeout(DEADLINE, supervisor.wait())
        .await
        .expect("the supervisor dies")
        .expect("reaping the supervisor");
    assert_eq!(status.signal(), Some(9));
    wait_all_gone("every worker of the killed supervisor is gone", &pids).await;
}

/// SIGTERM to a supervisor with the default signal policy soft-kills the
/// pool: the workers exit, and the supervisor process itself lives on (a
/// library does not end its host process).
#[actix_rt::test]
async fn sigterm_soft_kills_the_pool_but_not_the_process() {
    let (mut supervisor, pids) = start_supervisor(2).await;
    let pid = supervisor.id().expect("the supervisor runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM the supervisor");
    wait_all_gone("every worker of the signalled supervisor is gone", &pids).await;
    assert!(
        supervisor
            .try_wait()
            .expect("polling the supervisor")
            .is_none(),
        "the supervisor process still runs"
    );
    supervisor.start_kill().expect("SIGKILL the supervisor");
    supervisor.wait().await.expect("reaping the supervisor");
}

/// Dropping the last handle of a pool hard-kills it: its workers do not
/// outlive the `Pool`.
#[actix_rt::test]
async fn dropping_the_pool_kills_its_workers() {
    let (pool, _events) = lpm_tests::start(lpm_tests::test_worker!(), lpm_tests::config(2));
    lpm_tests::online(&pool).await;
    let pids = lpm_tests::pids(&lpm_tests::health(&pool).await);
    assert_eq!(pids.len(), 2);
    drop(pool);
    for pid in pids {
        wait_until(&format!("worker {pid} gone"), DEADLINE, || async move {
            !process_alive(pid)
        })
        .await;
    }
}
