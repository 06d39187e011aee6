//! The handshake: both sides say `Hello` with their protocol version.

use std::io;
use std::sync::Arc;

use lpm_protocol::{FrameSink, FrameStream, ToSupervisor, ToWorker, PROTOCOL_VERSION};
use tokio::net::UnixStream;

use crate::Error;

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
) -> Result<Greeted, Error> {
    let mut sink = FrameSink::new(Arc::clone(stream), max_frame_len);
    sink.push(&ToSupervisor::Hello {
        version: PROTOCOL_VERSION,
        pid: std::process::id(),
    })
    .map_err(Error::channel)?;
    sink.flush().await.map_err(|e| match e.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Error::Handshake {
            reason: "the channel closed before the supervisor's Hello".to_owned(),
        },
        _ => Error::channel(e),
    })?;

    let mut frames = FrameStream::new(Arc::clone(stream), max_frame_len);
    let batch = match frames.next_batch().await {
        Some(Ok(batch)) => batch,
        Some(Err(lpm_protocol::Error::Io(e))) => return Err(Error::channel(e)),
        Some(Err(e)) => {
            return Err(Error::Handshake {
                reason: format!("its first frame is unreadable ({e})"),
            })
        }
        None => {
            return Err(Error::Handshake {
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
        Some(ToWorker::Hello { version, .. }) => Err(Error::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: version,
        }),
        Some(other) => Err(Error::Handshake {
            reason: format!("the first message was {} instead of Hello", other.kind()),
        }),
        None => Err(Error::Handshake {
            reason: "an empty first read".to_owned(),
        }),
    }
}
