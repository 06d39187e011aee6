//! A request on its way through the pool: what the caller enqueues
//! ([`Enqueue`]), what the actors carry (`Pending`), and what comes back
//! ([`Response`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lpm_protocol::{Call, Codec, RequestId, Timestamp, TraceParent};
use serde::{de::DeserializeOwned, Serialize};
use std::borrow::Cow;
use tokio::sync::oneshot;

mod load;
mod trace;

pub(crate) use load::{Changed, Load, LoadGuard, SocketGuard};

use trace::{Outcome, RequestTrace};

use crate::error::{decode_payload, encode_payload};
use crate::metrics::{Mark, Recorder};
use crate::stream::{Attachment, ResponseStream, SharedStream};
use crate::{Error, ErrorKind};

/// A request to enqueue: its body (a typed [`Call`], or bytes) and the
/// options that override the pool's defaults.
///
/// `Enqueue<C>` for a [`Call`] `C` answers `C::Reply`; `Enqueue<Raw>` (what
/// [`Enqueue::new`] makes) answers the [`Response`] itself. Send it with
/// [`Pool::send`](crate::Pool::send), or as an actix message to the
/// [`Balancer`](crate::Balancer) (any actor can hold a
/// `Recipient<Enqueue<C>>`, see [`Pool::recipient`](crate::Pool::recipient)).
/// Either way a caller that stops waiting cancels the request: a queued one
/// is removed, an in-flight one frees its worker's slot and the worker's
/// `Request::cancelled()` fires. (A message sent with `do_send`, whose
/// answer nobody awaits, runs to its end.)
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lpm_actors::{Call, Enqueue};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Thumbnail { width: u32 }
/// # impl Call for Thumbnail { const NAME: &'static str = "thumbnail"; type Reply = Vec<u8>; }
///
/// let typed = Enqueue::call(Thumbnail { width: 640 })
///     .timeout(Duration::from_secs(2))
///     .retries(3);
/// let untyped = Enqueue::new(&("resize", 640u32))?.wait_for_room();
/// # Ok::<(), lpm_actors::Error>(())
/// ```
#[derive(Debug)]
pub struct Enqueue<B = Raw> {
    pub(crate) body: B,
    pub(crate) options: Options,
}

/// What every request may set, whatever its body.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// A stream or socket to pass to the worker (see [`crate::stream`]).
    pub(crate) attachment: Option<Attachment>,
    pub(crate) timeout: Option<Option<Duration>>,
    pub(crate) retries: Option<u32>,
    pub(crate) wait_for_room: bool,
    /// The caller's trace context, passed on to the worker.
    pub(crate) trace_parent: Option<TraceParent>,
}

/// The body of an untyped request: bytes already encoded, and the call they
/// are for, if any (see [`Enqueue::new`], [`Enqueue::from_bytes`]).
#[derive(Debug)]
pub struct Raw {
    call: Option<CallName>,
    /// The codec the bytes were encoded with, when known, to check it
    /// against the pool's.
    codec: Option<Codec>,
    bytes: Vec<u8>,
}

/// A call's wire name: borrowed for typed calls, owned when built at run time.
pub(crate) type CallName = Cow<'static, str>;

/// A request as the pool takes it in: encoded, with its options.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) call: Option<CallName>,
    pub(crate) payload: Vec<u8>,
    pub(crate) options: Options,
    /// Its span, once it has an id (see [`Job::open_trace`]).
    trace: Option<Box<RequestTrace>>,
}

impl Job {
    pub(crate) fn new(call: Option<CallName>, payload: Vec<u8>, options: Options) -> Self {
        Self {
            call,
            payload,
            options,
            trace: None,
        }
    }

    /// Opens the span of the request `id`, if anyone listens or the caller
    /// gave a trace context. Called where the request is taken in, so the
    /// caller's current span is its parent.
    pub(crate) fn open_trace(&mut self, id: RequestId) {
        let given = self.options.trace_parent.take();
        self.trace = RequestTrace::open(id, self.call.as_deref(), given).map(Box::new);
    }
}

mod sealed {
    pub trait Sealed {}
}

