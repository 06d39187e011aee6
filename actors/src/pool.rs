//! [`Pool`]: a cheap, clonable handle over the Supervisor and Balancer actors.

use actix::prelude::*;
use lpm_protocol::{Call, Codec, RequestId, Topic};
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use crate::balancer::{Balancer, Submission};
use crate::error::encode_payload;
use crate::events::EventStream;
use crate::request::{Body, Counters, Raw};
use crate::supervisor::{Abandoned, StartKill, SubscribeStream, WhenOnline};
use crate::{
    Broadcast, Config, Enqueue, Error, ErrorKind, Health, KillReport, Measure, Metrics, Reload,
    ReloadReport, Resize, Response, Subscribe, Supervisor, WorkerCommand, WorkerHealth,
};

/// Hard-kills a running pool when the last clone of its [`Pool`] is dropped,
/// so no worker outlives the handle that could stop it (a kill already under
/// way goes on as it was).
#[derive(Debug)]
struct Owner(Addr<Supervisor>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.do_send(Abandoned);
    }
}

/// A request handed to the balancer, waiting for its answer; dropped before
/// the answer, it cancels the request.
struct Submitted<'a> {
    submit: &'a mpsc::UnboundedSender<Submission>,
    id: Option<RequestId>,
    rx: oneshot::Receiver<Result<Response, Error>>,
}

impl Submitted<'_> {
    async fn answer<B: Body>(mut self) -> Result<B::Output, Error> {
        let result = (&mut self.rx).await.unwrap_or(Err(Error::PoolStopped));
        self.id = None;
        B::output(result?)
    }
}

impl Drop for Submitted<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let _ = self.submit.send(Submission::Cancel(id));
        }
    }
}

/// Undelivered events an [`EventStream`] may hold.
const EVENT_BUFFER: usize = 1024;

/// A pool of worker processes.
///
/// Create it inside a running actix System (`#[actix::main]`, `#[actix_rt::test]`,
/// or an actix-web server). Clones are cheap and talk to the same pool.
/// Dropping the last clone hard-kills a running pool (a soft kill already
/// started goes on to its end); addresses taken with [`Pool::supervisor`] or
/// [`Pool::balancer`] do not keep it alive.
///
/// The pool handles SIGINT and SIGTERM by default (see
/// [`SignalPolicy`](crate::SignalPolicy)); tokio keeps such handlers for the
/// life of the process, so the application decides when to exit, e.g. on
/// [`PoolEvent::Stopped`](crate::PoolEvent::Stopped).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use lpm_actors::{Call, Config, Enqueue, Pool, WorkerCommand};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Thumbnail { path: String }
/// # impl Call for Thumbnail { const NAME: &'static str = "thumbnail"; type Reply = Vec<u8>; }
///
/// # async fn demo() -> Result<(), lpm_actors::Error> {
/// let pool = Pool::start(
///     WorkerCommand::new("./thumbnailer"),
///     Config::default().workers(4).timeout(Duration::from_secs(10)).retries(1),
/// );
/// pool.online().await?;
/// let call = Thumbnail { path: "cat.jpg".into() };
/// let (thumbnail, response) = pool.send(Enqueue::call(call).retries(3).with_response()).await?;
/// println!("{} bytes from pid {}", thumbnail.len(), response.pid());
/// for worker in pool.health().await? {
///     println!("slot {} pid {:?} rss {}", worker.slot, worker.pid, worker.rss);
/// }
/// pool.soft_kill().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Pool {
    _owner: Arc<Owner>,
    submit: mpsc::UnboundedSender<Submission>,
    supervisor: Addr<Supervisor>,
    balancer: Addr<Balancer>,
    codec: Codec,
    /// Shared with the actors: bounds the requests on their way to the balancer.
    counters: Arc<Counters>,
    queue_capacity: usize,
}

impl Pool {
    /// Starts the actors and spawns `config.workers` workers running `command`.
    ///
    /// # Panics
    ///
    /// Outside a running actix System.
    pub fn start(command: WorkerCommand, config: Config) -> Pool {
        let codec = config.codec;
        let queue_capacity = config.queue_capacity;
        let counters = Arc::new(Counters::default());
        let (submit, submissions) = mpsc::unbounded_channel();
        let balancer = Balancer::new(&config, Arc::clone(&counters), submissions).start();
        let supervisor =
            Supervisor::new(command, config, balancer.clone(), Arc::clone(&counters)).start();
        Pool {
            _owner: Arc::new(Owner(supervisor.clone())),
            submit,
            supervisor,
            balancer,
            codec,
            counters,
            queue_capacity,
        }
    }

