//! Workers that break the protocol (`hostile_worker`): each is killed with a
//! typed reason ([`PoolEvent::WorkerKilled`] before its `ChildExited`), the
//! request it held fails with [`PoolError::WorkerKilled`] (or is retried when
//! it has retries left), a replacement is spawned in its slot, and the
//! supervisor, which must not panic on anything a child sends, serves on.
//!
//! Each pool has one worker slot. Only the first `hostile_worker` misbehaves
//! (it leaves a marker file); its replacements follow the protocol and echo
//! every payload, so each test ends by having the replacement serve.

use std::time::Duration;

use lpm::{Config, EventStream, KillReason, Pool, PoolError, PoolEvent, WorkerCommand};
use lpm_tests::{config, health, online, pids, recv_or_fail, start, wait_for_health, DEADLINE};
use tempfile::TempDir;

/// Small enough for a quick test, generous for a loaded machine.
const SPAWN_TIMEOUT: Duration = Duration::from_millis(500);
const HEARTBEAT_EVERY: Duration = Duration::from_millis(100);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(1000);

/// A pool of one `hostile_worker` in `mode`, whose replacements behave.
struct Hostile {
    pool: Pool,
    events: EventStream,
    _marker_dir: TempDir,
}

impl Hostile {
    fn start(mode: &str, config: Config) -> Hostile {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let command = WorkerCommand::new(env!("CARGO_BIN_EXE_hostile_worker"))
            .arg(mode)
            .arg(dir.path().join("misbehaved"));
        let (pool, events) = start(command, config);
        Hostile {
            pool,
            events,
            _marker_dir: dir,
        }
    }

    /// The worker's pid, once the pool is online.
    async fn online_pid(&self) -> u32 {
        online(&self.pool).await;
        let pids = pids(&health(&self.pool).await);
        assert_eq!(pids.len(), 1);
        pids[0]
    }

    /// Sends `payload` and returns how it resolved (within [`DEADLINE`]).
    async fn send(&self, payload: &str) -> Result<lpm::Response, PoolError> {
        tokio::time::timeout(DEADLINE, self.pool.enqueue(payload))
            .await
            .expect("the request resolves")
    }

    /// Waits for the pool to kill `pid`: its `WorkerKilled` (checked to come
    /// before its `ChildExited`), its exit, and a replacement with another
    /// pid in slot 0. Returns the reason, the exit event and the replacement's pid.
    async fn killed(&mut self, pid: u32) -> (KillReason, PoolEvent, u32) {
        let killed = recv_or_fail(&mut self.events, "WorkerKilled", DEADLINE, |e| {
            if let PoolEvent::ChildExited { pid: p, .. } = e {
                assert_ne!(*p, pid, "ChildExited of {pid} came before its WorkerKilled");
            }
            matches!(e, PoolEvent::WorkerKilled { pid: p, .. } if *p == pid)
        })
        .await;
        let PoolEvent::WorkerKilled { slot, reason, .. } = killed else {
            unreachable!()
        };
        assert_eq!(slot, 0);
        let (exit, replacement) = self.exited_and_replaced(pid).await;
        (reason, exit, replacement)
    }

    /// Waits for `pid`'s `ChildExited` and a `ChildSpawned` with another pid in
    /// slot 0; returns the exit event and the replacement's pid.
    async fn exited_and_replaced(&mut self, pid: u32) -> (PoolEvent, u32) {
        let mut exit = None;
        let mut replacement = None;
        recv_or_fail(
            &mut self.events,
            "the ChildExited and the replacement's ChildSpawned",
            DEADLINE,
            |e| {
                match e {
                    PoolEvent::ChildExited { pid: p, .. } if *p == pid => exit = Some(e.clone()),
                    PoolEvent::ChildSpawned { slot: 0, pid: p } if *p != pid => {
                        replacement = Some(*p)
                    }
                    _ => {}
                }
                exit.is_some() && replacement.is_some()
            },
        )
        .await;
        (exit.unwrap(), replacement.unwrap())
    }

    /// The replacement serves: a request is answered by `replacement`.
    async fn serves_with(&self, replacement: u32) {
        let response = self
            .send("still serving")
            .await
            .expect("the replacement serves");
        assert_eq!(response.data::<String>().unwrap(), "still serving");
        assert_eq!(response.pid(), replacement);
    }
}

/// The pool settings of these tests: one worker, no retries, and restarts
/// enough that the restart limit never interferes.
fn one_worker() -> Config {
    config(1).retries(0).max_restarts(20)
}

