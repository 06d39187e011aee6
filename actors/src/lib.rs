//! The actors of lpm: a [`Supervisor`] that owns a [`Balancer`] and one
//! `WorkerHandle` (internal) per child process.
//!
//! Most code uses them through [`Pool`], a cheap handle that sends the typed
//! messages below; the messages themselves are public for code that prefers
//! to talk to the actors directly.
//!
//! ```text
//!  caller ──Enqueue──▶ Balancer ──Assign (batched)──▶ WorkerHandle ──frames──▶ child
//!    ▲                  ▲   ▲                            │  (one per child: channel,
//!    │                  │   └────── Requeue ─────────────┤   in-flight map, timers)
//!    │             Supervisor ◀──── WorkerExited ────────┘
//!    └──────────────── Response (the reply channel travels with the request)
//! ```
//!
//! Requests go to the Balancer directly: the Supervisor is not on the hot
//! path. [`Pool::send`] hands them over through a channel that the Balancer
//! drains in batches; the answer travels back on the request's own oneshot,
//! with no actor hop.
//!
//! # Examples
//!
//! ```no_run
//! use lpm_actors::{Call, Config, Pool, WorkerCommand};
//! use serde::{Deserialize, Serialize};
//!
//! /// A call: its wire name, and the type its worker answers with.
//! #[derive(Serialize, Deserialize)]
//! struct Shout(String);
//!
//! impl Call for Shout {
//!     const NAME: &'static str = "shout";
//!     type Reply = String;
//! }
//!
//! #[actix::main]
//! async fn main() -> Result<(), lpm_actors::Error> {
//!     let pool = Pool::start(WorkerCommand::new("./my-worker"), Config::default().workers(4));
//!     pool.online().await?;
//!     let answer: String = pool.call(Shout("hello".into())).await?;
//!     println!("{answer}");
//!     // Untyped: any payload, decoded by the caller.
//!     let answer: String = pool.enqueue(&"hello").await?.data()?;
//!     println!("{answer}");
//!     pool.soft_kill().await?;
//!     Ok(())
//! }
//! ```
//!
//! # Streams and sockets
//!
//! A request can carry a byte stream to the worker ([`Enqueue::stream`],
//! [`Enqueue::file`]) or hand it a connection ([`Enqueue::tcp`],
//! [`Enqueue::unix`]); a worker can answer with a byte stream
//! ([`Response::take_stream`], a [`ResponseStream`]); and
//! [`Pool::broadcast_listener`] shares a listening socket with every worker,
//! including the ones started later (restarts, recycles, resize).
//! All of them travel as file descriptors (`SCM_RIGHTS`) on the worker's own
//! channel: no socket path, no copy of a connection's bytes through the
//! supervisor. [`Config::max_fds_in_flight`] bounds the descriptors in flight
//! per worker; a descriptor that cannot be passed fails its request with
//! [`Error::Descriptor`] and is closed.
//!
//! Workers on the [`Transport::Stdio`] transport (their stdin and stdout,
//! for launchers such as `ssh`) take no descriptors: streams and files go
//! in-band, as chunks with credit-based flow control (a window of 256 KiB
//! each way, so a stream of any size never sits in memory), and sockets and
//! listeners fail with [`Error::NoFdPassing`].
//!
//! **Retry rule.** A request whose stream or socket was handed to a worker
//! is never sent again: the worker may have consumed part of the stream.
//! If that attempt fails (the worker dies, the attempt times out) and the
//! request had retries left, it fails with [`Error::NotRetried`] (which
//! names the attempt's error); with no retries left it fails with the
//! attempt's own error. Requests still queued are retried as usual.
//!
//! # Caveats
//!
//! - Linux only: PR_SET_PDEATHSIG, process groups, /proc, pidfds and
//!   `clone(CLONE_VM | CLONE_VFORK)` are used.
//! - One thread: every actor of a pool runs on the Arbiter that called
//!   [`Pool::start`]. The Balancer reads each worker's load from counters
//!   the WorkerHandles update, without a message, which is only right while
//!   they take turns on one thread. Debug builds assert it when each actor
//!   starts. A pool handles hundreds of thousands of requests a second on
//!   that thread; run several pools for more.
//! - Workers are started on a few threads of their own (shared by every
//!   pool of the process, never ended), so a spawn never stalls dispatch
//!   and several workers start at once; and without `fork`'s copy of the
//!   supervisor's memory (the child borrows it until `exec`, as with
//!   `posix_spawn`). The parent-death signal fires when the *thread* that
//!   started a worker ends, so those threads live as long as the process;
//!   a pool dropped with its Arbiter (or its System) still SIGKILLs and
//!   reaps its workers as their actors are dropped.
//! - A worker's exit is awaited through a pidfd (Linux 5.3 and later), on
//!   the pool's thread; without one (an older kernel, a seccomp filter),
//!   through SIGCHLD. A worker that ignores SIGTERM is SIGKILLed after
//!   `term_grace`, and its whole process group with it.
//! - The first worker started forks a small *group guard* process (no
//!   `exec`; it closes every descriptor but its socket to the supervisor and
//!   ignores SIGINT/SIGTERM/SIGHUP). If the supervisor's process dies without
//!   reaping its workers, the guard SIGKILLs their process groups, then exits.
//!   It shows up as a child of the host process for the host's whole life.

mod alarm;
pub mod balance;
mod balancer;
mod config;
mod error;
mod events;
mod health;
#[cfg(feature = "actix-web")]
pub mod http;
mod id;
mod metrics;
mod pool;
mod reasons;
mod request;
mod spawner;
mod stream;
mod supervisor;
mod worker_handle;

pub use balancer::{Answer, Balancer};
pub use config::{Config, Heartbeat, SignalPolicy, Strategy, Transport, WorkerCommand};
pub use error::{Error, ErrorKind};
pub use events::{CustomEvent, EventStream, PoolEvent};
pub use health::{HealthTable, UsageSource, WorkerHealth, WorkerState};
pub use lpm_protocol::{Call, Codec, Query, Topic, TraceParent};
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub use metrics::PROMETHEUS_CONTENT_TYPE;
pub use metrics::{Histogram, Metrics, Outcome, Outcomes, RestartReason, Restarts};
pub use pool::Pool;
pub use reasons::{KillReason, RecycleReason};
pub use request::{Body, Enqueue, Raw, Response, WithResponse};
pub use stream::{Listener, ResponseStream};
pub use supervisor::{
    Autoscale, Broadcast, BroadcastListener, HardKill, Health, KillReport, Measure, Reload,
    ReloadReport, Reloaded, Resize, ScaleReason, SoftKill, StartFailure, Subscribe, Supervisor,
};
// `WorkerHandle` is internal: nothing public can be sent to it.
