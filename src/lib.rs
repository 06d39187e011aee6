//! lpm supervises a pool of worker child processes and spreads requests
//! across them by load.
//!
//! This crate is the facade. Its [`worker`] module is the runtime a worker
//! binary links: it connects to the supervisor over the channel it inherited,
//! serves requests with an async handler, and exchanges named events.
//!
//! # Examples
//!
//! A worker that echoes every request:
//!
//! ```no_run
//! use lpm::worker::{Request, Worker};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), lpm::Error> {
//!     let worker = Worker::from_env().await?;
//!     worker.on_request(|req: Request| async move {
//!         let text: String = req.data()?;
//!         req.respond(&text)?;
//!         Ok(())
//!     });
//!     worker.ready();
//!     worker.run().await
//! }
//! ```

// Temporary crate root for the worker runtime; the lead merges it with the pool re-exports.

mod error;
pub mod worker;

pub use error::Error;

/// A boxed error: what request handlers return.
///
/// Any error type converts into it with `?` or `.into()`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

// Pool side (supervisor process): the actors and their handle.
pub use lpm_actors::{
    Balancer, Broadcast, Config, CustomEvent, Enqueue, Error as PoolError, EventStream, HardKill,
    Health, KillReport, Pool, PoolEvent, Resize, Response, SignalPolicy, SoftKill, Strategy,
    Subscribe, Supervisor, WorkerCommand, WorkerHandle, WorkerHealth, WorkerState,
};

/// The environment variable that names a worker's IPC channel; set for every worker.
pub use lpm_protocol::IPC_FD_ENV;
