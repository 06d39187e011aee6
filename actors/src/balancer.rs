//! The Balancer actor: the bounded request queue and every worker's load.
//!
//! Requests go straight to a worker when one can take them, else wait in the
//! queue. Assignments made in one mailbox turn are sent as one [`Assign`] per
//! worker, so a burst of requests reaches each child in one write.

mod answer;
mod catalog;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use lpm_protocol::{Codec, RequestId};
use tokio::sync::oneshot;

use crate::alarm::Alarm;
use crate::balance::{Balance, Candidate};
use crate::health::WorkerState;
use crate::id::WorkerId;
use crate::request::{Body, Job};
use crate::request::{Counters, FdNeed, Load, LoadGuard, Pending, Reply};
use crate::worker_handle::Assign;
use crate::{Config, Enqueue, Error};
pub use answer::Answer;
pub(crate) use catalog::CallId;
use catalog::{Catalog, Numbers};

/// What [`Pool::send`](crate::Pool::send) hands over, through a channel
/// rather than the mailbox.
#[derive(Debug)]
pub(crate) enum Submission {
    /// A request with its id and the caller's own reply channel.
    Request {
        id: RequestId,
        job: Job,
        reply: Reply,
    },
    /// The caller of this request stopped waiting (dropped its future).
    Cancel(RequestId),
}

/// Requests whose callers stopped waiting: the worker holding one drops it
/// and tells its process.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct CancelRequests(pub(crate) Arc<[RequestId]>);

/// Puts requests back at the front of the queue (their worker died or they timed out
/// with retries left).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Requeue(pub(crate) Vec<Pending>);

/// A new worker process exists; it gets work once it says ready.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct WorkerJoined {
    pub(crate) id: WorkerId,
    pub(crate) assign: Recipient<Assign>,
    pub(crate) cancel: Recipient<CancelRequests>,
    pub(crate) load: Arc<Load>,
}

/// A worker said hello: these are the calls it serves.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct WorkerCalls {
    pub(crate) id: WorkerId,
    pub(crate) calls: Arc<[Box<str>]>,
}

/// The caller of an [`Enqueue`] sent as an actix message stopped waiting.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct CancelRequest(pub(crate) RequestId);

/// A worker process is gone.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct WorkerLeft {
    pub(crate) id: WorkerId,
}

/// A worker became ready, busy or draining.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct WorkerStatus {
    pub(crate) id: WorkerId,
    pub(crate) state: WorkerState,
}

/// A worker finished some requests and may take more.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Freed;

/// A fresh RSS sample for a worker.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct LoadSample {
    pub(crate) id: WorkerId,
    pub(crate) rss: u64,
}

/// Stops taking new requests; resolves once the queue is empty.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Close {
    pub(crate) drained: oneshot::Sender<()>,
}

/// Fails every queued request with the given error.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct FailQueued(pub(crate) Error);

/// Whether the pool can still serve: when no worker is left and none will
/// come back, new requests fail with [`Error::NoWorkers`], and queued ones
/// with the error of their last attempt if they had one, else `NoWorkers`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct PoolDown(pub(crate) bool);

/// What the balancer does with requests, as a kill progresses.
#[derive(Debug, Clone, PartialEq)]
enum Intake {
    /// Takes new requests.
    Open,
    /// Soft kill: no new requests; the queue is still served.
    Closed,
    /// Soft kill, queue drained (the workers are told to finish next): a
    /// request that comes back (its worker died or it timed out) fails with
    /// its last error, or `ShuttingDown` if it never had one.
    Sealed,
    /// Hard kill: everything fails with this error.
    Refusing(Error),
}

#[derive(Debug)]
struct Entry {
    id: WorkerId,
    assign: Recipient<Assign>,
    cancel: Recipient<CancelRequests>,
    load: Arc<Load>,
    state: WorkerState,
    rss: u64,
    batch: Vec<Pending>,
    /// Its numbers for the calls it serves, once it said hello.
    calls: Option<Numbers>,
}

impl Entry {
    fn can_take(&self, max_in_flight: usize) -> bool {
        self.state == WorkerState::Ready && self.load.in_flight() < max_in_flight
    }
}

