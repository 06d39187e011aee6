//! A request from the supervisor, and the guarantee that it is answered
//! exactly once, or not at all once the supervisor cancelled it.
//!
//! Each request has one shared state with four flags, set atomically so every
//! party sees what happened before it:
//!
//! * `ANSWERED`: the request is settled: an answer was queued, or the
//!   supervisor cancelled it. Whoever sets it first settles the request;
//!   nobody else answers.
//! * `CANCELLED`: set together with `ANSWERED`, and only if `ANSWERED` was not
//!   set yet, when the supervisor's `Cancel` settled the request: nothing is
//!   ever sent for it.
//! * `DROPPED`: the [`Request`] value is gone.
//! * `HANDLER_DONE`: the handler's future returned `Ok`.
//!
//! A handler error or panic answers `Failed` with its own message. A request
//! dropped unanswered is answered by whichever of the two comes last: the
//! request's `Drop` (when the handler returned earlier and the request lived on
//! in another task) or the task that ran the handler (when the handler dropped
//! the request, so the handler's outcome decides the message). Each of these
//! paths first tries to set `ANSWERED`, so after a cancel none sends anything.
//!
//! Setting `ANSWERED` and leaving the in-flight registry are one step under
//! the registry's lock ([`InFlight::settle`]): after a `Cancel` the same id can
//! be received again as a new attempt, with its own state, and the old
//! attempt's handler can no longer touch it.
//!
//! [`InFlight::settle`]: super::in_flight::InFlight::settle

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures::FutureExt;
use lpm_protocol::{FdKind, RequestFrame, Timestamp, ToSupervisor, TraceParent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::AsyncRead;
use tokio::sync::Notify;
use tracing::Instrument;
use uuid::Uuid;

use super::fds::{pump_response, Attached, RequestStream, Socket};
use super::in_band::InBandReader;
use super::worker::Shared;
use crate::error::{decode_payload, display_chain, encode_payload};
use crate::{BoxError, WorkerError};

const ANSWERED: u8 = 1;
const DROPPED: u8 = 2;
const HANDLER_DONE: u8 = 4;
const CANCELLED: u8 = 8;

/// State shared by a [`Request`], its serving task and [`RequestInfo`] snapshots.
pub(crate) struct RequestState {
    id: Uuid,
    created_at: Timestamp,
    payload: Vec<u8>,
    /// The supervisor's trace context, when it traces the request.
    trace: Option<TraceParent>,
    flags: AtomicU8,
    /// Wakes [`Request::cancelled`] futures when `CANCELLED` is set.
    on_cancel: Notify,
    /// The byte stream a typed call's handler answers with
    /// ([`CallContext::stream_reply`](super::CallContext::stream_reply)).
    stream_reply: Mutex<Option<Reader>>,
    shared: Arc<Shared>,
}

/// A byte stream to answer with.
pub(crate) type Reader = Box<dyn AsyncRead + Send + Unpin + 'static>;

impl fmt::Debug for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestState")
            .field("id", &self.id)
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

/// How a request is answered.
enum Answer {
    Response(Vec<u8>),
    Ack,
    Failed(String),
    NotHandled,
}

impl RequestState {
    pub(crate) fn id(&self) -> Uuid {
        self.id
    }

    pub(crate) fn created_at_raw(&self) -> Timestamp {
        self.created_at
    }

    pub(crate) fn trace_parent(&self) -> Option<TraceParent> {
        self.trace
    }

    /// Sets `ANSWERED` (plus `extra`) and takes the request out of the
    /// registry, unless it was settled already; then `Err` holds the flags
    /// that were set.
    fn settle(&self, extra: u8) -> Result<(), u8> {
        self.shared.in_flight.settle(self, || {
            self.flags
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |flags| {
                    (flags & ANSWERED == 0).then_some(flags | ANSWERED | extra)
                })
                .map(drop)
        })
    }

    /// Sets (or replaces) the byte stream to answer with.
    pub(crate) fn set_stream_reply(&self, reader: Reader) {
        *self.stream_reply.lock().unwrap_or_else(|e| e.into_inner()) = Some(reader);
    }

    /// Takes the byte stream to answer with, if the handler set one.
    pub(crate) fn take_stream_reply(&self) -> Option<Reader> {
        self.stream_reply
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Whether the supervisor cancelled the request.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.flags.load(Ordering::Acquire) & CANCELLED != 0
    }

    /// Resolves once the supervisor cancelled the request. It owns the
    /// state, so the future borrows nothing.
    pub(crate) async fn cancelled(self: Arc<Self>) {
        loop {
            let notified = self.on_cancel.notified();
            tokio::pin!(notified);
            // Register before checking, so a cancel in between is not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Settles the request for an answer: `Ok(true)` to send it, `Ok(false)`
    /// when the supervisor cancelled it (nothing is sent), or
    /// `AlreadyAnswered`.
    fn claim_answer(&self) -> Result<bool, WorkerError> {
        match self.settle(0) {
            Ok(()) => Ok(true),
            Err(before) if before & CANCELLED != 0 => {
                tracing::debug!(request = %self.id, "request cancelled by the supervisor; answer not sent");
                Ok(false)
            }
            Err(_) => Err(WorkerError::AlreadyAnswered { id: self.id }),
        }
    }

    /// Queues the answer, unless the request was answered already; sends
    /// nothing and returns `Ok` when it was cancelled.
    fn answer(&self, answer: Answer) -> Result<(), WorkerError> {
        if !self.claim_answer()? {
            return Ok(());
        }
        let id = self.id;
        let msg = match answer {
            Answer::Response(payload) => ToSupervisor::Response { id, payload },
            Answer::Ack => ToSupervisor::Ack { id },
            Answer::Failed(message) => ToSupervisor::Failed { id, message },
            Answer::NotHandled => ToSupervisor::NotHandled { id },
        };
        let outbox = &self.shared.outbox;
        // `settle` took it out of the snapshot before the answer can reach the
        // supervisor; it counts as answered only once the answer is queued, so
        // a soft kill never overtakes it.
        let queued = match outbox.push(&msg) {
            Err(e @ WorkerError::PayloadTooLarge { .. }) => {
                let message = format!("the worker could not send its response: {e}");
                // The caller still gets an answer; the handler gets the error.
                let _ = outbox.push(&ToSupervisor::Failed { id, message });
                Err(e)
            }
            other => other,
        };
        self.shared.in_flight.answered();
        queued
    }

    /// Answers `Failed` unless answered or cancelled already; logs what could not be sent.
    fn fail(&self, message: String) {
        match self.answer(Answer::Failed(message)) {
            Ok(()) | Err(WorkerError::AlreadyAnswered { .. }) => {}
            Err(e) => tracing::debug!(request = %self.id, error = %e, "could not send a failure"),
        }
    }

    fn data<T: DeserializeOwned>(&self) -> Result<T, WorkerError> {
        decode_payload(self.shared.codec, &self.payload)
    }
}

/// A request to serve, handed to the handler registered with
/// [`Worker::on_request`](super::Worker::on_request).
///
/// Answer it once with [`Request::respond`] or [`Request::ack`]. It is
/// `Send`: a handler may move it to another task and answer it later.
///
/// If no answer is given, the runtime answers for you, exactly once:
///
/// * the handler returns `Err(e)`: `Failed` with `e` and its sources, joined by `: `;
/// * the handler panics: `Failed("handler panicked: <message>")`;
/// * the handler returns `Ok` after dropping the request:
///   `Failed("handler finished without answering request <id>")`;
/// * the handler returns `Ok` while the request lives on elsewhere: nothing yet;
///   if it is later dropped unanswered, `Failed("request <id> was dropped without an answer")`.
///
/// # Cancellation
///
/// When a request times out, the supervisor sends `Cancel` for it and may
/// retry it, on another worker or on this one, with the same [`id`](Request::id).
/// From then on the worker sends nothing for this request, whatever its
/// handler does: [`respond`](Request::respond) and [`ack`](Request::ack)
/// return without sending, and an error, a panic or a drop answers nothing.
/// The request leaves [`Worker::requests`](super::Worker::requests), no
/// longer holds up a soft kill, and a retry with the same id is served as a
/// new request.
///
/// The handler itself keeps running: the runtime does not abort it, because
/// stopping user code at an arbitrary `.await` can leave its own state
/// half-updated (a lock released mid-transaction, a file half-written, a
/// counter bumped without its pair). A handler that can stop early does so
/// itself, at a point of its choosing, with [`is_cancelled`](Request::is_cancelled)
/// or by racing its work against [`cancelled`](Request::cancelled). Only a
/// request cancelled before its handler started is not handed to the handler.
///
/// ```no_run
/// # use lpm::worker::{Request, Worker};
/// # async fn slow_computation(n: u64) -> u64 { n }
/// # fn register(worker: &Worker) {
/// worker.on_request(|req: Request| async move {
///     let n: u64 = req.data()?;
///     tokio::select! {
///         // The supervisor gave up: stop here, nothing would be sent anyway.
///         () = req.cancelled() => Ok(()),
///         result = slow_computation(n) => Ok(req.respond(&result)?),
///     }
/// });
/// # }
/// ```
pub struct Request {
    state: Arc<RequestState>,
    carried: Carried,
}

/// The descriptor or in-band stream a request carried, until its handler
/// takes it; an untaken connection is reported closed when this drops.
pub(crate) struct Carried {
    state: Arc<RequestState>,
    attached: Option<Attached>,
    in_band: Option<InBandReader>,
}

impl Carried {
    pub(crate) fn state(&self) -> &Arc<RequestState> {
        &self.state
    }

    pub(crate) fn has_stream(&self) -> bool {
        self.in_band.is_some() || matches!(self.attached, Some((FdKind::Pipe | FdKind::File, _)))
    }

    pub(crate) fn has_socket(&self) -> bool {
        matches!(
            self.attached,
            Some((FdKind::TcpStream | FdKind::UnixStream, _))
        )
    }

    pub(crate) fn stream(&mut self) -> Result<Option<RequestStream>, WorkerError> {
        if let Some(reader) = self.in_band.take() {
            return Ok(Some(RequestStream::in_band(reader)));
        }
        if !self.has_stream() {
            return Ok(None);
        }
        let Some((kind, fd)) = self.attached.take() else {
            return Ok(None);
        };
        RequestStream::new(kind, fd).map(Some)
    }

    pub(crate) fn socket(&mut self) -> Result<Option<Socket>, WorkerError> {
        if !self.has_socket() {
            return Ok(None);
        }
        let Some((kind, fd)) = self.attached.take() else {
            return Ok(None);
        };
        Socket::new(kind, fd, self.state.id, &self.state.shared).map(Some)
    }
}

impl Drop for Carried {
    fn drop(&mut self) {
        if let Some((FdKind::TcpStream | FdKind::UnixStream, _)) = &self.attached {
            // A connection the handler never took closes here: tell the supervisor.
            let id = self.state.id;
            let _ = self
                .state
                .shared
                .outbox
                .push(&ToSupervisor::SocketClosed { id });
        }
    }
}

impl Request {
    /// Registers a new request as in flight; `None` if its id is in flight already.
    pub(crate) fn receive(frame: RequestFrame, shared: &Arc<Shared>) -> Option<Request> {
        Self::receive_with(frame, None, None, shared)
    }

    /// As [`Request::receive`], for a request that carries a descriptor or
    /// an in-band stream.
    pub(crate) fn receive_with(
        frame: RequestFrame,
        attached: Option<Attached>,
        in_band: Option<InBandReader>,
        shared: &Arc<Shared>,
    ) -> Option<Request> {
        let state = Arc::new(RequestState {
            id: frame.id,
            created_at: frame.created_at,
            trace: frame.trace.as_deref().and_then(read_trace),
            payload: frame.payload,
            flags: AtomicU8::new(0),
            on_cancel: Notify::new(),
            stream_reply: Mutex::new(None),
            shared: Arc::clone(shared),
        });
        let carried = Carried {
            state: Arc::clone(&state),
            attached,
            in_band,
        };
        shared
            .in_flight
            .insert(&state)
            .then_some(Request { state, carried })
    }

    /// Whether the request carries a byte stream ([`Request::stream`]).
    pub fn has_stream(&self) -> bool {
        self.carried.has_stream()
    }

    /// Whether the request carries a connection ([`Request::socket`]).
    pub fn has_socket(&self) -> bool {
        self.carried.has_socket()
    }

    /// Takes the byte stream a typed call's handler set to answer with.
    pub(crate) fn take_stream_reply(&self) -> Option<Reader> {
        self.state.take_stream_reply()
    }

    /// Takes the descriptor out, for a [`CallContext`](super::CallContext).
    pub(crate) fn take_carried(&mut self) -> Carried {
        Carried {
            state: Arc::clone(&self.state),
            attached: self.carried.attached.take(),
            in_band: self.carried.in_band.take(),
        }
    }

    /// Takes the byte stream the caller sent with the request
    /// ([`Enqueue::stream`] or [`Enqueue::file`]); `Ok(None)` if it has none
    /// or it was taken already. It ends when the caller's reader ended.
    ///
    /// # Errors
    ///
    /// [`WorkerError::Descriptor`] when it cannot be made a tokio reader.
    ///
    #[doc = pool_links!("Enqueue::stream", "Enqueue::file")]
    pub fn stream(&mut self) -> Result<Option<RequestStream>, WorkerError> {
        self.carried.stream()
    }

    /// Takes the connection the supervisor handed over with the request
    /// ([`Enqueue::tcp`], [`Enqueue::unix`]); `Ok(None)` if it has none or it
    /// was taken already.
    ///
    /// The connection is this worker's: [`ack`](Request::ack) the request and
    /// keep serving it in a task of your own. Dropping the [`Socket`] closes
    /// it and tells the supervisor.
    ///
    /// # Errors
    ///
    /// [`WorkerError::Descriptor`] when it cannot be made a tokio stream.
    ///
    /// # Examples
    ///
    /// An echo server for the connections the supervisor hands over:
    ///
    /// ```no_run
    /// use lpm::worker::{Request, Worker};
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// # fn demo(worker: Worker) {
    /// worker.on_request(|mut req: Request| async move {
    ///     let mut socket = req.socket()?.ok_or("a request without a connection")?;
    ///     req.ack();
    ///     tokio::spawn(async move {
    ///         let mut buf = [0u8; 4096];
    ///         while let Ok(n) = socket.read(&mut buf).await {
    ///             if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
    ///                 break;
    ///             }
    ///         }
    ///     });
    ///     Ok(())
    /// });
    /// # }
    /// ```
    ///
    #[doc = pool_links!("Enqueue::tcp", "Enqueue::unix")]
    pub fn socket(&mut self) -> Result<Option<Socket>, WorkerError> {
        self.carried.socket()
    }

    /// Answers the request with `payload` and a byte stream: everything
    /// `reader` yields until its end reaches the caller's
    /// [`Response::take_stream`].
    ///
    /// The stream is written by a task of its own, at the pace the caller
    /// reads it: through a pipe over the socketpair, in-band over stdio (no
    /// more than 256 KiB ahead of the caller). The request counts as in
    /// flight (and holds up a soft kill) until the stream ends; if `reader`
    /// fails, the caller's stream fails too rather than ending short. When
    /// the caller drops an in-band stream early, the supervisor cancels the
    /// request and the task stops.
    ///
    /// # Errors
    ///
    /// As [`Request::respond`], and [`WorkerError::Descriptor`] when no pipe can
    /// be made (the caller is then answered `Failed`).
    ///
    /// # Examples
    ///
    /// Sends the caller's stream back as it arrives, with its declared name:
    ///
    /// ```no_run
    /// use lpm::worker::{Request, Worker};
    ///
    /// # fn demo(worker: Worker) {
    /// worker.on_request(|mut req: Request| async move {
    ///     let name: String = req.data()?;
    ///     let input = req.stream()?.ok_or("a request without a stream")?;
    ///     req.respond_with_stream(&name, input)?;
    ///     Ok(())
    /// });
    /// # }
    /// ```
    ///
    #[doc = pool_links!("Response::take_stream")]
    pub fn respond_with_stream<T, R>(self, payload: &T, reader: R) -> Result<(), WorkerError>
    where
        T: Serialize + ?Sized,
        R: AsyncRead + Send + Unpin + 'static,
    {
        if self.state.is_cancelled() {
            tracing::debug!(request = %self.state.id, "request cancelled by the supervisor; response not sent");
            return Ok(());
        }
        let bytes = match encode_payload(self.state.shared.codec, payload) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.state
                    .fail(format!("the worker could not encode its response: {e}"));
                return Err(e);
            }
        };
        if !self.state.shared.takes_fds {
            return self.respond_streamed(bytes, reader);
        }
        let pipe = lpm_protocol::pipe().and_then(|(r, w)| {
            let w = tokio::net::unix::pipe::Sender::from_owned_fd(w)?;
            Ok((r, w))
        });
        let (read_end, writer) = match pipe {
            Ok(pipe) => pipe,
            Err(e) => {
                let e = WorkerError::Descriptor {
                    what: "a pipe for the response stream",
                    source: e.into(),
                };
                self.state.fail(format!(
                    "the worker could not open its response stream: {e}"
                ));
                return Err(e);
            }
        };
        let state = &self.state;
        if !state.claim_answer()? {
            return Ok(());
        }
        let id = state.id;
        let msg = ToSupervisor::ResponseWithStream {
            id,
            payload: bytes,
            fd: lpm_protocol::Fd::new(read_end),
        };
        match state.shared.outbox.push_with_fd(msg) {
            Ok(()) => {
                // Counted as answered by the pump, once the stream ended.
                tokio::spawn(pump_response(id, reader, writer, Arc::clone(&state.shared)));
                Ok(())
            }
            Err(e) => {
                if matches!(e, WorkerError::PayloadTooLarge { .. }) {
                    let message = format!("the worker could not send its response: {e}");
                    let _ = state
                        .shared
                        .outbox
                        .push(&ToSupervisor::Failed { id, message });
                }
                state.shared.in_flight.answered();
                Err(e)
            }
        }
    }

    /// Answers with `payload` and `reader` as an in-band stream (the channel
    /// takes no descriptors).
    fn respond_streamed<R>(self, payload: Vec<u8>, reader: R) -> Result<(), WorkerError>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let state = &self.state;
        if !state.claim_answer()? {
            return Ok(());
        }
        let id = state.id;
        let shared = &state.shared;
        // Open before the answer goes out, so no credit for it is missed.
        let credit = shared.response_credits.open(id);
        match shared
            .outbox
            .push(&ToSupervisor::ResponseStreamed { id, payload })
        {
            Ok(()) => {
                // Counted as answered by the pump, once the stream ended.
                let pump = super::in_band::pump_response(id, reader, credit, Arc::clone(shared));
                tokio::spawn(pump);
                Ok(())
            }
            Err(e) => {
                shared.response_credits.stop(&id);
                if matches!(e, WorkerError::PayloadTooLarge { .. }) {
                    let message = format!("the worker could not send its response: {e}");
                    let _ = shared.outbox.push(&ToSupervisor::Failed { id, message });
                }
                shared.in_flight.answered();
                Err(e)
            }
        }
    }

    /// The request's id, as the caller's `Response` will carry it.
    pub fn id(&self) -> Uuid {
        self.state.id
    }

    /// When the caller enqueued the request (the supervisor's clock).
    pub fn created_at(&self) -> SystemTime {
        self.state.created_at.to_system_time()
    }

    /// The trace the request belongs to, with the supervisor's span as the
    /// parent, when the supervisor traces it (see [tracing](crate#tracing)).
    /// The handler runs in a span that records it already; this is for
    /// handing it on, to an OpenTelemetry context or an outgoing call.
    pub fn trace_parent(&self) -> Option<TraceParent> {
        self.state.trace
    }

    /// Decodes the payload as the caller's type.
    ///
    /// # Errors
    ///
    /// [`WorkerError::Decode`] when the payload is not an encoding of `T` in the pool's codec.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, WorkerError> {
        self.state.data()
    }

    /// The payload as it arrived: the caller's value in the pool's codec.
    pub fn bytes(&self) -> &[u8] {
        &self.state.payload
    }

    /// Whether the supervisor cancelled the request (see [Cancellation](Request#cancellation)):
    /// nothing is sent for it any more, so its handler may stop.
    pub fn is_cancelled(&self) -> bool {
        self.state.is_cancelled()
    }

    /// Resolves once the supervisor cancels the request (see
    /// [Cancellation](Request#cancellation)); at once if it is cancelled already.
    ///
    /// It never resolves for a request that is answered instead, so race it
    /// against the work (with `tokio::select!`) rather than awaiting it alone.
    /// The future borrows nothing: it can be moved into another task, and
    /// the request can still be answered while it is pending.
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        Arc::clone(&self.state).cancelled()
    }

    /// Answers the request with `payload`.
    ///
    /// On a request the supervisor cancelled (see [Cancellation](Request#cancellation))
    /// it sends nothing and returns `Ok(())`: the handler did nothing wrong,
    /// and nobody waits for the answer any more. That is logged at debug level.
    ///
    /// # Errors
    ///
    /// * [`WorkerError::Encode`] or [`WorkerError::PayloadTooLarge`]: the payload cannot
    ///   be sent; the caller is answered `Failed` with this error instead.
    /// * [`WorkerError::AlreadyAnswered`]: the handler failed while this request
    ///   lived on in another task, and the failure was the answer.
    /// * [`WorkerError::ChannelClosed`]: the worker stopped running.
    pub fn respond<T: Serialize + ?Sized>(self, payload: &T) -> Result<(), WorkerError> {
        if self.state.is_cancelled() {
            // Spares encoding an answer nobody waits for; `answer` checks again.
            tracing::debug!(request = %self.state.id, "request cancelled by the supervisor; response not sent");
            return Ok(());
        }
        match encode_payload(self.state.shared.codec, payload) {
            Ok(bytes) => self.state.answer(Answer::Response(bytes)),
            Err(e) => {
                let answered = self.state.answer(Answer::Failed(format!(
                    "the worker could not encode its response: {e}"
                )));
                Err(match answered {
                    Err(already @ WorkerError::AlreadyAnswered { .. }) => already,
                    _ => e,
                })
            }
        }
    }

    /// Answers the request with bytes already encoded in the pool's codec
    /// (a proxy passing answers through, say); as [`Request::respond`].
    ///
    /// # Errors
    ///
    /// As [`Request::respond`], but for encoding.
    pub fn respond_bytes(self, payload: Vec<u8>) -> Result<(), WorkerError> {
        self.state.answer(Answer::Response(payload))
    }

    /// Marks the request as done without a payload (the supervisor sees an `Ack`).
    ///
    /// Nothing is sent if the request was already answered (see
    /// [`WorkerError::AlreadyAnswered`]), the supervisor cancelled it, or the worker
    /// stopped running; that is logged at debug level.
    pub fn ack(self) {
        if let Err(e) = self.state.answer(Answer::Ack) {
            tracing::debug!(request = %self.state.id, error = %e, "ack not sent");
        }
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        let before = self.state.flags.fetch_or(DROPPED, Ordering::AcqRel);
        // Unanswered, and the handler already returned `Ok` without it: answer here.
        // While the handler runs, its task answers instead, with its outcome.
        if before & (ANSWERED | HANDLER_DONE) == HANDLER_DONE {
            let id = self.state.id;
            self.state
                .fail(format!("request {id} was dropped without an answer"));
        }
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.state.id)
            .field("created_at", &self.created_at())
            .field("payload_len", &self.state.payload.len())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// A snapshot of a request in flight, from [`Worker::requests`](super::Worker::requests).
