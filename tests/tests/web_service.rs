//! The actix-web service example (`examples/web_service.rs`), driven over
//! real HTTP: 32 concurrent connections while a worker is SIGKILLed, clients
//! that disconnect, a SIGTERM under load, a burst that scales the pool up
//! and idling that scales it down, and a SIGHUP reload under load.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lpm_tests::{process_alive, within, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Concurrent connections of the load.
const CONNECTIONS: usize = 32;

/// The example, started on a free port.
struct Service {
    child: Child,
    base: String,
    /// The pool events it logs on stderr (`event: {json}` lines).
    events: mpsc::UnboundedReceiver<Value>,
}

impl Service {
    /// Starts it with these options besides `--bind`.
    fn start(options: &[&str]) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_web_service"))
            .args(["--bind", "127.0.0.1:0"])
            .args(options)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the web_service example");
        let events = forward_stderr(child.stderr.take().expect("piped"));
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read its first line");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Service {
            child,
            base,
            events,
        }
    }

    /// The next `PoolEvent::Scaled` it logged: from, to and the reason's kind.
    async fn scaled(&mut self) -> (u64, u64, String) {
        let events = &mut self.events;
        let event = within("a scaled event on stderr", async {
            loop {
                let event = events.recv().await.expect("the service's stderr is open");
                if event["event"] == "scaled" {
                    return event;
                }
            }
        })
        .await;
        let count = |field: &str| event[field].as_u64().expect("a count");
        let reason = event["reason"]["kind"].as_str().expect("a reason");
        (count("from"), count("to"), reason.to_owned())
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    async fn health(&self, client: &awc::Client) -> Value {
        let mut response = client
            .get(format!("{}/health", self.base))
            .send()
            .await
            .expect("GET /health");
        assert!(response.status().is_success(), "{}", response.status());
        response.json().await.expect("health is JSON")
    }

    async fn metrics(&self, client: &awc::Client) -> prometheus_parse::Scrape {
        let mut response = client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("GET /metrics");
        assert!(response.status().is_success(), "{}", response.status());
        let body = response.body().await.expect("the metrics' text");
        let text = String::from_utf8(body.to_vec()).expect("UTF-8");
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("Prometheus text")
    }

    /// Waits for the process to exit; its status code.
    fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                Instant::now() < until,
                "the service did not exit within {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Echoes the service's stderr into the test's output, and sends on the
/// pool events among its lines.
fn forward_stderr(stderr: std::process::ChildStderr) -> mpsc::UnboundedReceiver<Value> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            eprintln!("{line}");
            if let Some(json) = line.strip_prefix("event: ") {
                let event = serde_json::from_str(json).expect("an event line is JSON");
                // The test may be done listening.
                let _ = tx.send(event);
            }
        }
    });
    rx
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn worker_pids(health: &Value) -> Vec<u32> {
    health["workers"]
        .as_array()
        .expect("a workers array")
        .iter()
        .filter_map(|w| w["pid"].as_u64().map(|p| p as u32))
        .collect()
}

fn sum(health: &Value, field: &str) -> f64 {
    health["workers"]
        .as_array()
        .expect("a workers array")
        .iter()
        .map(|w| w[field].as_f64().unwrap_or(0.0))
        .sum()
}

/// The value of `metric`'s sample with the label `name="value"`.
fn sample(scrape: &prometheus_parse::Scrape, metric: &str, (name, value): (&str, &str)) -> f64 {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && s.labels.get(name) == Some(value))
        .unwrap_or_else(|| panic!("no {metric}{{{name}={value:?}}}"));
    match found.value {
        prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
        ref other => panic!("{metric} is {other:?}"),
    }
}

/// What the test tells a running load.
#[derive(Debug, Default)]
struct Flags {
    /// The clients stop after their current request.
    stop: AtomicBool,
    /// Requests sent from now on are `late` (see [`Tally::versions`]).
    late: AtomicBool,
}

