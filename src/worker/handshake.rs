//! The handshake. The supervisor sends its `Hello` (protocol version, slot,
//! payload codec) at once; the worker reads it when it connects, and sends
//! its own `Hello` (version, pid, codec, the calls it serves, whether it
//! takes descriptors) when it starts running, once its handlers are registered.

use std::io;

use lpm_protocol::{Codec, FrameStream, OutFds, ToSupervisor, ToWorker, PROTOCOL_VERSION};

use super::channel::Channel;
use crate::WorkerError;

/// What the supervisor's `Hello` leaves for the run loop.
#[derive(Debug)]
pub(crate) struct Greeted {
    /// The slot the supervisor gave this worker.
    pub(crate) slot: u32,
    /// The payload codec: ours, or the pool's when we had none.
    pub(crate) codec: Codec,
    /// The channel's reader, positioned after the supervisor's `Hello`.
    pub(crate) frames: FrameStream<ToWorker>,
    /// Messages that arrived in the same read as the `Hello`.
    pub(crate) backlog: Vec<ToWorker>,
}

/// Reads the supervisor's `Hello` and checks its version and codec against
/// ours; without a codec of our own (`None`), the pool's is adopted.
///
/// On a mismatch it still sends our own `Hello`, so the supervisor logs why
/// this worker is of no use to it.
pub(crate) async fn greet(
    channel: &Channel,
    codec: Option<Codec>,
    max_frame_len: usize,
) -> Result<Greeted, WorkerError> {
    let mut frames = channel.frames(max_frame_len);
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
    let mismatch = match batch.next() {
        Some(ToWorker::Hello {
            version: PROTOCOL_VERSION,
            slot,
            codec: theirs,
        }) if codec.is_none_or(|ours| ours == theirs) => {
            return Ok(Greeted {
                slot,
                codec: theirs,
                frames,
                backlog: batch.collect(),
            })
        }
        Some(ToWorker::Hello {
            version: PROTOCOL_VERSION,
            codec: theirs,
            ..
        }) => WorkerError::CodecMismatch {
            ours: codec.unwrap_or(theirs),
            theirs,
        },
        Some(ToWorker::Hello { version, .. }) => WorkerError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: version,
        },
        Some(other) => {
            return Err(WorkerError::Handshake {
                reason: format!("the first message was {} instead of Hello", other.kind()),
            })
        }
        None => {
            return Err(WorkerError::Handshake {
                reason: "an empty first read".to_owned(),
            })
        }
    };
    // Best effort: the error is the mismatch, whatever the write does.
    let ours = codec.unwrap_or(Codec::Postcard);
    let _ = send_hello(channel, ours, Vec::new(), max_frame_len).await;
    Err(mismatch)
}

/// Sends our `Hello`: the first frame the worker writes.
pub(crate) async fn send_hello(
    channel: &Channel,
    codec: Codec,
    calls: Vec<String>,
    max_frame_len: usize,
) -> Result<(), WorkerError> {
    let hello = ToSupervisor::Hello {
        version: PROTOCOL_VERSION,
        pid: std::process::id(),
        codec,
        calls,
        takes_fds: channel.takes_fds(),
    };
    let frame = lpm_protocol::frame(&hello, max_frame_len).map_err(WorkerError::channel)?;
    let written = channel.write_all(&frame, &mut OutFds::default()).await;
    written.map_err(|e| match e.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => WorkerError::ChannelClosed,
        _ => WorkerError::channel(e),
    })
}
