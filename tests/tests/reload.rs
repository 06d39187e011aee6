//! Rolling reload with real workers: under load no request fails and the
//! answers switch from the old version to the new; a successor that cannot
//! get ready stops the reload and the old workers keep serving; a second
//! reload meanwhile is refused.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use lpm::{PoolError, PoolEvent, Reload, StartFailure, WorkerCommand};
use lpm_tests::{
    call, config, health, online, pids, procfs, recv_n_or_fail, recv_or_fail, start, test_worker,
    wait_for_health, within, Op, DEADLINE, EXIT_AT_START_CODE, VERSION_ENV,
};

fn version(command: WorkerCommand, v: &str) -> WorkerCommand {
    command.env(VERSION_ENV, v)
}

async fn answered_version(pool: &lpm::Pool) -> String {
    call::<String>(pool, &Op::Version).await.0
}

/// Ends a worker with `Op::Exit` and answers the pid of the worker that
/// restarts in its slot, once it is ready.
async fn restart_one(pool: &lpm::Pool, events: &mut lpm::EventStream) -> u32 {
    let _ = pool.enqueue(&Op::Exit(3)).await;
    let exited = recv_or_fail(events, "the worker's exit", DEADLINE, |e| {
        matches!(e, PoolEvent::ChildExited { code: Some(3), .. })
    })
    .await;
    let PoolEvent::ChildExited { slot: dead, .. } = exited else {
        unreachable!("matched above")
    };
    let spawned = recv_or_fail(
        events,
        "the restart",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildSpawned { slot, .. } if *slot == dead),
    )
    .await;
    let PoolEvent::ChildSpawned { pid, .. } = spawned else {
        unreachable!("matched above")
    };
    wait_for_health(pool, "the restarted worker ready", DEADLINE, |h| {
        h.iter()
            .any(|w| w.pid == Some(pid) && w.state == lpm::WorkerState::Ready)
    })
    .await;
    pid
}

#[actix_rt::test]
async fn a_reload_under_load_fails_no_request_and_switches_to_the_new_version() {
    let (pool, mut events) = start(version(test_worker!(), "v1"), config(3));
    online(&pool).await;
    let old: HashSet<u32> = pids(&health(&pool).await).into_iter().collect();
    // Eight callers ask for the version in a loop until told to stop, each
    // noting whether it asked after every old worker had exited; retries 0.
    let stop = Rc::new(Cell::new(false));
    let old_gone = Rc::new(Cell::new(false));
    let answers = Rc::new(RefCell::new(Vec::<(bool, Result<String, PoolError>)>::new()));
    let callers = futures::future::join_all((0..8).map(|_| {
        let (pool, stop, old_gone, answers) = (
            pool.clone(),
            stop.clone(),
            old_gone.clone(),
            answers.clone(),
        );
        async move {
            while !stop.get() {
                let late = old_gone.get();
                let answer = pool
                    .enqueue(&Op::Version)
                    .await
                    .and_then(|r| r.data::<String>());
                answers.borrow_mut().push((late, answer));
            }
        }
    }));
    let reload = async {
        lpm_tests::wait_until("the load is running", DEADLINE, || async {
            answers.borrow().len() >= 50
        })
        .await;
        let report = within("the reload", pool.reload(version(test_worker!(), "v2")))
            .await
            .expect("the reload runs");
        // Every old worker drains and exits cleanly while the load goes on.
        let exits = recv_n_or_fail(
            &mut events,
            "an old worker's exit",
            3,
            DEADLINE,
            |e| matches!(e, PoolEvent::ChildExited { pid, .. } if old.contains(pid)),
        )
        .await;
        old_gone.set(true);
        lpm_tests::wait_until("more load after the old workers left", DEADLINE, || async {
            answers.borrow().iter().filter(|(late, _)| *late).count() >= 50
        })
        .await;
        stop.set(true);
        (report, exits)
    };
    let ((report, exits), _) = futures::join!(reload, callers);
    assert!(report.is_complete(), "{report:?}");
    let replaced: HashSet<u32> = report.replaced.iter().map(|r| r.old_pid).collect();
    assert_eq!(replaced, old, "every old worker was replaced once");
    for exit in &exits {
        assert!(
            matches!(exit, PoolEvent::ChildExited { code: Some(0), .. }),
            "{exit:?}"
        );
    }
    let answers = answers.take();
    let failed: Vec<_> = answers.iter().filter(|(_, a)| a.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        answers.len()
    );
    let version_of = |(_, a): &(bool, Result<String, PoolError>)| a.clone().expect("checked above");
    assert_eq!(version_of(&answers[0]), "v1", "the load started on v1");
    assert!(
        answers
            .iter()
            .filter(|(late, _)| *late)
            .all(|a| version_of(a) == "v2"),
        "once the old workers are gone, only v2 answers"
    );
    // A worker started later (a restart) runs the new version too.
    let pid = restart_one(&pool, &mut events).await;
    assert_eq!(procfs::env_var(pid, VERSION_ENV).as_deref(), Some("v2"));
    let report = pool.soft_kill().await.expect("the pool is running");
    assert_eq!(report.failed, 1, "only the request that ended its worker");
}

