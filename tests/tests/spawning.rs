//! Workers are forked off the actor thread, many at once: a large pool comes
//! online with every worker serving, health shows the slots being filled as
//! starting, and workers are killed and reaped even when their pool's
//! System ends without a kill.

use std::collections::HashSet;

use lpm::{PoolEvent, Strategy, WorkerState};
use lpm_tests::{
    call, config, health, online, pids, procfs, recv_n_or_fail, start, test_worker, wait_until, Op,
    DEADLINE,
};

const MANY: usize = 32;

#[actix_rt::test]
async fn many_workers_started_at_once_all_come_online_and_serve() {
    let (pool, mut events) = start(test_worker!(), config(MANY).strategy(Strategy::RoundRobin));
    // Slots whose worker is still being forked are starting, never stopped.
    let early = health(&pool).await;
    assert_eq!(early.len(), MANY);
    assert!(
        early
            .iter()
            .all(|w| matches!(w.state, WorkerState::Starting | WorkerState::Ready)),
        "{early:?}"
    );
    online(&pool).await;

    let spawned = recv_n_or_fail(&mut events, "ChildSpawned", MANY, DEADLINE, |e| {
        matches!(e, PoolEvent::ChildSpawned { .. })
    })
    .await;
    let slots: HashSet<usize> = spawned
        .iter()
        .filter_map(|e| match e {
            PoolEvent::ChildSpawned { slot, .. } => Some(*slot),
            _ => None,
        })
        .collect();
    assert_eq!(slots, (0..MANY).collect(), "one spawn per slot");

    let workers: HashSet<u32> = pids(&health(&pool).await).into_iter().collect();
    assert_eq!(workers.len(), MANY);
    let mut answered = HashSet::new();
    let deadline = std::time::Instant::now() + DEADLINE;
    while answered != workers {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {MANY} workers answered",
            answered.len()
        );
        let (pid, _): (u32, _) = call(&pool, &Op::Pid).await;
        assert!(
            workers.contains(&pid),
            "{pid} is none of the pool's workers"
        );
        answered.insert(pid);
    }
    pool.hard_kill().await.expect("the pool is running");
}

/// The pool's System ends while the pool runs (no kill, the `Pool` still
/// held): its workers are SIGKILLed and reaped as their actors are dropped.
/// (The threads that forked them live on, so their parent-death signal does
/// not fire.)
#[test]
fn workers_of_a_pool_whose_system_ends_are_killed_and_reaped() {
    let system = actix_rt::System::new();
    let (pool, workers) = system.block_on(async {
        let (pool, _events) = start(test_worker!(), config(3));
        online(&pool).await;
        let workers = pids(&health(&pool).await);
        (pool, workers)
    });
    assert_eq!(workers.len(), 3);
    drop(system);
    let waiter = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    waiter.block_on(async {
        for &pid in &workers {
            wait_until(
                &format!("worker {pid} killed and reaped"),
                DEADLINE,
                || async move { !procfs::exists(pid) },
            )
            .await;
        }
    });
    drop(pool);
}