/// What an [`Enqueue`] can carry: a typed [`Call`], a call that also wants
/// the whole [`Response`] ([`WithResponse`]), or [`Raw`] bytes. Sealed.
pub trait Body: sealed::Sealed + Send + 'static {
    /// What the caller gets back.
    type Output: Send + 'static;

    /// The call's wire name and its payload in `codec`.
    #[doc(hidden)]
    fn encode(self, codec: Codec) -> Result<(Option<CallName>, Vec<u8>), Error>;

    /// Turns the worker's answer into the output.
    #[doc(hidden)]
    fn output(response: Response) -> Result<Self::Output, Error>;
}

impl<C: Call> sealed::Sealed for C {}

impl<C: Call> Body for C {
    type Output = C::Reply;

    fn encode(self, codec: Codec) -> Result<(Option<CallName>, Vec<u8>), Error> {
        Ok((Some(Cow::Borrowed(C::NAME)), encode_payload(codec, &self)?))
    }

    fn output(response: Response) -> Result<C::Reply, Error> {
        response.data()
    }
}

/// A typed call whose caller wants the whole [`Response`] too (its id, pid,
/// slot, or the byte stream the worker answered with); see
/// [`Enqueue::with_response`].
#[derive(Debug)]
pub struct WithResponse<C>(C);

impl<C: Call> sealed::Sealed for WithResponse<C> {}

impl<C: Call> Body for WithResponse<C> {
    type Output = (C::Reply, Response);

    fn encode(self, codec: Codec) -> Result<(Option<CallName>, Vec<u8>), Error> {
        self.0.encode(codec)
    }

    fn output(response: Response) -> Result<Self::Output, Error> {
        Ok((response.data()?, response))
    }
}

impl sealed::Sealed for Raw {}

impl Body for Raw {
    type Output = Response;

    fn encode(self, codec: Codec) -> Result<(Option<CallName>, Vec<u8>), Error> {
        match self.codec {
            Some(encoded) if encoded != codec => Err(Error::CodecMismatch {
                pool: codec,
                payload: encoded,
            }),
            _ => Ok((self.call, self.bytes)),
        }
    }

    fn output(response: Response) -> Result<Response, Error> {
        Ok(response)
    }
}

impl<C: Call> Enqueue<C> {
    /// A typed call: the worker's handler for `C::NAME` serves it and the
    /// caller gets a `C::Reply`. The value is encoded in the pool's codec
    /// when the pool takes it.
    pub fn call(call: C) -> Self {
        Self {
            body: call,
            options: Options::default(),
        }
    }

    /// Answers the whole [`Response`] beside the reply: its id, pid and
    /// slot, and the byte stream the worker may have answered with.
    pub fn with_response(self) -> Enqueue<WithResponse<C>> {
        Enqueue {
            body: WithResponse(self.body),
            options: self.options,
        }
    }
}

impl Enqueue<Raw> {
    /// An untyped request carrying `payload`, encoded with postcard (the
    /// default codec). In a pool with another codec use [`Enqueue::encoded`]
    /// or [`Pool::enqueue`](crate::Pool::enqueue); a mismatch fails with
    /// [`Error::CodecMismatch`] instead of reaching the worker.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when serde cannot express the value in postcard.
    pub fn new<T: Serialize + ?Sized>(payload: &T) -> Result<Self, Error> {
        Self::encoded(Codec::Postcard, payload)
    }

    /// An untyped request carrying `payload` encoded with `codec`.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when serde cannot express the value in `codec`.
    pub fn encoded<T: Serialize + ?Sized>(codec: Codec, payload: &T) -> Result<Self, Error> {
        let mut request = Self::from_bytes(encode_payload(codec, payload)?);
        request.body.codec = Some(codec);
        Ok(request)
    }

    /// An untyped request carrying bytes already encoded in the pool's codec.
    pub fn from_bytes(payload: Vec<u8>) -> Self {
        Self {
            body: Raw {
                call: None,
                codec: None,
                bytes: payload,
            },
            options: Options::default(),
        }
    }

    /// Routes these bytes to the worker's handler for the call named `name`
    /// (a gateway that forwards calls it knows only by name, say). The
    /// pool refuses a name no worker serves with [`Error::NotHandled`].
    #[must_use]
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.body.call = Some(name.into());
        self
    }
}

