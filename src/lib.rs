//! lpm supervises a pool of worker child processes and spreads requests
//! across them by load, on actix.
//!
//! The crate has two sides, each behind a cargo feature of its own (both on
//! by default, see [Features](#features)):
//!
#![cfg_attr(
    feature = "pool",
    doc = r#"
- **The pool** (in the supervisor process, feature `pool`): [`Pool`] starts a
  [`Supervisor`] actor that owns a [`Balancer`] and one `WorkerHandle`
  per child. Call workers with [`Pool::call`] (a typed [`Call`]: its
  reply type is checked by the compiler), or [`Pool::send`] with
  per-request options, or [`Pool::enqueue`] for untyped payloads;
  read [`Pool::health`] and [`Pool::metrics`], listen to [`PoolEvent`]s, [`Pool::broadcast`],
  [`Pool::resize`], and stop with [`Pool::soft_kill`] or [`Pool::hard_kill`].
  Every request resolves exactly once, with a [`Response`] or a
  [`PoolError`] that says what happened ([`PoolError::kind`] gives its
  [`ErrorKind`], to match on or count). Health reports, events, kill
  reports and errors implement `serde::Serialize`, so they can be
  returned as JSON as they are.
"#
)]
#![cfg_attr(
    not(feature = "pool"),
    doc = r#"
- **The pool** (in the supervisor process, feature `pool`, off in this
  build): `Pool`, `Config`, `PoolError` and the actors they run on.
"#
)]
#![cfg_attr(
    feature = "worker",
    doc = r#"
- **The worker** (in each child process, feature `worker`): [`worker::Worker`]
  connects to the supervisor over the channel it inherited and serves
  typed calls (`Worker::handle`) and untyped requests (`Worker::on_request`)
  with async handlers; see the [`worker`] module.
"#
)]
#![cfg_attr(
    not(feature = "worker"),
    doc = r#"
- **The worker** (in each child process, feature `worker`, off in this
  build): the runtime in `lpm::worker`.
"#
)]
//!
//! The wire format between them is [`lpm_protocol`]'s, documented byte by
//! byte so workers can be written in other languages.
//!
//! # Features
//!
//! - `pool` (default): the supervisor side, on actix (it pulls in actix,
//!   sysinfo and the `lpm-actors` crate).
//! - `worker` (default): the worker runtime, `lpm::worker`, on tokio only.
//! - `prometheus`: `Metrics::to_prometheus`, a pool's metrics in the
//!   Prometheus text format (it adds the `prometheus-client` crate).
//!
//! A worker binary needs only its side, and then links no actix:
//!
//! ```toml
//! [dependencies]
//! lpm = { version = "0.1", default-features = false, features = ["worker"] }
//! ```
//!
//! The shared items ([`Call`], [`Codec`], [`Query`], [`Topic`],
//! [`IPC_FD_ENV`], [`protocol`]) are there with either feature.
//!
//! # Examples
//!
//! A call, declared once where both sides can use it: its wire name and
//! the type its worker answers with.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct Double(pub u64);
//!
//! impl lpm::Call for Double {
//!     const NAME: &'static str = "double";
//!     type Reply = u64;
//! }
//! ```
//!
#![cfg_attr(
    feature = "pool",
    doc = r#"
The supervisor side, inside an actix System:

```no_run
# #[derive(serde::Serialize, serde::Deserialize)] pub struct Double(pub u64);
# impl lpm::Call for Double { const NAME: &'static str = "double"; type Reply = u64; }
use std::time::Duration;
use lpm::prelude::*;

#[actix::main]
async fn main() -> Result<(), PoolError> {
    let pool = Pool::start(
        WorkerCommand::new("./my-worker"),
        Config::default().workers(4).timeout(Duration::from_secs(5)),
    );
    pool.online().await?;
    let doubled: u64 = pool.call(Double(21)).await?;
    assert_eq!(doubled, 42);
    pool.soft_kill().await?;
    Ok(())
}
```
"#
)]
#![cfg_attr(
    feature = "worker",
    doc = r#"
The worker side, a binary the pool runs:

```no_run
# #[derive(serde::Serialize, serde::Deserialize)] pub struct Double(pub u64);
# impl lpm::Call for Double { const NAME: &'static str = "double"; type Reply = u64; }
use lpm::prelude::*;

#[tokio::main]
async fn main() -> Result<(), lpm::WorkerError> {
    let worker = Worker::from_env().await?;
    worker.handle(|Double(n): Double, _: CallContext| async move { Ok(n * 2) });
    // Untyped requests (`pool.enqueue(&T)`) go to this one.
    worker.on_request(|req: Request| async move {
        let n: u64 = req.data()?;
        req.respond(&(n * 2))?;
        Ok(())
    });
    worker.ready();
    worker.run().await
}
```
"#
)]
//!
//! # Tracing
//!
//! Each request has a span in the supervisor, target `lpm::request` at
//! DEBUG level (as tower-http's), a child of the span the caller was in:
//! `id`, `call`, `trace_id`, `span_id`, then `attempt`, `queue_wait_us`,
//! `slot` and `pid` as it is dispatched (again on a retry) and `outcome`
//! (`served`, `cancelled` or an `ErrorKind` name) with a
//! `request finished` event at the end. Enable it with a filter such as
//! `RUST_LOG=lpm::request=debug`; while nothing listens a request holds
//! no span, and pays one cached interest check.
//!
//! A traced request carries a W3C `traceparent` ([`TraceParent`]) to its
//! worker: the trace the caller gave (`Enqueue::trace_parent`, an incoming
//! HTTP header, say) or a new one, with the supervisor's span as the
//! parent. The Rust worker runs each handler in a span, target
//! `lpm::worker` at INFO level, with the request's `id` and `call` and,
//! when traced, its `trace_id` and `parent_id`; so with a `tracing`
//! subscriber in the worker, every log line of a handler carries the
//! request id. `Request::trace_parent` (and `CallContext::trace_parent`) hands the
//! context on. Workers in other languages read the same field
//! (`protocol/WIRE.md`).
//!
//! # Platform
//!
//! Linux only: the pool relies on `PR_SET_PDEATHSIG`, process groups and
//! `/proc`, and the channel on Unix socketpairs.
#![cfg_attr(docsrs, feature(doc_cfg))]