///
/// It only reads the request; answering stays with the [`Request`] itself.
#[derive(Clone)]
pub struct RequestInfo {
    state: Arc<RequestState>,
}

impl RequestInfo {
    pub(crate) fn new(state: Arc<RequestState>) -> Self {
        Self { state }
    }

    /// The request's id.
    pub fn id(&self) -> Uuid {
        self.state.id
    }

    /// When the caller enqueued the request (the supervisor's clock).
    pub fn created_at(&self) -> SystemTime {
        self.state.created_at.to_system_time()
    }

    /// Decodes the payload as the caller's type.
    ///
    /// # Errors
    ///
    /// [`WorkerError::Decode`] when the payload is not an encoding of `T` in the pool's codec.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, WorkerError> {
        self.state.data()
    }

    /// The payload as it arrived.
    pub fn bytes(&self) -> &[u8] {
        &self.state.payload
    }

    /// Whether the supervisor cancelled the request since the snapshot was
    /// taken; see [`Request::is_cancelled`].
    pub fn is_cancelled(&self) -> bool {
        self.state.is_cancelled()
    }

    /// Resolves once the supervisor cancels the request; see [`Request::cancelled`].
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        Arc::clone(&self.state).cancelled()
    }
}

impl fmt::Debug for RequestInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestInfo")
            .field("id", &self.state.id)
            .field("created_at", &self.created_at())
            .field("payload_len", &self.state.payload.len())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// Answers a request whose id is already in flight on this worker.
