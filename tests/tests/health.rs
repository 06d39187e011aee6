//! The health report: one entry per slot with the live pid, memory and counters.

use std::collections::HashSet;

use lpm::WorkerState;
use lpm_tests::{
    call, config, online, parent_pid, pids, process_alive, start, test_worker, wait_for_health, Op,
    DEADLINE,
};

/// Health lists every slot with its live child's pid (a child of this
/// process, running test_worker) and a non-zero RSS.
#[actix_rt::test]
async fn health_lists_every_child_with_its_pid_and_rss() {
    let (pool, _events) = start(test_worker!(), config(3));
    online(&pool).await;
    let h = wait_for_health(&pool, "every worker has an RSS sample", DEADLINE, |h| {
        h.iter().all(|w| w.rss > 0)
    })
    .await;
    assert_eq!(h.iter().map(|w| w.slot).collect::<Vec<_>>(), [0, 1, 2]);
    let workers = pids(&h);
    assert_eq!(workers.len(), 3);
    assert_eq!(
        workers.iter().collect::<HashSet<_>>().len(),
        3,
        "distinct pids"
    );
    for w in &h {
        let pid = w.pid.unwrap();
        assert!(process_alive(pid), "pid {pid} is alive");
        assert_eq!(
            parent_pid(pid),
            Some(std::process::id()),
            "pid {pid} is our child"
        );
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert!(exe.ends_with("test_worker"), "pid {pid} runs {exe:?}");
        assert_eq!(w.state, WorkerState::Ready);
        assert_eq!(w.in_flight, 0);
        assert_eq!(w.restarts, 0);
    }
    // And each pid is one that answers requests.
    let mut answered = HashSet::new();
    let answers = futures::future::join_all((0..30).map(|_| {
        let pool = &pool;
        async move { pool.enqueue(&Op::Sleep { ms: 5, reply: 0 }).await }
    }))
    .await;
    for a in answers {
        answered.insert(a.expect("request succeeds").pid());
    }
    assert_eq!(answered, workers.into_iter().collect());
    pool.soft_kill().await.expect("the pool is running");
}

/// Memory a worker holds shows in its RSS.
#[actix_rt::test]
async fn rss_follows_a_workers_memory() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    let before = wait_for_health(&pool, "an RSS sample", DEADLINE, |h| h[0].rss > 0).await[0].rss;
    let leak: u64 = 64 << 20;
    let (leaked, _): (u64, _) = call(&pool, &Op::Leak { bytes: leak }).await;
    assert_eq!(leaked, leak);
    wait_for_health(
        &pool,
        "the RSS grows by most of the leaked 64 MiB",
        DEADLINE,
        |h| h[0].rss >= before + leak * 3 / 4,
    )
    .await;
    pool.soft_kill().await.expect("the pool is running");
}

/// Served counts the answered requests; stats a worker reports show up.
#[actix_rt::test]
async fn health_counts_served_requests_and_shows_reported_stats() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    for _ in 0..5 {
        call::<u32>(&pool, &Op::Pid).await;
    }
    let stats = vec![("cache_hits".to_owned(), 42.0), ("queue".to_owned(), 1.5)];
    pool.enqueue(&Op::Stats(stats.clone()))
        .await
        .expect("stats request succeeds");
    let h = wait_for_health(&pool, "the reported stats show", DEADLINE, |h| {
        h[0].stats == stats
    })
    .await;
    assert_eq!(h[0].served, 6);
    assert!(h[0].uptime > std::time::Duration::ZERO);
    pool.soft_kill().await.expect("the pool is running");
}
