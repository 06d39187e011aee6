//! The bounds a request meets: the queue's capacity, the timeout, the frame size.

use std::time::Duration;

use lpm::{Enqueue, PoolError};
use lpm_tests::{
    call, config, health, online, pids, start, submit_all, test_worker, wait_for_health, Op,
    DEADLINE, HOLD,
};

/// Past the queue's capacity, enqueue answers QueueFull at once; the
/// requests within the bound wait in the queue.
#[actix_rt::test]
async fn a_full_queue_answers_queue_full() {
    let (pool, _events) = start(test_worker!(), config(1).max_in_flight(1).queue_capacity(2));
    online(&pool).await;
    let holding = submit_all(&pool, [HOLD]).await;
    wait_for_health(&pool, "the worker holds the slow request", DEADLINE, |h| {
        h[0].in_flight == 1
    })
    .await;
    let mut queued = Box::pin(submit_all(&pool, (1..=3).map(|i| Op::Echo(vec![i]))).await);
    // The third is refused at once; the first two wait until the hard kill ends them.
    assert!(futures::poll!(queued.as_mut()).is_pending());
    pool.hard_kill().await.expect("the pool is running");
    let results: Vec<_> = queued
        .await
        .into_iter()
        .map(|r| r.map(|r| r.pid()))
        .collect();
    assert_eq!(
        results,
        [
            Err(PoolError::Killed),
            Err(PoolError::Killed),
            Err(PoolError::QueueFull { capacity: 2 })
        ]
    );
    assert_eq!(
        holding.await[0].as_ref().map(|r| r.pid()),
        Err(&PoolError::Killed)
    );
}

/// A request with no answer within the timeout fails with Timeout, and the
/// worker no longer counts it: health shows nothing in flight and, with an
/// in-flight limit of one, the worker takes the next request at once.
#[actix_rt::test]
async fn timeout_answers_timeout_and_frees_the_worker() {
    let timeout = Duration::from_millis(200);
    let (pool, _events) = start(test_worker!(), config(1).timeout(timeout).max_in_flight(1));
    online(&pool).await;
    let answer = pool.enqueue(&HOLD).await;
    assert_timeout(answer, timeout, 1);
    assert_eq!(health(&pool).await[0].in_flight, 0);
    // The worker still runs the old request; the pool must not count it.
    let (n, _): (Vec<u8>, _) = call(&pool, &Op::Echo(vec![7])).await;
    assert_eq!(n, vec![7]);
    pool.hard_kill().await.expect("the pool is running");
}

/// A per-request timeout overrides the pool's (none here).
#[actix_rt::test]
async fn a_request_timeout_overrides_the_pool_default() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    let timeout = Duration::from_millis(100);
    let request = Enqueue::new(&HOLD).unwrap().timeout(timeout);
    let answer = tokio::time::timeout(DEADLINE, pool.send(request))
        .await
        .expect("the request resolves");
    assert_timeout(answer, timeout, 1);
    pool.hard_kill().await.expect("the pool is running");
}

/// A request that times out is tried again while retries last: here the
/// second attempt answers.
#[actix_rt::test]
async fn a_timed_out_request_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, _events) = start(
        test_worker!(),
        config(2).timeout(Duration::from_millis(200)).retries(1),
    );
    online(&pool).await;
    let op = Op::StallOnce {
        marker: dir.path().join("first-attempt"),
    };
    let (pid, _): (u32, _) = call(&pool, &op).await;
    let staller: u32 = std::fs::read_to_string(dir.path().join("first-attempt"))
        .expect("the first attempt ran")
        .parse()
        .unwrap();
    assert_ne!(
        pid, staller,
        "the retry went back to the worker that timed out"
    );
    let h = health(&pool).await;
    assert!(h.iter().any(|w| w.pid == Some(pid)));
    assert!(h.iter().any(|w| w.pid == Some(staller)));
    pool.hard_kill().await.expect("the pool is running");
}

/// A request whose only slot was freed by a refusal (payload too large) or by
/// a caller that gave up does not leave the queue stuck behind it.
#[actix_rt::test]
async fn a_refused_request_frees_its_slot_for_the_queue() {
    let (pool, _events) = start(
        test_worker!(),
        config(1).max_in_flight(1).max_frame_len(1024),
    );
    online(&pool).await;
    let answers = submit_all(
        &pool,
        [
            Op::Echo(vec![0; 4096]),
            Op::Echo(vec![1]),
            Op::Echo(vec![2]),
        ],
    )
    .await;
    let answers = tokio::time::timeout(DEADLINE, answers)
        .await
        .expect("the queue stalled behind the refused request");
    assert!(
        matches!(answers[0], Err(PoolError::PayloadTooLarge { .. })),
        "{:?}",
        answers[0]
    );
    assert_eq!(answers[1].as_ref().unwrap().data::<Vec<u8>>().unwrap(), [1]);
    assert_eq!(answers[2].as_ref().unwrap().data::<Vec<u8>>().unwrap(), [2]);
    pool.hard_kill().await.expect("the pool is running");
}

/// When every attempt times out, Timeout counts the attempts.
#[actix_rt::test]
async fn timeout_counts_every_attempt() {
    let timeout = Duration::from_millis(100);
    let (pool, _events) = start(test_worker!(), config(2).timeout(timeout).retries(2));
    online(&pool).await;
    let answer = pool.enqueue(&HOLD).await;
    assert_timeout(answer, timeout, 3);
    pool.hard_kill().await.expect("the pool is running");
}