pub(crate) fn reject_duplicate(shared: &Shared, id: Uuid) {
    tracing::warn!(request = %id, "request id already in flight; rejected");
    let message =
        format!("request {id} is already in flight on this worker; the supervisor sent it twice");
    let _ = shared.outbox.push(&ToSupervisor::Failed { id, message });
}

/// Handles the supervisor's `Cancel`: settles the request so nothing is ever
/// sent for it, counts it as answered, and wakes its [`Request::cancelled`]
/// futures. The handler is left running (see [`Request`], "Cancellation").
pub(crate) fn cancel(shared: &Shared, id: Uuid) {
    let Some(state) = shared.in_flight.get(&id) else {
        tracing::debug!(request = %id, "cancel for a request not in flight (unknown or answered already); ignored");
        return;
    };
    if state.settle(CANCELLED).is_err() {
        // Its handler settled it between the lookup and now: the answer is
        // on its way, and the supervisor drops it.
        tracing::debug!(request = %id, "cancel for a request answered meanwhile; ignored");
        return;
    }
    shared.in_flight.answered();
    state.on_cancel.notify_waiters();
    tracing::debug!(request = %id, "request cancelled by the supervisor");
}

/// Answers a request for a call this worker did not announce: the
/// supervisor fails it with `PoolError::NotHandled`.
pub(crate) fn reject_not_handled(request: Request, call: u32) {
    tracing::warn!(request = %request.id(), call, "request for a call this worker does not serve");
    if let Err(e) = request.state.answer(Answer::NotHandled) {
        tracing::debug!(request = %request.id(), error = %e, "NotHandled not sent");
    }
}

