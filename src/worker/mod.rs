//! The runtime of a worker process: the child side of an lpm pool.
//!
//! A worker binary connects to its supervisor with [`Worker::from_env`],
//! registers one async handler per typed call with [`Worker::handle`] (and,
//! optionally, an untyped one with [`Worker::on_request`], handlers for
//! events with [`Worker::subscribe`] or [`Worker::on_event`], and one for
//! soft kill), says [`Worker::ready`], and hands control to [`Worker::run`],
//! whose `Hello` tells the pool which calls it serves.
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
//! use lpm::worker::{CallContext, Request, Worker};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Double(u64);
//!
//! impl lpm::Call for Double {
//!     const NAME: &'static str = "double";
//!     type Reply = u64;
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), lpm::WorkerError> {
//!     let worker = Worker::from_env().await?;
//!     worker.handle(|Double(n): Double, _: CallContext| async move { Ok(n * 2) });
//!     // Requests enqueued without a call (`pool.enqueue(&T)`).
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
mod channel;
mod emit;
mod event;
mod fds;
mod handshake;
mod in_band;
mod in_flight;
mod outbox;
mod request;
mod run;
mod soft_kill;
#[allow(clippy::module_inception)]
mod worker;

#[cfg(test)]
mod stdio_tests;
#[cfg(test)]
mod tests;

pub use call::CallContext;
pub use emit::Reply;
pub use event::Event;
pub use fds::{Listener, RequestStream, Socket};
pub use request::{Request, RequestInfo};
pub use soft_kill::Done;
pub use worker::Worker;
