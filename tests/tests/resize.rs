//! Resizing a running pool.

use std::collections::HashSet;

use lpm::{PoolError, PoolEvent, WorkerState};
use lpm_tests::{
    config, health, online, pids, process_alive, recv_n_or_fail, start, test_worker,
    wait_for_health, Op, DEADLINE,
};

/// Growing from 2 to 4 workers: four distinct workers then serve requests.
#[actix_rt::test]
async fn resize_up_adds_workers_that_serve() {
    let (pool, _events) = start(test_worker!(), config(2));
    online(&pool).await;
    pool.resize(4).await.expect("resize to 4");
    let h = wait_for_health(&pool, "4 ready workers", DEADLINE, |h| {
        h.len() == 4 && h.iter().all(|w| w.state == WorkerState::Ready)
    })
    .await;
    let workers: HashSet<u32> = pids(&h).into_iter().collect();
    assert_eq!(workers.len(), 4);
    let answers = futures::future::join_all((0..200).map(|_| {
        let pool = &pool;
        async move { pool.enqueue(&Op::Sleep { ms: 5, reply: 0 }).await }
    }))
    .await;
    let served: HashSet<u32> = answers
        .into_iter()
        .map(|a| a.expect("request succeeds").pid())
        .collect();
    assert_eq!(served, workers, "all four workers serve");
    pool.soft_kill().await.expect("the pool is running");
}

/// Shrinking from 4 to 2 workers retires the two highest slots: they exit
/// (cleanly) and health shows two slots.
#[actix_rt::test]
async fn resize_down_retires_workers() {
    let (pool, mut events) = start(test_worker!(), config(4));
    online(&pool).await;
    let before = health(&pool).await;
    pool.resize(2).await.expect("resize to 2");
    let exits = recv_n_or_fail(
        &mut events,
        "ChildExited of a retired worker",
        2,
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { .. }),
    )
    .await;
    let mut retired = HashSet::new();
    for exit in &exits {
        let PoolEvent::ChildExited {
            slot, pid, code, ..
        } = exit
        else {
            unreachable!()
        };
        assert_eq!(*code, Some(0), "a retired worker exits cleanly");
        assert!(!process_alive(*pid));
        assert_eq!(before[*slot].pid, Some(*pid));
        retired.insert(*slot);
    }
    assert_eq!(
        retired,
        HashSet::from([2, 3]),
        "the highest slots are retired"
    );
    let h = health(&pool).await;
    assert_eq!(h.iter().map(|w| w.slot).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(
        pids(&h),
        pids(&before[..2]),
        "the kept workers are untouched"
    );
    pool.soft_kill().await.expect("the pool is running");
}

/// A worker retired by a resize finishes the requests it holds first.
#[actix_rt::test]
async fn resize_down_lets_retired_workers_finish_their_requests() {
    let (pool, mut events) = start(test_worker!(), config(2));
    online(&pool).await;
    let answers = lpm_tests::submit_all(
        &pool,
        [
            Op::Sleep { ms: 1000, reply: 1 },
            Op::Sleep { ms: 1000, reply: 2 },
        ],
    )
    .await;
    wait_for_health(&pool, "both workers hold a request", DEADLINE, |h| {
        h.iter().all(|w| w.in_flight == 1)
    })
    .await;
    pool.resize(1).await.expect("resize to 1");
    recv_n_or_fail(
        &mut events,
        "ChildExited of the retired worker",
        1,
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { slot: 1, .. }),
    )
    .await;
    let replies: Vec<u32> = answers
        .await
        .into_iter()
        .map(|a| a.expect("request succeeds").data().unwrap())
        .collect();
    assert_eq!(replies, [1, 2]);
    pool.soft_kill().await.expect("the pool is running");
}

/// A pool of zero workers is refused.
#[actix_rt::test]
async fn resize_to_zero_is_refused() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    assert_eq!(
        pool.resize(0).await,
        Err(PoolError::InvalidSize { requested: 0 })
    );
    assert_eq!(health(&pool).await.len(), 1);
    pool.soft_kill().await.expect("the pool is running");
}