#[actix_rt::test]
async fn a_reload_whose_successor_exits_keeps_the_old_workers() {
    let (pool, mut events) = start(version(test_worker!(), "v1"), config(2));
    online(&pool).await;
    let before = pids(&health(&pool).await);
    let broken = version(test_worker!().arg("--exit-at-start"), "v2");
    let report = within("the reload", pool.reload(broken))
        .await
        .expect("the reload runs");
    assert!(report.replaced.is_empty(), "{report:?}");
    let Some(PoolError::ReloadFailed { slot, cause }) = report.error.clone() else {
        panic!("the reload should have failed: {report:?}");
    };
    assert_eq!(slot, 0, "it stops at the first slot");
    assert!(
        matches!(&cause, StartFailure::Exited { code: Some(c), stderr_tail, .. }
            if *c == EXIT_AT_START_CODE && !stderr_tail.is_empty()),
        "{cause:?}"
    );
    assert_eq!(
        report.into_result().map(|_| ()),
        Err(PoolError::ReloadFailed { slot, cause })
    );
    assert_eq!(pids(&health(&pool).await), before, "the old workers stay");
    for _ in 0..4 {
        assert_eq!(answered_version(&pool).await, "v1");
    }
    // The command went back to the old one: a restart runs v1.
    let pid = restart_one(&pool, &mut events).await;
    assert_eq!(procfs::env_var(pid, VERSION_ENV).as_deref(), Some("v1"));
    pool.soft_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_reload_to_a_program_that_cannot_start_keeps_the_old_workers() {
    let (pool, _events) = start(version(test_worker!(), "v1"), config(1));
    online(&pool).await;
    let before = pids(&health(&pool).await);
    let report = within(
        "the reload",
        pool.reload(WorkerCommand::new("/nonexistent/lpm-worker")),
    )
    .await
    .expect("the reload runs");
    assert!(
        matches!(
            report.error,
            Some(PoolError::ReloadFailed {
                slot: 0,
                cause: StartFailure::Spawn { .. }
            })
        ),
        "{report:?}"
    );
    assert_eq!(pids(&health(&pool).await), before);
    assert_eq!(answered_version(&pool).await, "v1");
    pool.soft_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_successor_that_never_says_ready_stops_the_reload() {
    let (pool, mut events) = start(
        version(test_worker!(), "v1"),
        config(1).spawn_timeout(Duration::from_secs(1)),
    );
    online(&pool).await;
    let before = pids(&health(&pool).await);
    let stuck = version(test_worker!().arg("--never-ready"), "v2");
    let report = within("the reload", pool.reload(stuck))
        .await
        .expect("the reload runs");
    assert!(
        matches!(
            report.error,
            Some(PoolError::ReloadFailed {
                cause: StartFailure::NotReady { after },
                ..
            }) if after == Duration::from_secs(1)
        ),
        "{report:?}"
    );
    // The stuck successor is stopped; the old worker serves on.
    let spawned = recv_or_fail(
        &mut events,
        "the successor's spawn",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildSpawned { pid, .. } if !before.contains(pid)),
    )
    .await;
    let PoolEvent::ChildSpawned { pid: stuck_pid, .. } = spawned else {
        unreachable!("matched above")
    };
    recv_or_fail(
        &mut events,
        "the stuck successor's exit",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { pid, .. } if *pid == stuck_pid),
    )
    .await;
    assert_eq!(pids(&health(&pool).await), before);
    assert_eq!(answered_version(&pool).await, "v1");
    pool.soft_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_reload_while_another_runs_is_refused() {
    let (pool, mut events) = start(version(test_worker!(), "v1"), config(2));
    online(&pool).await;
    // Slow to get ready, so the first reload is still running when the second comes.
    let slow = version(test_worker!().args(["--slow-start-ms", "500"]), "v2");
    let first = pool.supervisor().send(Reload(slow));
    assert_eq!(
        pool.reload(version(test_worker!(), "v3")).await,
        Err(PoolError::ReloadInProgress)
    );
    let report = within("the first reload", first)
        .await
        .expect("the supervisor answers")
        .expect("the first reload runs");
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.replaced.len(), 2);
    let reloaded = recv_n_or_fail(&mut events, "Reloaded", 2, DEADLINE, |e| {
        matches!(e, PoolEvent::Reloaded { .. })
    })
    .await;
    let slots: Vec<usize> = reloaded
        .iter()
        .map(|e| match e {
            PoolEvent::Reloaded { slot, .. } => *slot,
            _ => unreachable!("matched above"),
        })
        .collect();
    assert_eq!(slots, [0, 1], "one slot at a time, in order");
    assert_eq!(answered_version(&pool).await, "v2");
    pool.soft_kill().await.expect("the pool is running");
}
