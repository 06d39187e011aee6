//! An actix-web service that offloads work to an lpm pool: the recipe of
//! the README's "Running it in a service".
//!
//! ```text
//! cargo run --release --example web_service --features actix-web,prometheus -- --bind 127.0.0.1:8080
//! curl -s -XPOST localhost:8080/work -H 'content-type: application/json' -d '{"below":100000,"sleep_ms":0}'
//! curl -s localhost:8080/health
//! ```
//!
//! Options:
//!
//! * `--bind ADDR`: where to listen (default `127.0.0.1:8080`).
//! * `--workers N`: a pool of N workers (default 4).
//! * `--autoscale MIN,MAX`: instead, a pool that scales between MIN and MAX
//!   workers with the load; `--idle-for SECS` (default 30, fractions
//!   allowed) is how long a worker stays spare before it is let go.
//! * `--env-file PATH`: `KEY=VALUE` lines (`#` comments) added to every
//!   worker's environment, read at start and again on each SIGHUP.
//!
//! What it serves and how it behaves:
//!
//! * `POST /work` runs the typed call [`Work`] on a worker, in the trace of
//!   the request's `traceparent` header if it has one. A failure
//!   answers through `lpm::PoolError`'s `ResponseError`: 503 with
//!   `Retry-After` when the queue is full, 504 on a timeout, and so on.
//! * `GET /health` answers the pool's health as JSON: `target` (the size
//!   the pool aims for, which moves when it autoscales), `size` (the slots
//!   now), `reload` (`running`, and the `last` reload's report) and `workers`.
//! * `GET /metrics` answers the pool's metrics in the Prometheus text format.
//! * SIGHUP is a rolling reload: the env file is read again and every
//!   worker is replaced, one at a time and successor first, by one started
//!   with it; no request fails. A new version is deployed by writing it
//!   into the env file (`WEB_SERVICE_VERSION=2`) and sending SIGHUP. The
//!   report goes to stderr and to `/health`; a SIGHUP during a reload is
//!   refused (logged) and the reload under way goes on.
//! * SIGTERM or SIGINT stops it gracefully: new work is refused with 503,
//!   every request already accepted is answered, the server stops, then the
//!   pool is soft-killed and the process exits with status 0.
//! * A client that disconnects cancels its job: the server drops the
//!   handler's future (`h1_allow_half_closed(false)`), which cancels the
//!   call in the worker.
//! * The pool's events (restarts, scaling, reloads ...) go to stderr, one
//!   JSON object a line after `event: `.
//!
//! The binary is both sides: it re-executes itself as each worker (the
//! worker sees `LPM_IPC_FD`). `WEB_SERVICE_VERSION` (default `1`) tags every
//! answer, so a rolling reload shows which version served. It prints
//! `listening on http://ADDR` once it serves.

#[path = "web_service/options.rs"]
mod options;
#[path = "web_service/reload.rs"]
mod reload;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures::StreamExt;
use lpm::worker::{CallContext, Worker};
use lpm::{Call, Enqueue, EventStream, Pool, PoolError, TraceParent};
use serde::{Deserialize, Serialize};
use tokio::signal::unix::{signal, SignalKind};

use options::Options;
use reload::{ReloadStatus, SharedStatus, WorkerSpec};

/// Count the primes below `below`, after waiting `sleep_ms` (a stand-in for
/// slow I/O; the wait ends early when the caller goes away).
#[derive(Debug, Serialize, Deserialize)]
pub struct Work {
    below: u64,
    #[serde(default)]
    sleep_ms: u64,
}

/// What a worker answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Done {
    primes: u64,
    pid: u32,
    version: String,
    /// The trace context the worker got (W3C `traceparent`), if any.
    trace: Option<String>,
}

impl Call for Work {
    const NAME: &'static str = "work";
    type Reply = Done;
}

/// The environment variable that tags answers with a version.
const VERSION_ENV: &str = "WEB_SERVICE_VERSION";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os(lpm::IPC_FD_ENV).is_some() {
        return worker_main();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let started = Options::parse(std::env::args().skip(1))
        .map_err(|e| e.to_string())
        .and_then(|options| {
            actix_rt::System::new()
                .block_on(serve(options))
                .map_err(|e| e.to_string())
        });
    if let Err(e) = started {
        // Said plainly, not as the Debug form `main` would print.
        eprintln!("web_service: {e}");
        std::process::exit(2);
    }
    Ok(())
}

/// What every handler shares.
struct State {
    pool: Pool,
    /// Set on SIGTERM: new work is refused from then on.
    draining: AtomicBool,
    /// The SIGHUP reloads.
    reload: SharedStatus,
}