/// Holds the request queue and each worker's load, and assigns requests to workers.
#[derive(Debug)]
pub struct Balancer {
    /// Requests from [`Pool::send`](crate::Pool::send): a channel, not the
    /// mailbox, so a request costs no envelope and whole bursts arrive as one batch.
    /// Shared with the stream that feeds them in, so that a control message
    /// (close, kill) first takes in the requests sent before it.
    submissions: Submissions,
    queue: VecDeque<Pending>,
    /// Keyed by worker, not slot: a recycled worker's successor serves beside it.
    workers: BTreeMap<WorkerId, Entry>,
    /// The strategy: this pool's own instance (`Config::strategy`).
    pick: Box<dyn Balance>,
    candidates: Vec<Candidate>,
    capacity: usize,
    max_in_flight: usize,
    /// Descriptors one worker may have in flight (`Config::max_fds_in_flight`).
    max_fds: usize,
    default_timeout: Option<Duration>,
    default_retries: u32,
    codec: Codec,
    /// The calls the workers that said hello serve, with how many serve each.
    catalog: Catalog,
    counters: Arc<Counters>,
    intake: Intake,
    /// No worker is left and none will come back.
    down: bool,
    flush_scheduled: bool,
    expiry: Alarm,
    drained: Vec<oneshot::Sender<()>>,
}

impl Balancer {
    pub(crate) fn new(
        config: &Config,
        counters: Arc<Counters>,
        submissions: tokio::sync::mpsc::UnboundedReceiver<Submission>,
    ) -> Self {
        Self {
            submissions: Arc::new(std::sync::Mutex::new(submissions)),
            queue: VecDeque::new(),
            workers: BTreeMap::new(),
            pick: config.strategy.instantiate(),
            candidates: Vec::new(),
            capacity: config.queue_capacity,
            max_in_flight: config.max_in_flight.max(1),
            max_fds: config.max_fds_in_flight.max(1),
            default_timeout: config.timeout,
            default_retries: config.retries,
            codec: config.codec,
            catalog: Catalog::default(),
            counters,
            intake: Intake::Open,
            down: false,
            flush_scheduled: false,
            expiry: Alarm::default(),
            drained: Vec::new(),
        }
    }

    fn admit(&mut self, id: RequestId, job: Job, reply: Reply, ctx: &mut Context<Self>) {
        let may_wait = job.options.wait_for_room;
        let mut pending = Pending::new(
            id,
            job,
            self.default_timeout,
            self.default_retries,
            self.codec,
            reply,
            Arc::clone(&self.counters),
        );
        if self.intake != Intake::Open {
            return pending.fail(Error::ShuttingDown);
        }
        if self.down {
            return pending.fail(Error::NoWorkers);
        }
        let Ok(call_id) = self.catalog.admit(pending.call.as_deref()) else {
            let error = pending.not_handled();
            return pending.fail(error);
        };
        pending.call_id = call_id;
        if self.queue.is_empty() {
            if let Some(worker) = self.pick_worker(None, pending.fd_need()) {
                return self.assign(worker, pending, ctx);
            }
        }
        if self.queue.len() >= self.capacity && !may_wait {
            return pending.fail(Error::QueueFull {
                capacity: self.capacity,
            });
        }
        // Behind a request that waits for a descriptor slot, a request
        // without one may still go now (see `pump`).
        let may_pass = pending.fd_need() == FdNeed::None
            && self
                .queue
                .front()
                .is_some_and(|p| p.fd_need() != FdNeed::None);
        self.arm_expiry(pending.deadline.into_iter(), ctx);
        self.queue.push_back(pending);
        self.counters.set_queued(self.queue.len());
        if may_pass {
            self.pump(ctx);
        }
    }

    /// Picks a worker that can take a request now, not the one in slot `avoid`
    /// unless it is the only one. A request with a descriptor needs a worker
    /// below its descriptor limit; a socket goes to one of the workers
    /// holding the fewest sockets, then by pressure.
    fn pick_worker(&mut self, avoid: Option<usize>, fd: FdNeed) -> Option<WorkerId> {
        self.candidates.clear();
        let max = self.max_in_flight;
        let max_fds = self.max_fds;
        let eligible =
            move |w: &&Entry| w.can_take(max) && (fd == FdNeed::None || w.load.fds() < max_fds);
        let fewest_sockets = match fd {
            FdNeed::Socket => self
                .workers
                .values()
                .filter(eligible)
                .map(|w| w.load.sockets())
                .min(),
            _ => None,
        };
        self.candidates.extend(
            self.workers
                .values()
                .filter(eligible)
                .filter(|w| fewest_sockets.is_none_or(|n| w.load.sockets() == n))
                .map(|w| Candidate {
                    slot: w.id.slot,
                    generation: w.id.generation,
                    in_flight: w.load.in_flight(),
                    rss: w.rss,
                    fds_in_flight: w.load.fds(),
                    sockets: w.load.sockets(),
                }),
        );
        if let Some(avoid) = avoid {
            if self.candidates.iter().any(|c| c.slot() != avoid) {
                self.candidates.retain(|c| c.slot() != avoid);
            }
        }
        if self.candidates.is_empty() {
            return None;
        }
        let picked = self.pick.pick(&self.candidates);
        let picked = self.candidates.get(picked).unwrap_or_else(|| {
            tracing::warn!(
                picked,
                candidates = self.candidates.len(),
                strategy = ?self.pick,
                "the balancing strategy picked an index out of range; taking the first candidate"
            );
            &self.candidates[0]
        });
        Some(WorkerId {
            slot: picked.slot(),
            generation: picked.generation(),
        })
    }