impl<B: Body> Enqueue<B> {
    /// Overrides the pool's per-attempt timeout for this request.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(Some(timeout));
        self
    }

    /// Lets this request wait forever, whatever the pool's timeout.
    #[must_use]
    pub fn no_timeout(mut self) -> Self {
        self.options.timeout = Some(None);
        self
    }

    /// Waits in line when the queue is full, instead of failing with
    /// [`Error::QueueFull`]. The request's timeout still applies while it waits.
    ///
    /// Such requests are queued past [`Config::queue_capacity`](crate::Config::queue_capacity)
    /// (in order with the others), so the queue holds at most the bound plus
    /// one request per caller that chose to wait.
    #[must_use]
    pub fn wait_for_room(mut self) -> Self {
        self.options.wait_for_room = true;
        self
    }

    /// Overrides the pool's retry count for this request.
    #[must_use]
    pub fn retries(mut self, retries: u32) -> Self {
        self.options.retries = Some(retries);
        self
    }

    /// Makes this request part of the caller's trace: its span in the pool
    /// (target `lpm::request`) takes `context`'s trace id, and the worker
    /// gets the context in its request frame, as its handler span's parent.
    /// Without it a traced request starts a trace of its own.
    ///
    /// A service passes on the `traceparent` header it was called with:
    ///
    /// ```
    /// use lpm_actors::{Enqueue, TraceParent};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Thumbnail { width: u32 }
    /// # impl lpm_actors::Call for Thumbnail { const NAME: &'static str = "thumbnail"; type Reply = Vec<u8>; }
    ///
    /// let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    /// let request = Enqueue::call(Thumbnail { width: 640 }).trace_parent(header.parse()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn trace_parent(mut self, context: TraceParent) -> Self {
        self.options.trace_parent = Some(context);
        self
    }

    /// Encodes the body in the pool's codec.
    pub(crate) fn into_job(self, codec: Codec) -> Result<Job, Error> {
        let (call, payload) = self.body.encode(codec)?;
        Ok(Job::new(call, payload, self.options))
    }
}

impl<B: Body> actix::Message for Enqueue<B> {
    type Result = Result<B::Output, Error>;
}

pub(crate) type Reply = oneshot::Sender<Result<Response, Error>>;

/// The answer to a request.
#[derive(Debug, Clone)]
pub struct Response {
    id: RequestId,
    created_at: Timestamp,
    pid: u32,
    slot: usize,
    payload: Vec<u8>,
    codec: Codec,
    acked: bool,
    stream: Option<SharedStream>,
}

impl Response {
    /// Whether the worker answered with a byte stream ([`Response::take_stream`]).
    pub fn has_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// Takes the byte stream the worker answered with (`respond_with_stream`);
    /// the first call on any clone of this response gets it, later ones `None`.
    ///
    /// The stream fails with `UnexpectedEof` if the worker dies before it
    /// ends, so a short read is never mistaken for the whole.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use lpm_actors::{Call, Enqueue, Pool};
    /// use tokio::io::AsyncReadExt;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Thumbnail { width: u32 }
    /// # impl Call for Thumbnail { const NAME: &'static str = "thumbnail"; type Reply = (); }
    ///
    /// # async fn demo(pool: Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let file = std::fs::File::open("photo.jpg")?;
    /// let request = Enqueue::call(Thumbnail { width: 640 }).file(file);
    /// let ((), response) = pool.send(request.with_response()).await?;
    /// let mut thumbnail = Vec::new();
    /// if let Some(mut stream) = response.take_stream() {
    ///     stream.read_to_end(&mut thumbnail).await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn take_stream(&self) -> Option<ResponseStream> {
        self.stream
            .as_ref()?
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// The request's id (a UUID v4, the same the worker saw).
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// When the request was enqueued.
    pub fn created_at(&self) -> SystemTime {
        self.created_at.to_system_time()
    }

    /// The worker process that answered.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The pool slot of that worker.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// True when the worker acknowledged the request without a payload.
    pub fn is_ack(&self) -> bool {
        self.acked
    }

