//! A request that kills its worker on every attempt is quarantined after its
//! retries, named in the error and counted in health; it is not retried forever.

use lpm::PoolError;
use lpm_tests::{config, health, online, start, test_worker, wait_for_health, Op, DEADLINE};

#[actix_rt::test]
async fn a_request_that_kills_every_worker_it_meets_is_quarantined() {
    let (pool, _events) = start(test_worker!(), config(2).retries(2).max_restarts(20));
    online(&pool).await;
    let answer = pool.enqueue(&Op::Exit(7)).await;
    let Err(PoolError::Quarantined { id, attempts }) = answer else {
        panic!("expected Quarantined, got {answer:?}");
    };
    assert_eq!(attempts, 3);
    assert!(
        PoolError::Quarantined { id, attempts }
            .to_string()
            .contains(&id.to_string()),
        "the error names the request"
    );
    let quarantined: u64 = health(&pool).await.iter().map(|w| w.quarantined).sum();
    assert_eq!(quarantined, 1);
    // The pool recovers and serves others.
    wait_for_health(&pool, "both workers back", DEADLINE, |h| {
        h.iter().all(|w| w.pid.is_some())
    })
    .await;
    let ok = pool.enqueue(&Op::Echo(vec![1])).await;
    assert_eq!(ok.unwrap().data::<Vec<u8>>(), Ok(vec![1]));
    pool.soft_kill().await.expect("the pool is running");
}

/// One death is no proof: without retries the request fails with `WorkerDied`.
#[actix_rt::test]
async fn a_single_death_is_not_a_quarantine() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    let answer = pool.enqueue(&Op::Exit(7)).await;
    assert!(
        matches!(
            answer,
            Err(PoolError::WorkerDied {
                retries_spent: 0,
                ..
            })
        ),
        "{answer:?}"
    );
    let quarantined: u64 = health(&pool).await.iter().map(|w| w.quarantined).sum();
    assert_eq!(quarantined, 0);
    pool.soft_kill().await.expect("the pool is running");
}
