//! The one error type of `lpm-actors`: every way a request or a pool call can fail.

use std::time::Duration;

use lpm_protocol::Codec;

/// Why a request or a pool operation failed.
///
/// Every enqueued request resolves exactly once: with a [`Response`](crate::Response)
/// or with one of these.
///
/// [`Error::kind`] tells the variants apart without their details. With
/// serde, an error serializes as `{"kind": "...", "message": "..."}`: its
/// [`ErrorKind`] name and its `Display` text.
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
        "request {id}: no answer within {after:?} after {attempts} attempt(s); \
         raise the timeout or look at why the workers are slow"
    )]
    Timeout {
        /// The request (the id its worker saw).
        id: lpm_protocol::RequestId,
        /// The per-attempt timeout.
        after: Duration,
        /// Attempts made (1 + retries spent).
        attempts: u32,
    },
    /// The worker serving the request died and no retries were left.
    #[error(
        "worker in slot {slot} (pid {pid}) died while serving request {id}, \
         after {retries_spent} retries; see the worker's logs, or allow more retries"
    )]
    WorkerDied {
        /// The request.
        id: lpm_protocol::RequestId,
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
        "worker in slot {slot} (pid {pid}) was killed while serving request {id} ({reason}), \
         after {retries_spent} retries; see the worker's logs, or allow more retries"
    )]
    WorkerKilled {
        /// The request.
        id: lpm_protocol::RequestId,
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
    #[error("worker (pid {pid}) failed request {id}: {message}")]
    Handler {
        /// The request.
        id: lpm_protocol::RequestId,
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
    /// [`Resize`](crate::Resize) while the pool autoscales: the autoscaler
    /// owns the pool's size, between its bounds.
    #[error(
        "the pool autoscales between {min} and {max} workers, so resize is refused; \
         start the pool without `Config::autoscale` to size it by hand"
    )]
    Autoscaling {
        /// The autoscaler's lower bound.
        min: usize,
        /// Its upper bound.
        max: usize,
    },
    /// A rolling reload while another one runs.
    #[error("a rolling reload is already under way; wait for its report, then reload again")]
    ReloadInProgress,
    /// A rolling reload stopped: the new worker for a slot did not get ready.
    #[error(
        "rolling reload stopped at slot {slot}: the new worker {cause}; the workers not \
         replaced yet keep running the old command, which the pool uses again; fix the new \
         command and reload again"
    )]
    ReloadFailed {
        /// The slot whose new worker failed.
        slot: usize,
        /// What became of it.
        cause: crate::StartFailure,
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
    /// A socket or listener cannot be handed to the pool's workers: their
    /// channel carries no file descriptors (the stdio transport, or a worker
    /// whose `Hello` says `takes_fds: false`). Nothing was sent and the
    /// descriptor is closed. Streams and files are not refused: they go in-band.
    #[error(
        "cannot hand a {what} to the pool's workers: their channel ({transport}) carries no          file descriptors; serve connections from workers on the socketpair transport, or          send the bytes as a stream (`Enqueue::stream`)"
    )]
    NoFdPassing {
        /// `"socket"` or `"listener"`.
        what: &'static str,
        /// The transport of the workers that refused it.
        transport: crate::Transport,
    },
}

