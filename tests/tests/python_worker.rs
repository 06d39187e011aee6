//! The Python worker library (`python/lpm_worker`) under a real supervisor:
//! `python3 python/examples/conformance_worker.py` in a JSON pool over the
//! socketpair, through the scenarios of `tests/conformance/SPEC.md` that the
//! supervisor on this branch supports (in-band streams and the stdio
//! transport come with their own branch).

use std::path::PathBuf;
use std::time::Duration;

use lpm::prelude::*;
use lpm::{Call, Codec, PoolEvent, WorkerCommand, WorkerState};
use lpm_tests::{
    config, health, online, process_alive, recv_or_fail, start, wait_for_health, wait_until,
    within, DEADLINE,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The conformance worker of the Python library.
fn python_worker() -> WorkerCommand {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../python/examples/conformance_worker.py"
    );
    WorkerCommand::new("python3").arg(script)
}

fn json_config(workers: usize) -> lpm::Config {
    config(workers).codec(Codec::Json)
}

#[derive(Debug, Serialize, Deserialize)]
struct Echo(Value);

impl Call for Echo {
    const NAME: &'static str = "echo";
    type Reply = Value;
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
    type Reply = Value;
}

#[derive(Debug, Serialize, Deserialize)]
struct Recall;

impl Call for Recall {
    const NAME: &'static str = "recall";
    type Reply = Value;
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
struct SlotReply {
    pid: u32,
    slot: u32,
}

impl Call for Slot {
    const NAME: &'static str = "slot";
    type Reply = SlotReply;
}

#[derive(Debug, Serialize, Deserialize)]
struct Unserved;

impl Call for Unserved {
    const NAME: &'static str = "unserved";
    type Reply = ();
}

/// The next custom event named `name`.
async fn custom(events: &mut lpm::EventStream, name: &str) -> lpm::CustomEvent {
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
async fn echo_typed_calls_and_an_unserved_call() {
    let (pool, _events) = start(python_worker(), json_config(2));
    online(&pool).await;
    let value = json!({"nested": [1, "two", null, 3.5], "ok": true});
    let echoed = within("echo", pool.call(Echo(value.clone()))).await;
    assert_eq!(echoed.unwrap(), value);
    let sum = within("add", pool.call(Add { a: 40, b: 2 })).await;
    assert_eq!(sum.unwrap(), 42);
    let slot = within("slot", pool.call(Slot)).await.unwrap();
    let health = health(&pool).await;
    assert_eq!(
        health[slot.slot as usize].pid,
        Some(slot.pid),
        "the worker knows its slot and pid"
    );
    let err = within("unserved", pool.call(Unserved)).await.unwrap_err();
    assert_eq!(
        err,
        PoolError::NotHandled {
            name: "unserved".into()
        }
    );
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn a_handler_error_reaches_the_caller_with_its_message() {
    let (pool, _events) = start(python_worker(), json_config(1));
    online(&pool).await;
    let err = within(
        "fail",
        pool.call(Fail {
            message: "no such thing".into(),
        }),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, PoolError::Handler { message, .. } if message.contains("no such thing")),
        "{err:?}"
    );
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn a_crash_mid_request_is_retried_on_a_new_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, mut events) = start(python_worker(), json_config(1).retries(1));
    online(&pool).await;
    let first = health(&pool).await[0].pid;
    let marker = dir.path().join("crashed");
    let answer = within("crash_once", pool.call(CrashOnce { marker })).await;
    assert_eq!(answer.unwrap(), "survived");
    recv_or_fail(&mut events, "ChildExited with code 3", DEADLINE, |e| {
        matches!(e, PoolEvent::ChildExited { code: Some(3), .. })
    })
    .await;
    assert_ne!(health(&pool).await[0].pid, first, "a new worker answered");
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn a_timed_out_request_is_cancelled_and_the_worker_serves_on() {
    let (pool, mut events) = start(python_worker(), json_config(1));
    online(&pool).await;
    let pid = health(&pool).await[0].pid;
    let request = Enqueue::call(Sleep { ms: 60_000 }).timeout(Duration::from_millis(200));
    let err = within("the timeout", pool.send(request)).await.unwrap_err();
    assert!(matches!(err, PoolError::Timeout { .. }), "{err:?}");
    let cancelled = custom(&mut events, "cancelled").await;
    assert_eq!(cancelled.data::<u64>(), Ok(60_000));
    let sum = within("add", pool.call(Add { a: 1, b: 2 })).await;
    assert_eq!(sum.unwrap(), 3);
    assert_eq!(health(&pool).await[0].pid, pid, "the same worker serves on");
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn heartbeats_are_answered_while_a_handler_sleeps() {
    let config = json_config(1).heartbeat(Duration::from_millis(50), Duration::from_millis(400));
    let (pool, _events) = start(python_worker(), config);
    online(&pool).await;
    let pid = health(&pool).await[0].pid;
    // Three heartbeat timeouts long: a worker that did not answer would be killed.
    let slept = within("sleep", pool.call(Sleep { ms: 1200 })).await;
    assert_eq!(slept.unwrap(), 1200);
    assert_eq!(health(&pool).await[0].pid, pid, "never killed as hung");
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn a_broadcast_reaches_the_event_handler() {
    let (pool, _events) = start(python_worker(), json_config(1));
    online(&pool).await;
    assert_eq!(
        within("recall", pool.call(Recall)).await.unwrap(),
        Value::Null
    );
    let value = json!({"remember": "this"});
    assert_eq!(pool.broadcast("remember", &value).await, Ok(1));
    // The event and a later request travel through different actors.
    wait_until("the worker remembers the broadcast", DEADLINE, || async {
        pool.call(Recall).await.ok() == Some(value.clone())
    })
    .await;
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn an_emit_awaits_and_returns_the_subscribers_reply() {
    let (pool, mut events) = start(python_worker(), json_config(1));
    online(&pool).await;
    let ask = pool.call(Ask {
        question: "why".into(),
    });
    let reply = async {
        let question = custom(&mut events, "question").await;
        assert!(question.wants_reply());
        assert_eq!(question.data::<String>(), Ok("why".to_owned()));
        question.reply(&json!({"because": 42})).unwrap();
    };
    let (answer, ()) = within("ask", async { futures::join!(ask, reply) }).await;
    assert_eq!(answer.unwrap(), json!({"because": 42}));
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn reported_stats_show_in_health() {
    let (pool, _events) = start(python_worker(), json_config(1));
    online(&pool).await;
    let report = Report {
        name: "hits".into(),
        value: 2.5,
    };
    within("report", pool.call(report)).await.unwrap();
    wait_for_health(&pool, "the stats show", DEADLINE, |h| {
        h[0].stats == [("hits".to_owned(), 2.5)]
    })
    .await;
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn busy_stops_new_requests_until_ready() {
    let (pool, _events) = start(python_worker(), json_config(1));
    online(&pool).await;
    let busy = pool.call(Busy { ms: 600 });
    let watch = async {
        wait_for_health(&pool, "the worker says busy", DEADLINE, |h| {
            h[0].state == WorkerState::Busy
        })
        .await;
        // Sent while busy: served once the worker is ready again.
        pool.call(Add { a: 2, b: 2 }).await
    };
    let (busy, sum) = within("busy and add", async { futures::join!(busy, watch) }).await;
    assert_eq!(busy.unwrap(), 600);
    assert_eq!(sum.unwrap(), 4);
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn soft_kill_runs_the_hook_and_drains_the_requests() {
    let (pool, mut events) = start(python_worker(), json_config(1));
    online(&pool).await;
    let pid = health(&pool).await[0].pid.unwrap();
    let sleeping = pool.call(Sleep { ms: 500 });
    let kill = async {
        wait_for_health(&pool, "the request in flight", DEADLINE, |h| {
            h[0].in_flight == 1
        })
        .await;
        pool.soft_kill().await
    };
    let (slept, report) = within("the drain", async { futures::join!(sleeping, kill) }).await;
    assert_eq!(slept.unwrap(), 500, "the request in flight was answered");
    assert_eq!(report.unwrap().killed, 0);
    let goodbye = custom(&mut events, "goodbye").await;
    assert_eq!(goodbye.pid(), pid);
    recv_or_fail(
        &mut events,
        "a clean exit",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { pid: p, code: Some(0), .. } if *p == pid),
    )
    .await;
}

#[actix_rt::test]
async fn hard_kill_ends_the_worker_with_its_request() {
    let (pool, _events) = start(python_worker(), json_config(1));
    online(&pool).await;
    let pid = health(&pool).await[0].pid.unwrap();
    let sleeping = pool.call(Sleep { ms: 60_000 });
    let kill = async {
        wait_for_health(&pool, "the request in flight", DEADLINE, |h| {
            h[0].in_flight == 1
        })
        .await;
        pool.hard_kill().await
    };
    let (slept, report) = within("the kill", async { futures::join!(sleeping, kill) }).await;
    assert!(slept.is_err(), "the request in flight fails: {slept:?}");
    report.unwrap();
    assert!(
        !process_alive(pid),
        "the worker is gone once the kill returns"
    );
}
