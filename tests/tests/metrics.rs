//! `Pool::metrics` over real workers: outcome counters match what the
//! callers saw, retries, timeouts and restarts are counted (by reason, and
//! the counts survive the restart), the queue's high-water mark stays, the
//! histograms observe every request, and the Prometheus text parses as a
//! scraper reads it and says the same.

use std::collections::HashMap;
use std::time::Duration;

use futures::FutureExt;
use lpm::{
    Enqueue, ErrorKind, Measure, Metrics, Outcome, Pool, PoolError, Response, RestartReason,
};
use lpm_tests::{config, online, start, submit_all, test_worker, wait_until, Op, DEADLINE, HOLD};
use prometheus_parse::{LineInfo, Scrape, Value};

async fn metrics(pool: &Pool) -> Metrics {
    tokio::time::timeout(DEADLINE, pool.metrics())
        .await
        .expect("metrics within the deadline")
        .expect("the pool answers metrics")
}

/// Polls the metrics until `condition` holds, and returns them.
async fn metrics_when(pool: &Pool, what: &str, condition: impl Fn(&Metrics) -> bool) -> Metrics {
    wait_until(what, DEADLINE, || async { condition(&metrics(pool).await) }).await;
    metrics(pool).await
}

/// What the callers saw: answers, and errors by kind.
#[derive(Debug, Default)]
struct Seen {
    served: u64,
    failed: HashMap<ErrorKind, u64>,
}

impl Seen {
    fn add(&mut self, result: &Result<Response, PoolError>) {
        match result {
            Ok(_) => self.served += 1,
            Err(e) => *self.failed.entry(e.kind()).or_default() += 1,
        }
    }

    fn failed(&self, kind: ErrorKind) -> u64 {
        self.failed.get(&kind).copied().unwrap_or(0)
    }
}

/// Served, handler errors, a call nobody serves, a timeout and a cancel,
/// sent to two workers and counted on both sides.
async fn mixed_workload(pool: &Pool) -> Seen {
    let mut seen = Seen::default();
    let echoes = (0..20u8).map(|i| Op::Echo(vec![i; 8]));
    let fails = (0..2).map(|i| Op::Fail(format!("no {i}")));
    for result in submit_all(pool, echoes.chain(fails)).await.await {
        seen.add(&result);
    }
    let unserved = pool.send(Enqueue::from_bytes(Vec::new()).named("nobody_serves_this"));
    seen.add(&unserved.await);
    let late = Enqueue::new(&HOLD)
        .unwrap()
        .timeout(Duration::from_millis(100));
    seen.add(&pool.send(late).await);
    // A request on a worker whose caller gives up.
    let mut waiting = pool.enqueue(&Op::AwaitCancel).boxed_local();
    assert!((&mut waiting).now_or_never().is_none(), "answered at once");
    metrics_when(pool, "the request to cancel is on a worker", |m| {
        m.in_flight() == 1
    })
    .await;
    drop(waiting);
    seen
}

