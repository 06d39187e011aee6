//! Many requests of every kind at once, with workers dying among them:
//! every request resolves exactly once, with an outcome its kind allows.
//!
//! A longer soak: `LPM_CHAOS_REQUESTS=100000 cargo test -p lpm-tests --test chaos`.

use std::time::Duration;

use lpm::PoolError;
use lpm_tests::{config, online, start, test_worker, Op};

fn op(i: u32) -> Op {
    match i % 50 {
        0 => Op::Exit(5),
        1 => Op::Fail("refused".into()),
        2 => Op::Panic("oops".into()),
        3..=12 => Op::Sleep {
            ms: u64::from(i % 7),
            reply: i,
        },
        _ => Op::Echo(i.to_le_bytes().to_vec()),
    }
}

#[actix_rt::test]
async fn every_request_resolves_once_with_an_outcome_its_kind_allows() {
    let requests: u32 = std::env::var("LPM_CHAOS_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400);
    let retries = 2;
    let (pool, _events) = start(
        test_worker!(),
        config(4)
            .retries(retries)
            .max_restarts(u32::MAX)
            .queue_capacity(requests as usize),
    );
    online(&pool).await;
    let answers = futures::future::join_all((0..requests).map(|i| {
        let pool = &pool;
        async move { (i, pool.enqueue(&op(i)).await) }
    }));
    let answers =
        tokio::time::timeout(Duration::from_secs(60 + u64::from(requests) / 500), answers)
            .await
            .expect("every request resolves");
    let mut collateral = 0;
    for (i, answer) in answers {
        match (op(i), answer) {
            // Its worker died on every attempt: quarantined as the cause.
            (Op::Exit(_), Err(PoolError::Quarantined { attempts, .. })) => {
                assert_eq!(attempts, retries + 1);
            }
            (Op::Fail(_), Err(PoolError::Handler { message, .. })) => {
                assert_eq!(message, "refused");
            }
            (Op::Panic(_), Err(PoolError::Handler { message, .. })) => {
                assert!(message.contains("oops"), "{message}");
            }
            (Op::Sleep { reply, .. }, Ok(r)) => assert_eq!(r.data::<u32>(), Ok(reply)),
            (Op::Echo(bytes), Ok(r)) => assert_eq!(r.data::<Vec<u8>>(), Ok(bytes)),
            // A request may share a worker with an Exit on each of its attempts.
            (op, Err(PoolError::WorkerDied { .. } | PoolError::Quarantined { .. }))
                if !matches!(op, Op::Exit(_)) =>
            {
                collateral += 1;
            }
            (op, other) => panic!("request {i} ({op:?}) resolved with {other:?}"),
        }
    }
    let report = pool.soft_kill().await.expect("the pool is running");
    assert_eq!(
        report.served + report.failed,
        u64::from(requests),
        "each request resolved exactly once ({collateral} collateral deaths): {report:?}"
    );
}
