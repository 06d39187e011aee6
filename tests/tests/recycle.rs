//! Recycling: a worker that reached `max_requests` or `max_rss` is replaced
//! by a successor that is ready before the old worker stops taking work, and
//! a worker over the limit from birth does not cause a respawn loop.

use std::collections::HashMap;
use std::time::Duration;

use lpm::{PoolEvent, RecycleReason};
use lpm_tests::{
    call, config, drain_now, health, online, recv_or_fail, start, test_worker, wait_for_health, Op,
    DEADLINE,
};

const MIB: u64 = 1 << 20;

#[actix_rt::test]
async fn a_worker_is_recycled_after_max_requests_without_a_gap() {
    let (pool, mut events) = start(test_worker!(), config(1).max_requests(3, 0));
    online(&pool).await;
    let mut served_by: HashMap<u32, u32> = HashMap::new();
    // Retries 0: a request lost to a recycle would fail the test.
    for _ in 0..12 {
        let (pid, _): (u32, _) = call(&pool, &Op::Pid).await;
        *served_by.entry(pid).or_default() += 1;
    }
    let recycled = recv_or_fail(&mut events, "WorkerRecycled", DEADLINE, |e| {
        matches!(e, PoolEvent::WorkerRecycled { .. })
    })
    .await;
    let PoolEvent::WorkerRecycled {
        pid,
        successor,
        reason,
        ..
    } = recycled
    else {
        unreachable!("matched above")
    };
    assert!(
        matches!(reason, RecycleReason::MaxRequests { served } if served >= 3),
        "{reason:?}"
    );
    assert!(served_by[&pid] >= 3, "{served_by:?}");
    // The old worker drains and exits cleanly after its successor took over.
    recv_or_fail(
        &mut events,
        "the recycled worker's clean exit",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { pid: p, code: Some(0), .. } if *p == pid),
    )
    .await;
    // The old worker served until its successor was ready; now the successor serves.
    let (now, _): (u32, _) = call(&pool, &Op::Pid).await;
    assert_eq!(now, successor);
    assert!(health(&pool).await[0].recycles >= 1);
    pool.soft_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_worker_over_max_rss_is_recycled() {
    let (pool, mut events) = start(test_worker!(), config(1).max_rss(200 * MIB));
    online(&pool).await;
    let (pid, _): (u32, _) = call(&pool, &Op::Pid).await;
    let (_, _): (u64, _) = call(&pool, &Op::Leak { bytes: 300 * MIB }).await;
    let recycled = recv_or_fail(
        &mut events,
        "WorkerRecycled for RSS",
        DEADLINE,
        |e| matches!(e, PoolEvent::WorkerRecycled { pid: p, .. } if *p == pid),
    )
    .await;
    assert!(
        matches!(
            recycled,
            PoolEvent::WorkerRecycled {
                reason: RecycleReason::MaxRss { rss, limit },
                ..
            } if rss > limit && limit == 200 * MIB
        ),
        "{recycled:?}"
    );
    let h = wait_for_health(&pool, "the successor in the slot", DEADLINE, |h| {
        h[0].pid.is_some_and(|p| p != pid) && h[0].rss > 0
    })
    .await;
    assert!(h[0].rss < 200 * MIB, "{h:?}");
    pool.soft_kill().await.expect("the pool is running");
}

/// Every worker is over the limit from birth: the restart window caps the
/// recycles, the last worker stays and serves, and the slot is not given up.
#[actix_rt::test]
async fn a_worker_over_the_limit_from_birth_does_not_respawn_in_a_loop() {
    let (pool, mut events) = start(
        test_worker!(),
        config(1)
            .max_rss(1)
            .max_restarts(2)
            .restart_window(Duration::from_secs(60)),
    );
    online(&pool).await;
    for i in 0..2 {
        recv_or_fail(&mut events, &format!("recycle {}", i + 1), DEADLINE, |e| {
            matches!(e, PoolEvent::WorkerRecycled { .. })
        })
        .await;
    }
    // Twenty sample intervals: a loop would have recycled again by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = drain_now(&mut events);
    assert!(
        !later.iter().any(|e| matches!(
            e,
            PoolEvent::WorkerRecycled { .. } | PoolEvent::RestartLimitReached { .. }
        )),
        "{later:?}"
    );
    assert_eq!(health(&pool).await[0].recycles, 2);
    let (_, response): (u32, _) = call(&pool, &Op::Pid).await;
    assert!(response.pid() > 0);
    pool.soft_kill().await.expect("the pool is running");
}

/// Under concurrent load, with jitter: many recycles, no request lost or
/// failed (retries 0), every recycled worker exits cleanly.
#[actix_rt::test]
async fn recycling_under_load_loses_no_request() {
    let (pool, mut events) = start(
        test_worker!(),
        config(2).max_requests(20, 10).max_in_flight(4),
    );
    online(&pool).await;
    let answers = futures::future::join_all((0..400u32).map(|i| {
        let pool = &pool;
        async move {
            let op = Op::Sleep {
                ms: 5 + u64::from(i % 5),
                reply: i,
            };
            (i, pool.enqueue(&op).await)
        }
    }))
    .await;
    for (i, answer) in answers {
        assert_eq!(answer.expect("no request fails").data::<u32>(), Ok(i));
    }
    wait_for_health(&pool, "two recycles at least", DEADLINE, |h| {
        h.iter().map(|w| w.recycles).sum::<u32>() >= 2
    })
    .await;
    pool.soft_kill().await.expect("the pool is running");
    let exits: Vec<_> = drain_now(&mut events)
        .into_iter()
        .filter_map(|e| match e {
            PoolEvent::ChildExited { code, signal, .. } => Some((code, signal)),
            _ => None,
        })
        .collect();
    assert!(exits.iter().all(|&(code, _)| code == Some(0)), "{exits:?}");
}