    /// Calls `call` on a worker with the pool's default timeout and
    /// retries, and answers its reply. For per-request options use
    /// [`Pool::send`] with [`Enqueue::call`].
    ///
    /// A call no worker serves fails at once with [`Error::NotHandled`].
    /// Dropping the future cancels the call, as for [`Pool::send`].
    ///
    /// # Errors
    ///
    /// Any request error: see [`Error`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use serde::{Deserialize, Serialize};
    /// use lpm_actors::{Call, Pool};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct CountPrimes { below: u64 }
    ///
    /// impl Call for CountPrimes {
    ///     const NAME: &'static str = "count_primes";
    ///     type Reply = u64;
    /// }
    ///
    /// # async fn demo(pool: Pool) -> Result<(), lpm_actors::Error> {
    /// let primes: u64 = pool.call(CountPrimes { below: 1_000_000 }).await?;
    /// assert_eq!(primes, 78_498);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// A reply of the wrong type does not compile:
    ///
    /// ```compile_fail
    /// # use serde::{Deserialize, Serialize};
    /// # use lpm_actors::{Call, Pool};
    /// # #[derive(Serialize, Deserialize)] struct CountPrimes { below: u64 }
    /// # impl Call for CountPrimes { const NAME: &'static str = "count_primes"; type Reply = u64; }
    /// # async fn demo(pool: Pool) -> Result<(), lpm_actors::Error> {
    /// let primes: String = pool.call(CountPrimes { below: 1_000_000 }).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn call<C: Call>(
        &self,
        call: C,
    ) -> impl Future<Output = Result<C::Reply, Error>> + Send + '_ {
        self.send(Enqueue::call(call))
    }

    /// Enqueues an untyped `payload`, encoded in the pool's codec, with the
    /// pool's default timeout and retries; the worker's untyped handler
    /// (`Worker::on_request`) serves it.
    ///
    /// # Errors
    ///
    /// Any request error: see [`Error`].
    pub fn enqueue<T: Serialize + ?Sized>(
        &self,
        payload: &T,
    ) -> impl Future<Output = Result<Response, Error>> + Send + '_ {
        let submitted = Enqueue::encoded(self.codec, payload).and_then(|r| self.submit(r));
        async move { submitted?.answer::<Raw>().await }
    }

    /// Enqueues a request with its own options: a typed call
    /// ([`Enqueue::call`], answering `C::Reply`) or untyped bytes
    /// ([`Enqueue::new`], answering the [`Response`]).
    ///
    /// The request is queued when `send` is called; dropping the returned
    /// future (polled or not) cancels it: a queued one is removed, an
    /// in-flight one frees its worker's slot at once and the worker's
    /// `Request::cancelled()` fires.
    ///
    /// # Errors
    ///
    /// Any request error: see [`Error`].
    pub fn send<B: Body>(
        &self,
        request: Enqueue<B>,
    ) -> impl Future<Output = Result<B::Output, Error>> + Send + '_ {
        let submitted = self.submit(request);
        async move { submitted?.answer::<B>().await }
    }

    /// Encodes the request and hands it to the balancer at once, so the
    /// future that waits for its answer holds little.
    ///
    /// A caller that submits faster than the balancer takes requests in (a
    /// loop that never yields) meets `QueueFull` once `queue_capacity` of
    /// them are on their way: the intake is bounded before the queue is.
    fn submit<B: Body>(&self, request: Enqueue<B>) -> Result<Submitted<'_>, Error> {
        let mut job = request.into_job(self.codec)?;
        let must_fit = !job.options.wait_for_room;
        if !self.counters.enter_intake(self.queue_capacity, must_fit) {
            self.counters.metrics.failed(ErrorKind::QueueFull);
            return Err(Error::QueueFull {
                capacity: self.queue_capacity,
            });
        }
        let (reply, rx) = oneshot::channel();
        let id = RequestId::new_v4();
        job.open_trace(id);
        if self
            .submit
            .send(Submission::Request { id, job, reply })
            .is_err()
        {
            self.counters.leave_intake();
            self.counters.metrics.failed(ErrorKind::PoolStopped);
            return Err(Error::PoolStopped);
        }
        Ok(Submitted {
            submit: &self.submit,
            id: Some(id),
            rx,
        })
    }
    /// An actix recipient for requests of one body type, so an actor of
    /// yours can hold it and forward to the pool. The pool's [`Balancer`]
    /// handles the message; a caller that stops waiting cancels it, as
    /// with [`Pool::send`].
    ///
    /// # Examples
    ///
    /// An actor that counts primes through the pool:
    ///
    /// ```no_run
    /// use actix::prelude::*;
    /// use lpm_actors::{Call, Enqueue, Error, Pool};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct CountPrimes { below: u64 }
    /// # impl Call for CountPrimes { const NAME: &'static str = "count_primes"; type Reply = u64; }
    ///
    /// struct Census {
    ///     primes: Recipient<Enqueue<CountPrimes>>,
    /// }
    ///
    /// impl Actor for Census {
    ///     type Context = Context<Self>;
    /// }
    ///
    /// #[derive(Message)]
    /// #[rtype(result = "Result<u64, Error>")]
    /// struct HowMany(u64);
    ///
    /// impl Handler<HowMany> for Census {
    ///     type Result = ResponseFuture<Result<u64, Error>>;
    ///
    ///     fn handle(&mut self, msg: HowMany, _: &mut Context<Self>) -> Self::Result {
    ///         let request = self.primes.send(Enqueue::call(CountPrimes { below: msg.0 }));
    ///         Box::pin(async move { request.await.map_err(|_| Error::PoolStopped)? })
    ///     }
    /// }
    ///
    /// # async fn demo(pool: Pool) -> Result<(), Error> {
    /// let census = Census { primes: pool.recipient() }.start();
    /// let primes = census.send(HowMany(100)).await.map_err(|_| Error::PoolStopped)??;
    /// assert_eq!(primes, 25);
    /// # Ok(())
    /// # }
    /// ```
    pub fn recipient<B: Body>(&self) -> Recipient<Enqueue<B>> {
        self.balancer.clone().recipient()
    }

    /// The pool's payload codec ([`Config::codec`]).
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Waits until every worker has said ready once (returns at once if that
    /// already happened).
    ///
    /// # Errors
    ///
    /// [`Error::RestartLimit`] when a worker slot was given up before the pool
    /// came online (the workers crash at start, say), [`Error::ShuttingDown`]
    /// when a kill started first, [`Error::PoolStopped`] when the supervisor is gone.
    pub async fn online(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.supervisor.do_send(WhenOnline(tx));
        rx.await.unwrap_or(Err(Error::PoolStopped))
    }

    /// Health of every worker slot.
    ///
    /// # Errors
    ///
    /// [`Error::PoolStopped`] when the supervisor is gone.
    pub async fn health(&self) -> Result<Vec<WorkerHealth>, Error> {
        self.supervisor
            .send(Health)
            .await
            .map_err(|_| Error::PoolStopped)
    }

    /// A snapshot of the pool's numbers: requests by outcome, retries,
    /// timeouts, restarts by reason, recycles, the queue's depth and its
    /// high-water mark, queue-wait and service-time histograms, and each
    /// worker's RSS, CPU and in flight (see [`Metrics`]). The same as
    /// sending [`Measure`] to the supervisor.
    ///
    /// The counts cover the pool's life: they survive worker restarts.
    /// Each call samples every worker (as [`Pool::health`] does), so call it
    /// when a scrape or a progress line needs it, not per request.
    ///
    /// # Errors
    ///
    /// [`Error::PoolStopped`] when the supervisor is gone.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(pool: lpm_actors::Pool) -> Result<(), lpm_actors::Error> {
    /// let metrics = pool.metrics().await?;
    /// println!("{metrics}");
    /// println!("queue wait p99: {:?}", metrics.queue_wait.p99());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn metrics(&self) -> Result<Metrics, Error> {
        self.supervisor
            .send(Measure)
            .await
            .map_err(|_| Error::PoolStopped)
    }

    /// Sends the event `E` to every live worker (their handler for
    /// `E::NAME`, `Worker::subscribe`); answers how many.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`], or [`Error::PoolStopped`] when the supervisor is gone.
    pub async fn publish<E: Topic>(&self, event: &E) -> Result<usize, Error> {
        self.broadcast(E::NAME, event).await
    }

    /// Sends the untyped event `name` with `payload` to every live worker; answers how many.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`], or [`Error::PoolStopped`] when the supervisor is gone.
    pub async fn broadcast<T: Serialize + ?Sized>(
        &self,
        name: &str,
        payload: &T,
    ) -> Result<usize, Error> {
        let payload = encode_payload(self.codec, payload)?;
        self.supervisor
            .send(Broadcast {
                name: name.to_owned(),
                payload,
            })
            .await
            .map_err(|_| Error::PoolStopped)
    }

    /// Sends the event `name` with `payload` and the listening socket
    /// `listener` to every live worker, so they all accept connections on
    /// the same address; answers how many workers it reached. Workers
    /// started later get it too: the pool keeps the listener until it stops.
    /// See [`BroadcastListener`](crate::BroadcastListener).
    ///
    /// # Errors
    ///
    /// [`Error::Encode`], [`Error::NoFdPassing`] when the workers are on the
    /// stdio transport, or [`Error::PoolStopped`] when the supervisor is gone.
    pub async fn broadcast_listener<T: Serialize + ?Sized>(
        &self,
        name: &str,
        payload: &T,
        listener: impl Into<crate::Listener>,
    ) -> Result<usize, Error> {
        let payload = encode_payload(self.codec, payload)?;
        self.supervisor
            .send(crate::BroadcastListener {
                name: name.to_owned(),
                payload,
                listener: listener.into(),
            })
            .await
            .map_err(|_| Error::PoolStopped)?
    }

    /// Grows or shrinks the pool; see [`Resize`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSize`] for 0, [`Error::ShuttingDown`] during a kill,
    /// [`Error::Autoscaling`] while the pool autoscales.
    pub async fn resize(&self, workers: usize) -> Result<(), Error> {
        self.supervisor
            .send(Resize(workers))
            .await
            .map_err(|_| Error::PoolStopped)?
    }

    /// Replaces every worker with one running `command`, one slot at a time
    /// and successor first, so the pool never drops below strength and no
    /// request fails; resolves once every slot is replaced, or the reload
    /// stopped. See [`Reload`].
    ///
    /// # Errors
    ///
    /// [`Error::ReloadInProgress`] while another reload runs,
    /// [`Error::ShuttingDown`] during a kill, [`Error::PoolStopped`] when the
    /// supervisor is gone. A reload that stops early is no `Err`: its
    /// report's `error` says why ([`Error::ReloadFailed`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use lpm_actors::{Pool, PoolEvent, WorkerCommand};
    ///
    /// # async fn demo(pool: Pool) -> Result<(), lpm_actors::Error> {
    /// let report = pool.reload(WorkerCommand::new("./my-worker-v2")).await?;
    /// match report.error {
    ///     None => println!("{} workers replaced", report.replaced.len()),
    ///     Some(e) => eprintln!("reload stopped, old workers kept: {e}"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn reload(&self, command: WorkerCommand) -> Result<ReloadReport, Error> {
        self.supervisor
            .send(Reload(command))
            .await
            .map_err(|_| Error::PoolStopped)?
    }

    /// The pool's events from now on, as a stream.
    pub fn events(&self) -> EventStream {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        self.supervisor.do_send(SubscribeStream(tx));
        EventStream { rx }
    }

    /// Delivers the pool's events to an actor.
    pub fn subscribe(&self, recipient: Recipient<crate::PoolEvent>) {
        self.supervisor.do_send(Subscribe(recipient));
    }

    /// Soft kill; see [`SoftKill`](crate::SoftKill). The kill starts when this is called,
    /// not when the future is first polled; the future resolves when every
    /// child is reaped. Dropping it does not stop the kill.
    ///
    /// # Errors
    ///
    /// [`Error::PoolStopped`] when the supervisor is gone (its actix System stopped).
    pub fn soft_kill(&self) -> impl Future<Output = Result<KillReport, Error>> + Send + 'static {
        self.start_kill(false)
    }

    /// Hard kill; see [`HardKill`](crate::HardKill). As with [`Pool::soft_kill`], it starts
    /// when called and resolves when every child is reaped.
    ///
    /// # Errors
    ///
    /// [`Error::PoolStopped`] when the supervisor is gone.
    pub fn hard_kill(&self) -> impl Future<Output = Result<KillReport, Error>> + Send + 'static {
        self.start_kill(true)
    }

    fn start_kill(&self, hard: bool) -> impl Future<Output = Result<KillReport, Error>> {
        let (report, rx) = oneshot::channel();
        // `do_send` queues at once, whatever the mailbox's capacity.
        self.supervisor.do_send(StartKill { hard, report });
        async move { rx.await.map_err(|_| Error::PoolStopped) }
    }

    /// The supervisor actor, for sending it messages directly.
    pub fn supervisor(&self) -> &Addr<Supervisor> {
        &self.supervisor
    }

    /// The balancer actor, which takes [`Enqueue`] messages directly.
    pub fn balancer(&self) -> &Addr<Balancer> {
        &self.balancer
    }
}
