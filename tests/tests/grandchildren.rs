//! Processes a worker starts (grandchildren of the supervisor) share the
//! worker's process group and go with it, whichever way the worker ends; and
//! every worker is reaped, so no zombie is left behind.

use std::time::Duration;

use lpm::{Pool, PoolEvent};
use lpm_tests::{
    call, config, health, online, pids, process_alive, procfs, recv_or_fail, start, test_worker,
    wait_until, Op, DEADLINE,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long a grandchild may outlive its worker's end.
const GONE: Duration = Duration::from_secs(2);

/// Asks the pool's (only) worker to start `sleep 1000`; returns the worker's
/// pid and the grandchild's, after checking the grandchild is the worker's
/// child and in the worker's process group.
async fn worker_with_grandchild(pool: &Pool) -> (u32, u32) {
    let (grandchild, response): (u32, _) = call(pool, &Op::SpawnChild).await;
    let worker = response.pid();
    let stat = procfs::stat(grandchild).expect("the grandchild runs");
    assert_eq!(stat.ppid, worker, "the grandchild is the worker's child");
    assert_eq!(
        stat.pgrp, worker,
        "the grandchild is in the worker's process group, which the worker leads"
    );
    assert!(process_alive(grandchild));
    (worker, grandchild)
}

async fn wait_gone(what: &str, pid: u32) {
    wait_until(what, GONE, || async move { !process_alive(pid) }).await;
}

/// The worker's channel is close-on-exec: a program it starts holds no
/// socket, so it cannot keep the channel open after the worker is gone.
#[actix_rt::test]
async fn a_grandchild_does_not_inherit_the_channel() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    let (worker, grandchild) = worker_with_grandchild(&pool).await;
    let worker_fds = procfs::open_fds(worker);
    assert!(
        worker_fds
            .iter()
            .any(|(fd, target)| *fd == 3 && target.starts_with("socket:")),
        "the worker holds its channel on fd 3: {worker_fds:?}"
    );
    let fds = procfs::open_fds(grandchild);
    assert!(!fds.is_empty(), "the grandchild's descriptors are readable");
    assert!(
        fds.iter().all(|(_, target)| !target.starts_with("socket:")),
        "the grandchild inherited a socket: {fds:?}"
    );
    pool.hard_kill().await.expect("the pool is running");
}

/// A hard kill SIGKILLs each worker's process group: the grandchild dies too.
#[actix_rt::test]
async fn hard_kill_kills_the_grandchildren() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    let (worker, grandchild) = worker_with_grandchild(&pool).await;
    pool.hard_kill().await.expect("the pool is running");
    wait_gone("the worker is gone after the hard kill", worker).await;
    wait_gone("the grandchild is gone after the hard kill", grandchild).await;
    assert!(procfs::live_group_members(worker).is_empty());
}

/// A soft kill lets the worker exit by itself; its group is killed after
/// the reap, so the grandchild does not outlive it.
#[actix_rt::test]
async fn soft_kill_takes_the_grandchildren_too() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    let (worker, grandchild) = worker_with_grandchild(&pool).await;
    let report = pool.soft_kill().await.expect("the pool is running");
    assert_eq!(report.killed, 0, "the worker exited by itself: {report:?}");
    wait_gone("the worker is gone after the soft kill", worker).await;
    wait_gone("the grandchild is gone after the soft kill", grandchild).await;
    assert!(procfs::live_group_members(worker).is_empty());
}

/// A worker SIGKILLed from outside is reaped by the pool, which then kills
/// its process group: the grandchild dies, and a replacement serves.
#[actix_rt::test]
async fn a_killed_workers_grandchild_dies_after_the_reap() {
    let (pool, mut events) = start(test_worker!(), config(1));
    online(&pool).await;
    let (worker, grandchild) = worker_with_grandchild(&pool).await;
    kill(Pid::from_raw(worker as i32), Signal::SIGKILL).expect("SIGKILL the worker");
    recv_or_fail(
        &mut events,
        "ChildExited of the killed worker",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { pid, signal: Some(9), .. } if *pid == worker),
    )
    .await;
    wait_gone("the grandchild of the reaped worker is gone", grandchild).await;
    assert!(procfs::live_group_members(worker).is_empty());
    let spawned = recv_or_fail(
        &mut events,
        "the replacement's ChildSpawned",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildSpawned { slot: 0, .. }),
    )
    .await;
    let PoolEvent::ChildSpawned {
        pid: replacement, ..
    } = spawned
    else {
        unreachable!()
    };
    let (served_by, _): (u32, _) = call(&pool, &Op::Pid).await;
    assert_eq!(served_by, replacement);
    pool.soft_kill().await.expect("the pool is running");
}