/// What kind of failure an [`Error`] is: one kind per variant, without the
/// details, from [`Error::kind`].
///
/// Cheap to copy, compare and hash, so callers can count or match outcomes
/// (metric labels, retry decisions) without parsing `Debug` output.
/// [`ErrorKind::as_str`] gives each kind a stable snake_case name, which is
/// also what `Display` and `Serialize` write.
///
/// ```
/// use lpm_actors::{Error, ErrorKind};
///
/// let e = Error::QueueFull { capacity: 8 };
/// assert_eq!(e.kind(), ErrorKind::QueueFull);
/// assert_eq!(e.kind().as_str(), "queue_full");
/// assert_eq!(e.kind().to_string(), "queue_full");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::QueueFull`]: `"queue_full"`.
    QueueFull,
    /// [`Error::Timeout`]: `"timeout"`.
    Timeout,
    /// [`Error::WorkerDied`]: `"worker_died"`.
    WorkerDied,
    /// [`Error::WorkerKilled`]: `"worker_killed"`.
    WorkerKilled,
    /// [`Error::Quarantined`]: `"quarantined"`.
    Quarantined,
    /// [`Error::ShuttingDown`]: `"shutting_down"`.
    ShuttingDown,
    /// [`Error::Killed`]: `"killed"`.
    Killed,
    /// [`Error::Handler`]: `"handler"`.
    Handler,
    /// [`Error::Decode`]: `"decode"`.
    Decode,
    /// [`Error::Encode`]: `"encode"`.
    Encode,
    /// [`Error::PayloadTooLarge`]: `"payload_too_large"`.
    PayloadTooLarge,
    /// [`Error::NoWorkers`]: `"no_workers"`.
    NoWorkers,
    /// [`Error::PoolStopped`]: `"pool_stopped"`.
    PoolStopped,
    /// [`Error::RestartLimit`]: `"restart_limit"`.
    RestartLimit,
    /// [`Error::InvalidSize`]: `"invalid_size"`.
    InvalidSize,
    /// [`Error::AlreadyReplied`]: `"already_replied"`.
    AlreadyReplied,
    /// [`Error::WorkerGone`]: `"worker_gone"`.
    WorkerGone,
    /// [`Error::NotRetried`]: `"not_retried"` (the attempt's own error is in
    /// its `cause`).
    NotRetried,
    /// [`Error::Descriptor`]: `"descriptor"`.
    Descriptor,
    /// [`Error::NotHandled`]: `"not_handled"`.
    NotHandled,
    /// [`Error::CodecMismatch`]: `"codec_mismatch"`.
    CodecMismatch,
    /// [`Error::Autoscaling`]: `"autoscaling"`.
    Autoscaling,
    /// [`Error::ReloadInProgress`]: `"reload_in_progress"`.
    ReloadInProgress,
    /// [`Error::ReloadFailed`]: `"reload_failed"`.
    ReloadFailed,
    /// [`Error::NoFdPassing`]: `"no_fd_passing"`.
    NoFdPassing,
}

impl ErrorKind {
    /// Every kind, in declaration order (`ALL[kind as usize] == kind`): what
    /// a counter per kind is indexed by.
    pub const ALL: [ErrorKind; 25] = [
        ErrorKind::QueueFull,
        ErrorKind::Timeout,
        ErrorKind::WorkerDied,
        ErrorKind::WorkerKilled,
        ErrorKind::Quarantined,
        ErrorKind::ShuttingDown,
        ErrorKind::Killed,
        ErrorKind::Handler,
        ErrorKind::Decode,
        ErrorKind::Encode,
        ErrorKind::PayloadTooLarge,
        ErrorKind::NoWorkers,
        ErrorKind::PoolStopped,
        ErrorKind::RestartLimit,
        ErrorKind::InvalidSize,
        ErrorKind::AlreadyReplied,
        ErrorKind::WorkerGone,
        ErrorKind::NotRetried,
        ErrorKind::Descriptor,
        ErrorKind::NotHandled,
        ErrorKind::CodecMismatch,
        ErrorKind::Autoscaling,
        ErrorKind::ReloadInProgress,
        ErrorKind::ReloadFailed,
        ErrorKind::NoFdPassing,
    ];

    /// The kind's snake_case name, e.g. `"queue_full"`: stable across
    /// releases, for metric labels and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::QueueFull => "queue_full",
            ErrorKind::Timeout => "timeout",
            ErrorKind::WorkerDied => "worker_died",
            ErrorKind::WorkerKilled => "worker_killed",
            ErrorKind::Quarantined => "quarantined",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::Killed => "killed",
            ErrorKind::Handler => "handler",
            ErrorKind::Decode => "decode",
            ErrorKind::Encode => "encode",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::NoWorkers => "no_workers",
            ErrorKind::PoolStopped => "pool_stopped",
            ErrorKind::RestartLimit => "restart_limit",
            ErrorKind::InvalidSize => "invalid_size",
            ErrorKind::AlreadyReplied => "already_replied",
            ErrorKind::WorkerGone => "worker_gone",
            ErrorKind::NotRetried => "not_retried",
            ErrorKind::Descriptor => "descriptor",
            ErrorKind::NotHandled => "not_handled",
            ErrorKind::CodecMismatch => "codec_mismatch",
            ErrorKind::Autoscaling => "autoscaling",
            ErrorKind::ReloadInProgress => "reload_in_progress",
            ErrorKind::ReloadFailed => "reload_failed",
            ErrorKind::NoFdPassing => "no_fd_passing",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    /// Writes [`ErrorKind::as_str`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The id of the request that failed, where the error is about one
    /// request that reached a worker (the id its worker saw in
    /// `Request::id`), so logs on both sides can be matched.
    pub fn request_id(&self) -> Option<lpm_protocol::RequestId> {
        match self {
            Error::Timeout { id, .. }
            | Error::WorkerDied { id, .. }
            | Error::WorkerKilled { id, .. }
            | Error::Quarantined { id, .. }
            | Error::Handler { id, .. } => Some(*id),
            Error::NotRetried { cause, .. } => cause.request_id(),
            _ => None,
        }
    }

