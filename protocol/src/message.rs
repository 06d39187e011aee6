//! The messages exchanged between the supervisor and a worker.
//!
//! Payloads travel as opaque bytes (the user's own type in the pool's
//! [`Codec`]) so that the supervisor routes requests without knowing user types.

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

use crate::fd::{CarriesFd, Fd, FdKind};
use crate::Codec;

/// Identifier of one request: a random UUID v4, stable across retries.
pub type RequestId = Uuid;

/// Nanoseconds since the Unix epoch, as carried on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// This timestamp as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let nanos = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        Timestamp(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// A request as the worker receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    /// The request's id.
    pub id: RequestId,
    /// When the caller enqueued it.
    pub created_at: Timestamp,
    /// Which call it is: `0` for an untyped request, else `n` for the
    /// `n`-th name (from 1) of the worker's [`ToSupervisor::Hello::calls`].
    pub call: u32,
    /// The caller's payload, in the pool's codec.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// The caller's trace context in W3C `traceparent` form
    /// (`00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`), when
    /// the supervisor traces requests; the worker's handler span is its child.
    pub trace: Option<String>,
}

/// Messages the supervisor sends to a worker.
///
/// The discriminant on the wire is the variant's position (a postcard varint),
/// so new variants are only ever appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// 0: first message on the channel: the supervisor's protocol version,
    /// the worker's slot and the pool's payload codec.
    Hello {
        /// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) of the supervisor.
        version: u16,
        /// The pool slot this worker fills.
        slot: u32,
        /// How the pool encodes payloads; the worker must use the same.
        codec: Codec,
    },
    /// 1: a request to serve.
    Request(RequestFrame),
    /// 2: a named event broadcast by the supervisor.
    Event {
        /// Event name.
        name: String,
        /// The payload, in the pool's codec.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// 3: the answer to an [`ToSupervisor::Emit`] that asked for one.
    EmitReply {
        /// The `reply_to` of the emit.
        emit_id: u64,
        /// The reply payload, or why there is none.
        outcome: Result<serde_bytes::ByteBuf, String>,
    },
    /// 4: finish the requests in flight, run the soft-kill hook, answer
    /// [`ToSupervisor::SoftKillDone`] and exit.
    SoftKill,
    /// 5: exit now; the supervisor sends SIGKILL right after this.
    HardKill,
    /// 6: the supervisor gave up on this request (it timed out): do not answer it.
    /// The same id may arrive again later as a new attempt.
    Cancel {
        /// Which request.
        id: RequestId,
    },
    /// 7: a heartbeat: answer [`ToSupervisor::Pong`] with the same `seq`.
    Ping {
        /// Echoed in the `Pong`.
        seq: u64,
    },
    /// 8: a request that carries one descriptor (`SCM_RIGHTS`): a byte
    /// stream to read (a pipe or a file) or a connection to serve.
    RequestWithFd {
        /// The request, as in [`ToWorker::Request`].
        request: RequestFrame,
        /// What the descriptor is.
        kind: FdKind,
        /// The descriptor (not in the body bytes).
        #[serde(skip)]
        fd: Fd,
    },
    /// 9: a named event that carries one descriptor, a listening socket to
    /// accept connections on (shared by every worker).
    EventWithFd {
        /// Event name.
        name: String,
        /// The payload, in the pool's codec.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
        /// What the descriptor is.
        kind: FdKind,
        /// The descriptor (not in the body bytes).
        #[serde(skip)]
        fd: Fd,
    },
    /// 10: a request whose byte stream follows in-band, as
    /// [`ToWorker::StreamData`] frames ended by one [`ToWorker::StreamEnd`],
    /// for workers that take no descriptors. Answered like `Request`.
    RequestStreamed(RequestFrame),
    /// 11: the next bytes of the stream of request `id` (at most
    /// [`STREAM_CHUNK`](crate::STREAM_CHUNK), within the worker's credit).
    StreamData {
        /// Which request.
        id: RequestId,
        /// The bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// 12: the stream of request `id` is over: `Ok(bytes sent)`, or
    /// `Err(why)` when the caller's reader failed.
    StreamEnd {
        /// Which request.
        id: RequestId,
        /// Bytes sent, or why the stream stopped early.
        outcome: Result<u64, String>,
    },
    /// 13: the worker may send `bytes` more bytes of request `id`'s
    /// response stream (see [`ToSupervisor::ResponseStreamed`]).
    StreamCredit {
        /// Which request.
        id: RequestId,
        /// Bytes granted, on top of what was granted before.
        bytes: u64,
    },
    /// 14: the supervisor cannot sample this worker's process (it runs
    /// elsewhere): answer [`ToSupervisor::Usage`].
    ReportUsage,
}

/// Messages a worker sends to the supervisor.
///
/// The discriminant on the wire is the variant's position (a postcard varint),
/// so new variants are only ever appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToSupervisor {
    /// 0: first message on the channel: the worker's protocol version and
    /// pid, its payload codec and the calls it serves.
    Hello {
        /// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) of the worker.
        version: u16,
        /// The worker's process id.
        pid: u32,
        /// How the worker encodes payloads; the pool must use the same.
        codec: Codec,
        /// The names of the calls it has handlers for ([`Call::NAME`](crate::Call::NAME)).
        /// A request for the `n`-th (from 1) carries `call: n`.
        calls: Vec<String>,
        /// Whether it receives descriptors (`SCM_RIGHTS`) on this channel:
        /// `false` over stdio, or for a worker that cannot. Streams to such a
        /// worker go in-band and sockets are not handed to it.
        takes_fds: bool,
    },
    /// 1: the worker takes requests (again).
    Ready,
    /// 2: the worker takes no new requests until it sends `Ready`.
    Busy,
    /// 3: the answer to a request.
    Response {
        /// Which request.
        id: RequestId,
        /// The answer, in the pool's codec.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// 4: the handler failed; the request is answered with this error.
    Failed {
        /// Which request.
        id: RequestId,
        /// What went wrong, for the caller.
        message: String,
    },
    /// 5: the request is complete without an answer payload.
    Ack {
        /// Which request.
        id: RequestId,
    },
    /// 6: a custom event for the supervisor's subscribers.
    Emit {
        /// Event name.
        name: String,
        /// The payload, in the pool's codec.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
        /// Set when the worker awaits a reply: the id to answer with [`ToWorker::EmitReply`].
        reply_to: Option<u64>,
    },
    /// 7: the soft kill is complete; the worker exits next.
    SoftKillDone,
    /// 8: self-reported statistics (heap sizes, cache hits ...), shown in health.
    Stats(Vec<(String, f64)>),
    /// 9: the answer to [`ToWorker::Ping`].
    Pong {
        /// The `seq` of the ping.
        seq: u64,
    },
    /// 10: the answer to a request, with a byte stream: the descriptor is
    /// the read end of a pipe the worker writes the stream into. A
    /// [`ToSupervisor::StreamEnd`] with the same id follows.
    ResponseWithStream {
        /// Which request.
        id: RequestId,
        /// The answer, in the pool's codec.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
        /// The pipe's read end (not in the body bytes).
        #[serde(skip)]
        fd: Fd,
    },
    /// 11: the stream of a [`ToSupervisor::ResponseWithStream`] is over:
    /// `Ok(bytes written)` once its pipe is closed after the last byte, or
    /// `Err(why)` when the worker could not write all of it.
    StreamEnd {
        /// Which request.
        id: RequestId,
        /// Bytes written, or why the stream stopped early.
        outcome: Result<u64, String>,
    },
    /// 12: the worker closed the connection it was handed with request `id`.
    SocketClosed {
        /// The request that carried the socket.
        id: RequestId,
    },
    /// 13: the worker has no handler for request `id`'s call (or, for an
    /// untyped request, no untyped handler).
    NotHandled {
        /// Which request.
        id: RequestId,
    },
    /// 14: the answer to a request, with a byte stream that follows in-band
    /// as [`ToSupervisor::StreamData`] frames (within the credit the
    /// supervisor grants), ended by a [`ToSupervisor::StreamEnd`].
    ResponseStreamed {
        /// Which request.
        id: RequestId,
        /// The answer, in the pool's codec.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// 15: the next bytes of request `id`'s response stream.
    StreamData {
        /// Which request.
        id: RequestId,
        /// The bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// 16: the supervisor may send `bytes` more bytes of request `id`'s
    /// in-band request stream (see [`ToWorker::RequestStreamed`]).
    StreamCredit {
        /// Which request.
        id: RequestId,
        /// Bytes granted, on top of what was granted before.
        bytes: u64,
    },
    /// 17: the worker's own resource usage, the answer to
    /// [`ToWorker::ReportUsage`].
    Usage {
        /// Resident set size, in bytes.
        rss_bytes: u64,
        /// CPU time used since the worker started (user and system), in nanoseconds.
        cpu_ns: u64,
    },
}

impl ToWorker {
    /// The variant's name, for logs and errors (payloads can be large).
    pub fn kind(&self) -> &'static str {
        match self {
            ToWorker::Hello { .. } => "Hello",
            ToWorker::Request(_) => "Request",
            ToWorker::Event { .. } => "Event",
            ToWorker::EmitReply { .. } => "EmitReply",
            ToWorker::SoftKill => "SoftKill",
            ToWorker::HardKill => "HardKill",
            ToWorker::Cancel { .. } => "Cancel",
            ToWorker::Ping { .. } => "Ping",
            ToWorker::RequestWithFd { .. } => "RequestWithFd",
            ToWorker::EventWithFd { .. } => "EventWithFd",
            ToWorker::RequestStreamed(_) => "RequestStreamed",
            ToWorker::StreamData { .. } => "StreamData",
            ToWorker::StreamEnd { .. } => "StreamEnd",
            ToWorker::StreamCredit { .. } => "StreamCredit",
            ToWorker::ReportUsage => "ReportUsage",
        }
    }
}

impl ToSupervisor {
    /// The variant's name, for logs and errors (payloads can be large).
    pub fn kind(&self) -> &'static str {
        match self {
            ToSupervisor::Hello { .. } => "Hello",
            ToSupervisor::Ready => "Ready",
            ToSupervisor::Busy => "Busy",
            ToSupervisor::Response { .. } => "Response",
            ToSupervisor::Failed { .. } => "Failed",
            ToSupervisor::Ack { .. } => "Ack",
            ToSupervisor::Emit { .. } => "Emit",
            ToSupervisor::SoftKillDone => "SoftKillDone",
            ToSupervisor::Stats(_) => "Stats",
            ToSupervisor::Pong { .. } => "Pong",
            ToSupervisor::ResponseWithStream { .. } => "ResponseWithStream",
            ToSupervisor::StreamEnd { .. } => "StreamEnd",
            ToSupervisor::SocketClosed { .. } => "SocketClosed",
            ToSupervisor::NotHandled { .. } => "NotHandled",
            ToSupervisor::ResponseStreamed { .. } => "ResponseStreamed",
            ToSupervisor::StreamData { .. } => "StreamData",
            ToSupervisor::StreamCredit { .. } => "StreamCredit",
            ToSupervisor::Usage { .. } => "Usage",
        }
    }
}

impl CarriesFd for ToWorker {
    fn fd_slot(&mut self) -> Option<&mut Fd> {
        match self {
            ToWorker::RequestWithFd { fd, .. } | ToWorker::EventWithFd { fd, .. } => Some(fd),
            _ => None,
        }
    }
}

impl CarriesFd for ToSupervisor {
    fn fd_slot(&mut self) -> Option<&mut Fd> {
        match self {
            ToSupervisor::ResponseWithStream { fd, .. } => Some(fd),
            _ => None,
        }
    }
}

/// Borrowed twin of [`ToWorker`] up to `Request`, so a request frame can be
/// encoded without copying its payload (it stays with the supervisor for retries).
/// Variant order must match [`ToWorker`]: postcard writes the variant index.
#[derive(Serialize)]
pub(crate) enum ToWorkerRef<'a> {
    #[allow(dead_code)] // only here to give `Request` the index 1
    Hello {
        version: u16,
        slot: u32,
        codec: Codec,
    },
    Request(RequestFrameRef<'a>),
}

#[derive(Serialize)]
pub(crate) struct RequestFrameRef<'a> {
    pub(crate) id: RequestId,
    pub(crate) created_at: Timestamp,
    pub(crate) call: u32,
    #[serde(with = "serde_bytes")]
    pub(crate) payload: &'a [u8],
    pub(crate) trace: Option<&'a str>,
}