#[actix_rt::test]
async fn outcome_counters_match_what_the_callers_saw() {
    let (pool, _events) = start(test_worker!(), config(2));
    online(&pool).await;
    let seen = mixed_workload(&pool).await;
    assert_eq!(
        (
            seen.served,
            seen.failed(ErrorKind::Handler),
            seen.failed(ErrorKind::NotHandled)
        ),
        (20, 2, 1)
    );
    assert_eq!(seen.failed(ErrorKind::Timeout), 1);

    let m = metrics_when(&pool, "the cancel is counted", |m| {
        m.requests.cancelled() == 1
    })
    .await;
    assert_eq!(m.requests.served(), seen.served);
    for kind in ErrorKind::ALL {
        assert_eq!(
            m.requests.get(Outcome::Failed(kind)),
            seen.failed(kind),
            "{kind} failures"
        );
    }
    let ended = seen.served + seen.failed.values().sum::<u64>() + 1;
    assert_eq!(m.requests.total(), ended);
    assert_eq!((m.timeouts, m.retries), (1, 0));
    assert_eq!(m.restarts.total(), 0);
    assert_eq!(m.in_flight(), 0, "{m:?}");

    // Every request but the refused one was handed to a worker once; every
    // one of them but the cancelled one ended there.
    assert_eq!(m.queue_wait.count(), ended - 1);
    assert_eq!(m.service_time.count(), ended - 2);
    let (p50, p99) = (m.service_time.p50().unwrap(), m.service_time.p99().unwrap());
    assert!(p50 <= p99, "p50 {p50:?} > p99 {p99:?}");
    assert!(m.service_time.sum() > Duration::ZERO);

    // The actix message answers the same counts.
    let direct = pool.supervisor().send(Measure).await.unwrap();
    assert_eq!(direct.requests, m.requests);
    pool.soft_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn restarts_are_counted_by_reason_and_counts_survive_them() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, mut events) = start(test_worker!(), config(1).retries(1));
    online(&pool).await;
    for result in submit_all(&pool, (0..3u8).map(|i| Op::Echo(vec![i])))
        .await
        .await
    {
        result.expect("an echo is served");
    }
    // Its first attempt exits with code 3; the retry, on the restarted worker, answers.
    lpm_tests::retried_after_a_death(&pool, &mut events, dir.path()).await;
    let m = metrics_when(&pool, "the crash's restart is counted", |m| {
        m.restarts.total() == 1
    })
    .await;
    assert_eq!(m.restarts.get(RestartReason::Crashed), 1);
    assert_eq!(m.retries, 1);
    assert_eq!(
        m.requests.served(),
        4,
        "served before the restart still count"
    );
    assert_eq!(m.workers[0].restarts, 1);

    // A worker that breaks the protocol is killed: a restart of another reason.
    let garbage = pool
        .send(Enqueue::new(&Op::Garbage).unwrap().retries(0))
        .await;
    assert!(
        matches!(&garbage, Err(PoolError::WorkerKilled { .. })),
        "{garbage:?}"
    );
    let m = metrics_when(&pool, "the kill's restart is counted", |m| {
        m.restarts.total() == 2
    })
    .await;
    assert_eq!(m.restarts.get(RestartReason::ProtocolViolation), 1);
    assert_eq!(m.restarts.get(RestartReason::Crashed), 1);
    assert_eq!(m.requests.get(Outcome::Failed(ErrorKind::WorkerKilled)), 1);
    assert_eq!(m.requests.served(), 4);
    pool.soft_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn the_queue_high_water_mark_stays_after_the_queue_drains() {
    let (pool, _events) = start(test_worker!(), config(1).max_in_flight(1));
    online(&pool).await;
    let mut holding = pool.enqueue(&Op::AwaitCancel).boxed_local();
    assert!((&mut holding).now_or_never().is_none(), "answered at once");
    metrics_when(&pool, "the worker holds a request", |m| m.in_flight() == 1).await;
    let queued = submit_all(&pool, (0..5u8).map(|i| Op::Echo(vec![i]))).await;
    let m = metrics_when(&pool, "five requests wait", |m| m.queue_depth == 5).await;
    assert_eq!(m.queue_depth_max, 5);
    drop(holding);
    for result in tokio::time::timeout(DEADLINE, queued)
        .await
        .expect("the queue drains")
    {
        result.expect("a queued echo is served");
    }
    let m = metrics(&pool).await;
    assert_eq!((m.queue_depth, m.queue_depth_max), (0, 5));
    assert_eq!(m.requests.served(), 5);
    assert_eq!(
        m.queue_wait.count(),
        6,
        "the held request and the five queued"
    );
    assert_eq!(
        m.service_time.count(),
        5,
        "the cancelled one is not observed"
    );
    pool.soft_kill().await.expect("the pool is running");
}

