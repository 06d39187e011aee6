//! The conformance suite: one set of scenarios run against every worker
//! implementation (Rust, Python, Node) over each transport. Each
//! implementation's conformance worker serves the calls of
//! `tests/conformance/SPEC.md`; `lpm_tests::conformance` fixes their shapes.

use std::time::Duration;

use futures::StreamExt;
use lpm::prelude::*;
use lpm::{Codec, EventStream, TraceParent, Transport, WorkerCommand, WorkerState};
use lpm_tests::conformance::{
    stream_byte, Add, Ask, BusyFor, CrashOnce, Echo, Fail, Recall, Report, Sleep, StreamBytes,
    TraceOf, WhoAmI, CANCELLED, GOODBYE, QUESTION, REMEMBER,
};
use lpm_tests::typed::Unserved;
use lpm_tests::{
    config, health, online, process_alive, recv_or_fail, start, wait_for_health, wait_until,
    within, DEADLINE,
};
use serde_json::json;
use tokio::io::AsyncReadExt;

/// A worker implementation under test.
#[derive(Debug, Clone, Copy)]
enum Impl {
    Rust,
    Python,
    Node,
}

/// How the supervisor reaches the worker.
#[derive(Debug, Clone, Copy)]
enum Via {
    Socketpair,
    Stdio,
}

fn command(implementation: Impl, via: Via) -> WorkerCommand {
    let command = match implementation {
        Impl::Rust => WorkerCommand::new(env!("CARGO_BIN_EXE_conformance_worker")),
        Impl::Python => WorkerCommand::new("python3").arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../python/examples/conformance_worker.py"
        )),
        Impl::Node => WorkerCommand::new("node").arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../node/examples/conformance_worker.js"
        )),
    };
    match via {
        Via::Socketpair => command,
        Via::Stdio => command.transport(Transport::Stdio),
    }
}

fn pool_config(workers: usize) -> Config {
    config(workers).codec(Codec::Json)
}

async fn started(implementation: Impl, via: Via, config: Config) -> (Pool, EventStream) {
    let (pool, events) = start(command(implementation, via), config);
    online(&pool).await;
    (pool, events)
}

/// Sends `call` from a task of its own, so the test can watch the pool meanwhile.
fn spawn_call<C: lpm::Call>(
    pool: &Pool,
    call: C,
) -> tokio::task::JoinHandle<Result<C::Reply, PoolError>>
where
    C::Reply: Send,
{
    let pool = pool.clone();
    tokio::spawn(async move { pool.call(call).await })
}

async fn only_pid(pool: &Pool) -> u32 {
    health(pool).await[0].pid.expect("the worker is alive")
}

async fn echo(implementation: Impl, via: Via) {
    let (pool, _events) = started(implementation, via, pool_config(1)).await;
    let value = json!({"text": "héllo", "list": [1, -2, 3.5, null, true], "nested": {"k": "v"}});
    let answer = within("echo", pool.call(Echo(value.clone())))
        .await
        .unwrap();
    assert_eq!(answer, value);
    pool.soft_kill().await.unwrap();
}

async fn typed_calls(implementation: Impl, via: Via) {
    let (pool, _events) = started(implementation, via, pool_config(1)).await;
    assert_eq!(
        within("add", pool.call(Add { a: 2, b: 40 })).await.unwrap(),
        42
    );
    assert_eq!(
        within("add", pool.call(Add { a: -7, b: 3 })).await.unwrap(),
        -4
    );
    let me = within("slot", pool.call(WhoAmI)).await.unwrap();
    assert_eq!(me.slot, 0);
    assert_eq!(me.pid, only_pid(&pool).await);
    let unserved = within("a call it does not serve", pool.call(Unserved)).await;
    assert!(
        matches!(unserved, Err(PoolError::NotHandled { .. })),
        "{unserved:?}"
    );
    pool.soft_kill().await.unwrap();
}

async fn handler_error(implementation: Impl, via: Via) {
    let (pool, _events) = started(implementation, via, pool_config(1)).await;
    let pid = only_pid(&pool).await;
    let failed = within(
        "fail",
        pool.call(Fail {
            message: "boom 42".into(),
        }),
    )
    .await;
    match failed {
        Err(PoolError::Handler { message, .. }) => {
            assert!(message.contains("boom 42"), "{message}")
        }
        other => panic!("expected a handler error, got {other:?}"),
    }
    assert_eq!(
        within("add", pool.call(Add { a: 1, b: 1 })).await.unwrap(),
        2
    );
    assert_eq!(
        only_pid(&pool).await,
        pid,
        "a handler error does not kill the worker"
    );
    pool.soft_kill().await.unwrap();
}

