//! The actors of lpm: a [`Supervisor`] that owns a [`Balancer`] and one
//! [`WorkerHandle`] per child process.
//!
//! Most code uses them through [`Pool`], a cheap handle that sends the typed
//! messages below; the messages themselves are public for code that prefers
//! to talk to the actors directly.
//!
//! ```text
//!  caller ──Enqueue──▶ Balancer ──Assign (batched)──▶ WorkerHandle ──frames──▶ child
//!    ▲                  ▲   ▲                            │  (one per child: socket,
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
//! use lpm_actors::{Config, Pool, WorkerCommand};
//!
//! #[actix::main]
//! async fn main() -> Result<(), lpm_actors::Error> {
//!     let pool = Pool::start(WorkerCommand::new("./my-worker"), Config::default().workers(4));
//!     pool.online().await?;
//!     let answer: String = pool.enqueue(&"hello").await?.data()?;
//!     println!("{answer}");
//!     pool.soft_kill().await;
//!     Ok(())
//! }
//! ```
//!
//! # Caveats
//!
//! - Linux only: PR_SET_PDEATHSIG, process groups and /proc are used.
//! - The parent-death signal fires when the *thread* that spawned the worker
//!   exits: run the actix System on a thread that lives as long as the pool.
//! - Children are reaped by tokio; a worker that ignores SIGTERM is SIGKILLed
//!   after `term_grace`, and its whole process group with it.

mod alarm;
mod balancer;
mod config;
mod error;
mod events;
mod health;
mod id;
mod pool;
mod reasons;
mod request;
mod supervisor;
mod worker_handle;

pub use balancer::Balancer;
pub use config::{Config, Heartbeat, SignalPolicy, Strategy, WorkerCommand};
pub use error::Error;
pub use events::{CustomEvent, EventStream, PoolEvent};
pub use health::{WorkerHealth, WorkerState};
pub use pool::Pool;
pub use reasons::{KillReason, RecycleReason};
pub use request::{Enqueue, Response};
pub use supervisor::{
    Broadcast, HardKill, Health, KillReport, Resize, SoftKill, Subscribe, Supervisor,
};
pub use worker_handle::WorkerHandle;