/// Sends one request to the hostile worker and checks it fails with
/// `WorkerKilled` (no retries spent), the event's reason being the error's.
/// Returns the reason and the replacement's pid.
async fn request_fails_with_worker_killed(hostile: &mut Hostile) -> (KillReason, u32) {
    let pid = hostile.online_pid().await;
    let answer = hostile.send("provoke").await;
    let Err(PoolError::WorkerKilled {
        slot,
        pid: failed_pid,
        reason,
        retries_spent,
        ..
    }) = answer
    else {
        panic!("expected WorkerKilled, got {answer:?}");
    };
    assert_eq!((slot, failed_pid, retries_spent), (0, pid, 0));
    let (event_reason, _, replacement) = hostile.killed(pid).await;
    assert_eq!(
        event_reason, reason,
        "the event and the error give one reason"
    );
    (reason, replacement)
}

fn violation(reason: &KillReason) -> &str {
    match reason {
        KillReason::ProtocolViolation(text) => text,
        other => panic!("expected ProtocolViolation, got {other:?}"),
    }
}

/// A frame whose body decodes as no message.
#[actix_rt::test]
async fn garbage_is_a_protocol_violation() {
    let mut hostile = Hostile::start("garbage", one_worker());
    let (reason, replacement) = request_fails_with_worker_killed(&mut hostile).await;
    let text = violation(&reason);
    assert!(text.contains("malformed"), "{text}");
    hostile.serves_with(replacement).await;
    hostile.pool.soft_kill().await.expect("the pool is running");
}

/// A length prefix one over the frame limit: refused before any allocation.
#[actix_rt::test]
async fn an_oversized_length_is_a_protocol_violation() {
    let max = 64 * 1024;
    let mut hostile = Hostile::start("oversized", one_worker().max_frame_len(max));
    let (reason, replacement) = request_fails_with_worker_killed(&mut hostile).await;
    let text = violation(&reason);
    assert!(
        text.contains(&(max + 1).to_string()) && text.contains("limit"),
        "{text}"
    );
    hostile.serves_with(replacement).await;
    hostile.pool.soft_kill().await.expect("the pool is running");
}

/// A frame cut short by the worker's exit is a death, not misbehaviour (a
/// worker killed while writing looks the same): the request fails with
/// WorkerDied and the slot is refilled.
#[actix_rt::test]
async fn a_truncated_frame_then_exit_is_a_death() {
    let mut hostile = Hostile::start("truncated-exit", one_worker());
    let pid = hostile.online_pid().await;
    let answer = hostile.send("provoke").await;
    assert!(
        matches!(
            answer,
            Err(PoolError::WorkerDied {
                slot: 0,
                pid: p,
                retries_spent: 0,
                ..
            }) if p == pid
        ),
        "{answer:?}"
    );
    let (exit, replacement) = hostile.exited_and_replaced(pid).await;
    assert!(
        matches!(exit, PoolEvent::ChildExited { code: Some(0), .. }),
        "{exit:?}"
    );
    hostile.serves_with(replacement).await;
    hostile.pool.soft_kill().await.expect("the pool is running");
}

/// An answer for an id the worker never received.
#[actix_rt::test]
async fn an_answer_for_an_unknown_id_is_a_protocol_violation() {
    let mut hostile = Hostile::start("unknown-id", one_worker());
    let pid = hostile.online_pid().await;
    let answer = hostile.send("provoke").await;
    let Err(PoolError::WorkerKilled {
        reason,
        retries_spent: 0,
        ..
    }) = answer
    else {
        panic!("expected WorkerKilled, got {answer:?}");
    };
    let (event_reason, exit, replacement) = hostile.killed(pid).await;
    assert_eq!(event_reason, reason);
    // The worker wrote the id it made up to its stderr.
    let PoolEvent::ChildExited { stderr_tail, .. } = exit else {
        unreachable!()
    };
    let unknown = stderr_tail
        .iter()
        .find_map(|l| l.strip_prefix("hostile_worker: answering unknown id "))
        .unwrap_or_else(|| panic!("no made-up id in the stderr tail {stderr_tail:?}"));
    let text = violation(&reason);
    assert!(text.contains(unknown), "{text} does not name {unknown}");
    hostile.serves_with(replacement).await;
    hostile.pool.soft_kill().await.expect("the pool is running");
}

/// A second answer for the same request: the first one is the request's
/// answer, the second kills the worker.
#[actix_rt::test]
async fn a_second_answer_is_a_protocol_violation() {
    let mut hostile = Hostile::start("duplicate", one_worker());
    let pid = hostile.online_pid().await;
    let response = hostile
        .send("answered twice")
        .await
        .expect("the first answer is the request's");
    assert_eq!(response.data::<String>().unwrap(), "answered twice");
    assert_eq!(response.pid(), pid);
    let (reason, _, replacement) = hostile.killed(pid).await;
    let text = violation(&reason);
    assert!(
        text.contains(&response.id().to_string()),
        "{text} does not name {}",
        response.id()
    );
    hostile.serves_with(replacement).await;
    hostile.pool.soft_kill().await.expect("the pool is running");
}

