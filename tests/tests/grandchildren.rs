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

/// A hard kill SIGKILLs each worker's process group: the grandchild dies too.
#[actix_rt::test]
async fn hard_kill_kills_the_grandchildren() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    let (worker, grandchild) = worker_with_grandchild(&pool).await;
    pool.hard_kill().await;
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
    let report = pool.soft_kill().await;
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
    pool.soft_kill().await;
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
    pool.soft_kill().await;
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
