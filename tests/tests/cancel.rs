//! A caller that stops waiting cancels its request: a queued one leaves the
//! queue, an in-flight one frees its worker's slot and the worker is told.

use std::time::Duration;

use futures::FutureExt;
use lpm::{PoolError, PoolEvent};
use lpm_tests::{call, config, online, recv_or_fail, start, test_worker, Op, CANCELLED, DEADLINE};
use uuid::Uuid;

/// Dropping the future of an in-flight request reaches the worker's
/// `Request::cancelled()` and frees the slot: with one slot, the next
/// request is served.
#[actix_rt::test]
async fn dropping_an_in_flight_request_cancels_it_in_the_worker() {
    let (pool, mut events) = start(test_worker!(), config(1).max_in_flight(1));
    online(&pool).await;
    let mut waiting = pool.enqueue(&Op::AwaitCancel).boxed_local();
    // Long enough for it to reach the worker, which holds it forever.
    let early = tokio::time::timeout(Duration::from_millis(300), &mut waiting).await;
    assert!(
        early.is_err(),
        "an AwaitCancel request was answered: {early:?}"
    );
    drop(waiting);
    let event = recv_or_fail(
        &mut events,
        "the worker's cancelled event",
        DEADLINE,
        |e| matches!(e, PoolEvent::Custom(c) if c.name() == CANCELLED),
    )
    .await;
    let PoolEvent::Custom(cancelled) = event else {
        unreachable!("matched above")
    };
    assert_ne!(cancelled.data::<Uuid>().unwrap(), Uuid::nil());
    // The only slot is free again.
    let (pid, _): (u32, _) = tokio::time::timeout(DEADLINE, call(&pool, &Op::Pid))
        .await
        .expect("the freed slot serves the next request");
    assert_eq!(pid, cancelled.pid());
    // A request nobody waits for any more is neither served nor failed.
    let report = pool.soft_kill().await.expect("the pool is running");
    assert_eq!((report.served, report.failed), (1, 0), "{report:?}");
}

/// A queued request whose caller stops waiting leaves the queue: with room
/// for one queued request, another fits in after the drop.
#[actix_rt::test]
async fn dropping_a_queued_request_makes_room_in_the_queue() {
    let (pool, _events) = start(test_worker!(), config(1).max_in_flight(1).queue_capacity(1));
    online(&pool).await;
    let busy = pool.enqueue(&Op::Sleep { ms: 3000, reply: 1 });
    let mut busy = Box::pin(busy);
    // The first request occupies the worker; the second fills the queue.
    assert!(tokio::time::timeout(Duration::from_millis(100), &mut busy)
        .await
        .is_err());
    let mut queued = Box::pin(pool.enqueue(&Op::Sleep { ms: 0, reply: 2 }));
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut queued)
            .await
            .is_err()
    );
    let full = pool.enqueue(&Op::Sleep { ms: 0, reply: 3 }).await;
    assert!(
        matches!(full, Err(PoolError::QueueFull { capacity: 1 })),
        "{full:?}"
    );
    drop(queued);
    // The cancellation travels behind the drop; the queue empties shortly.
    let mut third = None;
    for _ in 0..5 {
        let mut attempt = pool.enqueue(&Op::Sleep { ms: 0, reply: 3 }).boxed_local();
        // A refusal comes back at once; one still pending after this is queued.
        match tokio::time::timeout(Duration::from_millis(500), &mut attempt).await {
            Ok(Err(PoolError::QueueFull { .. })) => continue,
            Ok(other) => panic!("expected a queued request, got {other:?}"),
            Err(_still_queued) => {
                third = Some(attempt);
                break;
            }
        }
    }
    let third = third.expect("the dropped request never left the queue");
    let answer = busy.await.expect("the first request is served");
    assert_eq!(answer.data::<u32>(), Ok(1));
    let answer = third
        .await
        .expect("the request that took its place is served");
    assert_eq!(answer.data::<u32>(), Ok(3));
    pool.soft_kill().await.expect("the pool is running");
}

/// A timed-out attempt's answer that the worker sent before it read the
/// `Cancel` is stale: it is dropped even though the retry is in flight on the
/// same worker (same id), and the retry's own answer is delivered. The worker
/// is not blamed for either answer.
#[actix_rt::test]
async fn a_stale_answer_never_answers_the_retry() {
    let worker = lpm::WorkerCommand::new(env!("CARGO_BIN_EXE_hostile_worker")).arg("late-first");
    let (pool, mut events) = start(worker, config(1));
    online(&pool).await;
    // The worker sleeps 600 ms on the first attempt: it times out at 400 ms,
    // and the retry (deadline 800 ms) is answered at about 600 ms, so each
    // step has 200 ms of margin on a loaded machine.
    let request = lpm::Enqueue::new(&"x")
        .unwrap()
        .timeout(Duration::from_millis(400))
        .retries(1);
    let answer = tokio::time::timeout(DEADLINE, pool.send(request))
        .await
        .expect("the request resolves")
        .expect("the retry is answered");
    assert_eq!(answer.data::<String>().unwrap(), "retry");
    let killed = lpm_tests::drain_now(&mut events)
        .into_iter()
        .find(|e| matches!(e, PoolEvent::WorkerKilled { .. }));
    assert!(killed.is_none(), "{killed:?}");
    pool.soft_kill().await.expect("the pool is running");
}

/// A request is queued when `send`/`enqueue` is called, not when its future
/// is first polled, and dropping a future that was never polled still
/// cancels its request (its worker's slot is freed).
#[actix_rt::test]
async fn a_request_is_queued_when_sent_and_cancelled_when_dropped_unpolled() {
    let (pool, _events) = start(test_worker!(), config(1).max_in_flight(1));
    online(&pool).await;
    let first = pool.enqueue(&Op::Now);
    let second = pool.enqueue(&Op::Now);
    // Polled in the other order, they are still served in the order sent.
    let (second, first) = futures::join!(second, first);
    let at = |r: Result<lpm::Response, PoolError>| {
        r.expect("served").data::<std::time::SystemTime>().unwrap()
    };
    assert!(at(first) <= at(second), "served out of order");

    let unpolled = pool.enqueue(&Op::AwaitCancel);
    lpm_tests::wait_until("the worker holds the request", DEADLINE, || {
        let pool = pool.clone();
        async move { lpm_tests::health(&pool).await[0].in_flight == 1 }
    })
    .await;
    drop(unpolled);
    // Its one slot is free again: the next request is served.
    let (_pid, _): (u32, _) = lpm_tests::within("the next request", call(&pool, &Op::Pid)).await;
    let report = pool.soft_kill().await.expect("the pool is running");
    assert_eq!(report.failed, 0, "a cancelled request counts as neither");
}
