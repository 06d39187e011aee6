//! Echo worker on the lpm worker runtime, for the IPC benchmark: every request
//! is answered with its own payload, decoded and re-encoded as bytes.
//!
//! It serves the same echo twice: untyped (`Worker::on_request`, for
//! `Pool::enqueue`) and as the typed call [`Echo`] (`Worker::handle`, for
//! `Pool::call`), so the benchmark can set the two paths side by side. Both
//! decode the payload into a `ByteBuf` and encode it back; it follows the
//! pool's codec (postcard or JSON) through the environment.
//!
//! For the benchmark's memory workload it also serves [`Pause`] (it says
//! busy, so the pool queues what it is sent) and follows [`Resume`] (it
//! says ready again).
//!
//! It runs on a current-thread tokio runtime, like `raw_echo` (the
//! protocol-only worker), so the two differ only by the runtime's own work.

use lpm::worker::{CallContext, Request, Worker};
use lpm::Call;
use lpm_tests::bench::{Pause, Resume};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The typed echo: answered with its bytes. (The benchmark's caller has its
/// own type for it, with the same wire name and encoding.)
#[derive(Serialize, Deserialize)]
struct Echo(ByteBuf);

impl Call for Echo {
    const NAME: &'static str = "echo";
    type Reply = ByteBuf;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lpm::WorkerError> {
    let worker = Worker::from_env().await?;
    worker.on_request(|req: Request| async move {
        let payload: ByteBuf = req.data()?;
        req.respond(&payload)?;
        Ok(())
    });
    worker.handle(|echo: Echo, _ctx: CallContext| async move { Ok(echo.0) });
    let handle = worker.clone();
    worker.handle(move |_: Pause, _ctx: CallContext| {
        handle.busy();
        async move { Ok(()) }
    });
    let handle = worker.clone();
    worker.subscribe(move |_: Resume| {
        handle.ready();
        async {}
    });
    worker.ready();
    worker.run().await
}
