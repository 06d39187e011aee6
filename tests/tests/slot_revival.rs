//! Slots come back: a slot that reached its restart limit is tried again
//! after `Config::revive_after`, with a fresh restart window. Meanwhile
//! requests fail with `NoWorkers` only when no slot can return soon.

use std::time::Duration;

use lpm::{PoolError, PoolEvent, WorkerState};
use lpm_tests::{
    call, config, health, recv_or_fail, start, test_worker, wait_for_health, Op, DEADLINE,
};

#[actix_rt::test]
async fn a_slot_at_its_restart_limit_comes_back_after_the_cool_down() {
    let dir = tempfile::tempdir().unwrap();
    let cured = dir.path().join("cured");
    let (pool, mut events) = start(
        test_worker!().arg("--exit-at-start-unless").arg(&cured),
        config(1)
            .max_restarts(2)
            .revive_after(Duration::from_secs(2)),
    );
    recv_or_fail(&mut events, "RestartLimitReached", DEADLINE, |e| {
        matches!(e, PoolEvent::RestartLimitReached { slot: 0, .. })
    })
    .await;
    // Resting: it will be back, but not within a restart's backoff, so
    // requests do not wait for it.
    let h = health(&pool).await;
    assert_eq!(h[0].state, WorkerState::Restarting, "{h:?}");
    assert_eq!(h[0].pid, None);
    assert_eq!(
        pool.enqueue(&Op::Pid).await.map(|r| r.pid()),
        Err(PoolError::NoWorkers)
    );
    // The worker's trouble passes; the slot comes back on its own.
    std::fs::write(&cured, b"").unwrap();
    recv_or_fail(&mut events, "SlotRevived", DEADLINE, |e| {
        matches!(e, PoolEvent::SlotRevived { slot: 0 })
    })
    .await;
    let spawned = recv_or_fail(&mut events, "the revived slot's worker", DEADLINE, |e| {
        matches!(e, PoolEvent::ChildSpawned { slot: 0, .. })
    })
    .await;
    let PoolEvent::ChildSpawned { pid, .. } = spawned else {
        unreachable!("matched above")
    };
    wait_for_health(&pool, "the revived worker ready", DEADLINE, |h| {
        h[0].pid == Some(pid) && h[0].state == WorkerState::Ready
    })
    .await;
    let (answer, _): (u32, _) = call(&pool, &Op::Pid).await;
    assert_eq!(answer, pid);
    pool.soft_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_revived_slot_gets_a_fresh_restart_window() {
    let (pool, mut events) = start(
        test_worker!().arg("--exit-at-start"),
        config(1)
            .max_restarts(2)
            .restart_window(Duration::from_secs(3600))
            .revive_after(Duration::from_millis(200)),
    );
    // Give up, come back, and have the whole window again: the revived
    // worker and two restarts before the next give-up. With the old window
    // (an hour long, still full) the revived worker's death would be the
    // give-up at once.
    recv_or_fail(&mut events, "RestartLimitReached", DEADLINE, |e| {
        matches!(e, PoolEvent::RestartLimitReached { slot: 0, .. })
    })
    .await;
    recv_or_fail(&mut events, "SlotRevived", DEADLINE, |e| {
        matches!(e, PoolEvent::SlotRevived { slot: 0 })
    })
    .await;
    let mut spawns = 0;
    loop {
        let event = recv_or_fail(&mut events, "a spawn or the next give-up", DEADLINE, |e| {
            matches!(
                e,
                PoolEvent::ChildSpawned { .. } | PoolEvent::RestartLimitReached { .. }
            )
        })
        .await;
        match event {
            PoolEvent::ChildSpawned { .. } => spawns += 1,
            _ => break,
        }
    }
    assert_eq!(spawns, 3, "the revived worker and max_restarts restarts");
    pool.hard_kill().await.expect("the pool is running");
}

/// Revived within a restart's backoff, a resting slot counts as one that
/// returns soon: requests wait for it rather than fail with `NoWorkers`.
#[actix_rt::test]
async fn requests_wait_for_a_slot_that_returns_soon() {
    let dir = tempfile::tempdir().unwrap();
    let cured = dir.path().join("cured");
    let quick = config(1)
        .max_restarts(1)
        .max_restart_backoff(Duration::from_millis(100))
        .revive_after(Duration::from_millis(50));
    let (pool, mut events) = start(
        test_worker!().arg("--exit-at-start-unless").arg(&cured),
        quick,
    );
    recv_or_fail(&mut events, "RestartLimitReached", DEADLINE, |e| {
        matches!(e, PoolEvent::RestartLimitReached { .. })
    })
    .await;
    let pool2 = pool.clone();
    let waiting = async move { pool2.enqueue(&Op::Pid).await.map(|r| r.pid()) };
    let cure = async {
        recv_or_fail(
            &mut events,
            "a revival while the request waits",
            DEADLINE,
            |e| matches!(e, PoolEvent::SlotRevived { .. }),
        )
        .await;
        std::fs::write(&cured, b"").unwrap();
    };
    let (answer, ()) = futures::join!(
        async { tokio::time::timeout(DEADLINE, waiting).await },
        cure
    );
    let pid = answer
        .expect("answered in time")
        .expect("the request waited for the slot instead of failing");
    assert!(pid > 0);
    pool.soft_kill().await.expect("the pool is running");
}
