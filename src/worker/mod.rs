//! The runtime of a worker process: the child side of an lpm pool.
//!
//! A worker binary connects to its supervisor with [`Worker::from_env`],
//! registers an async request handler with [`Worker::on_request`] (and,
//! optionally, handlers for named events and for soft kill), says
//! [`Worker::ready`], and hands control to [`Worker::run`].
//!
//! # How it runs
//!
//! One reader loop decodes frames from the channel in batches and spawns one
//! tokio task per request. Every message back to the supervisor is appended
//! to one shared buffer that a single writer task drains, so under load many
//! responses leave in one write call. A handler that returns an error or
//! panics answers its request with a failure and the worker keeps serving;
//! each request is answered exactly once (see [`Request`]), or not at all
//! once the supervisor cancelled it because it timed out (see
//! [Cancellation](Request#cancellation): the handler is told, not aborted).
//!
//! The runtime needs a tokio runtime with I/O enabled; a multi-threaded one
//! lets handlers run in parallel.
//!
//! # Examples
//!
//! ```no_run
//! use lpm::worker::{Request, Worker};
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

mod call;
mod emit;
mod event;
mod fds;
mod handshake;
mod in_flight;
mod outbox;
mod request;
mod run;
mod soft_kill;
#[allow(clippy::module_inception)]
mod worker;

#[cfg(test)]
mod tests;

pub use call::CallContext;
pub use emit::Reply;
pub use event::Event;
pub use fds::{Listener, RequestStream, Socket};
pub use request::{Request, RequestInfo};
pub use soft_kill::Done;
pub use worker::Worker;
