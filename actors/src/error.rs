//! The one error type of `lpm-actors`: every way a request or a pool call can fail.

use std::time::Duration;

use lpm_protocol::Codec;

/// Why a request or a pool operation failed.
///
/// Every enqueued request resolves exactly once: with a [`Response`](crate::Response)
/// or with one of these.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request queue is at its bound.
    #[error(
        "request queue is full ({capacity} waiting); retry later, add workers, \
         or raise `Config::queue_capacity`"
    )]
    QueueFull {
        /// The configured queue bound.
        capacity: usize,
    },
    /// No answer within the request's timeout, on every attempt made (the last
    /// one may have been spent waiting in the queue).
    #[error(
        "no answer within {after:?} after {attempts} attempt(s); \
         raise the timeout or look at why the workers are slow"
    )]
    Timeout {
        /// The per-attempt timeout.
        after: Duration,
        /// Attempts made (1 + retries spent).
        attempts: u32,
    },
    /// The worker serving the request died and no retries were left.
    #[error(
        "worker in slot {slot} (pid {pid}) died while serving the request, \
         after {retries_spent} retries; see the worker's logs, or allow more retries"
    )]
    WorkerDied {
        /// Slot of the worker that died last.
        slot: usize,
        /// Its process id.
        pid: u32,
        /// Retries that were spent before this final failure.
        retries_spent: u32,
    },
    /// The pool killed the worker serving the request for misbehaving (see
    /// [`KillReason`](crate::KillReason)) and no retries were left.
    #[error(
        "worker in slot {slot} (pid {pid}) was killed while serving the request ({reason}), \
         after {retries_spent} retries; see the worker's logs, or allow more retries"
    )]
    WorkerKilled {
        /// Slot of the worker.
        slot: usize,
        /// Its process id.
        pid: u32,
        /// Why it was killed.
        reason: crate::KillReason,
        /// Retries that were spent before this final failure.
        retries_spent: u32,
    },
    /// Every attempt at this request ended with its worker dying: the request
    /// is taken to be what kills them, and is not tried again.
    #[error(
        "request {id} was quarantined: the worker died on each of its {attempts} attempts; \
         look at what this payload does to the worker"
    )]
    Quarantined {
        /// The request.
        id: lpm_protocol::RequestId,
        /// Attempts made, each ending in a worker death.
        attempts: u32,
    },
    /// A soft or hard kill is under way or done: the pool takes no new requests.
    #[error("the pool is shutting down and takes no new requests")]
    ShuttingDown,
    /// A hard kill (or the end of a soft kill's grace period) ended the request.
    #[error("the pool was killed before the request was answered")]
    Killed,
    /// The worker's handler returned an error or panicked.
    #[error("worker (pid {pid}) failed the request: {message}")]
    Handler {
        /// The handler's message.
        message: String,
        /// The worker that ran it.
        pid: u32,
    },
    /// A payload did not decode as the type asked for.
    #[error(
        "could not decode the payload as {type_name}: {reason}; do both sides agree on the type?"
    )]
    Decode {
        /// The Rust type asked for.
        type_name: &'static str,
        /// What the codec said.
        reason: String,
    },
    /// A payload could not be encoded.
    #[error("could not encode the payload: {reason}")]
    Encode {
        /// What the codec said.
        reason: String,
    },
    /// No worker of the pool has a handler for this call, so it was not
    /// sent (or a worker that got it anyway had none).
    #[error(
        "no worker serves the call {name:?}; register a handler for it in the worker \
         (`Worker::handle`) or check the call's NAME on both sides"
    )]
    NotHandled {
        /// The call's wire name (empty for an untyped request).
        name: String,
    },
    /// An untyped request's payload was encoded with another codec than the pool's.
    #[error(
        "the payload is encoded with {payload} but the pool uses {pool}; \
         build the request with `Enqueue::encoded(Codec::{pool:?}, ..)` or `Pool::enqueue`"
    )]
    CodecMismatch {
        /// The pool's codec.
        pool: Codec,
        /// The payload's.
        payload: Codec,
    },
    /// The encoded request is bigger than a frame may be.
    #[error(
        "request of {len} bytes exceeds the frame limit of {max} bytes; \
         send less or raise `Config::max_frame_len`"
    )]
    PayloadTooLarge {
        /// Encoded size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Every worker is gone and none will be restarted (restart limit reached or shutdown).
    #[error(
        "no worker is left to serve the request and none will be restarted; \
         see the RestartLimitReached events and the workers' logs"
    )]
    NoWorkers,
    /// The pool's actors stopped before the request was answered.
    #[error("the pool stopped before answering (its actix System is shutting down)")]
    PoolStopped,
    /// A worker slot restarted too often before the pool first came online.
    #[error(
        "worker slot {slot} restarted {restarts} times within the restart window and was given up, \
         so the pool cannot reach full strength; see the workers' stderr (ChildExited events)"
    )]
    RestartLimit {
        /// The slot given up on.
        slot: usize,
        /// Restarts counted in the window.
        restarts: u32,
    },
    /// A size that makes no sense, e.g. `resize(0)`.
    #[error("invalid pool size {requested}: a pool needs at least one worker")]
    InvalidSize {
        /// What was asked for.
        requested: usize,
    },
    /// [`CustomEvent::reply`](crate::CustomEvent::reply) on an event that was
    /// answered already, or whose worker did not ask for a reply.
    #[error("this event was already replied to, or its worker asked for no reply")]
    AlreadyReplied,
    /// The worker that emitted the event is gone, so the reply cannot be delivered.
    #[error("the worker that emitted this event is gone")]
    WorkerGone,
    /// An attempt of a request that carried a stream or a socket failed after
    /// the descriptor was handed to a worker: the request is not tried again,
    /// because the stream may be partly consumed (see the [retry rule](crate#streams-and-sockets)).
    #[error(
        "the request's {what} was already handed to a worker, so it is not retried: {cause}; \
         enqueue it again with a fresh {what} if that is safe"
    )]
    NotRetried {
        /// `"stream"`, `"file"` or `"socket"`.
        what: &'static str,
        /// Why the attempt failed.
        cause: Box<Error>,
    },
    /// A descriptor could not be passed to a worker: it is not the kind it
    /// claims, or this process is out of descriptors (`EMFILE`). Nothing of
    /// the request was sent and the descriptor is closed.
    #[error(
        "could not pass the request's {what} to a worker: {reason}; \
         check the descriptor, or raise the open file limit (ulimit -n)"
    )]
    Descriptor {
        /// `"stream"`, `"file"`, `"socket"` or `"listener"`.
        what: &'static str,
        /// The system's error.
        reason: String,
    },
}

/// Decodes a payload as `T`, with our error.
pub(crate) fn decode_payload<T: serde::de::DeserializeOwned>(
    codec: Codec,
    bytes: &[u8],
) -> Result<T, Error> {
    codec.decode(bytes).map_err(|e| Error::Decode {
        type_name: std::any::type_name::<T>(),
        reason: format!("{codec}: {e}"),
    })
}

/// Encodes `T` as a payload, with our error.
pub(crate) fn encode_payload<T: serde::Serialize + ?Sized>(
    codec: Codec,
    value: &T,
) -> Result<Vec<u8>, Error> {
    codec.encode(value).map_err(|e| Error::Encode {
        reason: format!("{codec}: {e}"),
    })
}