async fn crash_retried(implementation: Impl, via: Via) {
    let (pool, mut events) = started(implementation, via, pool_config(1).retries(1)).await;
    let pid = only_pid(&pool).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("crashed").to_string_lossy().into_owned();
    let answer = within(
        "crash_once",
        pool.call(CrashOnce {
            marker: marker.clone(),
        }),
    )
    .await;
    assert_eq!(answer.unwrap(), "survived");
    assert!(
        std::path::Path::new(&marker).exists(),
        "the first attempt crashed"
    );
    recv_or_fail(
        &mut events,
        "the crashed worker's exit",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { pid: p, code: Some(3), .. } if *p == pid),
    )
    .await;
    wait_for_health(&pool, "the slot restarted once", DEADLINE, |h| {
        h[0].restarts == 1
    })
    .await;
    pool.soft_kill().await.unwrap();
}

async fn timeout_cancel_then_serves(implementation: Impl, via: Via) {
    let (pool, mut events) = started(implementation, via, pool_config(1)).await;
    let pid = only_pid(&pool).await;
    let request = Enqueue::call(Sleep { ms: 60_000 })
        .timeout(Duration::from_millis(300))
        .retries(0);
    let timed_out = within("the sleep's timeout", pool.send(request)).await;
    assert!(
        matches!(timed_out, Err(PoolError::Timeout { .. })),
        "{timed_out:?}"
    );
    let cancelled = recv_or_fail(
        &mut events,
        "the handler's cancellation",
        DEADLINE,
        |e| matches!(e, PoolEvent::Custom(c) if c.name() == CANCELLED),
    )
    .await;
    let PoolEvent::Custom(cancelled) = cancelled else {
        unreachable!()
    };
    assert_eq!(cancelled.data::<u64>().unwrap(), 60_000);
    assert_eq!(
        within("add", pool.call(Add { a: 3, b: 4 })).await.unwrap(),
        7
    );
    assert_eq!(
        only_pid(&pool).await,
        pid,
        "a timeout does not cost the worker"
    );
    pool.soft_kill().await.unwrap();
}

async fn heartbeat_while_busy_handler(implementation: Impl, via: Via) {
    let config = pool_config(1).heartbeat(Duration::from_millis(50), Duration::from_secs(2));
    let (pool, _events) = started(implementation, via, config).await;
    let pid = only_pid(&pool).await;
    let slept = within(
        "a sleep longer than the heartbeat's timeout",
        pool.call(Sleep { ms: 3_000 }),
    );
    assert_eq!(slept.await.unwrap(), 3_000);
    let h = health(&pool).await;
    assert_eq!((h[0].pid, h[0].restarts), (Some(pid), 0), "{h:?}");
    pool.soft_kill().await.unwrap();
}

async fn broadcast(implementation: Impl, via: Via) {
    let (pool, _events) = started(implementation, via, pool_config(1)).await;
    assert_eq!(
        within("recall", pool.call(Recall)).await.unwrap(),
        json!(null)
    );
    let value = json!({"version": 7, "name": "config"});
    assert_eq!(pool.broadcast(REMEMBER, &value).await.unwrap(), 1);
    // The event and a later request travel through different actors.
    wait_until("the worker remembers the broadcast", DEADLINE, || async {
        pool.call(Recall).await.ok() == Some(value.clone())
    })
    .await;
    pool.soft_kill().await.unwrap();
}

async fn emit_with_reply(implementation: Impl, via: Via) {
    let (pool, mut events) = started(implementation, via, pool_config(1)).await;
    let asking = spawn_call(
        &pool,
        Ask {
            question: "6 * 7?".into(),
        },
    );
    let question = recv_or_fail(
        &mut events,
        "the worker's question",
        DEADLINE,
        |e| matches!(e, PoolEvent::Custom(c) if c.name() == QUESTION),
    )
    .await;
    let PoolEvent::Custom(question) = question else {
        unreachable!()
    };
    assert!(question.wants_reply());
    assert_eq!(question.data::<String>().unwrap(), "6 * 7?");
    question.reply(&json!({"answer": 42})).unwrap();
    let answer = within("the ask", asking).await.unwrap().unwrap();
    assert_eq!(answer, json!({"answer": 42}));
    pool.soft_kill().await.unwrap();
}

async fn stats(implementation: Impl, via: Via) {
    let (pool, _events) = started(implementation, via, pool_config(1)).await;
    let report = Report {
        name: "cache_hits".into(),
        value: 12.5,
    };
    within("report", pool.call(report)).await.unwrap();
    wait_for_health(&pool, "the reported stats", DEADLINE, |h| {
        h[0].stats
            .iter()
            .any(|(name, v)| name == "cache_hits" && *v == 12.5)
    })
    .await;
    pool.soft_kill().await.unwrap();
}