/// Parses the text as a scraper does; fails on any line it cannot read.
fn scrape(text: &str) -> Scrape {
    for line in text.lines() {
        assert!(
            !matches!(LineInfo::parse(line), LineInfo::Ignored),
            "a line of the exposition does not parse: {line:?}"
        );
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the exposition parses")
}

/// The value of the sample `metric` whose label `label` is `value` (or that has no labels).
fn value<'a>(scrape: &'a Scrape, metric: &str, label: Option<(&str, &str)>) -> &'a Value {
    let found = scrape.samples.iter().find(|s| {
        s.metric == metric
            && match label {
                Some((name, value)) => s.labels.get(name) == Some(value),
                None => true,
            }
    });
    &found
        .unwrap_or_else(|| panic!("no sample {metric} {label:?}"))
        .value
}

fn counter(scrape: &Scrape, metric: &str, label: Option<(&str, &str)>) -> f64 {
    match value(scrape, metric, label) {
        Value::Counter(n) => *n,
        other => panic!("{metric} {label:?} is not a counter: {other:?}"),
    }
}

fn gauge(scrape: &Scrape, metric: &str, label: Option<(&str, &str)>) -> f64 {
    match value(scrape, metric, label) {
        Value::Gauge(n) => *n,
        other => panic!("{metric} {label:?} is not a gauge: {other:?}"),
    }
}

#[actix_rt::test]
async fn the_prometheus_text_parses_and_matches_what_the_callers_saw() {
    let (pool, _events) = start(test_worker!(), config(2));
    online(&pool).await;
    let seen = mixed_workload(&pool).await;
    let m = metrics_when(&pool, "the cancel is counted", |m| {
        m.requests.cancelled() == 1
    })
    .await;
    let text = m.to_prometheus();
    let scrape = scrape(&text);

    let requests =
        |outcome: &str| counter(&scrape, "lpm_requests_total", Some(("outcome", outcome)));
    assert_eq!(requests("served"), seen.served as f64);
    assert_eq!(requests("cancelled"), 1.0);
    for kind in ErrorKind::ALL {
        assert_eq!(requests(kind.as_str()), seen.failed(kind) as f64, "{kind}");
    }
    assert_eq!(counter(&scrape, "lpm_timeouts_total", None), 1.0);
    assert_eq!(counter(&scrape, "lpm_retries_total", None), 0.0);
    assert_eq!(
        counter(&scrape, "lpm_restarts_total", Some(("reason", "crashed"))),
        0.0
    );
    assert_eq!(counter(&scrape, "lpm_recycles_total", None), 0.0);
    assert_eq!(gauge(&scrape, "lpm_queue_depth", None), 0.0);
    assert_eq!(gauge(&scrape, "lpm_workers", Some(("state", "ready"))), 2.0);
    for slot in ["0", "1"] {
        assert!(gauge(&scrape, "lpm_worker_rss_bytes", Some(("slot", slot))) > 0.0);
        assert_eq!(
            gauge(&scrape, "lpm_worker_in_flight", Some(("slot", slot))),
            0.0
        );
        let cpu = counter(
            &scrape,
            "lpm_worker_cpu_seconds_total",
            Some(("slot", slot)),
        );
        assert!(cpu >= 0.0);
    }

    // The histograms: cumulative buckets up to +Inf, as many as observed.
    for (metric, histogram) in [
        ("lpm_service_seconds", &m.service_time),
        ("lpm_queue_wait_seconds", &m.queue_wait),
    ] {
        let Value::Histogram(buckets) = value(&scrape, metric, None) else {
            panic!("{metric} is not a histogram");
        };
        let last = buckets.last().expect("buckets");
        assert_eq!(last.less_than, f64::INFINITY);
        assert_eq!(last.count, histogram.count() as f64);
        assert!(buckets
            .windows(2)
            .all(|w| w[0].count <= w[1].count && w[0].less_than < w[1].less_than));
        let count = match value(&scrape, &format!("{metric}_count"), None) {
            Value::Untyped(n) => *n,
            other => panic!("{metric}_count: {other:?}"),
        };
        assert_eq!(count, histogram.count() as f64);
    }
    assert_eq!(m.service_time.count(), seen.served + 2 + 1);
    pool.soft_kill().await.expect("the pool is running");
}