    fn assign(&mut self, worker: WorkerId, mut pending: Pending, ctx: &mut Context<Self>) {
        let Some(worker) = self.workers.get_mut(&worker) else {
            self.queue.push_front(pending);
            return self.counters.set_queued(self.queue.len());
        };
        let mut load = LoadGuard::new(&worker.load);
        if pending.fd_need() != FdNeed::None {
            load.count_fd();
        }
        pending.load = Some(load);
        pending.wire_call = wire_call(&self.catalog, worker.calls.as_ref(), &pending);
        worker.batch.push(pending);
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            // Runs after the rest of this mailbox turn, so a burst becomes one Assign per worker.
            ctx.spawn(fut::ready(()).map(|(), act: &mut Self, ctx| act.flush(ctx)));
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        self.flush_scheduled = false;
        let mut bounced = Vec::new();
        for worker in self.workers.values_mut() {
            if worker.batch.is_empty() {
                continue;
            }
            let batch = std::mem::take(&mut worker.batch);
            if worker.assign.connected() {
                worker.assign.do_send(Assign(batch));
            } else {
                // The handle is gone; its exit report will follow. Keep the requests.
                worker.state = WorkerState::Stopped;
                bounced.extend(batch);
            }
        }
        if !bounced.is_empty() {
            self.requeue(bounced, ctx);
        }
    }

    fn requeue(&mut self, requests: Vec<Pending>, ctx: &mut Context<Self>) {
        self.arm_expiry(requests.iter().filter_map(|p| p.deadline), ctx);
        for mut p in requests.into_iter().rev() {
            p.load = None;
            if let Intake::Refusing(error) = &self.intake {
                p.fail(error.clone());
            } else if self.intake == Intake::Sealed {
                p.fail_with_last(Error::ShuttingDown);
            } else if self.down {
                p.fail_with_last(Error::NoWorkers);
            } else {
                // They waited longest: first in line. The queue bound is for new requests.
                self.queue.push_front(p);
            }
        }
        self.pump(ctx);
    }

    /// Moves queued requests to workers while any can take them, in order.
    ///
    /// Requests with a stream or socket also wait for a worker below its
    /// descriptor limit: while none is, they keep their place and the
    /// requests without one behind them go on (each kind stays in order).
    /// A request without a descriptor that finds no worker stops the pass,
    /// since no worker can take anything then.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let mut i = 0;
        let mut fds_blocked = false;
        while let Some(next) = self.queue.get(i) {
            if next.is_abandoned() {
                // Dropped before the pick: the strategy sees only dispatches.
                if let Some(pending) = self.queue.remove(i) {
                    pending.abandon();
                }
                continue;
            }
            let need = next.fd_need();
            if fds_blocked && need != FdNeed::None {
                i += 1;
                continue;
            }
            let Some(worker) = self.pick_worker(next.avoid, need) else {
                if need == FdNeed::None {
                    break;
                }
                fds_blocked = true;
                i += 1;
                continue;
            };
            let Some(pending) = self.queue.remove(i) else {
                break;
            };
            self.assign(worker, pending, ctx);
        }
        self.counters.set_queued(self.queue.len());
        if self.queue.is_empty() {
            self.queue_emptied();
        }
    }

    /// Tells a soft kill waiting for the queue that it is empty, and seals it:
    /// the workers are told to finish next, so nothing queued later could be served.
    fn queue_emptied(&mut self) {
        for tx in self.drained.drain(..) {
            let _ = tx.send(());
        }
        if self.intake == Intake::Closed {
            self.intake = Intake::Sealed;
        }
    }

    /// Keeps the expiry alarm armed for the earliest of these deadlines.
    fn arm_expiry(&mut self, deadlines: impl Iterator<Item = Instant>, ctx: &mut Context<Self>) {
        if let Some(earliest) = deadlines.min() {
            self.expiry.arm(earliest, ctx, |act, ctx| {
                act.expiry.rang();
                act.expire(ctx);
            });
        }
    }

    /// Fails queued requests whose deadline passed. They are not retried:
    /// another attempt would only wait in the same queue.
    fn expire(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let (expired, kept): (VecDeque<Pending>, VecDeque<Pending>) = self
            .queue
            .drain(..)
            .partition(|p| p.deadline.is_some_and(|d| d <= now));
        self.queue = kept;
        for p in expired {
            let error = p.timeout_error();
            p.fail(error);
        }
        let deadlines: Vec<Instant> = self.queue.iter().filter_map(|p| p.deadline).collect();
        self.arm_expiry(deadlines.into_iter(), ctx);
        self.pump(ctx);
    }

    /// Fails every queued request with `error`, or with the error of its last
    /// attempt when it had one and `prefer_last` is set.
    fn fail_queued(&mut self, error: &Error, prefer_last: bool) {
        for p in self.queue.drain(..) {
            if prefer_last {
                p.fail_with_last(error.clone());
            } else {
                p.fail(error.clone());
            }
        }
        self.counters.set_queued(0);
        self.queue_emptied();
    }
}

