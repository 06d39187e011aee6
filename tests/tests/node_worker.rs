//! The Node worker library against the real supervisor: a pool of
//! `node node/examples/conformance_worker.js` (tests/conformance/SPEC.md)
//! over the socketpair, with the JSON codec. Typed calls, a handler error,
//! NotHandled, a crash retried, a timeout's Cancel, the heartbeat under a
//! busy handler, broadcast, emit with reply, stats, busy and ready, soft and
//! hard kill. Response streams are left to the conformance suite: they need
//! a supervisor that takes in-band frames.
//!
//! Needs `node` (18 or later) on the PATH.

use std::path::PathBuf;
use std::time::Duration;

use lpm::prelude::*;
use lpm_tests::{config, health, online, recv_or_fail, start, wait_for_health, within, DEADLINE};
use serde::{Deserialize, Serialize};

fn node_worker() -> WorkerCommand {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../node/examples/conformance_worker.js"
    );
    WorkerCommand::new("node").arg(script)
}

fn json_config(workers: usize) -> Config {
    config(workers).codec(Codec::Json)
}

#[derive(Debug, Serialize, Deserialize)]
struct Echo(serde_json::Value);
impl Call for Echo {
    const NAME: &'static str = "echo";
    type Reply = serde_json::Value;
}

#[derive(Debug, Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}
impl Call for Add {
    const NAME: &'static str = "add";
    type Reply = i64;
}

#[derive(Debug, Serialize, Deserialize)]
struct Fail {
    message: String,
}
impl Call for Fail {
    const NAME: &'static str = "fail";
    type Reply = ();
}

#[derive(Debug, Serialize, Deserialize)]
struct CrashOnce {
    marker: PathBuf,
}
impl Call for CrashOnce {
    const NAME: &'static str = "crash_once";
    type Reply = String;
}

#[derive(Debug, Serialize, Deserialize)]
struct Sleep {
    ms: u64,
}
impl Call for Sleep {
    const NAME: &'static str = "sleep";
    type Reply = u64;
}

#[derive(Debug, Serialize, Deserialize)]
struct Busy {
    ms: u64,
}
impl Call for Busy {
    const NAME: &'static str = "busy";
    type Reply = u64;
}

#[derive(Debug, Serialize, Deserialize)]
struct Ask {
    question: String,
}
impl Call for Ask {
    const NAME: &'static str = "ask";
    type Reply = String;
}

#[derive(Debug, Serialize, Deserialize)]
struct Recall;
impl Call for Recall {
    const NAME: &'static str = "recall";
    type Reply = Option<serde_json::Value>;
}

#[derive(Debug, Serialize, Deserialize)]
struct Report {
    name: String,
    value: f64,
}
impl Call for Report {
    const NAME: &'static str = "report";
    type Reply = ();
}

#[derive(Debug, Serialize, Deserialize)]
struct Slot;
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SlotInfo {
    pid: u32,
    slot: u32,
}
impl Call for Slot {
    const NAME: &'static str = "slot";
    type Reply = SlotInfo;
}

/// Waits for the worker's custom event `name`.
async fn custom(events: &mut lpm::EventStream, name: &str) -> CustomEvent {
    let event = recv_or_fail(
        events,
        name,
        DEADLINE,
        |e| matches!(e, PoolEvent::Custom(c) if c.name() == name),
    )
    .await;
    let PoolEvent::Custom(c) = event else {
        unreachable!("recv_or_fail returned an event its predicate refused")
    };
    c
}

