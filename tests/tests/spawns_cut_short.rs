//! Spawns the pool stops wanting while they are still being forked (resize
//! shrinks the pool, a hard kill) leave no process behind: a worker that
//! arrives late is killed and reaped, and a kill's report waits for it. In
//! a file of its own: it counts this process's worker children, which other
//! tests' pools would change.

use lpm_tests::{config, health, online, pids, procfs, start, test_worker, wait_until, DEADLINE};

/// How many workers each burst of spawns asks for.
const BURST: usize = 24;

/// This process's `test_worker` children, zombies included.
fn worker_children() -> Vec<u32> {
    procfs::children(std::process::id())
        .into_iter()
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{}/comm", child.pid))
                .is_ok_and(|comm| comm.trim_end() == "test_worker")
        })
        .map(|child| child.pid)
        .collect()
}

#[actix_rt::test]
async fn spawns_cut_short_by_resize_or_hard_kill_leave_no_process_behind() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    let first = pids(&health(&pool).await);

    // Grow, and shrink back before most of the new workers can have started.
    pool.resize(1 + BURST).await.expect("the pool is running");
    pool.resize(1).await.expect("the pool is running");
    wait_until(
        "only the first worker is left (the others killed or retired, and reaped)",
        DEADLINE,
        || {
            let first = first.clone();
            async move { worker_children() == first }
        },
    )
    .await;

    // Grow, and hard-kill at once: the report comes once every child,
    // including those that arrive after the kill, is reaped.
    pool.resize(1 + BURST).await.expect("the pool is running");
    pool.hard_kill().await.expect("the pool is running");
    assert_eq!(
        worker_children(),
        Vec::<u32>::new(),
        "workers left after the kill's report"
    );
}