    /// What kind of failure this is, without its details; see [`ErrorKind`].
    ///
    /// For [`Error::NotRetried`] it is [`ErrorKind::NotRetried`]; the failed
    /// attempt's own kind is its `cause`'s.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::QueueFull { .. } => ErrorKind::QueueFull,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::WorkerDied { .. } => ErrorKind::WorkerDied,
            Error::WorkerKilled { .. } => ErrorKind::WorkerKilled,
            Error::Quarantined { .. } => ErrorKind::Quarantined,
            Error::ShuttingDown => ErrorKind::ShuttingDown,
            Error::Killed => ErrorKind::Killed,
            Error::Handler { .. } => ErrorKind::Handler,
            Error::Decode { .. } => ErrorKind::Decode,
            Error::Encode { .. } => ErrorKind::Encode,
            Error::PayloadTooLarge { .. } => ErrorKind::PayloadTooLarge,
            Error::NoWorkers => ErrorKind::NoWorkers,
            Error::PoolStopped => ErrorKind::PoolStopped,
            Error::RestartLimit { .. } => ErrorKind::RestartLimit,
            Error::InvalidSize { .. } => ErrorKind::InvalidSize,
            Error::AlreadyReplied => ErrorKind::AlreadyReplied,
            Error::WorkerGone => ErrorKind::WorkerGone,
            Error::NotRetried { .. } => ErrorKind::NotRetried,
            Error::Descriptor { .. } => ErrorKind::Descriptor,
            Error::NotHandled { .. } => ErrorKind::NotHandled,
            Error::CodecMismatch { .. } => ErrorKind::CodecMismatch,
            Error::Autoscaling { .. } => ErrorKind::Autoscaling,
            Error::ReloadInProgress => ErrorKind::ReloadInProgress,
            Error::ReloadFailed { .. } => ErrorKind::ReloadFailed,
            Error::NoFdPassing { .. } => ErrorKind::NoFdPassing,
        }
    }
}

/// `{"kind": "<ErrorKind::as_str>", "message": "<the Display text>"}`, e.g.
/// `{"kind": "queue_full", "message": "request queue is full (8 waiting); ..."}`:
/// a stable kind to switch on, and the sentence for people.
impl serde::Serialize for Error {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Error", 2)?;
        s.serialize_field("kind", &self.kind())?;
        s.serialize_field("message", &self.to_string())?;
        s.end()
    }
}

