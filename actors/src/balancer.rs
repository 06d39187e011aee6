//! The Balancer actor: the bounded request queue and every worker's load.
//!
//! Requests go straight to a worker when one can take them, else wait in the
//! queue. Assignments made in one mailbox turn are sent as one [`Assign`] per
//! worker, so a burst of requests reaches each child in one write.
//!
//! The rules live in [`Dispatch`], a state machine without actix; this actor
//! feeds it the mailbox, the submissions channel and the clock, and does
//! what it asks: send batches and cancellations, arm its timer, tell a soft
//! kill that the queue drained.

mod answer;
mod catalog;
mod dispatch;
mod pick;
mod queue;
mod workers;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use lpm_protocol::RequestId;
use tokio::sync::oneshot;

use crate::alarm::Alarm;
use crate::health::WorkerState;
use crate::id::WorkerId;
use crate::request::{Body, Counters, Defaults, Job, Load, Pending, Reply};
use crate::worker_handle::Assign;
use crate::{Config, Enqueue, Error};
pub use answer::Answer;
pub(crate) use catalog::CallId;
use dispatch::{Dispatch, Notice, WhenFull};

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

/// A worker said hello: these are the calls it serves, and whether it
/// takes descriptors (else the transport that keeps it from them).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct WorkerCalls {
    pub(crate) id: WorkerId,
    pub(crate) calls: Arc<[Box<str>]>,
    pub(crate) refuses_fds: Option<crate::Transport>,
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

/// Asks what the queue and the workers look like now, for the autoscaler.
#[derive(Debug, Message)]
#[rtype(result = "Observed")]
pub(crate) struct Observe;

/// The answer to [`Observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Observed {
    /// Requests waiting in the queue.
    pub(crate) queued: usize,
    /// How long the first of them has waited since it was enqueued.
    pub(crate) oldest_wait: Option<std::time::Duration>,
    /// Ready workers holding no request.
    pub(crate) idle: usize,
    /// Workers holding requests, or that said busy.
    pub(crate) busy: usize,
}

/// Where a worker's handle takes its messages.
#[derive(Debug)]
struct Peer {
    assign: Recipient<Assign>,
    cancel: Recipient<CancelRequests>,
}

/// Holds the request queue and each worker's load, and assigns requests to workers.
#[derive(Debug)]
pub struct Balancer {
    /// Requests from [`Pool::send`](crate::Pool::send): a channel, not the
    /// mailbox, so a request costs no envelope and whole bursts arrive as one batch.
    /// Shared with the stream that feeds them in, so that a control message
    /// (close, kill) first takes in the requests sent before it.
    submissions: Submissions,
    dispatch: Dispatch,
    /// Keyed by worker, not slot: a recycled worker's successor serves beside it.
    peers: HashMap<WorkerId, Peer>,
    defaults: Defaults,
    flush_scheduled: bool,
    expiry: Alarm,
    /// Soft kills waiting for the queue to drain.
    drained: Vec<oneshot::Sender<()>>,
}

type Submissions = Arc<std::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Submission>>>;

impl Balancer {
    pub(crate) fn new(
        config: &Config,
        counters: Arc<Counters>,
        submissions: tokio::sync::mpsc::UnboundedReceiver<Submission>,
    ) -> Self {
        Self {
            submissions: Arc::new(std::sync::Mutex::new(submissions)),
            dispatch: Dispatch::new(config, Arc::clone(&counters)),
            peers: HashMap::new(),
            defaults: Defaults {
                timeout: config.timeout,
                retries: config.retries,
                codec: config.codec,
                counters,
            },
            flush_scheduled: false,
            expiry: Alarm::default(),
            drained: Vec::new(),
        }
    }

    fn admit(&mut self, id: RequestId, job: Job, reply: Reply, now: Instant) {
        let when_full = if job.options.wait_for_room {
            WhenFull::Wait
        } else {
            WhenFull::Fail
        };
        let pending = Pending::new(id, job, reply, &self.defaults, now);
        self.dispatch.admit(pending, when_full);
    }

