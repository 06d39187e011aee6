//! Echo worker on the lpm worker runtime, for the IPC benchmark: every request
//! is answered with its own payload, decoded and re-encoded as bytes.
//!
//! It runs on a current-thread tokio runtime, like `raw_echo` (the
//! protocol-only worker), so the two differ only by the runtime's own work.

use lpm::worker::{Request, Worker};
use serde_bytes::ByteBuf;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lpm::WorkerError> {
    let worker = Worker::from_env().await?;
    worker.on_request(|req: Request| async move {
        let payload: ByteBuf = req.data()?;
        req.respond(&payload)?;
        Ok(())
    });
    worker.ready();
    worker.run().await
}
