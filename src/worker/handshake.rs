//! The handshake: both sides say `Hello` with their protocol version.

use std::io;
use std::sync::Arc;

use lpm_protocol::{FrameSink, FrameStream, ToSupervisor, ToWorker, PROTOCOL_VERSION};
use tokio::net::UnixStream;

use crate::WorkerError;

/// What the handshake leaves for the run loop.
#[derive(Debug)]
pub(crate) struct Greeted {
    /// The slot the supervisor gave this worker.
    pub(crate) slot: u32,
    /// The channel's reader, positioned after the supervisor's `Hello`.
    pub(crate) frames: FrameStream<ToWorker>,
    /// Messages that arrived in the same read as the `Hello`.
    pub(crate) backlog: Vec<ToWorker>,
}

/// Sends our `Hello`, then reads the supervisor's and checks its version.
pub(crate) async fn greet(
    stream: &Arc<UnixStream>,
    max_frame_len: usize,
) -> Result<Greeted, WorkerError> {
    let mut sink = FrameSink::new(Arc::clone(stream), max_frame_len);
    sink.push(&ToSupervisor::Hello {
        version: PROTOCOL_VERSION,
        pid: std::process::id(),
    })
    .map_err(WorkerError::channel)?;
    sink.flush().await.map_err(|e| match e.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => WorkerError::Handshake {
            reason: "the channel closed before the supervisor's Hello".to_owned(),
        },
        _ => WorkerError::channel(e),
    })?;

    let mut frames = FrameStream::new(Arc::clone(stream), max_frame_len);
    let batch = match frames.next_batch().await {
        Some(Ok(batch)) => batch,
        Some(Err(lpm_protocol::Error::Io(e))) => return Err(WorkerError::channel(e)),
        Some(Err(e)) => {
            return Err(WorkerError::Handshake {
                reason: format!("its first frame is unreadable ({e})"),
            })
        }
        None => {
            return Err(WorkerError::Handshake {
                reason: "the channel closed before the supervisor's Hello".to_owned(),
            })
        }
    };
    let mut batch = batch.into_iter();
    match batch.next() {
        Some(ToWorker::Hello { version, slot }) if version == PROTOCOL_VERSION => Ok(Greeted {
            slot,
            frames,
            backlog: batch.collect(),
        }),
        Some(ToWorker::Hello { version, .. }) => Err(WorkerError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: version,
        }),
        Some(other) => Err(WorkerError::Handshake {
            reason: format!("the first message was {} instead of Hello", other.kind()),
        }),
        None => Err(WorkerError::Handshake {
            reason: "an empty first read".to_owned(),
        }),
    }
}