/// Answers a request that arrived before any handler was registered.
pub(crate) fn reject_unhandled(request: Request) {
    tracing::warn!(request = %request.id(), "no request handler registered; request failed");
    request.state.fail(
        "the worker has no request handler; call `Worker::on_request` before `Worker::run`"
            .to_owned(),
    );
}

/// A trace context as the frame carries it; one that does not parse is
/// logged and ignored, since the request can be served without it.
fn read_trace(value: &str) -> Option<TraceParent> {
    value
        .parse()
        .map_err(|e| tracing::debug!(error = %e, "request trace context ignored"))
        .ok()
}

/// Runs `handler` on `request` (for the call named `call`, `None` for the
/// untyped handler) in the request's span, and makes sure the request is
/// answered once.
pub(crate) async fn serve<F, Fut>(request: Request, call: Option<&'static str>, handler: F)
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    let span = tracing::info_span!(
        target: "lpm::worker",
        "request",
        id = %request.state.id,
        call = %call.unwrap_or_default(),
        trace_id = tracing::field::Empty,
        parent_id = tracing::field::Empty,
    );
    if let Some(trace) = request.state.trace.filter(|_| !span.is_disabled()) {
        span.record(
            "trace_id",
            tracing::field::display(format_args!("{:032x}", trace.trace_id())),
        );
        span.record(
            "parent_id",
            tracing::field::display(format_args!("{:016x}", trace.parent_id())),
        );
    }
    serve_in_span(request, handler).instrument(span).await;
}

