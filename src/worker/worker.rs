//! [`Worker`]: the handle a worker binary connects, configures and runs.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::FutureExt;
use lpm_protocol::{Call, Codec, FrameStream, Query, ToSupervisor, ToWorker, Topic};
use serde::Serialize;
use tokio::net::UnixStream;

use super::call::{serve_call, CallContext};
use super::channel::{take_stdio, Channel};
use super::emit::{PendingEmits, Reply};
use super::event::{Event, EventHandler, EventHandlers};
use super::handshake::{greet, Greeted};
use super::in_band::ResponseCredits;
use super::in_flight::InFlight;
use super::outbox::Outbox;
use super::request::{serve, Request, RequestInfo};
use super::soft_kill::{Done, SoftKillHook};
use crate::error::encode_payload;
use crate::{BoxError, WorkerError};

/// Spawns the task that serves one request with the registered handler.
pub(crate) type RequestHandler = Arc<dyn Fn(Request) + Send + Sync>;

/// Everything the handles, the run loop and the requests share.
pub(crate) struct Shared {
    pub(crate) slot: u32,
    /// The pool's payload codec (checked at the handshake).
    pub(crate) codec: Codec,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) in_flight: InFlight,
    pub(crate) emits: PendingEmits,
    /// Connections handed over with requests and still open.
    pub(crate) sockets: super::fds::OpenSockets,
    /// Whether descriptors pass on the channel (else streams go in-band).
    pub(crate) takes_fds: bool,
    /// The credit of the response streams being sent in-band.
    pub(crate) response_credits: ResponseCredits,
    handlers: Mutex<Handlers>,
    /// Taken by [`Worker::run`].
    reader: Mutex<Option<Reader>>,
}

#[derive(Default)]
struct Handlers {
    request: Option<RequestHandler>,
    /// Typed calls, by name, in registration order: the order is their
    /// number on the wire (from 1), announced in the `Hello`.
    calls: Vec<(&'static str, RequestHandler)>,
    /// Set once `run` announced the calls: later ones cannot be reached.
    announced: bool,
    events: EventHandlers,
    soft_kill: Option<SoftKillHook>,
}

/// The channel's read side, waiting for [`Worker::run`].
#[derive(Debug)]
pub(crate) struct Reader {
    pub(crate) channel: Channel,
    pub(crate) frames: FrameStream<ToWorker>,
    pub(crate) backlog: Vec<ToWorker>,
}

impl Shared {
    fn handlers(&self) -> MutexGuard<'_, Handlers> {
        self.handlers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn request_handler(&self) -> Option<RequestHandler> {
        self.handlers().request.clone()
    }

    /// Freezes the typed calls for the run loop: their names for the
    /// `Hello`, and their handlers by number (from 1).
    pub(crate) fn announce_calls(&self) -> (Vec<String>, Arc<[RequestHandler]>) {
        let mut handlers = self.handlers();
        handlers.announced = true;
        let names = handlers
            .calls
            .iter()
            .map(|(n, _)| (*n).to_owned())
            .collect();
        let by_number = handlers.calls.iter().map(|(_, h)| Arc::clone(h)).collect();
        (names, by_number)
    }

    pub(crate) fn event_handler(&self, name: &str) -> Option<EventHandler> {
        self.handlers().events.get(name).cloned()
    }

    pub(crate) fn take_soft_kill_hook(&self) -> Option<SoftKillHook> {
        self.handlers().soft_kill.take()
    }