    /// Does what the dispatch asks after an event: passes its notices on,
    /// sends this turn's batches when the turn ends, and keeps its timer armed.
    fn follow(&mut self, ctx: &mut Context<Self>) {
        while let Some(notice) = self.dispatch.poll_notice() {
            match notice {
                Notice::Cancel(ids) => {
                    for peer in self.peers.values() {
                        peer.cancel.do_send(CancelRequests(Arc::clone(&ids)));
                    }
                }
                Notice::Drained => {
                    for tx in self.drained.drain(..) {
                        let _ = tx.send(());
                    }
                }
            }
        }
        if self.dispatch.has_assignments() && !self.flush_scheduled {
            self.flush_scheduled = true;
            // Runs after the rest of this mailbox turn, so a burst becomes one Assign per worker.
            ctx.spawn(fut::ready(()).map(|(), act: &mut Self, ctx| act.flush(ctx)));
        }
        if let Some(at) = self.dispatch.poll_timeout() {
            self.expiry.arm(at, ctx, |act, ctx| {
                act.expiry.rang();
                act.dispatch.handle_timeout(Instant::now());
                act.follow(ctx);
            });
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        self.flush_scheduled = false;
        // One clock read per turn: the queue wait of every request sent now ends here.
        let now = Instant::now();
        while let Some((worker, mut batch)) = self.dispatch.poll_assign() {
            match self.peers.get(&worker) {
                Some(peer) if peer.assign.connected() => {
                    for pending in &mut batch {
                        pending.dispatched(now);
                    }
                    peer.assign.do_send(Assign(batch));
                }
                // The handle is gone; its exit report will follow. Keep the requests.
                _ => self.dispatch.bounce(worker, batch),
            }
        }
        self.follow(ctx);
    }

    /// Handles a control message that arrives through the mailbox: admits
    /// the requests already sent first, so they keep their place before it,
    /// runs `act`, then follows. The follow is not optional: a request just
    /// admitted may be assigned, and only a flush sends it (in a quiet pool
    /// no other event would schedule one).
    fn control<R>(&mut self, ctx: &mut Context<Self>, act: impl FnOnce(&mut Self) -> R) -> R {
        self.take_submissions();
        let result = act(self);
        self.follow(ctx);
        result
    }

    fn take_submissions(&mut self) {
        let rx = Arc::clone(&self.submissions);
        let mut batch = Vec::new();
        {
            let mut rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            while let Ok(submission) = rx.try_recv() {
                batch.push(submission);
            }
        }
        self.take_in(batch);
    }

    /// Admits a batch of submissions in order, then acts on its cancellations.
    fn take_in(&mut self, batch: Vec<Submission>) {
        if batch.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut cancelled = Vec::new();
        for submission in batch {
            match submission {
                Submission::Request { id, job, reply } => {
                    self.defaults.counters.leave_intake();
                    self.admit(id, job, reply, now);
                }
                Submission::Cancel(id) => cancelled.push(id),
            }
        }
        if !cancelled.is_empty() {
            self.dispatch.cancel(cancelled);
        }
    }
}

impl Actor for Balancer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.defaults.counters.debug_assert_home("Balancer");
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
        self.take_in(batch);
        self.follow(ctx);
    }

    // Every Pool is gone: requests only come from direct messages now.
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl<B: Body> Handler<Enqueue<B>> for Balancer {
    type Result = Answer<B>;

    fn handle(&mut self, msg: Enqueue<B>, ctx: &mut Context<Self>) -> Answer<B> {
        let mut job = match msg.into_job(self.defaults.codec) {
            Ok(job) => job,
            Err(e) => return Answer(answer::Inner::Now(Err(e))),
        };
        let (tx, rx) = oneshot::channel();
        let id = RequestId::new_v4();
        job.open_trace(id);
        self.admit(id, job, tx, Instant::now());
        self.follow(ctx);
        Answer(answer::Inner::Later {
            id,
            rx,
            balancer: ctx.address().downgrade(),
        })
    }
}

impl Handler<CancelRequest> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: CancelRequest, ctx: &mut Context<Self>) {
        self.dispatch.cancel(vec![msg.0]);
        self.follow(ctx);
    }
}

impl Handler<Requeue> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: Requeue, ctx: &mut Context<Self>) {
        self.dispatch.requeue(msg.0);
        self.follow(ctx);
    }
}

impl Handler<WorkerJoined> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: WorkerJoined, ctx: &mut Context<Self>) {
        self.peers.insert(
            msg.id,
            Peer {
                assign: msg.assign,
                cancel: msg.cancel,
            },
        );
        self.dispatch.worker_joined(msg.id, msg.load);
        self.follow(ctx);
    }
}

impl Handler<WorkerCalls> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: WorkerCalls, ctx: &mut Context<Self>) {
        self.dispatch.worker_calls(msg.id, &msg.calls);
        self.dispatch.worker_fds(msg.id, msg.refuses_fds);
        self.follow(ctx);
    }
}

impl Handler<WorkerLeft> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: WorkerLeft, ctx: &mut Context<Self>) {
        self.peers.remove(&msg.id);
        self.dispatch.worker_left(msg.id);
        self.follow(ctx);
    }
}

impl Handler<WorkerStatus> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: WorkerStatus, ctx: &mut Context<Self>) {
        self.dispatch.worker_status(msg.id, msg.state);
        self.follow(ctx);
    }
}

impl Handler<Freed> for Balancer {
    type Result = ();

    fn handle(&mut self, _msg: Freed, ctx: &mut Context<Self>) {
        self.dispatch.freed();
        self.follow(ctx);
    }
}

impl Handler<LoadSample> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: LoadSample, _ctx: &mut Context<Self>) {
        self.dispatch.load_sample(msg.id, msg.rss);
    }
}

impl Handler<Close> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) {
        self.control(ctx, |act| {
            act.drained.push(msg.drained);
            act.dispatch.close();
        });
    }
}

impl Handler<FailQueued> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: FailQueued, ctx: &mut Context<Self>) {
        self.control(ctx, |act| act.dispatch.fail_queued(msg.0));
    }
}

impl Handler<Observe> for Balancer {
    type Result = MessageResult<Observe>;

    fn handle(&mut self, _msg: Observe, ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.control(ctx, |act| {
            act.dispatch.observe(lpm_protocol::Timestamp::now())
        }))
    }
}

impl Handler<PoolDown> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: PoolDown, ctx: &mut Context<Self>) {
        self.control(ctx, |act| act.dispatch.pool_down(msg.0));
    }
}

#[cfg(test)]
mod tests;
