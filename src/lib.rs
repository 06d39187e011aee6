//! lpm supervises a pool of worker child processes and spreads requests
//! across them by load, on actix.
//!
//! The crate has two sides:
//!
//! - **The pool** (in the supervisor process): [`Pool`] starts a
//!   [`Supervisor`] actor that owns a [`Balancer`] and one `WorkerHandle`
//!   per child. Enqueue requests with [`Pool::enqueue`] or [`Pool::send`],
//!   read [`Pool::health`], listen to [`PoolEvent`]s, [`Pool::broadcast`],
//!   [`Pool::resize`], and stop with [`Pool::soft_kill`] or [`Pool::hard_kill`].
//!   Every request resolves exactly once, with a [`Response`] or a
//!   [`PoolError`] that says what happened ([`PoolError::kind`] gives its
//!   [`ErrorKind`], to match on or count). Health reports, events, kill
//!   reports and errors implement `serde::Serialize`, so they can be
//!   returned as JSON as they are.
//! - **The worker** (in each child process): [`worker::Worker`] connects to
//!   the supervisor over the channel it inherited and serves requests with an
//!   async handler; see the [`worker`] module.
//!
//! The wire format between them is [`lpm_protocol`]'s, documented byte by
//! byte so workers can be written in other languages.
//!
//! # Examples
//!
//! The supervisor side, inside an actix System:
//!
//! ```no_run
//! use std::time::Duration;
//! use lpm::prelude::*;
//!
//! #[actix::main]
//! async fn main() -> Result<(), PoolError> {
//!     let pool = Pool::start(
//!         WorkerCommand::new("./my-worker"),
//!         Config::default().workers(4).timeout(Duration::from_secs(5)),
//!     );
//!     pool.online().await?;
//!     let doubled: u64 = pool.enqueue(&21u64).await?.data()?;
//!     assert_eq!(doubled, 42);
//!     pool.soft_kill().await.expect("the pool is running");
//!     Ok(())
//! }
//! ```
//!
//! The worker it runs:
//!
//! ```no_run
//! use lpm::prelude::*;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), lpm::WorkerError> {
//!     let worker = Worker::from_env().await?;
//!     worker.on_request(|req: Request| async move {
//!         let n: u64 = req.data()?;
//!         req.respond(&(n * 2))?;
//!         Ok(())
//!     });
//!     worker.ready();
//!     worker.run().await
//! }
//! ```
//!
//! # Platform
//!
//! Linux only: the pool relies on `PR_SET_PDEATHSIG`, process groups and
//! `/proc`, and the channel on Unix socketpairs.

mod error;
pub mod worker;

pub use error::WorkerError;

/// A boxed error: what request handlers return.
///
/// Any error type converts into it with `?` or `.into()`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub use lpm_protocol::{Call, Codec, Query, Topic};

pub use lpm_actors::{
    balance, Answer, Balancer, Body, Broadcast, BroadcastListener, Config, CustomEvent, Enqueue,
    Error as PoolError, ErrorKind, EventStream, HardKill, Health, Heartbeat, KillReason,
    KillReport, Listener, Pool, PoolEvent, Raw, RecycleReason, Resize, Response, ResponseStream,
    SignalPolicy, SoftKill, Strategy, Subscribe, Supervisor, WithResponse, WorkerCommand,
    WorkerHealth, WorkerState,
};

/// The environment variable that names a worker's IPC channel; set for every worker.
pub use lpm_protocol::IPC_FD_ENV;

/// The wire protocol crate, for workers that speak it directly.
pub use lpm_protocol as protocol;

/// The names most programs need, on both sides.
pub mod prelude {
    pub use crate::worker::{CallContext, Done, Event, Request, Worker};
    pub use crate::{
        BoxError, Call, Codec, Config, CustomEvent, Enqueue, ErrorKind, KillReason, KillReport,
        Pool, PoolError, PoolEvent, Query, Response, Topic, WorkerCommand, WorkerError,
        WorkerHealth, WorkerState,
    };
}

// The README's examples compile as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