#[actix_rt::test]
async fn typed_calls_a_handler_error_and_not_handled() {
    let (pool, _events) = start(node_worker(), json_config(2));
    online(&pool).await;
    let value = serde_json::json!({ "nested": [1, "two", null] });
    let echoed = within("echo", pool.call(Echo(value.clone()))).await;
    assert_eq!(echoed.unwrap(), value);
    let sum = within("add", pool.call(Add { a: 2, b: 40 })).await;
    assert_eq!(sum.unwrap(), 42);
    let slot = within("slot", pool.call(Slot)).await.unwrap();
    let workers = health(&pool).await;
    let mine = workers.iter().find(|w| w.pid == Some(slot.pid));
    assert_eq!(mine.map(|w| w.slot as u32), Some(slot.slot), "{workers:?}");

    let err = within(
        "fail",
        pool.call(Fail {
            message: "out of cheese".into(),
        }),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, PoolError::Handler { message, .. } if message.contains("out of cheese")),
        "{err:?}"
    );
    // Untyped requests: the worker has no untyped handler.
    let err = within("an untyped request", pool.enqueue(&"plain"))
        .await
        .unwrap_err();
    assert!(matches!(err, PoolError::NotHandled { .. }), "{err:?}");
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn a_crash_mid_request_is_retried_on_a_new_worker() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("crashed");
    let (pool, mut events) = start(node_worker(), json_config(1));
    online(&pool).await;
    let request = Enqueue::call(CrashOnce {
        marker: marker.clone(),
    })
    .retries(1);
    let answer = within("crash_once", pool.send(request)).await;
    assert_eq!(answer.unwrap(), "survived");
    assert!(marker.exists());
    let exited = recv_or_fail(&mut events, "the crash", DEADLINE, |e| {
        matches!(e, PoolEvent::ChildExited { code: Some(3), .. })
    })
    .await;
    assert!(matches!(exited, PoolEvent::ChildExited { .. }));
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn a_timeout_cancels_the_handler_and_the_worker_serves_on() {
    let (pool, mut events) = start(node_worker(), json_config(1));
    online(&pool).await;
    let pid = health(&pool).await[0].pid;
    let request = Enqueue::call(Sleep { ms: 60_000 }).timeout(Duration::from_millis(200));
    let err = within("the timeout", pool.send(request)).await.unwrap_err();
    assert!(matches!(err, PoolError::Timeout { .. }), "{err:?}");
    let cancelled = custom(&mut events, "cancelled").await;
    assert_eq!(cancelled.data::<u64>().unwrap(), 60_000);
    let answer = within("echo after the cancel", pool.call(Echo(7.into()))).await;
    assert_eq!(answer.unwrap(), 7);
    assert_eq!(health(&pool).await[0].pid, pid, "the same worker served on");
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn the_heartbeat_is_answered_while_a_handler_waits() {
    let config = json_config(1).heartbeat(Duration::from_millis(50), Duration::from_millis(500));
    let (pool, mut events) = start(node_worker(), config);
    online(&pool).await;
    let slept = within("a sleep of 1.5 s", pool.call(Sleep { ms: 1500 })).await;
    assert_eq!(slept.unwrap(), 1500);
    let killed = lpm_tests::drain_now(&mut events)
        .into_iter()
        .find(|e| matches!(e, PoolEvent::WorkerKilled { .. }));
    assert!(killed.is_none(), "{killed:?}");
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn broadcast_emit_with_reply_and_stats() {
    let (pool, mut events) = start(node_worker(), json_config(2));
    online(&pool).await;
    let reached = pool
        .broadcast("remember", &serde_json::json!({ "kept": true }))
        .await;
    assert_eq!(reached, Ok(2));
    for _ in 0..2 {
        let recalled = within("recall", pool.call(Recall)).await.unwrap();
        assert_eq!(recalled, Some(serde_json::json!({ "kept": true })));
    }

    let ask = pool.call(Ask {
        question: "six times seven?".into(),
    });
    let answer_it = async {
        let question = custom(&mut events, "question").await;
        assert!(question.wants_reply());
        assert_eq!(question.data::<String>().unwrap(), "six times seven?");
        question.reply(&"forty-two").unwrap();
    };
    let (answer, ()) = within("ask", async { futures::join!(ask, answer_it) }).await;
    assert_eq!(answer.unwrap(), "forty-two");

    let report = Report {
        name: "cache_hits".into(),
        value: 12.5,
    };
    within("report", pool.call(report)).await.unwrap();
    wait_for_health(&pool, "the stats in health", DEADLINE, |workers| {
        workers
            .iter()
            .any(|w| w.stats == [("cache_hits".to_owned(), 12.5)])
    })
    .await;
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn busy_then_ready() {
    let (pool, _events) = start(node_worker(), json_config(1));
    online(&pool).await;
    let busy = pool.call(Busy { ms: 2000 });
    let watch = async {
        wait_for_health(&pool, "the worker busy", DEADLINE, |w| {
            w[0].state == WorkerState::Busy
        })
        .await;
    };
    let (answer, ()) = within("busy", async { futures::join!(busy, watch) }).await;
    assert_eq!(answer.unwrap(), 2000);
    wait_for_health(&pool, "the worker ready again", DEADLINE, |w| {
        w[0].state == WorkerState::Ready
    })
    .await;
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn soft_kill_runs_the_hook_and_drains_the_requests_in_flight() {
    let (pool, mut events) = start(node_worker(), json_config(1));
    online(&pool).await;
    let pid = health(&pool).await[0].pid.unwrap();
    let sleeping = pool.call(Sleep { ms: 400 });
    let kill = async {
        wait_for_health(&pool, "the sleep in flight", DEADLINE, |w| {
            w[0].in_flight == 1
        })
        .await;
        pool.soft_kill().await
    };
    let (slept, report) = within("the drain", async { futures::join!(sleeping, kill) }).await;
    assert_eq!(slept.unwrap(), 400);
    report.unwrap();
    let goodbye = custom(&mut events, "goodbye").await;
    assert_eq!(goodbye.pid(), pid);
    recv_or_fail(
        &mut events,
        "the clean exit",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { pid: p, code: Some(0), .. } if *p == pid),
    )
    .await;
}

#[actix_rt::test]
async fn hard_kill_ends_the_worker_at_once() {
    let (pool, _events) = start(node_worker(), json_config(1));
    online(&pool).await;
    let held = pool.call(Sleep { ms: 60_000 });
    let kill = async {
        wait_for_health(&pool, "the sleep in flight", DEADLINE, |w| {
            w[0].in_flight == 1
        })
        .await;
        pool.hard_kill().await
    };
    let (held, report) = within("the hard kill", async { futures::join!(held, kill) }).await;
    assert_eq!(held.unwrap_err(), PoolError::Killed);
    report.unwrap();
}