    pub(crate) fn take_reader(&self) -> Option<Reader> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Queues a message whose loss only matters while the channel is open.
    fn send_or_log(&self, msg: &ToSupervisor, what: &str) {
        if let Err(e) = self.outbox.push(msg) {
            tracing::debug!(error = %e, "{what} not sent");
        }
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("slot", &self.slot)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

/// The worker side of an lpm pool: one per worker process.
///
/// Connect with [`Worker::from_env`] (or [`Worker::connect`] in tests),
/// register handlers, call [`Worker::ready`], then [`Worker::run`] until the
/// supervisor stops the worker. A `Worker` is a cheap `Send + Sync` handle: clone it into
/// handlers to emit events or report statistics from there.
///
/// # Examples
///
/// ```no_run
/// use lpm::worker::{Done, Event, Request, Worker};
///
/// #[tokio::main]
/// async fn main() -> Result<(), lpm::WorkerError> {
///     let worker = Worker::from_env().await?;
///
///     let handle = worker.clone();
///     worker.on_request(move |req: Request| {
///         let worker = handle.clone();
///         async move {
///             let text: String = req.data()?;
///             worker.emit("seen", &text.len())?;
///             req.respond(&text.to_uppercase())?;
///             Ok(())
///         }
///     });
///     worker.on_event("reload", |event: Event| async move {
///         let path: String = event.data().unwrap_or_default();
///         tracing::info!(%path, "reloading");
///     });
///     worker.on_soft_kill(|done: Done| async move {
///         // Flush caches, close connections ...
///         done.done();
///     });
///
///     worker.ready();
///     worker.run().await
/// }
/// ```
#[derive(Clone)]
pub struct Worker {
    shared: Arc<Shared>,
}

impl Worker {
    /// Connects to the supervisor, then does the handshake: over the
    /// channel this process inherited (file descriptor 3, named by
    /// `LPM_IPC_FD`), or, when `LPM_IPC_FD` is not set, over its stdin and
    /// stdout (the stdio transport, e.g. a worker started as `ssh host
    /// worker`).
    ///
    /// Over stdio, fd 1 is pointed at stderr before any handler runs, so a
    /// stray `println!` goes to the log instead of corrupting the frames;
    /// the payload codec is `LPM_CODEC`'s, or, without it, the pool's (from
    /// the supervisor's `Hello`); streams travel in-band.
    ///
    /// Call it once per process, inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`WorkerError::NoChannel`] when `LPM_IPC_FD` names no socket, or,
    /// without it, stdin or stdout is a terminal or no pipe or socket (the
    /// process was not started by an lpm pool); and the errors of
    /// [`Worker::connect`].
    pub async fn from_env() -> Result<Worker, WorkerError> {
        match inherited_channel()? {
            Some(socket) => Self::connect(socket).await,
            None => Self::over_stdio(codec_from_env()?).await,
        }
    }

    /// As [`Worker::from_env`], for a worker that only speaks `codec`
    /// (rather than the pool's, from `LPM_CODEC`): a pool with another
    /// codec is refused at the handshake with [`WorkerError::CodecMismatch`].
    ///
    /// # Errors
    ///
    /// As [`Worker::from_env`].
    pub async fn from_env_with(codec: Codec) -> Result<Worker, WorkerError> {
        match inherited_channel()? {
            Some(socket) => Self::connect_with(socket, codec).await,
            None => Self::over_stdio(Some(codec)).await,
        }
    }

    /// Connects over this process's stdin and stdout.
    async fn over_stdio(codec: Option<Codec>) -> Result<Worker, WorkerError> {
        let (input, output) = take_stdio()?;
        Self::connect_channel(Channel::stdio(input, output)?, codec).await
    }

    /// Connects over a pair of pipes, as [`Worker::from_env`] does over
    /// stdin and stdout: frames arrive on `input` and go out on `output`,
    /// streams travel in-band, and no descriptor passes. Without `codec` the
    /// pool's (from the supervisor's `Hello`) is adopted.
    ///
    /// This is how tests run a stdio worker in-process. Call it inside a
    /// tokio runtime.
    ///
    /// # Errors
    ///
    /// [`WorkerError::NoChannel`] when the descriptors cannot be polled (a
    /// regular file), and the errors of [`Worker::connect`].
    pub async fn connect_pipes(
        input: std::os::fd::OwnedFd,
        output: std::os::fd::OwnedFd,
        codec: Option<Codec>,
    ) -> Result<Worker, WorkerError> {
        Self::connect_channel(Channel::stdio(input, output)?, codec).await
    }

    /// Connects over a given channel: waits for the supervisor's `Hello`
    /// (which names the slot and the pool's codec) and checks it. The
    /// worker's own `Hello`, with the calls it serves, goes out when
    /// [`Worker::run`] starts. The payload codec is the one `LPM_CODEC`
    /// names (the pool sets it), postcard without it.
    ///
    /// This is how tests run a worker in-process, over one end of
    /// [`UnixStream::pair`](std::os::unix::net::UnixStream::pair). Call it
    /// inside a tokio runtime. It waits for the supervisor's `Hello` without
    /// a deadline; wrap it in [`tokio::time::timeout`] to bound that.
    ///
    /// # Errors
    ///
    /// * [`WorkerError::VersionMismatch`]: the supervisor speaks another protocol version.
    /// * [`WorkerError::CodecMismatch`]: the pool uses another payload codec.
    /// * [`WorkerError::Handshake`]: the first message was not a `Hello`, or the channel closed first.
    /// * [`WorkerError::Channel`]: the socket failed.
    pub async fn connect(stream: std::os::unix::net::UnixStream) -> Result<Worker, WorkerError> {
        let codec = codec_from_env()?.unwrap_or_default();
        Self::connect_with(stream, codec).await
    }

    /// As [`Worker::connect`], with the payload codec given.
    ///
    /// # Errors
    ///
    /// As [`Worker::connect`].
    pub async fn connect_with(
        stream: std::os::unix::net::UnixStream,
        codec: Codec,
    ) -> Result<Worker, WorkerError> {
        stream.set_nonblocking(true).map_err(WorkerError::channel)?;
        let stream = Arc::new(UnixStream::from_std(stream).map_err(WorkerError::channel)?);
        Self::connect_channel(Channel::Socket(stream), Some(codec)).await
    }

    /// The handshake over either channel.
    async fn connect_channel(
        channel: Channel,
        codec: Option<Codec>,
    ) -> Result<Worker, WorkerError> {
        let max_frame_len = lpm_protocol::max_frame_len_from_env();
        let Greeted {
            slot,
            codec,
            frames,
            backlog,
        } = greet(&channel, codec, max_frame_len).await?;
        tracing::debug!(
            slot,
            takes_fds = channel.takes_fds(),
            "connected to the supervisor"
        );
        Ok(Worker {
            shared: Arc::new(Shared {
                slot,
                codec,
                outbox: Arc::new(Outbox::new(max_frame_len)),
                in_flight: InFlight::default(),
                emits: PendingEmits::new(),
                sockets: super::fds::OpenSockets::default(),
                takes_fds: channel.takes_fds(),
                response_credits: ResponseCredits::default(),
                handlers: Mutex::new(Handlers::default()),
                reader: Mutex::new(Some(Reader {
                    channel,
                    frames,
                    backlog,
                })),
            }),
        })
    }

    /// The pool slot this worker fills (`0..workers`); a restarted worker
    /// gets the slot of the one it replaces.
    pub fn slot(&self) -> u32 {
        self.shared.slot
    }

    /// The pool's payload codec.
    pub fn codec(&self) -> Codec {
        self.shared.codec
    }

    /// Serves call `C`: `handler` gets each decoded `C` with its
    /// [`CallContext`] and returns the reply; the caller's
    /// `pool.call(C { .. })` gets exactly that `C::Reply`.
    ///
    /// Register every call before [`Worker::run`]: the calls are announced
    /// in the worker's `Hello` when it starts running, and the pool refuses
    /// a call no worker announced ([`PoolError::NotHandled`]).
    /// Registering `C::NAME` again replaces its handler. As with
    /// [`Worker::on_request`], each call runs in its own task; an error or a
    /// panic fails that call only, and a cancelled call's reply is not sent.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use lpm::worker::{CallContext, Worker};
    /// use lpm::Call;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct CountPrimes { below: u64 }
    ///
    /// impl Call for CountPrimes {
    ///     const NAME: &'static str = "count_primes";
    ///     type Reply = u64;
    /// }
    ///
    /// # async fn demo() -> Result<(), lpm::WorkerError> {
    /// let worker = Worker::from_env().await?;
    /// worker.handle(|c: CountPrimes, _ctx: CallContext| async move {
    ///     Ok((2..c.below).filter(|n| (2..*n).take_while(|d| d * d <= *n).all(|d| n % d != 0)).count() as u64)
    /// });
    /// worker.ready();
    /// worker.run().await
    /// # }
    /// ```
    ///
    #[doc = pool_links!("PoolError::NotHandled")]
    pub fn handle<C, F, Fut>(&self, handler: F)
    where
        C: Call,
        F: Fn(C, CallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C::Reply, BoxError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let spawn: RequestHandler = Arc::new(move |request: Request| {
            let handler = Arc::clone(&handler);
            tokio::spawn(serve(request, Some(C::NAME), move |request| {
                serve_call(request, handler)
            }));
        });
        let mut handlers = self.shared.handlers();
        if handlers.announced {
            tracing::warn!(
                call = C::NAME,
                "call registered after `Worker::run` started: it was not announced and \
                 the pool will not send it"
            );
        }
        match handlers.calls.iter_mut().find(|(name, _)| *name == C::NAME) {
            Some(entry) => entry.1 = spawn,
            None => handlers.calls.push((C::NAME, spawn)),
        }
    }

    /// Handles the events `E` the pool publishes (`Pool::publish`), decoded;
    /// an event that does not decode as `E` is logged and dropped. As
    /// [`Worker::on_event`] for the name `E::NAME`.
    pub fn subscribe<E, F, Fut>(&self, handler: F)
    where
        E: Topic,
        F: Fn(E) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.on_event(E::NAME, move |event: Event| {
            let handler = Arc::clone(&handler);
            async move {
                match event.data::<E>() {
                    Ok(event) => handler(event).await,
                    Err(e) => tracing::warn!(event = E::NAME, error = %e, "event dropped"),
                }
            }
        });
    }

    /// Sends the event `E` to the pool's subscribers (they read it with
    /// `CustomEvent::decode::<E>()`).
    ///
    /// # Errors
    ///
    /// As [`Worker::emit`].
    pub fn publish<E: Topic>(&self, event: &E) -> Result<(), WorkerError> {
        self.emit(E::NAME, event)
    }

    /// Sends the query `Q` to the pool's subscribers and waits for their
    /// answer (`CustomEvent::answer::<Q>(..)`), decoded as `Q::Reply`.
    ///
    /// # Errors
    ///
    /// As [`Worker::emit_with_reply`], and [`WorkerError::Decode`] when the
    /// answer is not a `Q::Reply`.
    pub fn ask<Q: Query>(
        &self,
        query: &Q,
    ) -> impl Future<Output = Result<Q::Reply, WorkerError>> + Send + 'static {
        let reply = self.emit_with_reply(Q::NAME, query);
        async move { reply.await?.data() }
    }

