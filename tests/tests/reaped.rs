//! A SIGKILLed worker is let go at once. In a file of its own: it counts
//! this process's descriptors, which other tests' pools would change.

use std::time::Duration;

use lpm::{PoolEvent, WorkerState};
use lpm_tests::{config, health, recv_or_fail, start, test_worker, DEADLINE};

/// A SIGKILLed worker's channel closes as soon as it is reaped (the
/// supervisor's descriptor count is back within a second; it used to wait
/// for a 2 s kill timer), and health never shows its slot `Stopped` while
/// it can restart: `Restarting` until the replacement runs.
#[actix_rt::test]
async fn a_killed_worker_is_let_go_at_once_and_shown_restarting() {
    let (pool, mut events) = start(test_worker!(), config(1));
    lpm_tests::online(&pool).await;
    let before = lpm_tests::open_fds();
    let pid = lpm_tests::pids(&health(&pool).await)[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let mut states = Vec::new();
    let replaced = lpm_tests::within("the replacement", async {
        loop {
            let now = health(&pool).await;
            states.push(now[0].state);
            if now[0].state == WorkerState::Ready && now[0].pid != Some(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    replaced.await;
    assert!(
        !states.contains(&WorkerState::Stopped),
        "a slot that restarts was shown Stopped: {states:?}"
    );
    recv_or_fail(
        &mut events,
        "the exit",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { pid: p, .. } if *p == pid),
    )
    .await;
    let reaped = std::time::Instant::now();
    while lpm_tests::open_fds() != before && reaped.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        lpm_tests::open_fds(),
        before,
        "the dead worker's descriptors were still open 1 s after its exit"
    );
    pool.soft_kill().await.expect("the pool is running");
}
