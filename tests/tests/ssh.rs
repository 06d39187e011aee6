//! Workers on another machine: a pool whose workers are
//! `ssh -i KEY -p PORT 127.0.0.1 WORKER` over the stdio transport, against a
//! real `sshd` on 127.0.0.1 with throwaway keys (`lpm_tests::sshd`).

use std::time::Instant;

use futures::StreamExt;
use lpm::prelude::*;
use lpm::{Codec, Transport, UsageSource, WorkerCommand};
use lpm_tests::conformance::{Add, Sleep, WhoAmI, GOODBYE};
use lpm_tests::procfs::live_descendants;
use lpm_tests::sshd::Sshd;
use lpm_tests::{config, online, process_alive, recv_or_fail, start, wait_until, within, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The Rust conformance worker on the "remote" machine, through `ssh`.
fn over_ssh(sshd: &Sshd) -> WorkerCommand {
    WorkerCommand::new("ssh")
        .args(sshd.ssh_args())
        .arg(env!("CARGO_BIN_EXE_conformance_worker"))
        .transport(Transport::Stdio)
}

fn ssh_config(workers: usize) -> Config {
    config(workers).codec(Codec::Json)
}

/// The remote pids, as the workers themselves see them: one worker per
/// slot, asked by slot through repeated calls until each answered.
async fn remote_pids(pool: &Pool, workers: usize) -> Vec<u32> {
    let until = Instant::now() + DEADLINE;
    let mut pids = Vec::new();
    while pids.len() < workers {
        assert!(Instant::now() < until, "only {pids:?} answered");
        // Several at once, so the balancer spreads them over the workers.
        let asks = (0..8).map(|_| pool.call(WhoAmI));
        for me in within("slot", futures::future::join_all(asks)).await {
            let pid = me.expect("slot").pid;
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
    }
    pids
}

#[actix_rt::test]
async fn requests_go_to_remote_workers() {
    let sshd = Sshd::start();
    let (pool, _events) = start(over_ssh(&sshd), ssh_config(2));
    online(&pool).await;
    for i in 0..200 {
        assert_eq!(
            within("add", pool.call(Add { a: i, b: 1 })).await.unwrap(),
            i + 1
        );
    }
    let remote = remote_pids(&pool, 2).await;
    let workers = live_descendants(sshd.pid());
    for pid in &remote {
        assert!(workers.contains(pid), "worker {pid} runs under sshd");
    }
    // The pool cannot read a remote worker's /proc: the workers report.
    lpm_tests::wait_for_health(&pool, "usage reported by the workers", DEADLINE, |h| {
        h.iter()
            .all(|w| w.usage == UsageSource::Reported && w.rss > 0)
    })
    .await;
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn a_killed_remote_worker_is_restarted() {
    let sshd = Sshd::start();
    let (pool, mut events) = start(over_ssh(&sshd), ssh_config(1));
    online(&pool).await;
    let before = within("slot", pool.call(WhoAmI)).await.unwrap().pid;
    kill(Pid::from_raw(before as i32), Signal::SIGKILL).unwrap();
    recv_or_fail(&mut events, "the launcher's exit", DEADLINE, |e| {
        matches!(e, PoolEvent::ChildExited { .. })
    })
    .await;
    recv_or_fail(&mut events, "a new worker", DEADLINE, |e| {
        matches!(e, PoolEvent::ChildSpawned { .. })
    })
    .await;
    online(&pool).await;
    let after = within("slot", pool.call(WhoAmI)).await.unwrap().pid;
    assert_ne!(before, after);
    assert!(!process_alive(before));
    assert_eq!(
        within("add", pool.call(Add { a: 2, b: 2 })).await.unwrap(),
        4
    );
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn a_soft_kill_drains_remote_workers() {
    let sshd = Sshd::start();
    let (pool, mut events) = start(over_ssh(&sshd), ssh_config(1));
    online(&pool).await;
    let remote = within("slot", pool.call(WhoAmI)).await.unwrap().pid;
    let sleeping: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.call(Sleep { ms: 300 }).await })
        })
        .collect();
    lpm_tests::wait_for_health(&pool, "three sleeps in flight", DEADLINE, |h| {
        h[0].in_flight == 3
    })
    .await;
    within("the soft kill", pool.soft_kill()).await.unwrap();
    for s in sleeping {
        assert_eq!(within("a drained sleep", s).await.unwrap().unwrap(), 300);
    }
    let mut said_goodbye = false;
    while let Some(event) = events.next().await {
        match event {
            PoolEvent::Custom(c) if c.name() == GOODBYE => said_goodbye = true,
            PoolEvent::Stopped(_) => break,
            _ => {}
        }
    }
    assert!(said_goodbye, "the remote soft-kill hook ran");
    wait_until("the remote worker exits", DEADLINE, || async {
        !process_alive(remote)
    })
    .await;
}

/// The orphan rule across machines: SIGKILL the supervisor process, and its
/// remote workers read EOF and exit.
#[actix_rt::test]
async fn remote_workers_exit_when_their_supervisor_is_sigkilled() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let sshd = Sshd::start();
    let mut supervisor = tokio::process::Command::new(env!("CARGO_BIN_EXE_test_supervisor"))
        .arg("ssh")
        .arg("2")
        .arg("soft")
        .args(sshd.ssh_args())
        .arg(env!("CARGO_BIN_EXE_conformance_worker"))
        .env("LPM_TEST_TRANSPORT", "stdio")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("test_supervisor starts");
    let mut lines = BufReader::new(supervisor.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let line = within("the supervisor's report", lines.next_line())
            .await
            .unwrap();
        assert!(line.unwrap_or_default().starts_with("pid "));
    }
    let remote: Vec<u32> = live_descendants(sshd.pid())
        .into_iter()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
                exe.to_string_lossy()
                    .ends_with(env!("CARGO_BIN_EXE_conformance_worker"))
            })
        })
        .collect();
    assert_eq!(remote.len(), 2, "two remote workers under sshd");
    let killed_at = Instant::now();
    supervisor.start_kill().unwrap();
    supervisor.wait().await.unwrap();
    wait_until("the remote workers exit", DEADLINE, || async {
        remote.iter().all(|pid| !process_alive(*pid))
    })
    .await;
    let took = killed_at.elapsed();
    eprintln!("remote workers gone {took:?} after their supervisor's SIGKILL");
}