    /// Sets the untyped request handler (replacing an earlier one): it
    /// serves the requests enqueued without a call (`Pool::enqueue`,
    /// `Enqueue::new`).
    ///
    /// Each request runs in its own tokio task, so the handler's future must
    /// be `Send`. The handler answers with [`Request::respond`] or
    /// [`Request::ack`], now or later from another task; [`Request`] says
    /// what the caller gets when it does not, or when it returns an error or
    /// panics. Either way the worker keeps serving. When the supervisor
    /// cancels a request (it timed out), nothing is sent for it any more
    /// and the handler may stop early; see [Cancellation](Request#cancellation).
    ///
    /// Register it before [`Worker::run`]: requests that arrive while there
    /// is none are answered with a failure.
    pub fn on_request<F, Fut>(&self, handler: F)
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let spawn: RequestHandler = Arc::new(move |request: Request| {
            let handler = Arc::clone(&handler);
            tokio::spawn(serve(request, None, move |request| handler(request)));
        });
        self.shared.handlers().request = Some(spawn);
    }

    /// Sets the handler for events named `name` (replacing an earlier one).
    ///
    /// Each event runs in its own task; a panic there is logged and does not
    /// stop the worker. Events without a handler are logged at debug level
    /// and dropped.
    pub fn on_event<F, Fut>(&self, name: impl Into<String>, handler: F)
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: EventHandler = Arc::new(move |event| handler(event).boxed());
        self.shared.handlers().events.insert(name.into(), handler);
    }

    /// Sets the hook the worker calls when the supervisor asks it to stop softly.
    ///
    /// The supervisor sends no new requests then. The worker calls the hook
    /// with a [`Done`], and answers the soft kill only once the `Done` is done
    /// (or dropped) and every request in flight is answered or cancelled;
    /// then [`Worker::run`] returns, even if the handler of a cancelled
    /// request still runs. Without a hook, it waits for the requests only.
    pub fn on_soft_kill<F, Fut>(&self, hook: F)
    where
        F: FnOnce(Done) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let hook: SoftKillHook = Box::new(move |done| hook(done).boxed());
        self.shared.handlers().soft_kill = Some(hook);
    }

    /// Tells the supervisor this worker takes requests (again).
    ///
    /// The supervisor sends nothing before the first `ready()`. Messages are
    /// queued and go out once [`Worker::run`] runs.
    pub fn ready(&self) {
        self.shared.send_or_log(&ToSupervisor::Ready, "Ready");
    }

    /// Tells the supervisor to send no new requests until the next [`Worker::ready`].
    pub fn busy(&self) {
        self.shared.send_or_log(&ToSupervisor::Busy, "Busy");
    }

    /// Sends a named event with a payload to the supervisor's subscribers.
    ///
    /// # Errors
    ///
    /// [`WorkerError::Encode`] or [`WorkerError::PayloadTooLarge`] when the payload
    /// cannot be sent, [`WorkerError::ChannelClosed`] once the worker stopped.
    pub fn emit<T: Serialize + ?Sized>(&self, name: &str, payload: &T) -> Result<(), WorkerError> {
        let payload = encode_payload(self.shared.codec, payload)?;
        self.shared.outbox.push(&ToSupervisor::Emit {
            name: name.to_owned(),
            payload,
            reply_to: None,
        })
    }

    /// Sends a named event and waits for the supervisor side's reply.
    ///
    /// The payload is encoded at once; the event is sent when the returned
    /// future is first polled. The future borrows neither the worker nor the
    /// payload, so it can be moved into a spawned task. Dropping it stops the
    /// wait (a late reply is ignored). The reply only comes while
    /// [`Worker::run`] runs.
    ///
    /// # Errors
    ///
    /// * [`WorkerError::NoReply`]: the supervisor side answered with an error.
    /// * [`WorkerError::ChannelClosed`]: the channel closed before the reply.
    /// * [`WorkerError::Encode`] or [`WorkerError::PayloadTooLarge`]: the payload cannot be sent.
    pub fn emit_with_reply<T: Serialize + ?Sized>(
        &self,
        name: &str,
        payload: &T,
    ) -> impl Future<Output = Result<Reply, WorkerError>> + Send + 'static {
        let encoded = encode_payload(self.shared.codec, payload);
        let shared = Arc::clone(&self.shared);
        let name = name.to_owned();
        async move {
            let payload = encoded?;
            let waiting = shared.emits.register()?;
            shared.outbox.push(&ToSupervisor::Emit {
                name: name.clone(),
                payload,
                reply_to: Some(waiting.id()),
            })?;
            waiting.reply(&name, shared.codec).await
        }
    }

    /// Reports named statistics (cache hits, heap sizes ...) that the
    /// supervisor shows in its health report.
    pub fn report_stats(&self, stats: &[(&str, f64)]) {
        let stats = stats
            .iter()
            .map(|&(name, value)| (name.to_owned(), value))
            .collect();
        self.shared
            .send_or_log(&ToSupervisor::Stats(stats), "statistics");
    }

    /// A snapshot of the requests received and neither answered nor
    /// cancelled yet, oldest first.
    pub fn requests(&self) -> Vec<RequestInfo> {
        self.shared
            .in_flight
            .snapshot()
            .into_iter()
            .map(RequestInfo::new)
            .collect()
    }

    /// Serves the supervisor until it stops this worker; call it once.
    ///
    /// Returns `Ok(())` when the supervisor hangs up (end of file), after a
    /// soft kill completes (see [`Worker::on_soft_kill`]), or at once on a
    /// hard kill. Emits still waiting for a reply then fail with
    /// [`WorkerError::ChannelClosed`], and so does every later send. The process
    /// should exit when `run` returns.
    ///
    /// # Errors
    ///
    /// * [`WorkerError::Channel`]: the socket failed or the supervisor sent a
    ///   malformed frame.
    /// * [`WorkerError::AlreadyRunning`]: `run` was called before (on any clone).
    pub async fn run(self) -> Result<(), WorkerError> {
        super::run::run(self.shared).await
    }
}

/// The socket this process inherited from its pool; `None` without
/// `LPM_IPC_FD` (the stdio transport).
fn inherited_channel() -> Result<Option<std::os::unix::net::UnixStream>, WorkerError> {
    if std::env::var_os(lpm_protocol::IPC_FD_ENV).is_none() {
        return Ok(None);
    }
    lpm_protocol::inherited_channel()
        .map(Some)
        .map_err(|e| WorkerError::NoChannel {
            source: Box::new(e),
        })
}

/// The codec `LPM_CODEC` names, if it is set.
fn codec_from_env() -> Result<Option<Codec>, WorkerError> {
    if std::env::var_os(lpm_protocol::CODEC_ENV).is_none() {
        return Ok(None);
    }
    Codec::from_env()
        .map(Some)
        .map_err(|e| WorkerError::Handshake {
            reason: e.to_string(),
        })
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("slot", &self.shared.slot)
            .field("in_flight", &self.shared.in_flight.len())
            .field("closed", &self.shared.outbox.is_closed())
            .finish()
    }
}
