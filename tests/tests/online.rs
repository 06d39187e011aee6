//! Start-up: when the pool says it is online, and what happens to a worker
//! that never gets ready.

use std::time::{Duration, Instant};

use lpm::{Enqueue, PoolError, PoolEvent, WorkerState};
use lpm_tests::{
    config, drain_now, health, online, recv_or_fail, start, test_worker, wait_for_health, Op,
    DEADLINE, GO,
};

/// Online comes after the slowest worker said ready, and by then every slot is ready.
#[actix_rt::test]
async fn online_fires_after_every_worker_is_ready() {
    let slow_start = Duration::from_millis(300);
    let started = Instant::now();
    let (pool, mut events) = start(test_worker!().args(["--slow-start-ms", "300"]), config(3));
    recv_or_fail(&mut events, "Online", DEADLINE, |e| {
        matches!(e, PoolEvent::Online)
    })
    .await;
    assert!(
        started.elapsed() >= slow_start,
        "Online after {:?}, before the workers could be ready ({slow_start:?})",
        started.elapsed()
    );
    let h = health(&pool).await;
    assert_eq!(h.len(), 3);
    assert!(
        h.iter().all(|w| w.state == WorkerState::Ready),
        "every worker is ready once online: {h:#?}"
    );
    pool.soft_kill().await.expect("the pool is running");
}

/// With one worker still not ready, the pool is not online; its ready makes it so.
#[actix_rt::test]
async fn online_waits_for_the_last_worker() {
    let (pool, mut events) = start(test_worker!().args(["--ready-on-go", "1"]), config(2));
    wait_for_health(
        &pool,
        "slot 0 ready while slot 1 is still starting",
        DEADLINE,
        |h| h.len() == 2 && h[0].state == WorkerState::Ready && h[1].state == WorkerState::Starting,
    )
    .await;
    // A health round trip after slot 0's ready: an Online published for it would be here by now.
    health(&pool).await;
    let early: Vec<_> = drain_now(&mut events)
        .into_iter()
        .filter(|e| matches!(e, PoolEvent::Online))
        .collect();
    assert!(early.is_empty(), "Online while slot 1 was not ready");

    assert_eq!(pool.broadcast(GO, &()).await, Ok(2));
    recv_or_fail(&mut events, "Online after slot 1's ready", DEADLINE, |e| {
        matches!(e, PoolEvent::Online)
    })
    .await;
    pool.soft_kill().await.expect("the pool is running");
}

/// A worker that never says ready gets no request: it waits in the queue until its timeout.
#[actix_rt::test]
async fn a_worker_that_never_says_ready_gets_no_request() {
    let (pool, _events) = start(test_worker!().arg("--never-ready"), config(1));
    let answer = pool
        .send(
            Enqueue::new(&Op::Pid)
                .unwrap()
                .timeout(Duration::from_millis(300)),
        )
        .await;
    assert!(
        matches!(answer, Err(PoolError::Timeout { attempts: 1, .. })),
        "{answer:?}"
    );
    let h = health(&pool).await;
    assert_eq!(h[0].state, WorkerState::Starting);
    assert_eq!(h[0].served, 0);
    assert_eq!(h[0].in_flight, 0);
    pool.hard_kill().await.expect("the pool is running");
}

/// A worker that does not complete the handshake within the spawn timeout
/// is killed (SIGKILL) and replaced.
#[actix_rt::test]
async fn a_worker_without_handshake_is_killed_at_the_spawn_timeout() {
    let (pool, mut events) = start(
        test_worker!().arg("--no-handshake"),
        config(1).spawn_timeout(Duration::from_millis(300)),
    );
    let exited = recv_or_fail(
        &mut events,
        "ChildExited of the silent worker",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { .. }),
    )
    .await;
    let PoolEvent::ChildExited { slot, signal, .. } = exited else {
        unreachable!()
    };
    assert_eq!(slot, 0);
    assert_eq!(signal, Some(9), "killed with SIGKILL");
    recv_or_fail(
        &mut events,
        "ChildSpawned of its replacement",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildSpawned { slot: 0, .. }),
    )
    .await;
    pool.hard_kill().await.expect("the pool is running");
}

/// Every spawn is announced, the first ones too, to a subscriber that
/// subscribes as soon as the pool exists. Workers start concurrently, so
/// their announcements come in any order.
#[actix_rt::test]
async fn child_spawned_reaches_a_subscriber_of_a_new_pool() {
    let (pool, mut events) = start(test_worker!(), config(2));
    online(&pool).await;
    let mut unseen: Vec<u32> = health(&pool)
        .await
        .iter()
        .map(|w| w.pid.expect("a live worker has a pid"))
        .collect();
    while !unseen.is_empty() {
        let what = format!("ChildSpawned for the pids {unseen:?}");
        let event = recv_or_fail(
            &mut events,
            &what,
            DEADLINE,
            |e| matches!(e, PoolEvent::ChildSpawned { pid, .. } if unseen.contains(pid)),
        )
        .await;
        if let PoolEvent::ChildSpawned { pid, .. } = event {
            unseen.retain(|p| *p != pid);
        }
    }
    pool.soft_kill().await.expect("the pool is running");
}

/// A pool whose workers crash at start cannot come online: `online()` says
/// why instead of waiting forever.
#[actix_rt::test]
async fn online_fails_when_a_slot_is_given_up_first() {
    let pool = lpm::Pool::start(
        test_worker!().arg("--exit-at-start"),
        config(2).max_restarts(2),
    );
    let outcome = tokio::time::timeout(DEADLINE, pool.online())
        .await
        .expect("online() neither resolved nor failed");
    assert!(
        matches!(outcome, Err(PoolError::RestartLimit { restarts: 2, .. })),
        "{outcome:?}"
    );
    pool.hard_kill().await.expect("the pool is running");
}
