//! What a session asks its shell to do.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use lpm_protocol::{Credit, RequestId};
use nix::sys::signal::Signal;
use tokio::io::AsyncRead;
use tokio::sync::{mpsc, oneshot};

use crate::health::WorkerState;
use crate::request::Pending;
use crate::stream::StreamEnd;
use crate::{KillReason, RecycleReason, Transport};

/// One thing for the shell to do, in the order the session decided it.
#[derive(Debug)]
pub(crate) enum Effect {
    /// For the balancer: the worker's state changed.
    Status(WorkerState),
    /// For the balancer: requests this worker will not serve, to queue again.
    Requeue(Vec<Pending>),
    /// For the balancer: a request slot freed while requests wait.
    Freed,
    /// For the balancer: the worker's resident memory, in bytes.
    Rss(u64),
    /// For the balancer: the calls the worker serves, numbered from 1, and
    /// the transport that keeps it from descriptors if it takes none
    /// (sockets go only to workers that take them).
    Calls {
        calls: Arc<[Box<str>]>,
        refuses_fds: Option<Transport>,
    },
    /// For the supervisor's subscribers: the pool is killing the worker.
    Killing(KillReason),
    /// For the supervisor: the worker said ready for the first time.
    Online,
    /// For the supervisor's subscribers: an event the worker emitted;
    /// `reply_to` when it waits for an answer.
    Emitted {
        name: String,
        payload: Vec<u8>,
        reply_to: Option<u64>,
    },
    /// For the supervisor: a recycling limit was reached.
    Recycle(RecycleReason),
    /// For the supervisor: the worker was reaped.
    Exited(Exit),
    /// Signal the worker's process group.
    Signal(Signal),
    /// Signal the launcher of a remote worker, and nothing else.
    SignalLauncher(Signal),
    /// Close the worker's input once the frames queued so far are written.
    CloseInput,
    /// Copy the caller's stream into the pipe the worker reads.
    Pump {
        id: RequestId,
        reader: CallerStream,
        writer: OwnedFd,
    },
    /// Read the caller's stream as far as `credit` allows, at most `chunk`
    /// bytes at a time, each piece back to the session as a `RequestChunk`
    /// for request `id`.
    PumpInBand {
        id: RequestId,
        reader: CallerStream,
        credit: Arc<Credit>,
        /// The most bytes one chunk may carry (under the frame limit).
        chunk: usize,
    },
    /// Answer with the worker's in-band byte stream, whose chunks arrive on
    /// `chunks`; `end` tells how it ended.
    AnswerStreamed {
        /// Boxed: a rare effect, and the others are small.
        pending: Box<Pending>,
        payload: Vec<u8>,
        chunks: mpsc::UnboundedReceiver<Vec<u8>>,
        end: oneshot::Receiver<StreamEnd>,
    },
    /// Answer with the worker's byte stream, read from `fd`; `end` tells how
    /// its writing ended.
    AnswerWithStream {
        /// Boxed: a rare effect, and the others are small.
        pending: Box<Pending>,
        payload: Vec<u8>,
        fd: OwnedFd,
        end: oneshot::Receiver<StreamEnd>,
    },
}

/// How a worker ended, and the requests it still held.
#[derive(Debug)]
pub(crate) struct Exit {
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
    pub(crate) held: Vec<Pending>,
    /// Set when the pool killed it for misbehaving.
    pub(crate) killed_for: Option<KillReason>,
}

/// The stream a caller sent with a request.
pub(crate) struct CallerStream(pub(crate) Box<dyn AsyncRead + Send + Unpin>);

impl std::fmt::Debug for CallerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallerStream")
    }
}
