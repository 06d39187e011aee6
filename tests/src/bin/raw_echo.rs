//! A worker written against `lpm-protocol` alone, with no runtime: it answers
//! every request with its own payload. It shows the protocol is all a worker
//! needs, and is the leanest worker for benchmarks.

use std::sync::Arc;

use lpm_protocol::{
    inherited_channel, Codec, FrameSink, FrameStream, ToSupervisor, ToWorker,
    DEFAULT_MAX_FRAME_LEN, PROTOCOL_VERSION,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let channel = inherited_channel()?;
    channel.set_nonblocking(true)?;
    let channel = Arc::new(tokio::net::UnixStream::from_std(channel)?);
    let mut sink = FrameSink::new(Arc::clone(&channel), DEFAULT_MAX_FRAME_LEN);
    let mut frames = FrameStream::<ToWorker>::new(channel, DEFAULT_MAX_FRAME_LEN);
    sink.push(&ToSupervisor::Hello {
        version: PROTOCOL_VERSION,
        pid: std::process::id(),
        codec: Codec::Postcard,
        calls: Vec::new(),
        takes_fds: true,
    })?;
    sink.push(&ToSupervisor::Ready)?;
    sink.flush().await?;
    while let Some(batch) = frames.next_batch().await {
        for msg in batch? {
            match msg {
                ToWorker::Request(req) => sink.push(&ToSupervisor::Response {
                    id: req.id,
                    payload: req.payload,
                })?,
                ToWorker::SoftKill => {
                    sink.push(&ToSupervisor::SoftKillDone)?;
                    sink.flush().await?;
                    return Ok(());
                }
                ToWorker::HardKill => return Ok(()),
                // Heartbeats, and the fence after a Cancel.
                ToWorker::Ping { seq } => sink.push(&ToSupervisor::Pong { seq })?,
                _ => {}
            }
        }
        sink.flush().await?;
    }
    Ok(())
}