type Submissions = Arc<std::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Submission>>>;

impl Balancer {
    /// Admits the requests already sent, so they keep their place before a
    /// control message that arrives through the mailbox.
    fn take_submissions(&mut self, ctx: &mut Context<Self>) {
        let rx = Arc::clone(&self.submissions);
        let mut batch = Vec::new();
        {
            let mut rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            while let Ok(submission) = rx.try_recv() {
                batch.push(submission);
            }
        }
        self.take_in(batch, ctx);
    }

    /// Admits a batch of submissions in order, then acts on its cancellations.
    fn take_in(&mut self, batch: Vec<Submission>, ctx: &mut Context<Self>) {
        let mut cancelled = Vec::new();
        for submission in batch {
            match submission {
                Submission::Request { id, job, reply } => self.admit(id, job, reply, ctx),
                Submission::Cancel(id) => cancelled.push(id),
            }
        }
        if !cancelled.is_empty() {
            self.cancel(cancelled);
        }
    }

    /// Removes cancelled requests from the queue (one pass for the batch), and
    /// tells the workers about the others, which are in flight or on their way.
    fn cancel(&mut self, ids: Vec<RequestId>) {
        // Their callers are gone, so their reply channels are closed.
        let (gone, kept): (VecDeque<Pending>, VecDeque<Pending>) =
            self.queue.drain(..).partition(Pending::is_abandoned);
        self.queue = kept;
        if !gone.is_empty() {
            gone.into_iter().for_each(Pending::abandon);
            self.counters.set_queued(self.queue.len());
            if self.queue.is_empty() {
                self.queue_emptied();
            }
        }
        let ids: Arc<[RequestId]> = ids.into();
        for w in self.workers.values() {
            w.cancel.do_send(CancelRequests(Arc::clone(&ids)));
        }
    }
}

impl Actor for Balancer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.counters.debug_assert_home("Balancer");
        let rx = Arc::clone(&self.submissions);
        // Each item is everything queued at that moment (up to 1024).
        ctx.add_stream(futures::stream::poll_fn(move |cx| {
            let mut rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            // Sized to what is queued; no allocation for a poll that finds nothing.
            let mut batch = Vec::with_capacity(rx.len().min(1024));
            match rx.poll_recv_many(cx, &mut batch, 1024) {
                std::task::Poll::Ready(0) => std::task::Poll::Ready(None),
                std::task::Poll::Ready(_) => std::task::Poll::Ready(Some(batch)),
                std::task::Poll::Pending => std::task::Poll::Pending,
            }
        }));
    }
}

impl StreamHandler<Vec<Submission>> for Balancer {
    fn handle(&mut self, batch: Vec<Submission>, ctx: &mut Context<Self>) {
        self.take_in(batch, ctx);
    }

    // Every Pool is gone: requests only come from direct messages now.
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl<B: Body> Handler<Enqueue<B>> for Balancer {
    type Result = Answer<B>;

    fn handle(&mut self, msg: Enqueue<B>, ctx: &mut Context<Self>) -> Answer<B> {
        let job = match msg.into_job(self.codec) {
            Ok(job) => job,
            Err(e) => return Answer(answer::Inner::Now(Err(e))),
        };
        let (tx, rx) = oneshot::channel();
        let id = RequestId::new_v4();
        self.admit(id, job, tx, ctx);
        Answer(answer::Inner::Later {
            id,
            rx,
            balancer: ctx.address().downgrade(),
        })
    }
}

impl Handler<CancelRequest> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: CancelRequest, _ctx: &mut Context<Self>) {
        self.cancel(vec![msg.0]);
    }
}