/// What the load saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    /// The version of each 2xx answer, and whether its request was sent
    /// after [`Flags::late`] was set.
    versions: Vec<(bool, String)>,
    /// Statuses other than 2xx, with the body's `error`.
    refused: Vec<(u16, String)>,
    /// Requests without an HTTP answer, with when they failed.
    failed: Vec<(Instant, String)>,
}

/// `CONNECTIONS` clients posting `job` back to back until `flags.stop` is set.
async fn load(base: String, job: Value, flags: Arc<Flags>) -> Tally {
    let clients = (0..CONNECTIONS).map(|_| {
        let (url, job, flags) = (format!("{base}/work"), job.clone(), Arc::clone(&flags));
        actix_rt::spawn(async move {
            // One client each: one connection each, kept alive.
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .finish();
            let mut tally = Tally::default();
            while !flags.stop.load(Ordering::Relaxed) {
                let late = flags.late.load(Ordering::Relaxed);
                let sent = Instant::now();
                match client.post(&url).send_json(&job).await {
                    Ok(mut response) if response.status().is_success() => {
                        let done: Value = response.json().await.expect("a JSON answer");
                        let version = done["version"].as_str().expect("a version");
                        tally.versions.push((late, version.to_owned()));
                        tally.ok += 1;
                    }
                    Ok(mut response) => {
                        let body: Value = response.json().await.unwrap_or(Value::Null);
                        let error = body["error"].as_str().unwrap_or("").to_owned();
                        tally.refused.push((response.status().as_u16(), error));
                    }
                    Err(e) => {
                        let error = format!("{e} ({:?} after it was sent)", sent.elapsed());
                        tally.failed.push((Instant::now(), error));
                        actix_rt::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            tally
        })
    });
    let mut total = Tally::default();
    for client in futures::future::join_all(clients).await {
        let tally = client.expect("a client task");
        total.ok += tally.ok;
        total.versions.extend(tally.versions);
        total.refused.extend(tally.refused);
        total.failed.extend(tally.failed);
    }
    total
}

/// Every request got a 2xx answer.
fn assert_all_answered(tally: &Tally) {
    assert!(tally.ok > 0, "{tally:?}");
    assert!(
        tally.refused.is_empty(),
        "non-2xx answers: {:?}",
        tally.refused
    );
    assert!(
        tally.failed.is_empty(),
        "requests without an answer: {:?}",
        tally.failed
    );
}

async fn wait_for<F, Fut>(what: &str, mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < DEADLINE, "no {what} within {DEADLINE:?}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[actix_rt::test]
async fn a_worker_sigkilled_under_load_costs_no_request() {
    let service = Service::start(&["--workers", "4"]);
    let client = awc::Client::default();
    let flags = Arc::new(Flags::default());
    let job = json!({"below": 3000, "sleep_ms": 5});
    let running = actix_rt::spawn(load(service.base.clone(), job, Arc::clone(&flags)));
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    let victim = worker_pids(&service.health(&client).await)[0];
    kill(Pid::from_raw(victim as i32), Signal::SIGKILL).unwrap();
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    flags.stop.store(true, Ordering::Relaxed);
    let tally = running.await.unwrap();
    assert_all_answered(&tally);
    let health = service.health(&client).await;
    assert_eq!(sum(&health, "restarts"), 1.0, "{health}");
    assert!(!worker_pids(&health).contains(&victim));
    // The scrape agrees with what the clients saw.
    let scrape = service.metrics(&client).await;
    assert_eq!(
        sample(&scrape, "lpm_requests_total", ("outcome", "served")),
        tally.ok as f64
    );
    assert_eq!(
        sample(&scrape, "lpm_restarts_total", ("reason", "crashed")),
        1.0
    );
}

#[actix_rt::test]
async fn a_traceparent_header_reaches_the_worker() {
    let service = Service::start(&["--workers", "1"]);
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut response = awc::Client::default()
        .post(format!("{}/work", service.base))
        .insert_header(("traceparent", caller))
        .send_json(&json!({"below": 100}))
        .await
        .expect("POST /work");
    assert!(response.status().is_success(), "{}", response.status());
    let done: Value = response.json().await.expect("JSON");
    let seen = done["trace"].as_str().expect("the worker got a context");
    // The same trace; the parent is the pool's span if it traces, else the caller's.
    assert_eq!(&seen[..35], &caller[..35], "{done}");
    assert_eq!(&seen[52..], &caller[52..], "{done}");
}

#[actix_rt::test]
async fn clients_that_disconnect_cancel_their_jobs() {
    let service = Service::start(&["--workers", "2"]);
    let client = awc::Client::default();
    // Each gives up after 300 ms and drops its connection.
    let impatient = awc::Client::builder()
        .timeout(Duration::from_millis(300))
        .finish();
    let waits = (0..8).map(|_| {
        impatient
            .post(format!("{}/work", service.base))
            .send_json(&json!({"below": 10, "sleep_ms": 60_000}))
    });
    for result in futures::future::join_all(waits).await {
        assert!(result.is_err(), "a 60 s job answered within 300 ms");
    }
    let took = wait_for("in flight back to 0", || async {
        sum(&service.health(&client).await, "in_flight") == 0.0
    })
    .await;
    eprintln!("in flight back to 0 {took:?} after the clients gave up");
    wait_for("8 jobs cancelled in the workers", || async {
        let health = service.health(&client).await;
        let cancelled: f64 = health["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["stats"]["cancelled"].as_f64().unwrap_or(0.0))
            .sum();
        cancelled == 8.0
    })
    .await;
}

#[actix_rt::test]
async fn sigterm_under_load_answers_every_accepted_request_and_exits_cleanly() {
    let mut service = Service::start(&["--workers", "4"]);
    let client = awc::Client::default();
    let pids = worker_pids(&service.health(&client).await);
    let flags = Arc::new(Flags::default());
    let job = json!({"below": 2000, "sleep_ms": 20});
    let running = actix_rt::spawn(load(service.base.clone(), job, Arc::clone(&flags)));
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    let terminated_at = Instant::now();
    kill(service.pid(), Signal::SIGTERM).unwrap();
    let code = service.wait_exit(DEADLINE);
    flags.stop.store(true, Ordering::Relaxed);
    let tally = running.await.unwrap();
    assert_eq!(code, Some(0), "exit status");
    assert!(tally.ok > 0, "{tally:?}");
    // New work after the signal is refused as the service shuts down, never failed.
    for (status, error) in &tally.refused {
        assert_eq!((*status, error.as_str()), (503, "shutting_down"));
    }
    // Without an answer: only connections the stopping server no longer took.
    for (at, error) in &tally.failed {
        assert!(*at >= terminated_at, "failed before SIGTERM: {error}");
    }
    for pid in pids {
        assert!(!process_alive(pid), "worker {pid} outlived the service");
    }
    eprintln!(
        "SIGTERM under load: {} answered, {} refused with 503, {} not taken",
        tally.ok,
        tally.refused.len(),
        tally.failed.len()
    );
}

#[actix_rt::test]
async fn a_burst_scales_up_to_the_maximum_and_idling_back_to_the_minimum() {
    // Idle for 1 s: shorter, a load generator starved of CPU for a moment
    // would let a worker go during the burst.
    let mut service = Service::start(&["--autoscale", "1,4", "--idle-for", "1"]);
    let client = awc::Client::default();
    let health = service.health(&client).await;
    assert_eq!((&health["target"], &health["size"]), (&json!(1), &json!(1)));
    // 32 slow requests at all times: no worker is ever idle.
    let flags = Arc::new(Flags::default());
    let job = json!({"below": 100, "sleep_ms": 100});
    let running = actix_rt::spawn(load(service.base.clone(), job, Arc::clone(&flags)));
    let mut size = 1;
    while size < 4 {
        let (from, to, reason) = service.scaled().await;
        assert_eq!(from, size);
        assert!(to > from && to <= 4, "up, never past the maximum: {to}");
        assert!(
            ["backlog", "no_idle_worker"].contains(&reason.as_str()),
            "{reason}"
        );
        size = to;
    }
    let took = wait_for("four workers serving, as /health shows", || async {
        let health = service.health(&client).await;
        let serving = health["workers"].as_array().map_or(0, |workers| {
            workers
                .iter()
                .filter(|w| w["served"].as_u64() > Some(0))
                .count()
        });
        health["target"] == 4 && health["size"] == 4 && serving == 4
    })
    .await;
    eprintln!("/health showed four workers serving {took:?} after the last scale-up");
    flags.stop.store(true, Ordering::Relaxed);
    let tally = running.await.unwrap();
    assert_all_answered(&tally);
    while size > 1 {
        let (from, to, reason) = service.scaled().await;
        assert_eq!((from, to), (size, size - 1), "down one worker at a time");
        assert_eq!(reason, "idle");
        size = to;
    }
    wait_for("one worker left, as /health shows", || async {
        let health = service.health(&client).await;
        health["target"] == 1 && health["size"] == 1 && worker_pids(&health).len() == 1
    })
    .await;
    eprintln!("autoscaled 1 -> 4 -> 1 with {} requests answered", tally.ok);
}

#[actix_rt::test]
async fn sighup_under_load_reloads_to_the_new_version_without_a_failed_request() {
    let mut env_file = tempfile::NamedTempFile::new().expect("a temporary file");
    writeln!(env_file, "WEB_SERVICE_VERSION=1").unwrap();
    let path = env_file.path().to_str().expect("a UTF-8 path").to_owned();
    let service = Service::start(&["--workers", "4", "--env-file", &path]);
    let client = awc::Client::default();
    let old: HashSet<u32> = worker_pids(&service.health(&client).await)
        .into_iter()
        .collect();
    let flags = Arc::new(Flags::default());
    let job = json!({"below": 2000, "sleep_ms": 5});
    let running = actix_rt::spawn(load(service.base.clone(), job, Arc::clone(&flags)));
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    // The operator's deploy: the new version in the env file, then SIGHUP.
    std::fs::write(&path, "# deployed by the test\nWEB_SERVICE_VERSION=2\n").unwrap();
    kill(service.pid(), Signal::SIGHUP).unwrap();
    let took = wait_for("the reload's report in /health", || async {
        let health = service.health(&client).await;
        health["reload"]["last"].is_object() && health["reload"]["running"] == false
    })
    .await;
    eprintln!("reloaded 4 workers under load {took:?} after SIGHUP");
    // Every request sent from now on goes to a new worker.
    flags.late.store(true, Ordering::Relaxed);
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    flags.stop.store(true, Ordering::Relaxed);
    let tally = running.await.unwrap();
    assert_all_answered(&tally);

    let health = service.health(&client).await;
    let report = &health["reload"]["last"];
    assert!(report["error"].is_null(), "{report}");
    let replaced = report["replaced"].as_array().expect("the replaced slots");
    let replaced_old: HashSet<u32> = replaced
        .iter()
        .map(|r| r["old_pid"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(replaced_old, old, "every old worker was replaced");
    let new: HashSet<u32> = replaced
        .iter()
        .map(|r| r["new_pid"].as_u64().unwrap() as u32)
        .collect();
    let now: HashSet<u32> = worker_pids(&health).into_iter().collect();
    assert_eq!(now, new, "/health shows only the new workers");

    let (early, late): (Vec<_>, Vec<_>) = tally.versions.iter().partition(|(late, _)| !late);
    assert!(
        early.iter().any(|(_, v)| v == "1"),
        "the old version answered before the reload"
    );
    assert!(!late.is_empty(), "requests after the reload");
    assert!(
        late.iter().all(|(_, v)| v == "2"),
        "only the new version answers after the reload"
    );
    eprintln!(
        "reload under load: {} answered ({} after the report), none failed",
        tally.ok,
        late.len()
    );
}