/// A worker that never sends Hello is killed at the spawn timeout; a request
/// waiting meanwhile is served by the replacement.
#[actix_rt::test]
async fn no_handshake_is_killed_at_the_spawn_timeout() {
    let mut hostile = Hostile::start("no-handshake", one_worker().spawn_timeout(SPAWN_TIMEOUT));
    let spawned = recv_or_fail(
        &mut hostile.events,
        "the first ChildSpawned",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildSpawned { slot: 0, .. }),
    )
    .await;
    let PoolEvent::ChildSpawned { pid, .. } = spawned else {
        unreachable!()
    };
    let waiting = {
        let pool = hostile.pool.clone();
        actix_rt::spawn(async move { pool.enqueue(&"waited").await })
    };
    let (reason, _, replacement) = hostile.killed(pid).await;
    assert_eq!(
        reason,
        KillReason::NoHandshake {
            after: SPAWN_TIMEOUT
        }
    );
    let response = tokio::time::timeout(DEADLINE, waiting)
        .await
        .expect("the waiting request resolves")
        .expect("the request task runs")
        .expect("the replacement serves the waiting request");
    assert_eq!(response.pid(), replacement);
    online(&hostile.pool).await;
    hostile.serves_with(replacement).await;
    hostile.pool.soft_kill().await.expect("the pool is running");
}

/// A Hello with another protocol version.
#[actix_rt::test]
async fn a_wrong_protocol_version_is_a_protocol_violation() {
    a_bad_hello_is_a_protocol_violation("bad-version", "999").await;
}

/// A `Hello` that lists a call name twice (which number would it have?) is
/// a protocol violation.
#[actix_rt::test]
async fn a_hello_that_lists_a_call_twice_is_a_protocol_violation() {
    a_bad_hello_is_a_protocol_violation("duplicate-calls", "twice").await;
}

/// The first worker of a `mode` whose `Hello` is wrong is killed for a
/// violation that says `why`; its replacement serves.
async fn a_bad_hello_is_a_protocol_violation(mode: &str, why: &str) {
    let mut hostile = Hostile::start(mode, one_worker());
    let spawned = recv_or_fail(
        &mut hostile.events,
        "the first ChildSpawned",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildSpawned { slot: 0, .. }),
    )
    .await;
    let PoolEvent::ChildSpawned { pid, .. } = spawned else {
        unreachable!()
    };
    let (reason, _, replacement) = hostile.killed(pid).await;
    let text = violation(&reason);
    assert!(text.contains(why), "{text}");
    online(&hostile.pool).await;
    hostile.serves_with(replacement).await;
    hostile.pool.soft_kill().await.expect("the pool is running");
}

/// A worker that stops answering anything, Pings included, is killed by the
/// heartbeat; a worker that answers them is left alone.
#[actix_rt::test]
async fn a_silent_worker_is_killed_by_the_heartbeat() {
    let mut hostile = Hostile::start(
        "silent",
        one_worker().heartbeat(HEARTBEAT_EVERY, HEARTBEAT_TIMEOUT),
    );
    let (reason, replacement) = request_fails_with_worker_killed(&mut hostile).await;
    let KillReason::Unresponsive { silent_for } = reason else {
        panic!("expected Unresponsive, got {reason:?}");
    };
    assert!(
        silent_for >= HEARTBEAT_TIMEOUT && silent_for < DEADLINE,
        "silent for {silent_for:?}"
    );
    hostile.serves_with(replacement).await;
    // The replacement answers its Pings: it outlives several heartbeat timeouts.
    wait_for_health(
        &hostile.pool,
        "the replacement has run for three heartbeat timeouts",
        DEADLINE,
        |h| {
            assert_eq!(h[0].pid, Some(replacement), "the replacement was killed");
            h[0].uptime >= 3 * HEARTBEAT_TIMEOUT
        },
    )
    .await;
    hostile.pool.soft_kill().await.expect("the pool is running");
}

/// With a retry left, the request of a killed worker is retried like after a
/// death, and the replacement answers it.
#[actix_rt::test]
async fn a_killed_workers_request_with_retries_left_is_retried() {
    let mut hostile = Hostile::start("garbage", one_worker().retries(1));
    let pid = hostile.online_pid().await;
    let response = hostile
        .send("retried")
        .await
        .expect("the retry is answered");
    assert_eq!(response.data::<String>().unwrap(), "retried");
    let (reason, _, replacement) = hostile.killed(pid).await;
    violation(&reason);
    assert_eq!(response.pid(), replacement);
    hostile.pool.soft_kill().await.expect("the pool is running");
}
