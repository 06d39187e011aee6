//! The actix-web service example (`examples/web_service.rs`), driven over
//! real HTTP: 32 concurrent connections while a worker is SIGKILLed, clients
//! that disconnect, and a SIGTERM under load.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lpm_tests::{process_alive, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

/// Concurrent connections of the load.
const CONNECTIONS: usize = 32;

/// The example, started on a free port.
struct Service {
    child: Child,
    base: String,
}

impl Service {
    fn start(workers: usize) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_web_service"))
            .args(["--bind", "127.0.0.1:0", "--workers", &workers.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the web_service example");
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
        Service { child, base }
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

/// What the load saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    /// Statuses other than 2xx, with the body's `error`.
    refused: Vec<(u16, String)>,
    /// Requests without an HTTP answer, with when they failed.
    failed: Vec<(Instant, String)>,
}

/// `CONNECTIONS` clients posting `job` back to back until `stop` is set.
async fn load(base: String, job: Value, stop: Arc<AtomicBool>) -> Tally {
    let clients = (0..CONNECTIONS).map(|_| {
        let (url, job, stop) = (format!("{base}/work"), job.clone(), Arc::clone(&stop));
        actix_rt::spawn(async move {
            // One client each: one connection each, kept alive.
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .finish();
            let mut tally = Tally::default();
            while !stop.load(Ordering::Relaxed) {
                match client.post(&url).send_json(&job).await {
                    Ok(mut response) if response.status().is_success() => {
                        let _: Value = response.json().await.expect("a JSON answer");
                        tally.ok += 1;
                    }
                    Ok(mut response) => {
                        let body: Value = response.json().await.unwrap_or(Value::Null);
                        let error = body["error"].as_str().unwrap_or("").to_owned();
                        tally.refused.push((response.status().as_u16(), error));
                    }
                    Err(e) => {
                        tally.failed.push((Instant::now(), e.to_string()));
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
        total.refused.extend(tally.refused);
        total.failed.extend(tally.failed);
    }
    total
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
    let service = Service::start(4);
    let client = awc::Client::default();
    let stop = Arc::new(AtomicBool::new(false));
    let job = json!({"below": 3000, "sleep_ms": 5});
    let running = actix_rt::spawn(load(service.base.clone(), job, Arc::clone(&stop)));
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    let victim = worker_pids(&service.health(&client).await)[0];
    kill(Pid::from_raw(victim as i32), Signal::SIGKILL).unwrap();
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let tally = running.await.unwrap();
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
async fn clients_that_disconnect_cancel_their_jobs() {
    let service = Service::start(2);
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
    let mut service = Service::start(4);
    let client = awc::Client::default();
    let pids = worker_pids(&service.health(&client).await);
    let stop = Arc::new(AtomicBool::new(false));
    let job = json!({"below": 2000, "sleep_ms": 20});
    let running = actix_rt::spawn(load(service.base.clone(), job, Arc::clone(&stop)));
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    let terminated_at = Instant::now();
    kill(service.pid(), Signal::SIGTERM).unwrap();
    let code = service.wait_exit(DEADLINE);
    stop.store(true, Ordering::Relaxed);
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
