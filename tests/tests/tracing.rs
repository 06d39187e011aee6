//! Tracing across the process boundary (`typed_worker`): a request's span in
//! the supervisor records its id, call, attempt, queue wait, slot, pid and
//! outcome; its `traceparent` reaches the worker, continuing the caller's
//! trace when there is one; the worker's log lines inside the handler carry
//! the request id and the trace; and with nobody listening, nothing is sent
//! but what the caller gave.

use std::time::Duration;

use lpm::prelude::*;
use lpm::{Pool, TraceParent, WorkerCommand as Command};
use lpm_tests::capture::{Captured, SpanRecord};
use lpm_tests::typed::{WaitForCancel, WhatTrace, TRACED_LINE};
use lpm_tests::{config, online, start, wait_until, within, DEADLINE};
use tracing::subscriber::DefaultGuard;

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn typed_worker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_typed_worker")).arg("--log")
}

/// A pool of one `typed_worker --log`, and what a subscriber for this
/// thread (where the pool's actors run) sees while the guard lives.
async fn traced_pool() -> (Pool, Captured, DefaultGuard) {
    let (subscriber, captured) = Captured::subscriber();
    let guard = tracing::subscriber::set_default(subscriber);
    let (pool, _events) = start(typed_worker(), config(1));
    online(&pool).await;
    (pool, captured, guard)
}

/// The closed `lpm::request` span of request `id`, waited for.
async fn request_span(captured: &Captured, id: uuid::Uuid) -> SpanRecord {
    let find = || {
        captured
            .closed_spans()
            .into_iter()
            .find(|s| s.target == "lpm::request" && s.fields.get("id") == Some(&id.to_string()))
    };
    wait_until("the request's span closes", DEADLINE, || {
        let found = find().is_some();
        async move { found }
    })
    .await;
    find().unwrap()
}

#[actix_rt::test]
async fn a_traced_request_has_a_span_and_the_worker_continues_its_trace() {
    let (pool, captured, _guard) = traced_pool().await;

    let (context, response) = within(
        "what_trace",
        pool.send(Enqueue::call(WhatTrace).with_response()),
    )
    .await
    .unwrap();
    let span = request_span(&captured, response.id()).await;
    let field = |name: &str| span.fields.get(name).cloned().unwrap_or_default();
    assert_eq!(field("call"), "what_trace");
    assert_eq!(field("attempt"), "1");
    assert_eq!(field("slot"), response.slot().to_string());
    assert_eq!(field("pid"), response.pid().to_string());
    assert_eq!(field("outcome"), "served");
    field("queue_wait_us")
        .parse::<u64>()
        .expect("the queue wait is recorded in µs");

    // A trace of its own (from the request id), with this span as the parent.
    let context: TraceParent = context
        .expect("a traced request carries a context")
        .parse()
        .unwrap();
    assert_eq!(context.trace_id(), response.id().as_u128());
    assert_eq!(field("trace_id"), format!("{:032x}", context.trace_id()));
    assert_eq!(field("span_id"), format!("{:016x}", context.parent_id()));
    assert!(context.is_sampled());

    let finished = captured.events().into_iter().find(|e| {
        e.fields.get("message").map(String::as_str) == Some("request finished")
            && e.span.as_ref().and_then(|s| s.fields.get("id")) == Some(&response.id().to_string())
    });
    let finished_in = finished
        .expect("a `request finished` event in the span")
        .span
        .expect("in its span");
    assert_eq!(finished_in.fields["outcome"], "served", "recorded first");

    // The worker's log line from inside its handler, relayed from its
    // stderr, names the request and the trace.
    let id = response.id().to_string();
    let logged = || {
        captured.events().into_iter().find(|e| {
            e.target == "lpm::worker"
                && e.fields
                    .get("message")
                    .is_some_and(|line| line.contains(TRACED_LINE) && line.contains(&id))
        })
    };
    wait_until("the worker logs inside its handler", DEADLINE, || {
        let found = logged().is_some();
        async move { found }
    })
    .await;
    let line = logged().unwrap().fields["message"].clone();
    assert!(line.contains("call=what_trace"), "{line}");
    assert!(
        line.contains(&format!("trace_id={}", field("trace_id"))),
        "{line}"
    );
    assert!(
        line.contains(&format!("parent_id={}", field("span_id"))),
        "{line}"
    );
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn a_caller_context_is_continued_with_the_pool_span_as_parent() {
    let (pool, captured, _guard) = traced_pool().await;

    let caller: TraceParent = CALLER.parse().unwrap();
    let request = Enqueue::call(WhatTrace)
        .trace_parent(caller)
        .with_response();
    let (context, response) = within("what_trace", pool.send(request)).await.unwrap();
    let context: TraceParent = context.unwrap().parse().unwrap();
    let span = request_span(&captured, response.id()).await;
    assert_eq!(context.trace_id(), caller.trace_id());
    assert_eq!(context.flags(), caller.flags());
    assert_ne!(context.parent_id(), caller.parent_id());
    assert_eq!(
        span.fields["trace_id"],
        format!("{:032x}", caller.trace_id())
    );
    assert_eq!(
        span.fields["span_id"],
        format!("{:016x}", context.parent_id())
    );
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn a_request_that_times_out_or_is_abandoned_says_so_in_its_span() {
    let (pool, captured, _guard) = traced_pool().await;

    let timed_out = Enqueue::call(WaitForCancel)
        .timeout(Duration::from_millis(200))
        .retries(0);
    let error = within("the timeout", pool.send(timed_out))
        .await
        .unwrap_err();
    let Some(id) = error.request_id() else {
        panic!("a timeout names its request: {error}");
    };
    assert_eq!(
        request_span(&captured, id).await.fields["outcome"],
        "timeout"
    );

    // A caller that gives up: its request is cancelled.
    let gave_up = tokio::time::timeout(Duration::from_millis(200), pool.call(WaitForCancel)).await;
    assert!(gave_up.is_err(), "WaitForCancel never answers");
    let cancelled = || {
        captured
            .closed_spans()
            .into_iter()
            .filter(|s| s.target == "lpm::request")
            .any(|s| s.fields.get("outcome").map(String::as_str) == Some("cancelled"))
    };
    wait_until("the abandoned request's span closes", DEADLINE, || {
        let found = cancelled();
        async move { found }
    })
    .await;
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn with_nobody_listening_only_the_callers_context_is_sent() {
    let _guard = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
    let (pool, _events) = start(typed_worker(), config(1));
    online(&pool).await;

    let untraced = within("what_trace", pool.call(WhatTrace)).await.unwrap();
    assert_eq!(untraced, None);
    let caller: TraceParent = CALLER.parse().unwrap();
    let passed_on = within(
        "what_trace with a context",
        pool.send(Enqueue::call(WhatTrace).trace_parent(caller)),
    )
    .await
    .unwrap();
    assert_eq!(passed_on.as_deref(), Some(CALLER), "passed on untouched");
    pool.soft_kill().await.unwrap();
}
