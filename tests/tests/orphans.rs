//! The workers' fate when their supervisor process is killed or signalled:
//! no orphans, ever.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use lpm_tests::{process_alive, wait_until, DEADLINE};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `test_supervisor` and the lines it prints.
struct Supervisor {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Supervisor {
    /// Starts `test_supervisor` with `workers` workers and a signal policy;
    /// returns it with the worker pids it printed once online.
    async fn start(workers: usize, policy: &str) -> (Supervisor, Vec<u32>) {
        Self::start_with(workers, policy, &[]).await
    }

    /// As [`Supervisor::start`], with arguments for the workers.
    async fn start_with(
        workers: usize,
        policy: &str,
        worker_args: &[&str],
    ) -> (Supervisor, Vec<u32>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_test_supervisor"))
            .arg(env!("CARGO_BIN_EXE_test_worker"))
            .arg(workers.to_string())
            .arg(policy)
            .args(worker_args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("test_supervisor starts");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut supervisor = Supervisor { child, lines };
        let mut pids = Vec::new();
        while pids.len() < workers {
            let line = supervisor.next_line().await;
            let pid: u32 = line
                .strip_prefix("pid ")
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {line:?}"));
            assert!(process_alive(pid), "worker {pid} runs");
            pids.push(pid);
        }
        (supervisor, pids)
    }

    /// The next line it prints, or fails the test.
    async fn next_line(&mut self) -> String {
        tokio::time::timeout(DEADLINE, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("test_supervisor printed nothing within {DEADLINE:?}"))
            .expect("reading test_supervisor's stdout")
            .expect("test_supervisor's stdout ended")
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.child.id().expect("the supervisor runs");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
            .expect("signal the supervisor");
    }

    fn still_runs(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("polling the supervisor")
            .is_none()
    }

    async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL the supervisor");
        self.child.wait().await.expect("reaping the supervisor");
    }
}

async fn wait_all_gone(what: &str, pids: &[u32]) {
    wait_until(what, DEADLINE, || async move {
        pids.iter().all(|pid| !process_alive(*pid))
    })
    .await;
}

/// SIGKILL a supervisor process: all of its workers are gone within 1 s
/// (the parent-death signal kills them at once).
#[actix_rt::test]
async fn killing_the_supervisor_leaves_no_worker_alive() {
    let (mut supervisor, pids) = Supervisor::start(3, "soft").await;
    let killed_at = std::time::Instant::now();
    supervisor
        .child
        .start_kill()
        .expect("SIGKILL the supervisor");
    let status = tokio::time::timeout(DEADLINE, supervisor.child.wait())
        .await
        .expect("the supervisor dies")
        .expect("reaping the supervisor");
    assert_eq!(status.signal(), Some(9));
    let pids = &pids;
    let within = std::time::Duration::from_secs(1).saturating_sub(killed_at.elapsed());
    wait_until(
        "every worker of the killed supervisor is gone, 1 s after the kill",
        within,
        || async move { pids.iter().all(|pid| !process_alive(*pid)) },
    )
    .await;
}

/// SIGTERM and SIGINT with the default policy soft-kill the pool: the
/// workers exit on their own (none killed), and the supervisor process lives
/// on (a library does not end its host process).
#[actix_rt::test]
async fn sigterm_and_sigint_soft_kill_the_pool_but_not_the_process() {
    use nix::sys::signal::Signal;
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let (mut supervisor, pids) = Supervisor::start(2, "soft").await;
        supervisor.signal(signal);
        assert_eq!(
            supervisor.next_line().await,
            format!("signal {}", signal as i32)
        );
        assert_eq!(supervisor.next_line().await, "stopped killed=0");
        wait_all_gone("every worker of the signalled supervisor is gone", &pids).await;
        assert!(supervisor.still_runs(), "the supervisor process still runs");
        supervisor.kill().await;
    }
}

/// With `SignalPolicy::HardKill`, SIGINT kills every worker at once.
#[actix_rt::test]
async fn sigint_with_the_hard_kill_policy_kills_the_workers() {
    let (mut supervisor, pids) = Supervisor::start(2, "hard").await;
    supervisor.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(supervisor.next_line().await, "signal 2");
    assert_eq!(supervisor.next_line().await, "stopped killed=2");
    wait_all_gone("every worker of the signalled supervisor is gone", &pids).await;
    assert!(supervisor.still_runs(), "the supervisor process still runs");
    supervisor.kill().await;
}

/// With `SignalPolicy::Ignore` the pool installs no handler: SIGINT ends the
/// process as usual, and its workers die with it.
#[actix_rt::test]
async fn with_the_ignore_policy_sigint_ends_the_process_and_its_workers() {
    let (mut supervisor, pids) = Supervisor::start(2, "ignore").await;
    supervisor.signal(nix::sys::signal::Signal::SIGINT);
    let status = tokio::time::timeout(DEADLINE, supervisor.child.wait())
        .await
        .expect("SIGINT ends the supervisor")
        .expect("reaping the supervisor");
    assert_eq!(status.signal(), Some(2));
    wait_all_gone("every worker of the interrupted supervisor is gone", &pids).await;
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

/// A second signal while a soft kill waits on its workers makes it a hard
/// kill: workers stuck in their soft-kill hook are killed at once.
#[actix_rt::test]
async fn a_second_signal_turns_the_soft_kill_into_a_hard_kill() {
    use nix::sys::signal::Signal;
    let (mut supervisor, pids) = Supervisor::start_with(2, "soft", &["--stuck-in-soft-kill"]).await;
    supervisor.signal(Signal::SIGINT);
    assert_eq!(supervisor.next_line().await, "signal 2");
    // The workers hold their soft kill; only the second signal ends them.
    supervisor.signal(Signal::SIGINT);
    assert_eq!(supervisor.next_line().await, "signal 2");
    assert_eq!(supervisor.next_line().await, "stopped killed=2");
    wait_all_gone(
        "every worker of the twice-signalled supervisor is gone",
        &pids,
    )
    .await;
    assert!(supervisor.still_runs(), "the supervisor process still runs");
    supervisor.kill().await;
}
