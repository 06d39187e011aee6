//! Hung workers: the heartbeat kills a worker whose runtime stopped
//! answering, and `recycle_on_timeout` recycles a worker a request ran late on.

use std::time::Duration;

use lpm::{Enqueue, KillReason, PoolError, PoolEvent};
use lpm_tests::{call, config, online, recv_or_fail, start, test_worker, Op, DEADLINE, HOLD};

#[actix_rt::test]
async fn the_heartbeat_kills_a_worker_that_stops_answering() {
    let (pool, mut events) = start(
        test_worker!(),
        config(1).heartbeat(Duration::from_millis(50), Duration::from_millis(400)),
    );
    online(&pool).await;
    let (pid, _): (u32, _) = call(&pool, &Op::Pid).await;
    let answer = pool.enqueue(&Op::Block { ms: 30_000 }).await;
    assert!(
        matches!(
            &answer,
            Err(PoolError::WorkerKilled { pid: p, reason: KillReason::Unresponsive { silent_for }, .. })
                if *p == pid && *silent_for > Duration::from_millis(400)
        ),
        "{answer:?}"
    );
    recv_or_fail(&mut events, "WorkerKilled", DEADLINE, |e| {
        matches!(e, PoolEvent::WorkerKilled { pid: p, reason: KillReason::Unresponsive { .. }, .. } if *p == pid)
    })
    .await;
    let (replacement, _): (u32, _) = call(&pool, &Op::Pid).await;
    assert_ne!(replacement, pid);
    pool.soft_kill().await.expect("the pool is running");
}

/// Busy is not hung: a worker whose handlers sleep without blocking its
/// runtime keeps answering the heartbeat.
#[actix_rt::test]
async fn a_worker_busy_in_async_handlers_keeps_its_heartbeat() {
    let (pool, mut events) = start(
        test_worker!(),
        config(1).heartbeat(Duration::from_millis(50), Duration::from_millis(1000)),
    );
    online(&pool).await;
    // Twice the heartbeat's timeout: a worker that did not answer would be killed.
    let (slept, _): (u32, _) = call(&pool, &Op::Sleep { ms: 2000, reply: 9 }).await;
    assert_eq!(slept, 9);
    let killed = lpm_tests::drain_now(&mut events)
        .into_iter()
        .find(|e| matches!(e, PoolEvent::WorkerKilled { .. }));
    assert!(killed.is_none(), "{killed:?}");
    pool.soft_kill().await.expect("the pool is running");
}

/// With `recycle_on_timeout`, the worker a request timed out on gets SIGTERM
/// and is replaced; its other request is retried on the replacement.
#[actix_rt::test]
async fn a_timeout_recycles_the_worker_when_configured() {
    let (pool, mut events) = start(
        test_worker!(),
        config(1).recycle_on_timeout(true).max_in_flight(2),
    );
    online(&pool).await;
    let (pid, _): (u32, _) = call(&pool, &Op::Pid).await;
    let late = pool.send(
        Enqueue::new(&HOLD)
            .unwrap()
            .timeout(Duration::from_millis(200)),
    );
    let bystander = pool.send(
        Enqueue::new(&Op::Sleep {
            ms: 1_000,
            reply: 5,
        })
        .unwrap()
        .retries(1),
    );
    let (late, bystander) = futures::join!(late, bystander);
    assert!(
        matches!(late, Err(PoolError::Timeout { attempts: 1, .. })),
        "{late:?}"
    );
    let bystander = bystander.expect("the bystander is retried on the replacement");
    assert_eq!(bystander.data::<u32>(), Ok(5));
    assert_ne!(bystander.pid(), pid);
    let killed = recv_or_fail(
        &mut events,
        "WorkerKilled",
        DEADLINE,
        |e| matches!(e, PoolEvent::WorkerKilled { pid: p, .. } if *p == pid),
    )
    .await;
    assert!(
        matches!(
            killed,
            PoolEvent::WorkerKilled {
                reason: KillReason::RequestTimedOut { .. },
                ..
            }
        ),
        "{killed:?}"
    );
    recv_or_fail(
        &mut events,
        "its exit by SIGTERM",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { pid: p, signal: Some(15), .. } if *p == pid),
    )
    .await;
    pool.soft_kill().await.expect("the pool is running");
}

/// Off by default: a timeout fails the request and leaves the worker alone.
#[actix_rt::test]
async fn by_default_a_timeout_leaves_the_worker_running() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    let (pid, _): (u32, _) = call(&pool, &Op::Pid).await;
    let late = pool
        .send(
            Enqueue::new(&HOLD)
                .unwrap()
                .timeout(Duration::from_millis(100)),
        )
        .await;
    assert!(matches!(late, Err(PoolError::Timeout { .. })), "{late:?}");
    let (same, _): (u32, _) = call(&pool, &Op::Pid).await;
    assert_eq!(same, pid);
    pool.soft_kill().await.expect("the pool is running");
}
