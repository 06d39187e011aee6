//! The restart window: a slot that keeps dying is given up on.

use std::collections::HashSet;
use std::time::Duration;

use lpm::{PoolError, PoolEvent, WorkerState};
use lpm_tests::{
    config, drain_now, health, recv_or_fail, start, test_worker, wait_for_health, Op, DEADLINE,
    EXIT_AT_START_CODE, EXIT_AT_START_LINE,
};

/// A worker that exits at start is restarted max_restarts times, then the
/// slot is given up on: RestartLimitReached, no more spawns, and requests
/// fail with NoWorkers. (Given up for good here; `slot_revival.rs` has the
/// slots that come back.)
#[actix_rt::test]
async fn a_crash_loop_stops_at_the_restart_limit() {
    let (pool, mut events) = start(
        test_worker!().arg("--exit-at-start"),
        config(1)
            .max_restarts(3)
            .restart_window(Duration::from_secs(60))
            .never_revive(),
    );
    let mut spawned = Vec::new();
    let mut exited = Vec::new();
    let limit = recv_or_fail(&mut events, "RestartLimitReached", DEADLINE, |e| {
        match e {
            PoolEvent::ChildSpawned { slot: 0, pid } => spawned.push(*pid),
            PoolEvent::ChildExited {
                slot: 0,
                pid,
                code,
                stderr_tail,
                ..
            } => {
                assert_eq!(*code, Some(EXIT_AT_START_CODE));
                assert!(
                    stderr_tail.iter().any(|l| l == EXIT_AT_START_LINE),
                    "the exit report carries the worker's last stderr lines: {stderr_tail:?}"
                );
                exited.push(*pid);
            }
            _ => {}
        }
        matches!(e, PoolEvent::RestartLimitReached { .. })
    })
    .await;
    assert!(
        matches!(
            limit,
            PoolEvent::RestartLimitReached {
                slot: 0,
                restarts: 3
            }
        ),
        "{limit:?}"
    );
    // One start and three restarts, each a distinct process that exited.
    assert_eq!(exited.len(), 1 + 3, "exits: {exited:?}");
    assert_eq!(exited.iter().collect::<HashSet<_>>().len(), 4);
    // Every restart was announced.
    for pid in &exited[1..] {
        assert!(
            spawned.contains(pid),
            "no ChildSpawned for restart pid {pid}: {spawned:?}"
        );
    }
    assert!(
        spawned.len() <= 4,
        "spawned more than 1 + 3 times: {spawned:?}"
    );

    let h = health(&pool).await;
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].state, WorkerState::Stopped);
    assert_eq!(h[0].restarts, 3);
    assert_eq!(h[0].pid, None);
    let answer = pool.enqueue(&()).await;
    assert_eq!(answer.map(|r| r.pid()), Err(PoolError::NoWorkers));
    pool.hard_kill().await.expect("the pool is running");
}

/// Kills the pool's worker with Op::Exit and waits for what the slot does next:
/// a ChildSpawned (restarted) or a RestartLimitReached (given up).
async fn kill_worker_and_see(pool: &lpm::Pool, events: &mut lpm::EventStream) -> PoolEvent {
    online_worker(pool).await;
    // The spawn of the worker about to die was announced already; skip it.
    drain_now(events);
    let answer = pool.enqueue(&Op::Exit(4)).await;
    assert!(
        matches!(answer, Err(PoolError::WorkerDied { .. })),
        "{answer:?}"
    );
    recv_or_fail(
        events,
        "ChildSpawned or RestartLimitReached",
        DEADLINE,
        |e| {
            matches!(
                e,
                PoolEvent::ChildSpawned { .. } | PoolEvent::RestartLimitReached { .. }
            )
        },
    )
    .await
}

/// Waits until slot 0 has a ready worker.
async fn online_worker(pool: &lpm::Pool) {
    wait_for_health(pool, "slot 0 ready", DEADLINE, |h| {
        h[0].state == WorkerState::Ready
    })
    .await;
}

/// Within the window, one restart too many gives up on the slot.
#[actix_rt::test]
async fn a_second_death_within_the_window_reaches_the_limit() {
    let (pool, mut events) = start(
        test_worker!(),
        config(1)
            .max_restarts(1)
            .restart_window(Duration::from_secs(60)),
    );
    let first = kill_worker_and_see(&pool, &mut events).await;
    assert!(
        matches!(first, PoolEvent::ChildSpawned { slot: 0, .. }),
        "{first:?}"
    );
    let second = kill_worker_and_see(&pool, &mut events).await;
    assert!(
        matches!(
            second,
            PoolEvent::RestartLimitReached {
                slot: 0,
                restarts: 1
            }
        ),
        "{second:?}"
    );
    pool.hard_kill().await.expect("the pool is running");
}

/// Restarts older than the window stop counting: the slot is restarted again.
#[actix_rt::test]
async fn restarts_older_than_the_window_stop_counting() {
    let window = Duration::from_millis(300);
    let (pool, mut events) = start(
        test_worker!(),
        config(1).max_restarts(1).restart_window(window),
    );
    let first = kill_worker_and_see(&pool, &mut events).await;
    assert!(
        matches!(first, PoolEvent::ChildSpawned { slot: 0, .. }),
        "{first:?}"
    );
    // What is tested is the passing of time itself: let the window go by.
    tokio::time::sleep(window + Duration::from_millis(50)).await;
    let second = kill_worker_and_see(&pool, &mut events).await;
    assert!(
        matches!(second, PoolEvent::ChildSpawned { slot: 0, .. }),
        "{second:?}"
    );
    assert_eq!(health(&pool).await[0].restarts, 2);
    pool.hard_kill().await.expect("the pool is running");
}
