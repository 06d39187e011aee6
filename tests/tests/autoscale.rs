//! Autoscaling with real workers: a burst scales the pool up to its
//! maximum, idling scales it back to its minimum one worker at a time, no
//! request is lost on the way, and `resize` is refused meanwhile.

use std::time::Duration;

use lpm::{Autoscale, PoolError, PoolEvent, ScaleReason, WorkerState};
use lpm_tests::{
    config, health, online, recv_or_fail, start, submit_all, test_worker, wait_for_health, Op,
    DEADLINE,
};

/// Short periods, so a test sees a whole cycle in a few seconds.
fn quick(min: usize, max: usize) -> Autoscale {
    Autoscale::new(min, max)
        .backlog_wait(Duration::from_millis(50))
        .no_idle_for(Duration::from_millis(200))
        .idle_for(Duration::from_millis(300))
        .cooldown(Duration::from_millis(100))
        .sample_every(Duration::from_millis(20))
}

fn scaled(event: &PoolEvent) -> Option<(usize, usize, ScaleReason)> {
    match event {
        PoolEvent::Scaled { from, to, reason } => Some((*from, *to, *reason)),
        _ => None,
    }
}

#[actix_rt::test]
async fn a_burst_scales_up_to_max_and_idling_scales_back_to_min() {
    let (pool, mut events) = start(
        test_worker!(),
        config(1).max_in_flight(1).autoscale(quick(1, 3)),
    );
    online(&pool).await;
    assert_eq!(health(&pool).await[0].target, 1);
    // One request at a time per worker: a burst waits in the queue.
    let burst = (0..30u32).map(|reply| Op::Sleep { ms: 100, reply });
    let answers = submit_all(&pool, burst).await;
    let mut size = 1;
    while size < 3 {
        let event = recv_or_fail(&mut events, "Scaled up to 3", DEADLINE, |e| {
            scaled(e).is_some()
        })
        .await;
        let (from, to, reason) = scaled(&event).expect("matched above");
        assert_eq!(from, size, "{event:?}");
        assert!(
            to > from && to <= 3,
            "up by the step, never past max: {event:?}"
        );
        assert!(
            matches!(
                reason,
                ScaleReason::Backlog { .. } | ScaleReason::NoIdleWorker { .. }
            ),
            "{event:?}"
        );
        size = to;
    }
    wait_for_health(&pool, "three ready workers", DEADLINE, |h| {
        h.len() == 3 && h.iter().all(|w| w.target == 3 && w.pid.is_some())
    })
    .await;
    // Retries 0: a request lost to a scale-down would fail here.
    let replies: Vec<u32> = answers
        .await
        .into_iter()
        .map(|a| a.expect("no request fails").data().unwrap())
        .collect();
    assert_eq!(replies, (0..30).collect::<Vec<_>>());
    while size > 1 {
        let event = recv_or_fail(&mut events, "Scaled down to 1", DEADLINE, |e| {
            scaled(e).is_some()
        })
        .await;
        let (from, to, reason) = scaled(&event).expect("matched above");
        assert_eq!((from, to), (size, size - 1), "one at a time: {event:?}");
        assert!(matches!(reason, ScaleReason::Idle { .. }), "{event:?}");
        size = to;
    }
    let h = wait_for_health(&pool, "one worker left", DEADLINE, |h| h.len() == 1).await;
    assert_eq!(h[0].target, 1);
    assert_eq!(h[0].slot, 0, "the highest slots are retired");
    // The pool still serves at its minimum.
    let answer = pool.enqueue(&Op::Pid).await.expect("served");
    assert_eq!(Some(answer.pid()), h[0].pid);
    let report = pool.soft_kill().await.expect("the pool is running");
    assert_eq!(report.failed, 0);
}

#[actix_rt::test]
async fn workers_scaled_away_exit_cleanly() {
    let (pool, mut events) = start(
        test_worker!(),
        config(3).autoscale(quick(1, 3).idle_for(Duration::from_millis(100))),
    );
    online(&pool).await;
    for _ in 0..2 {
        let exit = recv_or_fail(&mut events, "a scaled-away worker's exit", DEADLINE, |e| {
            matches!(e, PoolEvent::ChildExited { .. })
        })
        .await;
        let PoolEvent::ChildExited { code, slot, .. } = exit else {
            unreachable!("matched above")
        };
        assert_eq!(code, Some(0), "a worker scaled away drains and exits");
        assert!(slot > 0, "slot 0 stays");
    }
    wait_for_health(&pool, "one ready worker", DEADLINE, |h| {
        h.len() == 1 && h[0].state == WorkerState::Ready
    })
    .await;
    pool.soft_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_pool_that_scales_down_before_a_worker_is_ready_still_comes_online() {
    // Slot 2 never says ready; the two others idle, so the pool scales
    // down before it is online, retiring slot 2 first.
    let (pool, mut events) = start(
        test_worker!().arg("--ready-on-go").arg("2"),
        config(3).autoscale(quick(1, 3).idle_for(Duration::from_millis(100))),
    );
    recv_or_fail(&mut events, "a scale-down", DEADLINE, |e| {
        matches!(scaled(e), Some((3, 2, _)))
    })
    .await;
    online(&pool).await;
    pool.soft_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn resize_is_refused_while_autoscaling_and_the_start_size_is_within_bounds() {
    // Ten workers asked for, at most four allowed: the pool starts with four.
    let (pool, _events) = start(
        test_worker!(),
        config(10).autoscale(quick(2, 4).idle_for(Duration::from_secs(3600))),
    );
    online(&pool).await;
    let h = health(&pool).await;
    assert_eq!(h.len(), 4);
    assert!(h.iter().all(|w| w.target == 4), "{h:?}");
    assert_eq!(
        pool.resize(2).await,
        Err(PoolError::Autoscaling { min: 2, max: 4 })
    );
    assert_eq!(health(&pool).await.len(), 4);
    pool.soft_kill().await.expect("the pool is running");
}