/// Serializes a [`Duration`] as seconds (`f64`), the unit a JSON reader expects.
pub(crate) fn secs<S: serde::Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(d.as_secs_f64())
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::{Error, ErrorKind};
    use crate::KillReason;
    use lpm_protocol::Codec;

    /// The variant's name. An exhaustive match, so a new variant does not
    /// compile until it is named here (and given an example in `one_of_each`).
    fn variant_name(e: &Error) -> &'static str {
        match e {
            Error::QueueFull { .. } => "QueueFull",
            Error::Timeout { .. } => "Timeout",
            Error::WorkerDied { .. } => "WorkerDied",
            Error::WorkerKilled { .. } => "WorkerKilled",
            Error::Quarantined { .. } => "Quarantined",
            Error::ShuttingDown => "ShuttingDown",
            Error::Killed => "Killed",
            Error::Handler { .. } => "Handler",
            Error::Decode { .. } => "Decode",
            Error::Encode { .. } => "Encode",
            Error::PayloadTooLarge { .. } => "PayloadTooLarge",
            Error::NoWorkers => "NoWorkers",
            Error::PoolStopped => "PoolStopped",
            Error::RestartLimit { .. } => "RestartLimit",
            Error::InvalidSize { .. } => "InvalidSize",
            Error::AlreadyReplied => "AlreadyReplied",
            Error::WorkerGone => "WorkerGone",
            Error::NotRetried { .. } => "NotRetried",
            Error::Descriptor { .. } => "Descriptor",
            Error::NotHandled { .. } => "NotHandled",
            Error::CodecMismatch { .. } => "CodecMismatch",
            Error::Autoscaling { .. } => "Autoscaling",
            Error::ReloadInProgress => "ReloadInProgress",
            Error::ReloadFailed { .. } => "ReloadFailed",
            Error::NoFdPassing { .. } => "NoFdPassing",
        }
    }

    /// Every variant once.
    fn one_of_each() -> Vec<Error> {
        vec![
            Error::QueueFull { capacity: 8 },
            Error::Timeout {
                id: uuid::Uuid::nil(),
                after: Duration::from_secs(1),
                attempts: 2,
            },
            Error::WorkerDied {
                id: uuid::Uuid::nil(),
                slot: 0,
                pid: 42,
                retries_spent: 1,
            },
            Error::WorkerKilled {
                id: uuid::Uuid::nil(),
                slot: 1,
                pid: 43,
                reason: KillReason::ChannelFailed("broken pipe".into()),
                retries_spent: 0,
            },
            Error::Quarantined {
                id: uuid::Uuid::nil(),
                attempts: 3,
            },
            Error::ShuttingDown,
            Error::Killed,
            Error::Handler {
                id: uuid::Uuid::nil(),
                message: "no".into(),
                pid: 44,
            },
            Error::Decode {
                type_name: "u32",
                reason: "eof".into(),
            },
            Error::Encode {
                reason: "too deep".into(),
            },
            Error::PayloadTooLarge { len: 10, max: 5 },
            Error::NoWorkers,
            Error::PoolStopped,
            Error::RestartLimit {
                slot: 2,
                restarts: 5,
            },
            Error::InvalidSize { requested: 0 },
            Error::AlreadyReplied,
            Error::WorkerGone,
            Error::NotRetried {
                what: "stream",
                cause: Box::new(Error::Killed),
            },
            Error::Descriptor {
                what: "socket",
                reason: "EMFILE".into(),
            },
            Error::NotHandled {
                name: "count_primes".into(),
            },
            Error::CodecMismatch {
                pool: Codec::Json,
                payload: Codec::Postcard,
            },
            Error::Autoscaling { min: 1, max: 4 },
            Error::ReloadInProgress,
            Error::ReloadFailed {
                slot: 0,
                cause: crate::StartFailure::Spawn {
                    reason: "No such file or directory".into(),
                },
            },
            Error::NoFdPassing {
                what: "socket",
                transport: crate::Transport::Stdio,
            },
        ]
    }

    fn snake_case(name: &str) -> String {
        let mut out = String::new();
        for (i, c) in name.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn kind_covers_every_variant_with_its_own_snake_case_name() {
        let errors = one_of_each();
        let variants: HashSet<_> = errors.iter().map(variant_name).collect();
        assert_eq!(variants.len(), errors.len(), "one example per variant");
        assert_eq!(errors.len(), 25, "every variant has an example");
        let kinds: HashSet<ErrorKind> = errors.iter().map(Error::kind).collect();
        assert_eq!(kinds.len(), errors.len(), "one kind per variant");
        assert_eq!(
            kinds,
            ErrorKind::ALL.into_iter().collect(),
            "ALL has every kind"
        );
        for (i, kind) in ErrorKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i, "ALL is in declaration order");
        }
        for e in &errors {
            let kind = e.kind();
            assert_eq!(kind.as_str(), snake_case(variant_name(e)), "{e:?}");
            assert_eq!(kind.to_string(), kind.as_str());
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
            assert_eq!(format!("{kind:?}"), variant_name(e));
        }
    }

    #[test]
    fn not_retried_has_its_own_kind_and_its_cause_keeps_its_own() {
        let e = Error::NotRetried {
            what: "file",
            cause: Box::new(Error::Timeout {
                id: uuid::Uuid::from_u128(7),
                after: Duration::from_millis(5),
                attempts: 1,
            }),
        };
        assert_eq!(e.kind(), ErrorKind::NotRetried);
        assert_eq!(e.request_id(), Some(uuid::Uuid::from_u128(7)));
        assert_eq!(Error::QueueFull { capacity: 1 }.request_id(), None);
        let Error::NotRetried { cause, .. } = &e else {
            unreachable!()
        };
        assert_eq!(cause.kind(), ErrorKind::Timeout);
    }

    #[test]
    fn an_error_serializes_as_its_kind_and_message() {
        let e = Error::QueueFull { capacity: 8 };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({
                "kind": "queue_full",
                "message": "request queue is full (8 waiting); retry later, add workers, \
                            or raise `Config::queue_capacity`",
            })
        );
        for e in one_of_each() {
            assert_eq!(
                serde_json::to_value(&e).unwrap(),
                serde_json::json!({"kind": e.kind().as_str(), "message": e.to_string()})
            );
        }
    }
}