/// A payload bigger than a frame may be is refused with PayloadTooLarge,
/// and the worker keeps serving.
#[actix_rt::test]
async fn a_payload_above_max_frame_len_is_refused() {
    let max = 1024;
    let (pool, _events) = start(test_worker!(), config(1).max_frame_len(max));
    online(&pool).await;
    let answer = pool.enqueue(&Op::Echo(vec![0; 4 * max])).await;
    match answer {
        Err(PoolError::PayloadTooLarge { len, max: m }) => {
            assert_eq!(m, max);
            assert!(len > max, "len {len}");
        }
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    let (echoed, _): (Vec<u8>, _) = call(&pool, &Op::Echo(vec![5; 100])).await;
    assert_eq!(echoed, vec![5; 100]);
    pool.soft_kill().await.expect("the pool is running");
}

/// An answer bigger than a frame may be fails that request with Handler
/// (the worker knows the pool's limit), and the worker keeps serving.
#[actix_rt::test]
async fn an_answer_above_max_frame_len_fails_the_request() {
    let max = 1024;
    let (pool, _events) = start(test_worker!(), config(1).max_frame_len(max));
    online(&pool).await;
    let pid = pids(&health(&pool).await)[0];
    let answer = pool
        .enqueue(&Op::Big {
            bytes: 4 * max as u64,
        })
        .await;
    match answer {
        Err(PoolError::Handler {
            message, pid: p, ..
        }) => {
            assert_eq!(p, pid);
            assert!(message.contains("frame limit"), "{message}");
        }
        other => panic!("expected Handler, got {other:?}"),
    }
    let (small, _): (Vec<u8>, _) = call(&pool, &Op::Big { bytes: 10 }).await;
    assert_eq!(small, vec![7; 10]);
    assert_eq!(pids(&health(&pool).await), [pid], "the same worker");
    pool.soft_kill().await.expect("the pool is running");
}

/// A request that asked to wait for room is not refused by a full queue: it
/// waits in line and is served once the queue moves, while one that did not
/// ask gets `QueueFull`.
#[actix_rt::test]
async fn a_request_may_wait_for_room_instead_of_queue_full() {
    let (pool, _events) = start(test_worker!(), config(1).max_in_flight(1).queue_capacity(1));
    online(&pool).await;
    // Holds the only slot until its timeout frees it.
    let hold = Enqueue::new(&HOLD).unwrap().timeout(Duration::from_secs(3));
    let mut holding = Box::pin(pool.send(hold));
    assert!(futures::poll!(holding.as_mut()).is_pending());
    wait_for_health(&pool, "the worker holds the slow request", DEADLINE, |h| {
        h[0].in_flight == 1
    })
    .await;
    let queued = submit_all(&pool, [Op::Echo(vec![1])]).await;
    let waiting = Enqueue::new(&Op::Echo(vec![2])).unwrap().wait_for_room();
    let mut waiting = Box::pin(pool.send(waiting));
    assert!(futures::poll!(waiting.as_mut()).is_pending());
    let refused = pool.enqueue(&Op::Echo(vec![3])).await;
    assert_eq!(
        refused.map(|r| r.pid()),
        Err(PoolError::QueueFull { capacity: 1 })
    );
    assert!(matches!(
        holding.await,
        Err(PoolError::Timeout { attempts: 1, .. })
    ));
    let queued = queued.await.remove(0).expect("the queued request");
    let waited = waiting.await.expect("the request that waited for room");
    assert_eq!(queued.data::<Vec<u8>>().unwrap(), [1]);
    assert_eq!(waited.data::<Vec<u8>>().unwrap(), [2]);
    pool.hard_kill().await.expect("the pool is running");
}

/// Fails the test unless `answer` is a timeout after `attempts` attempts of
/// `after` each, naming its request.
#[track_caller]
fn assert_timeout(answer: Result<lpm::Response, PoolError>, after: Duration, attempts: u32) {
    match answer {
        Err(PoolError::Timeout {
            after: a,
            attempts: n,
            id,
        }) => {
            assert_eq!((a, n), (after, attempts));
            assert!(!id.is_nil());
        }
        other => panic!("expected a Timeout after {attempts} attempt(s), got {other:?}"),
    }
}

/// A caller that submits faster than the balancer takes requests in (a loop
/// that never yields) is bounded at the intake: past the queue's capacity
/// on their way, requests answer `QueueFull` at once and hold no memory in
/// the pool; one that asked to wait for room still goes through.
#[actix_rt::test]
async fn a_burst_that_never_yields_is_bounded_at_the_intake() {
    let (pool, _events) = start(test_worker!(), config(1).queue_capacity(3));
    online(&pool).await;
    // `send` submits at once; none of these futures is polled before the last is made.
    let burst: Vec<_> = (0..10u8)
        .map(|i| pool.send(Enqueue::new(&Op::Echo(vec![i])).unwrap()))
        .collect();
    let patient = pool.send(Enqueue::new(&Op::Echo(vec![99])).unwrap().wait_for_room());
    let results = futures::future::join_all(burst).await;
    let echoed: Vec<Vec<u8>> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.data().unwrap())
        .collect();
    assert_eq!(echoed, [vec![0], vec![1], vec![2]], "{results:?}");
    assert!(results[3..]
        .iter()
        .all(|r| matches!(r, Err(PoolError::QueueFull { capacity: 3 }))));
    let patient = patient.await.expect("a request that waits for room");
    assert_eq!(patient.data::<Vec<u8>>().unwrap(), [99]);
    pool.hard_kill().await.expect("the pool is running");
}
