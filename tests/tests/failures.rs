//! Requests whose worker fails them: the worker dies mid-request, or its
//! handler returns an error or panics.

use lpm::{Enqueue, KillReason, PoolError, PoolEvent};
use lpm_tests::{
    call, config, health, online, pids, process_alive, recv_or_fail, start, test_worker,
    wait_for_health, Op, DEADLINE,
};

/// With a retry left, a request whose worker dies is served by another worker.
#[actix_rt::test]
async fn a_request_whose_worker_dies_is_retried_on_another_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, mut events) = start(test_worker!(), config(2).retries(1));
    online(&pool).await;
    let (pid, response, dead_slot) =
        lpm_tests::retried_after_a_death(&pool, &mut events, dir.path()).await;
    assert!(
        dir.path().join("first-attempt").exists(),
        "the first attempt ran"
    );
    // Not the dead worker's replacement in the same slot: the other worker.
    assert_ne!(
        response.slot(),
        dead_slot,
        "the retry ran in the dead worker's slot"
    );
    assert_eq!(response.pid(), pid);
    pool.soft_kill().await.expect("the pool is running");
}

/// Without retries, a request whose worker dies fails with WorkerDied, naming the worker.
#[actix_rt::test]
async fn without_retries_a_dead_worker_answers_worker_died() {
    let (pool, mut events) = start(test_worker!(), config(1));
    online(&pool).await;
    let pid = pids(&health(&pool).await)[0];
    let error = pool.enqueue(&Op::Exit(3)).await.unwrap_err();
    assert!(
        matches!(
            error,
            PoolError::WorkerDied {
                slot: 0,
                pid: p,
                retries_spent: 0,
                ..
            } if p == pid
        ),
        "{error:?}"
    );
    assert!(error.request_id().is_some(), "the error names its request");
    recv_or_fail(
        &mut events,
        "ChildExited of the worker",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { pid: p, code: Some(3), .. } if *p == pid),
    )
    .await;
    pool.soft_kill().await.expect("the pool is running");
}

/// A request's own retry count overrides the pool's.
#[actix_rt::test]
async fn a_request_retry_count_overrides_the_pool_default() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, _events) = start(test_worker!(), config(2));
    online(&pool).await;
    let op = Op::ExitOnce {
        marker: dir.path().join("first-attempt"),
        code: 3,
    };
    let answer = tokio::time::timeout(DEADLINE, pool.send(Enqueue::new(&op).unwrap().retries(1)))
        .await
        .expect("the request resolves");
    assert!(answer.is_ok(), "{answer:?}");
    pool.soft_kill().await.expect("the pool is running");
}

/// A dead worker is replaced in its slot, and the pool serves again.
#[actix_rt::test]
async fn a_worker_that_aborts_is_replaced() {
    let (pool, mut events) = start(test_worker!(), config(1));
    online(&pool).await;
    let pid = pids(&health(&pool).await)[0];
    let answer = pool.enqueue(&Op::Abort).await;
    assert!(
        matches!(answer, Err(PoolError::WorkerDied { .. })),
        "{answer:?}"
    );
    recv_or_fail(
        &mut events,
        "ChildExited with SIGABRT",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { pid: p, signal: Some(6), .. } if *p == pid),
    )
    .await;
    let spawned = recv_or_fail(&mut events, "ChildSpawned in slot 0", DEADLINE, |e| {
        matches!(e, PoolEvent::ChildSpawned { slot: 0, .. })
    })
    .await;
    let PoolEvent::ChildSpawned { pid: new_pid, .. } = spawned else {
        unreachable!()
    };
    assert!(!process_alive(pid));
    let (served_by, _): (u32, _) = call(&pool, &Op::Pid).await;
    assert_eq!(served_by, new_pid);
    let h = wait_for_health(&pool, "slot 0 counts one restart", DEADLINE, |h| {
        h[0].restarts == 1
    })
    .await;
    assert_eq!(h[0].pid, Some(new_pid));
    pool.soft_kill().await.expect("the pool is running");
}

/// A handler error answers that request with Handler; the same worker serves the next.
#[actix_rt::test]
async fn a_handler_error_fails_only_that_request() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    let pid = pids(&health(&pool).await)[0];
    let error = pool
        .enqueue(&Op::Fail("no such user".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PoolError::Handler { message, pid: p, .. } if message == "no such user" && *p == pid),
        "{error:?}"
    );
    assert!(error
        .to_string()
        .contains(&error.request_id().unwrap().to_string()));
    let (next, _): (u32, _) = call(&pool, &Op::Pid).await;
    assert_eq!(next, pid, "the same worker serves the next request");
    pool.soft_kill().await.expect("the pool is running");
}

/// A handler panic answers that request with Handler; the same worker serves the next.
#[actix_rt::test]
async fn a_handler_panic_fails_only_that_request() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    let pid = pids(&health(&pool).await)[0];
    let answer = pool.enqueue(&Op::Panic("index out of range".into())).await;
    match answer {
        Err(PoolError::Handler {
            message, pid: p, ..
        }) => {
            assert_eq!(p, pid);
            assert!(message.contains("index out of range"), "{message}");
        }
        other => panic!("expected Handler, got {other:?}"),
    }
    let (next, _): (u32, _) = call(&pool, &Op::Pid).await;
    assert_eq!(next, pid, "the same worker serves the next request");
    assert_eq!(health(&pool).await[0].restarts, 0);
    pool.soft_kill().await.expect("the pool is running");
}

/// A worker that writes garbage to its channel is killed and replaced; the
/// request it held fails with WorkerKilled naming the violation, and the pool serves again.
#[actix_rt::test]
async fn a_worker_sending_garbage_is_killed_and_replaced() {
    let (pool, mut events) = start(test_worker!(), config(1));
    online(&pool).await;
    let pid = pids(&health(&pool).await)[0];
    let answer = pool.enqueue(&Op::Garbage).await;
    assert!(
        matches!(
            &answer,
            Err(PoolError::WorkerKilled { pid: p, reason: KillReason::ProtocolViolation(why), .. })
                if *p == pid && why.contains("frame")
        ),
        "{answer:?}"
    );
    recv_or_fail(
        &mut events,
        "WorkerKilled",
        DEADLINE,
        |e| matches!(e, PoolEvent::WorkerKilled { pid: p, .. } if *p == pid),
    )
    .await;
    recv_or_fail(
        &mut events,
        "ChildExited by SIGKILL",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { pid: p, signal: Some(9), .. } if *p == pid),
    )
    .await;
    let (served_by, _): (u32, _) = call(&pool, &Op::Pid).await;
    assert_ne!(served_by, pid);
    pool.soft_kill().await.expect("the pool is running");
}