    /// Decodes the worker's answer (in the pool's codec).
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the payload is not a `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, Error> {
        decode_payload(self.codec, &self.payload)
    }

    /// Decodes the worker's answer as call `C`'s reply.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the payload is not a `C::Reply`.
    pub fn reply<C: Call>(&self) -> Result<C::Reply, Error> {
        self.data()
    }

    /// The payload's codec (the pool's).
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The answer's raw bytes, in the pool's codec.
    pub fn bytes(&self) -> &[u8] {
        &self.payload
    }
}

/// What a request needs of the worker it goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FdNeed {
    /// Nothing special.
    None,
    /// Room for one more descriptor in flight.
    Stream,
    /// Room for one more descriptor, and the fewest sockets held.
    Socket,
}

/// The pool's shared figures: its metrics (outcomes, restarts, queue and
/// service times; the kill report's served and failed come from them), the
/// queue's length and the intake's.
///
/// Shared, like each worker's [`Load`], by actors that read one another's
/// figures without a message: correct only while they all run on the
/// Arbiter that started the pool (the Balancer decides from loads the
/// handles update). Debug builds check it.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) metrics: Recorder,
    /// Requests waiting in the balancer's queue: a worker that frees a slot
    /// only needs to tell the balancer when some are.
    queued: AtomicUsize,
    /// Requests sent to the balancer's channel and not taken in yet: what
    /// bounds the intake before the queue's own bound applies.
    submitted: AtomicUsize,
    /// The thread every actor of the pool must run on.
    home: std::thread::ThreadId,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            metrics: Recorder::default(),
            queued: Default::default(),
            submitted: Default::default(),
            home: std::thread::current().id(),
        }
    }
}

impl Counters {
    /// Checks, in debug builds, that the calling actor runs where the pool
    /// was started (see [`Counters`]).
    pub(crate) fn debug_assert_home(&self, actor: &str) {
        debug_assert_eq!(
            std::thread::current().id(),
            self.home,
            "the {actor} runs on another thread than the pool's other actors: \
             every actor of a pool must run on the Arbiter that called Pool::start"
        );
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    pub(crate) fn set_queued(&self, n: usize) {
        self.queued.store(n, Ordering::Relaxed);
        self.metrics.queue_depth(n);
    }

    /// Counts one more request on its way to the balancer: `false`, and not
    /// counted, when it must fit and `capacity` are on their way already.
    /// (Any thread may submit, so this one is a real atomic count.)
    pub(crate) fn enter_intake(&self, capacity: usize, must_fit: bool) -> bool {
        let before = self.submitted.fetch_add(1, Ordering::Relaxed);
        if must_fit && before >= capacity {
            self.submitted.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// The balancer took a submitted request in.
    pub(crate) fn leave_intake(&self) {
        self.submitted.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn served(&self) -> u64 {
        self.metrics.served_count()
    }

    pub(crate) fn failed(&self) -> u64 {
        self.metrics.failed_count()
    }
}

/// What became of a request whose worker died.
#[derive(Debug)]
pub(crate) enum AfterDeath {
    /// It goes back to the queue for another attempt.
    Retry(Box<Pending>),
    /// Out of retries: it failed with the death's error.
    Failed,
    /// Out of retries, and every attempt killed its worker.
    Quarantined,
}

/// A request inside the pool. It owns the caller's reply channel; resolving
/// consumes it, and dropping an unresolved one answers [`Error::PoolStopped`],
/// so every enqueue resolves exactly once.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) id: RequestId,
    pub(crate) created_at: Timestamp,
    /// The call it is for; `None` for an untyped request.
    pub(crate) call: Option<CallName>,
    /// The call's pool-wide id, once a worker announced it.
    pub(crate) call_id: Option<crate::balancer::CallId>,
    /// The number the assigned worker gave the call (`0` untyped); `None`
    /// when it does not serve it. Set at each assignment.
    pub(crate) wire_call: Option<u32>,
    pub(crate) payload: Vec<u8>,
    /// The pool's codec, which its response is decoded with.
    codec: Codec,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries_left: u32,
    pub(crate) attempts: u32,
    pub(crate) deadline: Option<Instant>,
    /// Since when it waits for a worker, or is on one: its queue wait and
    /// service time are measured from this. A 4-byte mark and a flag fit
    /// where the fields around them leave room, so a queued request is no bigger.
    since: Mark,
    on_worker: bool,
    pub(crate) load: Option<LoadGuard>,
    /// Its trace and what earlier attempts left behind. Boxed: most
    /// requests are not traced and make one attempt, and a queued request
    /// should stay small.
    extra: Option<Box<Extra>>,
    /// The stream or socket to pass, until it is sent.
    pub(crate) attachment: Option<Attachment>,
    /// What was passed to a worker, once it was: the request is not retried then.
    pub(crate) fd_sent: Option<&'static str>,
    reply: Option<Reply>,
    counters: Arc<Counters>,
}

/// What few requests need: a trace, and what failed attempts left behind.
#[derive(Debug, Default)]
struct Extra {
    trace: Option<Box<RequestTrace>>,
    /// The slot whose worker failed the last attempt: the next one goes elsewhere if it can.
    avoid: Option<usize>,
    /// Attempts that ended with their worker dying.
    deaths: u32,
    /// Why the last attempt failed, for when no further attempt can be made.
    last_error: Option<Error>,
}

/// What a request takes from the pool's config unless it sets its own.
#[derive(Debug, Clone)]
pub(crate) struct Defaults {
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: u32,
    /// The pool's codec, which responses are decoded with.
    pub(crate) codec: Codec,
    pub(crate) counters: Arc<Counters>,
}

impl Pending {
    /// A request taken in at `now`: its first attempt's deadline runs from then.
    pub(crate) fn new(
        id: RequestId,
        job: Job,
        reply: Reply,
        defaults: &Defaults,
        now: Instant,
    ) -> Self {
        let Job {
            call,
            payload,
            options,
            trace,
        } = job;
        let timeout = options.timeout.unwrap_or(defaults.timeout);
        Self {
            id,
            created_at: Timestamp::now(),
            call,
            call_id: None,
            wire_call: None,
            payload,
            codec: defaults.codec,
            timeout,
            retries_left: options.retries.unwrap_or(defaults.retries),
            attempts: 1,
            deadline: timeout.map(|t| now + t),
            since: defaults.counters.metrics.mark(now),
            on_worker: false,
            load: None,
            extra: trace.map(|trace| {
                Box::new(Extra {
                    trace: Some(trace),
                    ..Extra::default()
                })
            }),
            attachment: options.attachment,
            fd_sent: None,
            reply: Some(reply),
            counters: Arc::clone(&defaults.counters),
        }
    }

    /// True when the caller stopped waiting (dropped its future).
    pub(crate) fn is_abandoned(&self) -> bool {
        self.reply.as_ref().is_none_or(|r| r.is_closed())
    }

    /// Forgets a request whose caller stopped waiting; it counts as
    /// cancelled, neither served nor failed.
    pub(crate) fn abandon(mut self) {
        self.counters.metrics.cancelled();
        if let Some(trace) = self.trace() {
            trace.finish(Outcome::Cancelled);
        }
        self.reply = None;
    }

    /// The request is handed to a worker at `now`: its queue wait ends
    /// (measured since it was queued, or since it was last handed to a
    /// worker that sent it back) and its service time starts.
    pub(crate) fn dispatched(&mut self, now: Instant) {
        let metrics = &self.counters.metrics;
        let now = metrics.mark(now);
        let waited = self.since.until(now);
        metrics.waited(waited);
        self.since = now;
        self.on_worker = true;
        if let Some(trace) = self.trace() {
            trace.dispatched(self.attempts, waited);
        }
    }

    /// The request's frame goes to the worker in `slot`, process `pid`:
    /// the `traceparent` it carries, if the request is traced.
    pub(crate) fn trace_to(&self, slot: usize, pid: u32) -> Option<&str> {
        let trace = self.trace()?;
        trace.sent(slot, pid);
        Some(trace.traceparent())
    }

    fn trace(&self) -> Option<&RequestTrace> {
        self.extra.as_ref()?.trace.as_deref()
    }

    /// After an attempt on `slot` failed with `error`: starts another attempt
    /// if retries are left, else fails the request with `error`.
    pub(crate) fn retry(mut self, now: Instant, slot: usize, error: Error) -> Option<Self> {
        self.counters.metrics.tick(now);
        self.load = None;
        if self.retries_left == 0 {
            self.fail(error);
            return None;
        }
        if let Some(what) = self.fd_sent {
            // Part of the stream may be consumed: never resent silently.
            self.fail(Error::NotRetried {
                what,
                cause: Box::new(error),
            });
            return None;
        }
        self.retries_left -= 1;
        self.attempts += 1;
        self.counters.metrics.retried();
        self.deadline = self.timeout.map(|t| now + t);
        self.since = self.counters.metrics.mark(now);
        self.on_worker = false;
        let extra = self.extra.get_or_insert_with(Box::default);
        extra.avoid = Some(slot);
        extra.last_error = Some(error);
        Some(self)
    }

    /// The slot to avoid, if an attempt on it failed: the next attempt goes
    /// elsewhere if it can.
    pub(crate) fn avoid(&self) -> Option<usize> {
        self.extra.as_ref().and_then(|e| e.avoid)
    }

    /// After the worker serving this attempt died (or was killed): another
    /// attempt while retries last; else, when every attempt (two at least)
    /// ended in a death, the request is quarantined as the likely cause;
    /// else it fails with `error`.
    pub(crate) fn after_death(mut self, now: Instant, slot: usize, error: Error) -> AfterDeath {
        let extra = self.extra.get_or_insert_with(Box::default);
        extra.deaths += 1;
        let deaths = extra.deaths;
        if self.retries_left == 0 && self.attempts >= 2 && deaths == self.attempts {
            let error = Error::Quarantined {
                id: self.id,
                attempts: self.attempts,
            };
            tracing::warn!(id = %self.id, attempts = self.attempts, "request quarantined: its worker died on every attempt");
            self.fail(error);
            return AfterDeath::Quarantined;
        }
        match self.retry(now, slot, error) {
            Some(again) => AfterDeath::Retry(Box::new(again)),
            None => AfterDeath::Failed,
        }
    }

    /// Fails a request that can make no further attempt: with the error of its
    /// last attempt if it had one, else with `otherwise`.
    pub(crate) fn fail_with_last(mut self, otherwise: Error) {
        let last = self.extra.as_mut().and_then(|e| e.last_error.take());
        let error = last.unwrap_or(otherwise);
        self.fail(error);
    }

    pub(crate) fn respond(self, pid: u32, slot: usize, payload: Vec<u8>, acked: bool) {
        self.answer(pid, slot, payload, acked, None);
    }

    /// Answers with a payload and the worker's byte stream.
    pub(crate) fn respond_with_stream(
        self,
        pid: u32,
        slot: usize,
        payload: Vec<u8>,
        stream: ResponseStream,
    ) {
        let stream = Arc::new(std::sync::Mutex::new(Some(stream)));
        self.answer(pid, slot, payload, false, Some(stream));
    }

    fn answer(
        mut self,
        pid: u32,
        slot: usize,
        payload: Vec<u8>,
        acked: bool,
        stream: Option<SharedStream>,
    ) {
        let response = Response {
            id: self.id,
            created_at: self.created_at,
            pid,
            slot,
            payload,
            codec: self.codec,
            acked,
            stream,
        };
        self.counters.metrics.served();
        self.send(Ok(response));
    }

    /// Whether it needs a worker below its descriptor limit, and whether it is a socket.
    pub(crate) fn fd_need(&self) -> FdNeed {
        match &self.attachment {
            None => FdNeed::None,
            Some(a) if a.is_socket() => FdNeed::Socket,
            Some(_) => FdNeed::Stream,
        }
    }

    pub(crate) fn fail(mut self, error: Error) {
        self.counters.metrics.failed(error.kind());
        self.send(Err(error));
    }

    /// The error for a worker that has no handler for this request's call.
    pub(crate) fn not_handled(&self) -> Error {
        Error::NotHandled {
            name: self.call.as_deref().unwrap_or_default().to_owned(),
        }
    }

    /// Counts an attempt that ran out of time, and makes its error.
    pub(crate) fn timed_out(&self) -> Error {
        self.counters.metrics.timed_out();
        Error::Timeout {
            id: self.id,
            after: self.timeout.unwrap_or_default(),
            attempts: self.attempts,
        }
    }

    /// Answers the caller, ending the service time of a request that was on a worker.
    fn send(&mut self, result: Result<Response, Error>) {
        self.load = None;
        if let Some(trace) = self.trace() {
            trace.finish(match &result {
                Ok(_) => Outcome::Served,
                Err(e) => Outcome::Failed(e.kind()),
            });
        }
        if self.on_worker {
            // Timed by the clock as its actor last read it: this turn's,
            // since frames, timers and deaths are each read at `now`.
            let metrics = &self.counters.metrics;
            metrics.serviced(self.since.until(metrics.latest()));
        }
        if let Some(reply) = self.reply.take() {
            // A caller that stopped waiting is not an error.
            let _ = reply.send(result);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.reply.is_some() {
            self.counters.metrics.failed(ErrorKind::PoolStopped);
            self.send(Err(Error::PoolStopped));
        }
    }
}