/// Every worker ever started, those that died along the way and those a
/// soft kill ended, is reaped: none is left as a zombie child of ours.
#[actix_rt::test]
async fn every_worker_is_reaped() {
    let me = std::process::id();
    let (pool, mut events) = start(test_worker!(), config(3).retries(0));
    online(&pool).await;
    let mut spawned = pids(&health(&pool).await);
    // Two deaths on the way, each replaced.
    for _ in 0..2 {
        let answer = pool.enqueue(&Op::Exit(7)).await;
        assert!(
            matches!(answer, Err(lpm::PoolError::WorkerDied { .. })),
            "{answer:?}"
        );
        let known = spawned.clone();
        let replacement = recv_or_fail(
            &mut events,
            "a replacement's ChildSpawned",
            DEADLINE,
            |e| matches!(e, PoolEvent::ChildSpawned { pid, .. } if !known.contains(pid)),
        )
        .await;
        let PoolEvent::ChildSpawned { pid, .. } = replacement else {
            unreachable!()
        };
        spawned.push(pid);
    }
    pool.soft_kill().await.expect("the pool is running");
    assert_eq!(
        spawned.len(),
        5,
        "3 workers and 2 replacements: {spawned:?}"
    );
    let spawned = &spawned;
    wait_until(
        "every worker ever spawned is reaped (gone from /proc, or not ours any more)",
        GONE,
        || async move {
            spawned
                .iter()
                .all(|&pid| procfs::stat(pid).is_none_or(|s| s.ppid != me))
        },
    )
    .await;
    let zombies: Vec<_> = procfs::zombie_children(me)
        .into_iter()
        .filter(|z| spawned.contains(&z.pid))
        .collect();
    assert!(zombies.is_empty(), "unreaped workers: {zombies:?}");
}

/// A SIGKILLed supervisor takes its workers with it (parent-death signal),
/// and their grandchildren too: the group guard, which outlives it, kills
/// the worker's process group.
#[actix_rt::test]
async fn killing_the_supervisor_kills_the_grandchildren() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    // The worker is a shell that starts `sleep 1000`, then becomes test_worker.
    let script = format!("sleep 1000 & exec {}", env!("CARGO_BIN_EXE_test_worker"));
    let mut supervisor = tokio::process::Command::new(env!("CARGO_BIN_EXE_test_supervisor"))
        .args(["/bin/sh", "1", "soft", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("test_supervisor starts");
    let mut lines = BufReader::new(supervisor.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("test_supervisor prints its worker's pid")
        .expect("reading test_supervisor's stdout")
        .expect("a line");
    let worker: u32 = line
        .strip_prefix("pid ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let grandchildren = procfs::children(worker);
    assert_eq!(grandchildren.len(), 1, "{grandchildren:?}");
    let grandchild = grandchildren[0].pid;
    assert_eq!(grandchildren[0].pgrp, worker);

    supervisor.start_kill().expect("SIGKILL the supervisor");
    supervisor.wait().await.expect("reaping the supervisor");
    wait_gone("the worker of the killed supervisor is gone", worker).await;
    let until = std::time::Instant::now() + GONE;
    while process_alive(grandchild) && std::time::Instant::now() < until {
        tokio::time::sleep(lpm_tests::POLL).await;
    }
    if process_alive(grandchild) {
        // Clean up before failing: the grandchild would otherwise run for 1000 s.
        let _ = kill(Pid::from_raw(grandchild as i32), Signal::SIGKILL);
        panic!(
            "the grandchild {grandchild} outlived its SIGKILLed supervisor and worker by {GONE:?}"
        );
    }
}