impl Handler<Requeue> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: Requeue, ctx: &mut Context<Self>) {
        self.requeue(msg.0, ctx);
    }
}

impl Handler<WorkerJoined> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: WorkerJoined, _ctx: &mut Context<Self>) {
        self.down = false;
        self.forget_calls(msg.id);
        self.workers.insert(
            msg.id,
            Entry {
                id: msg.id,
                assign: msg.assign,
                cancel: msg.cancel,
                load: msg.load,
                state: WorkerState::Starting,
                rss: 0,
                batch: Vec::new(),
                calls: None,
            },
        );
    }
}

impl Handler<WorkerLeft> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: WorkerLeft, ctx: &mut Context<Self>) {
        self.forget_calls(msg.id);
        if let Some(entry) = self.workers.remove(&msg.id) {
            if !entry.batch.is_empty() {
                self.requeue(entry.batch, ctx);
            }
        }
    }
}

impl Handler<WorkerCalls> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: WorkerCalls, _ctx: &mut Context<Self>) {
        let Some(entry) = self.workers.get_mut(&msg.id) else {
            return;
        };
        let first = self.catalog.is_empty();
        let numbers = self.catalog.add(&msg.calls);
        if let Some(old) = entry.calls.replace(numbers) {
            self.catalog.remove(&old);
        }
        if first {
            self.fail_unserved();
        }
    }
}

/// The number `worker` gave the request's call (`0` untyped), or `None`
/// when it does not serve it: an index, no hashing, for calls admitted once
/// a worker said what it serves; a lookup by name for those queued before.
fn wire_call(catalog: &Catalog, worker: Option<&Numbers>, pending: &Pending) -> Option<u32> {
    let Some(name) = pending.call.as_deref() else {
        return Some(0);
    };
    let id = pending.call_id.or_else(|| catalog.id(name))?;
    worker?.get(id)
}

impl Balancer {
    /// Takes a worker's calls out of the catalog.
    fn forget_calls(&mut self, id: WorkerId) {
        if let Some(calls) = self.workers.get_mut(&id).and_then(|w| w.calls.take()) {
            self.catalog.remove(&calls);
        }
    }

    /// Fails the queued calls no worker serves: they were queued before any
    /// worker said which calls it serves.
    fn fail_unserved(&mut self) {
        let (unserved, kept): (VecDeque<Pending>, VecDeque<Pending>) = self
            .queue
            .drain(..)
            .partition(|p| self.catalog.admit(p.call.as_deref()).is_err());
        self.queue = kept;
        for p in unserved {
            let error = p.not_handled();
            p.fail(error);
        }
        self.counters.set_queued(self.queue.len());
        if self.queue.is_empty() {
            self.queue_emptied();
        }
    }
}

impl Handler<WorkerStatus> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: WorkerStatus, ctx: &mut Context<Self>) {
        if let Some(w) = self.workers.get_mut(&msg.id) {
            w.state = msg.state;
        }
        self.pump(ctx);
    }
}

impl Handler<Freed> for Balancer {
    type Result = ();

    fn handle(&mut self, _msg: Freed, ctx: &mut Context<Self>) {
        self.pump(ctx);
    }
}

impl Handler<LoadSample> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: LoadSample, _ctx: &mut Context<Self>) {
        if let Some(w) = self.workers.get_mut(&msg.id) {
            w.rss = msg.rss;
        }
    }
}

impl Handler<Close> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) {
        self.take_submissions(ctx);
        if self.intake == Intake::Open {
            self.intake = Intake::Closed;
        }
        self.drained.push(msg.drained);
        self.pump(ctx);
    }
}

impl Handler<FailQueued> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: FailQueued, ctx: &mut Context<Self>) {
        self.take_submissions(ctx);
        self.fail_queued(&msg.0, false);
        self.intake = Intake::Refusing(msg.0);
    }
}

impl Handler<PoolDown> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: PoolDown, ctx: &mut Context<Self>) {
        self.take_submissions(ctx);
        self.down = msg.0;
        if msg.0 {
            self.fail_queued(&Error::NoWorkers, true);
        }
    }
}