async fn soft_kill_drains(implementation: Impl, via: Via) {
    let (pool, mut events) = started(implementation, via, pool_config(1)).await;
    let pid = only_pid(&pool).await;
    let sleeping: Vec<_> = (0..3)
        .map(|_| spawn_call(&pool, Sleep { ms: 400 }))
        .collect();
    wait_for_health(&pool, "three sleeps in flight", DEADLINE, |h| {
        h[0].in_flight == 3
    })
    .await;
    let report = within("the soft kill", pool.soft_kill()).await.unwrap();
    for s in sleeping {
        assert_eq!(within("a drained sleep", s).await.unwrap().unwrap(), 400);
    }
    let mut said_goodbye = false;
    let mut exit_code = None;
    while let Some(event) = events.next().await {
        match event {
            PoolEvent::Custom(c) if c.name() == GOODBYE => said_goodbye = true,
            PoolEvent::ChildExited { pid: p, code, .. } if p == pid => exit_code = code,
            PoolEvent::Stopped(_) => break,
            _ => {}
        }
    }
    assert!(said_goodbye, "the soft-kill hook ran");
    assert_eq!(exit_code, Some(0), "{report:?}");
    assert!(!process_alive(pid));
}

async fn hard_kill(implementation: Impl, via: Via) {
    let (pool, _events) = started(implementation, via, pool_config(1)).await;
    let pid = only_pid(&pool).await;
    let sleeping = spawn_call(&pool, Sleep { ms: 60_000 });
    wait_for_health(&pool, "the sleep in flight", DEADLINE, |h| {
        h[0].in_flight == 1
    })
    .await;
    within("the hard kill", pool.hard_kill()).await.unwrap();
    let killed = within("the killed sleep", sleeping).await.unwrap();
    assert!(matches!(killed, Err(PoolError::Killed)), "{killed:?}");
    wait_until("the worker is gone", DEADLINE, || async {
        !process_alive(pid)
    })
    .await;
}

async fn response_stream_16mib(implementation: Impl, via: Via) {
    let (pool, _events) = started(implementation, via, pool_config(1)).await;
    const LEN: u64 = 16 << 20;
    let (len, response) = within(
        "the stream's answer",
        pool.send(Enqueue::call(StreamBytes { bytes: LEN }).with_response()),
    )
    .await
    .unwrap();
    assert_eq!(len, LEN);
    let mut stream = response.take_stream().expect("the answer has a stream");
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    loop {
        let n = within("stream bytes", stream.read(&mut buf)).await.unwrap();
        if n == 0 {
            break;
        }
        for (i, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, stream_byte(at + i as u64), "byte {}", at + i as u64);
        }
        at += n as u64;
    }
    assert_eq!(at, LEN);
    pool.soft_kill().await.unwrap();
}

async fn busy_and_ready(implementation: Impl, via: Via) {
    let (pool, _events) = started(implementation, via, pool_config(1)).await;
    let busy = spawn_call(&pool, BusyFor { ms: 700 });
    wait_for_health(&pool, "the worker busy", DEADLINE, |h| {
        h[0].state == WorkerState::Busy
    })
    .await;
    assert_eq!(within("busy", busy).await.unwrap().unwrap(), 700);
    wait_for_health(&pool, "the worker ready again", DEADLINE, |h| {
        h[0].state == WorkerState::Ready
    })
    .await;
    pool.soft_kill().await.unwrap();
}

/// The caller's trace reaches the handler: its trace id and flags, whether
/// or not the pool adds a span of its own (then the parent is that span).
async fn trace_context(implementation: Impl, via: Via) {
    let (pool, _events) = started(implementation, via, pool_config(1)).await;
    let caller: TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        .parse()
        .unwrap();
    let seen = within(
        "trace",
        pool.send(Enqueue::call(TraceOf).trace_parent(caller)),
    )
    .await
    .unwrap();
    let seen: TraceParent = seen
        .expect("the handler sees the trace context")
        .parse()
        .unwrap();
    assert_eq!(seen.trace_id(), caller.trace_id());
    assert_eq!(seen.flags(), caller.flags());
    pool.soft_kill().await.unwrap();
}

/// One module per implementation and transport, with one test per scenario.
macro_rules! column {
    ($name:ident, $implementation:expr, $via:expr) => {
        mod $name {
            use super::*;

            column!(@tests $implementation, $via; echo, typed_calls, handler_error,
                crash_retried, timeout_cancel_then_serves, heartbeat_while_busy_handler,
                broadcast, emit_with_reply, stats, soft_kill_drains, hard_kill,
                response_stream_16mib, busy_and_ready, trace_context);
        }
    };
    (@tests $implementation:expr, $via:expr; $($scenario:ident),*) => {
        $(
            #[actix_rt::test]
            async fn $scenario() {
                super::$scenario($implementation, $via).await;
            }
        )*
    };
}

column!(rust_socketpair, Impl::Rust, Via::Socketpair);
column!(rust_stdio, Impl::Rust, Via::Stdio);
column!(python_socketpair, Impl::Python, Via::Socketpair);
column!(python_stdio, Impl::Python, Via::Stdio);
column!(node_socketpair, Impl::Node, Via::Socketpair);
column!(node_stdio, Impl::Node, Via::Stdio);