/// Link definitions for the pool items the worker's docs mention: to the
/// items themselves when the pool is built, to the crate's Features section
/// when it is not. Used after an empty `///` line (a link definition cannot
/// interrupt a paragraph): `#[doc = pool_links!("Enqueue::stream")]`.
#[cfg(all(feature = "worker", feature = "pool"))]
macro_rules! pool_links {
    ($($item:literal),+) => { concat!($("[`", $item, "`]: crate::", $item, "\n"),+) };
}
#[cfg(all(feature = "worker", not(feature = "pool")))]
macro_rules! pool_links {
    ($($item:literal),+) => { concat!($("[`", $item, "`]: crate#features", "\n"),+) };
}

#[cfg(feature = "worker")]
mod error;
#[cfg(feature = "worker")]
#[cfg_attr(docsrs, doc(cfg(feature = "worker")))]
pub mod worker;

#[cfg(feature = "worker")]
#[cfg_attr(docsrs, doc(cfg(feature = "worker")))]
pub use error::WorkerError;

/// A boxed error: what request handlers return.
///
/// Any error type converts into it with `?` or `.into()`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub use lpm_protocol::{Call, Codec, Query, Topic, TraceParent};

#[cfg(feature = "pool")]
#[cfg_attr(docsrs, doc(cfg(feature = "pool")))]
pub use lpm_actors::{
    balance, Answer, Autoscale, Balancer, Body, Broadcast, BroadcastListener, Config, CustomEvent,
    Enqueue, Error as PoolError, ErrorKind, EventStream, HardKill, Health, HealthTable, Heartbeat,
    Histogram, KillReason, KillReport, Listener, Measure, Metrics, Outcome, Outcomes, Pool,
    PoolEvent, Raw, RecycleReason, Reload, ReloadReport, Reloaded, Resize, Response,
    ResponseStream, RestartReason, Restarts, ScaleReason, SignalPolicy, SoftKill, StartFailure,
    Strategy, Subscribe, Supervisor, Transport, UsageSource, WithResponse, WorkerCommand,
    WorkerHealth, WorkerState,
};

/// The `Content-Type` of [`Metrics::to_prometheus`]'s text (feature `prometheus`).
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub use lpm_actors::PROMETHEUS_CONTENT_TYPE;

/// The environment variable that names a worker's IPC channel; set for every
/// worker on the socketpair transport (its absence means stdio).
pub use lpm_protocol::IPC_FD_ENV;

/// What a worker that speaks the wire protocol itself (in place of
/// [`worker`](crate#features)) needs: the messages, the framing, the
/// channel it inherited, and the byte-level description in [`protocol::wire`].
/// The helpers lpm uses inside (id maps, descriptor queues, pipes) stay in
/// `lpm-protocol`.
pub mod protocol {
    pub use lpm_protocol::{
        encode_frame, frame, inherited_channel, max_frame_len_from_env, wire, CarriesFd, Codec,
        Error, Fd, FdKind, FrameDecoder, FrameSink, FrameStream, RequestFrame, RequestId,
        Timestamp, ToSupervisor, ToWorker, CODEC_ENV, DEFAULT_MAX_FRAME_LEN, HEADER_LEN, IPC_FD,
        IPC_FD_ENV, MAX_FRAME_LEN_ENV, PROTOCOL_VERSION,
    };
}

/// The names most programs need, on both sides (each half with its feature).
pub mod prelude {
    pub use crate::{BoxError, Call, Codec, Query, Topic};

    #[cfg(feature = "pool")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pool")))]
    pub use crate::{
        Config, CustomEvent, Enqueue, ErrorKind, HealthTable, KillReason, KillReport, Metrics,
        Pool, PoolError, PoolEvent, Response, WorkerCommand, WorkerHealth, WorkerState,
    };

    #[cfg(feature = "worker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "worker")))]
    pub use crate::worker::{CallContext, Done, Event, Request, Worker};
    #[cfg(feature = "worker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "worker")))]
    pub use crate::WorkerError;
}

// The README's examples compile as doc tests; they use both sides.
#[doc = include_str!("../README.md")]
#[cfg(all(doctest, feature = "pool", feature = "worker"))]
pub struct ReadmeDoctests;