async fn serve_in_span<F, Fut>(request: Request, handler: F)
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    let state = Arc::clone(&request.state);
    let id = state.id;
    if state.is_cancelled() {
        // Dropping the request sends nothing: it is settled already.
        tracing::debug!(request = %id, "request cancelled before its handler started; not served");
        return;
    }
    // The handler is called inside the guarded future, so a panic while
    // creating its future is caught too. The future is dropped at the end of
    // this statement, before the flags are read below.
    let outcome = AssertUnwindSafe(async move { handler(request).await })
        .catch_unwind()
        .await;
    match outcome {
        Ok(Ok(())) => {
            let before = state.flags.fetch_or(HANDLER_DONE, Ordering::AcqRel);
            if before & (ANSWERED | DROPPED) == DROPPED {
                state.fail(format!("handler finished without answering request {id}"));
            }
        }
        Ok(Err(error)) => {
            let message = display_chain(error.as_ref());
            tracing::debug!(request = %id, error = %message, "request handler returned an error");
            // After a cancel an error is a normal way to stop early.
            if state.flags.load(Ordering::Acquire) & (ANSWERED | CANCELLED) == ANSWERED {
                tracing::warn!(request = %id, error = %message, "request handler returned an error after answering");
            }
            state.fail(message);
        }
        Err(panic) => {
            let message = format!("handler panicked: {}", panic_message(panic.as_ref()));
            tracing::warn!(request = %id, "{message}");
            state.fail(message);
        }
    }
}

/// The text of a panic payload (`panic!` gives `&str` or `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<panic payload is not a string>".to_owned()
    }
}