async fn work(
    state: web::Data<State>,
    request: HttpRequest,
    job: web::Json<Work>,
) -> Result<HttpResponse, PoolError> {
    if state.draining.load(Ordering::Relaxed) {
        return Err(PoolError::ShuttingDown);
    }
    let mut call = Enqueue::call(job.into_inner());
    if let Some(context) = trace_parent(&request) {
        call = call.trace_parent(context);
    }
    // Dropping this future (the client went away) cancels the call.
    let done = state.pool.send(call).await?;
    Ok(HttpResponse::Ok().json(done))
}

/// The caller's `traceparent` header, passed on to the worker. One that does
/// not parse is ignored: W3C says to start a new trace then.
fn trace_parent(request: &HttpRequest) -> Option<TraceParent> {
    let header = request.headers().get("traceparent")?;
    header.to_str().ok()?.parse().ok()
}

async fn health(state: web::Data<State>) -> Result<HttpResponse, PoolError> {
    let workers = state.pool.health().await?;
    let reload = reload::to_json(&state.reload);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "draining": state.draining.load(Ordering::Relaxed),
        // The same in every worker's entry.
        "target": workers.first().map(|w| w.target),
        "size": workers.len(),
        "reload": reload,
        "workers": workers,
    })))
}

async fn metrics(state: web::Data<State>) -> Result<HttpResponse, PoolError> {
    let metrics = state.pool.metrics().await?;
    Ok(HttpResponse::Ok()
        .content_type(lpm::PROMETHEUS_CONTENT_TYPE)
        .body(metrics.to_prometheus()))
}

async fn serve(options: Options) -> std::io::Result<()> {
    // Before the first line is printed: from then on a signal finds its
    // handler, not the default action (SIGHUP's would end the process).
    let stop = stop_signal()?;
    let hangup = signal(SignalKind::hangup())?;
    let spec = WorkerSpec {
        exe: std::env::current_exe()?,
        env_file: options.env_file.clone(),
    };
    let command = spec.command().map_err(std::io::Error::other)?;
    let pool = Pool::start(command, options.config());
    actix_rt::spawn(log_events(pool.events()));
    pool.online()
        .await
        .map_err(|e| std::io::Error::other(format!("the pool did not come online: {e}")))?;
    let state = web::Data::new(State {
        pool: pool.clone(),
        draining: AtomicBool::new(false),
        reload: Arc::new(Mutex::new(ReloadStatus::default())),
    });
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .route("/work", web::post().to(work))
            .route("/health", web::get().to(health))
            .route("/metrics", web::get().to(metrics))
    })
    // A client that closes its side mid-request is gone: drop its handler.
    .h1_allow_half_closed(false)
    .disable_signals()
    .shutdown_timeout(60)
    .bind(&options.bind)?;
    for addr in server.addrs() {
        println!("listening on http://{addr}");
    }
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(reload::reload_on_hangup(
        hangup,
        pool.clone(),
        spec,
        Arc::clone(&state.reload),
    ));
    actix_rt::spawn(async move {
        stop.await;
        state.draining.store(true, Ordering::Relaxed);
        // Graceful: answers what it accepted, then stops.
        handle.stop(true).await;
    });
    server.await?;
    match pool.soft_kill().await {
        Ok(report) => eprintln!(
            "stopped: served {}, failed {}, killed {}",
            report.served, report.failed, report.killed
        ),
        Err(e) => eprintln!("soft kill: {e}"),
    }
    Ok(())
}

/// Resolves on the first SIGTERM or SIGINT; the handlers are installed now.
fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// The pool's events on stderr, the operator's log of restarts, scaling
/// and reloads.
async fn log_events(mut events: EventStream) {
    while let Some(event) = events.next().await {
        match serde_json::to_string(&event) {
            Ok(json) => eprintln!("event: {json}"),
            Err(e) => eprintln!("event {event:?} (not as JSON: {e})"),
        }
    }
}

fn worker_main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let worker = Worker::from_env().await?;
        let version = std::env::var(VERSION_ENV).unwrap_or_else(|_| "1".to_owned());
        let cancelled = Arc::new(AtomicU64::new(0));
        let handle = worker.clone();
        worker.handle(move |job: Work, ctx: CallContext| {
            let (version, cancelled, worker) =
                (version.clone(), Arc::clone(&cancelled), handle.clone());
            async move {
                if job.sleep_ms > 0 {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(job.sleep_ms)) => {}
                        () = ctx.cancelled() => {
                            let n = cancelled.fetch_add(1, Ordering::Relaxed) + 1;
                            worker.report_stats(&[("cancelled", n as f64)]);
                            return Err("cancelled".into());
                        }
                    }
                }
                Ok(Done {
                    primes: count_primes(job.below),
                    pid: std::process::id(),
                    version,
                    trace: ctx.trace_parent().map(|context| context.to_string()),
                })
            }
        });
        worker.ready();
        worker.run().await
    })?;
    Ok(())
}

fn count_primes(below: u64) -> u64 {
    (2..below)
        .filter(|n| (2..).take_while(|d| d * d <= *n).all(|d| n % d != 0))
        .count() as u64
}
