//! How requests are spread over workers by the default strategy
//! (least pressure), and the limits the balancer respects.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use lpm::{Strategy, WorkerState};
use lpm_tests::{
    call, config, health, online, pids, start, submit_all, test_worker, wait_for_health, Op,
    DEADLINE, HOLD, POLL,
};

/// 400 concurrent requests on 4 workers: every worker serves some.
#[actix_rt::test]
async fn requests_spread_over_all_workers() {
    let (pool, _events) = start(test_worker!(), config(4));
    online(&pool).await;
    let workers: HashSet<u32> = pids(&health(&pool).await).into_iter().collect();
    assert_eq!(workers.len(), 4);

    let answers = futures::future::join_all((0..400).map(|i| {
        let pool = &pool;
        async move { pool.enqueue(&Op::Sleep { ms: 2, reply: i }).await }
    }))
    .await;
    let mut served: HashMap<u32, usize> = HashMap::new();
    for (i, answer) in answers.into_iter().enumerate() {
        let response = answer.expect("request succeeds");
        assert_eq!(response.data::<u32>(), Ok(i as u32));
        *served.entry(response.pid()).or_default() += 1;
    }
    assert_eq!(
        served.keys().copied().collect::<HashSet<_>>(),
        workers,
        "each worker serves some: {served:?}"
    );
    pool.soft_kill().await.expect("the pool is running");
}

/// While one worker holds a long request, new requests go to the idle one.
#[actix_rt::test]
async fn an_idle_worker_is_preferred() {
    let (pool, _events) = start(test_worker!(), config(2));
    online(&pool).await;
    let held = submit_all(&pool, [HOLD]).await;
    let h = wait_for_health(&pool, "one worker holds the long request", DEADLINE, |h| {
        h.iter().any(|w| w.in_flight == 1)
    })
    .await;
    let busy_pid = h
        .iter()
        .find(|w| w.in_flight == 1)
        .and_then(|w| w.pid)
        .unwrap();
    let idle_pid = h
        .iter()
        .find(|w| w.in_flight == 0)
        .and_then(|w| w.pid)
        .unwrap();
    for _ in 0..10 {
        let (pid, _): (u32, _) = call(&pool, &Op::Pid).await;
        assert_eq!(pid, idle_pid, "served by the idle worker, not {busy_pid}");
    }
    pool.hard_kill().await.expect("the pool is running");
    drop(held);
}

/// A worker that said busy gets no request until it says ready again.
#[actix_rt::test]
async fn a_busy_worker_gets_nothing_until_ready() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    let busy = submit_all(&pool, [Op::BusyFor { ms: 500 }]).await;
    wait_for_health(&pool, "the worker says busy", DEADLINE, |h| {
        h[0].state == WorkerState::Busy
    })
    .await;
    let later = submit_all(&pool, [Op::Now]).await;
    // While busy, the second request waits in the queue: the worker holds one.
    loop {
        let h = health(&pool).await;
        if h[0].state != WorkerState::Busy {
            break;
        }
        assert_eq!(h[0].in_flight, 1, "a busy worker got a request: {h:#?}");
        tokio::time::sleep(POLL).await;
    }

    let busy = busy.await.remove(0).expect("busy request succeeds");
    let later = later.await.remove(0).expect("queued request succeeds");
    let ready_at: SystemTime = busy.data().unwrap();
    let ran_at: SystemTime = later.data().unwrap();
    assert!(
        ran_at >= ready_at,
        "the queued request ran at {ran_at:?}, before the worker was ready again at {ready_at:?}"
    );
    pool.soft_kill().await.expect("the pool is running");
}

/// With max_in_flight 2, a worker never holds more than 2 requests, seen from
/// inside the worker and from the pool's health.
#[actix_rt::test]
async fn in_flight_limit_is_respected() {
    let (pool, _events) = start(test_worker!(), config(1).max_in_flight(2));
    online(&pool).await;
    let answers = submit_all(&pool, (0..10).map(|_| Op::HoldAndCount { ms: 100 })).await;
    let mut answers = Box::pin(answers);
    let mut most_in_health = 0;
    let results = loop {
        tokio::select! {
            results = &mut answers => break results,
            h = pool.health() => {
                let h = h.expect("the pool answers health");
                most_in_health = most_in_health.max(h[0].in_flight);
                assert!(h[0].in_flight <= 2, "health shows {} in flight", h[0].in_flight);
                tokio::time::sleep(POLL).await;
            }
        }
    };
    let seen: Vec<u64> = results
        .into_iter()
        .map(|r| r.expect("request succeeds").data().unwrap())
        .collect();
    assert!(
        seen.iter().all(|&n| n <= 2),
        "the worker held more than 2: {seen:?}"
    );
    assert!(seen.contains(&2), "the limit was reached: {seen:?}");
    assert!(most_in_health <= 2);
    pool.soft_kill().await.expect("the pool is running");
}

/// The worker's own snapshot of its requests lists every one it holds.
#[actix_rt::test]
async fn a_worker_sees_the_requests_it_holds() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    let held = submit_all(
        &pool,
        [
            HOLD,
            Op::Sleep {
                ms: 60_000,
                reply: 1,
            },
        ],
    )
    .await;
    wait_for_health(&pool, "the worker holds both requests", DEADLINE, |h| {
        h[0].in_flight == 2
    })
    .await;
    let (count, _): (u64, _) = call(&pool, &Op::Requests).await;
    assert_eq!(count, 3, "the two held ones and the asking one");
    pool.hard_kill().await.expect("the pool is running");
    drop(held);
}

/// Round robin takes the workers in turn.
#[actix_rt::test]
async fn round_robin_takes_workers_in_turn() {
    let (pool, _events) = start(test_worker!(), config(3).strategy(Strategy::RoundRobin));
    online(&pool).await;
    let mut order = Vec::new();
    for _ in 0..9 {
        let (pid, _): (u32, _) = call(&pool, &Op::Pid).await;
        order.push(pid);
    }
    let first: HashSet<u32> = order[..3].iter().copied().collect();
    assert_eq!(
        first.len(),
        3,
        "the first three go to three workers: {order:?}"
    );
    for i in 3..9 {
        assert_eq!(
            order[i],
            order[i - 3],
            "the turn repeats every 3: {order:?}"
        );
    }
    pool.soft_kill().await.expect("the pool is running");
}

/// Power of two choices with a seed serves on several workers.
#[actix_rt::test]
async fn power_of_two_choices_serves_on_several_workers() {
    let (pool, _events) = start(
        test_worker!(),
        config(4).strategy(Strategy::PowerOfTwoChoices { seed: 42 }),
    );
    online(&pool).await;
    let answers =
        futures::future::join_all((0..200).map(|_| pool.enqueue(&Op::Sleep { ms: 5, reply: 0 })))
            .await;
    let served: HashSet<u32> = answers
        .into_iter()
        .map(|a| a.expect("request succeeds").pid())
        .collect();
    assert!(served.len() >= 3, "served on {} workers only", served.len());
    pool.soft_kill().await.expect("the pool is running");
}
