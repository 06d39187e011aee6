//! The balancer's rules without actix: the queue, the intake as a kill
//! progresses, and which worker gets each request.
//!
//! [`Dispatch`] is driven by events (a request admitted or back for another
//! attempt, a worker joined, ready, gone, a tick carrying `now`...) and then
//! polled for what to do: the batch to send each worker
//! ([`Dispatch::poll_assign`]), notices for the workers and the kill
//! ([`Dispatch::poll_notice`]), and when it next needs a tick
//! ([`Dispatch::poll_timeout`]). It reads no clock and sends no message;
//! callers' answers go out through each request's own reply channel. The
//! [`Balancer`](super::Balancer) actor is the shell that feeds it and does
//! what it says, as quinn's `Endpoint` drives `quinn-proto`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use lpm_protocol::RequestId;

use super::catalog::Catalog;
use super::pick::Key;
use super::queue::Queue;
use super::workers::Workers;
use crate::health::WorkerState;
use crate::id::WorkerId;
use crate::request::{Counters, FdNeed, Load, Pending};
use crate::{Config, Error};

/// What the balancer does with requests, as the pool's life goes on.
#[derive(Debug, Clone, PartialEq)]
enum Intake {
    /// Takes new requests.
    Open,
    /// No worker is left and none will come back: new requests fail with
    /// [`Error::NoWorkers`], returning ones with their last error (or that).
    /// A worker that joins opens it again.
    Down,
    /// Soft kill: no new requests; the queue is still served.
    Closed,
    /// Soft kill, queue drained (the workers are told to finish next): a
    /// request that comes back (its worker died or it timed out) fails with
    /// its last error, or `ShuttingDown` if it never had one.
    Sealed,
    /// Hard kill: everything fails with this error.
    Refusing(Error),
}

/// What a new request does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenFull {
    /// Fails with [`Error::QueueFull`].
    Fail,
    /// Waits in line past the bound (`Enqueue::wait_for_room`).
    Wait,
}

/// Something the shell must pass on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Notice {
    /// Tell every worker: these requests' callers stopped waiting.
    Cancel(Arc<[RequestId]>),
    /// The queue drained after a [`Dispatch::close`]: the soft kill goes on.
    Drained,
}

/// The queue and dispatch of one pool, as a state machine.
#[derive(Debug)]
pub(crate) struct Dispatch {
    queue: Queue,
    workers: Workers,
    /// The calls the workers that said hello serve, with how many serve each.
    catalog: Catalog,
    intake: Intake,
    capacity: usize,
    counters: Arc<Counters>,
    notices: VecDeque<Notice>,
}

impl Dispatch {
    pub(crate) fn new(config: &Config, counters: Arc<Counters>) -> Self {
        Self {
            queue: Queue::default(),
            workers: Workers::new(
                &config.strategy,
                config.max_in_flight,
                config.max_fds_in_flight,
            ),
            catalog: Catalog::default(),
            intake: Intake::Open,
            capacity: config.queue_capacity,
            counters,
            notices: VecDeque::new(),
        }
    }

    // Events.

    /// A new request: straight to a worker that can take it, else into the
    /// queue, else (full, closed, nobody serves its call) answered with the error.
    pub(crate) fn admit(&mut self, mut pending: Pending, when_full: WhenFull) {
        match self.intake {
            Intake::Open => {}
            Intake::Down => return pending.fail(Error::NoWorkers),
            Intake::Closed | Intake::Sealed | Intake::Refusing(_) => {
                return pending.fail(Error::ShuttingDown)
            }
        }
        let Ok(call_id) = self.catalog.admit(pending.call.as_deref()) else {
            let error = pending.not_handled();
            return pending.fail(error);
        };
        pending.call_id = call_id;
        if pending.fd_need() == FdNeed::Socket {
            if let Some(transport) = self.workers.refuses_sockets() {
                return pending.fail(Error::NoFdPassing {
                    what: "socket",
                    transport,
                });
            }
        }
        if self.queue.is_empty() {
            if let Some(worker) = self.workers.pick(None, pending.fd_need()) {
                return self.assign(worker, pending);
            }
        }
        if self.queue.len() >= self.capacity && when_full == WhenFull::Fail {
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
        self.queue.push_back(pending);
        if may_pass {
            self.pump();
        } else {
            self.settle();
        }
    }

    /// Requests back for another attempt (their worker died, or they timed
    /// out with retries left): first in line, past the queue's bound.
    pub(crate) fn requeue(&mut self, requests: Vec<Pending>) {
        for mut pending in requests.into_iter().rev() {
            pending.load = None;
            match &self.intake {
                Intake::Open | Intake::Closed => self.queue.push_front(pending),
                Intake::Down => pending.fail_with_last(Error::NoWorkers),
                Intake::Sealed => pending.fail_with_last(Error::ShuttingDown),
                Intake::Refusing(error) => pending.fail(error.clone()),
            }
        }
        self.pump();
    }

    /// Callers stopped waiting for these requests: the queued ones leave
    /// (their reply channels are closed), and the workers are told about the
    /// others, which are in flight or on their way.
    pub(crate) fn cancel(&mut self, ids: Vec<RequestId>) {
        let gone = self.queue.take_where(Pending::is_abandoned);
        gone.into_iter().for_each(Pending::abandon);
        self.settle();
        self.notices.push_back(Notice::Cancel(ids.into()));
    }

    /// A new worker process; it gets work once it is ready.
    pub(crate) fn worker_joined(&mut self, id: WorkerId, load: Arc<Load>) {
        if self.intake == Intake::Down {
            self.intake = Intake::Open;
        }
        self.forget_calls(id);
        if let Some(old) = self.workers.join(id, load) {
            if !old.batch.is_empty() {
                self.requeue(old.batch);
            }
        }
    }

    /// A worker said hello: these are the calls it serves.
    pub(crate) fn worker_calls(&mut self, id: WorkerId, calls: &[Box<str>]) {
        let first = self.catalog.is_empty();
        let Some(worker) = self.workers.get_mut(id) else {
            return;
        };
        let numbers = self.catalog.add(calls);
        if let Some(old) = worker.calls.replace(numbers) {
            self.catalog.remove(&old);
        }
        if first {
            self.fail_unserved();
        }
    }

    /// A worker said hello: whether it takes descriptors (`refuses` names
    /// the transport of one that does not). Once no worker that said hello
    /// takes them, the queued sockets fail: none could be handed over.
    pub(crate) fn worker_fds(&mut self, id: WorkerId, refuses: Option<crate::Transport>) {
        self.workers.set_fds(id, refuses);
        if let Some(transport) = self.workers.refuses_sockets() {
            let sockets = self.queue.take_where(|p| p.fd_need() == FdNeed::Socket);
            for pending in sockets {
                pending.fail(Error::NoFdPassing {
                    what: "socket",
                    transport,
                });
            }
            self.settle();
        }
    }

    /// A worker process is gone; what it had not been sent yet goes back in line.
    pub(crate) fn worker_left(&mut self, id: WorkerId) {
        self.forget_calls(id);
        if let Some(worker) = self.workers.leave(id) {
            if !worker.batch.is_empty() {
                self.requeue(worker.batch);
            }
        }
    }

    /// A worker became ready, busy or draining.
    pub(crate) fn worker_status(&mut self, id: WorkerId, state: WorkerState) {
        self.workers.set_state(id, state);
        self.pump();
    }

    /// A fresh RSS sample for a worker.
    pub(crate) fn load_sample(&mut self, id: WorkerId, rss: u64) {
        self.workers.set_rss(id, rss);
    }

    /// Some worker finished requests: the queue may move.
    pub(crate) fn freed(&mut self) {
        self.pump();
    }

    /// The batch for this worker could not be delivered (its handle is gone;
    /// its exit report follows): it gets nothing more, the requests go back in line.
    pub(crate) fn bounce(&mut self, id: WorkerId, batch: Vec<Pending>) {
        self.workers.set_state(id, WorkerState::Stopped);
        self.requeue(batch);
    }

    /// Soft kill: no new requests. [`Notice::Drained`] follows once the
    /// queue is empty (at once if it is).
    pub(crate) fn close(&mut self) {
        match self.intake {
            Intake::Open | Intake::Down => self.intake = Intake::Closed,
            Intake::Closed => {}
            // Nothing is queued once sealed or refusing.
            Intake::Sealed | Intake::Refusing(_) => {
                debug_assert!(self.queue.is_empty());
                self.notices.push_back(Notice::Drained);
                return;
            }
        }
        self.pump();
    }

    /// Hard kill: every queued request fails with `error`, and so does
    /// everything that comes later.
    pub(crate) fn fail_queued(&mut self, error: Error) {
        for pending in self.queue.take_all() {
            pending.fail(error.clone());
        }
        self.settle();
        self.intake = Intake::Refusing(error);
    }

    /// Whether the pool can still serve: when no worker is left and none will
    /// come back, queued requests fail with the error of their last attempt,
    /// else [`Error::NoWorkers`], and so do new ones until a worker joins.
    pub(crate) fn pool_down(&mut self, down: bool) {
        if down {
            for pending in self.queue.take_all() {
                pending.fail_with_last(Error::NoWorkers);
            }
            self.settle();
            if self.intake == Intake::Open {
                self.intake = Intake::Down;
            }
        } else if self.intake == Intake::Down {
            self.intake = Intake::Open;
        }
    }

    /// Time passed: queued requests whose deadline is at or before `now`
    /// fail. They are not retried: another attempt would only wait in the
    /// same queue.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        for pending in self.queue.take_expired(now) {
            let error = pending.timed_out();
            pending.fail(error);
        }
        self.pump();
    }

    // Outputs.

    /// The next batch to send, with the worker it is for. A request assigned
    /// counts against the worker's load from the moment it is assigned.
    pub(crate) fn poll_assign(&mut self) -> Option<(WorkerId, Vec<Pending>)> {
        self.workers.take_batch()
    }

    /// Whether some batch waits to be sent.
    pub(crate) fn has_assignments(&self) -> bool {
        self.workers.has_batches()
    }

    /// The next notice to pass on.
    pub(crate) fn poll_notice(&mut self) -> Option<Notice> {
        self.notices.pop_front()
    }

    /// When to call [`Dispatch::handle_timeout`] next: a queued request may
    /// expire then. (Early is harmless; never late.)
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.queue.earliest_deadline()
    }

    /// What the queue and the workers look like at `now` (wall clock, as
    /// requests are stamped): for the autoscaler.
    pub(crate) fn observe(&self, now: lpm_protocol::Timestamp) -> super::Observed {
        let (idle, busy) = self.workers.idle_and_busy();
        // The front has waited longest: new requests join at the back, and
        // requests back for another attempt were enqueued before those queued.
        let oldest_wait = self
            .queue
            .front()
            .map(|p| std::time::Duration::from_nanos(now.0.saturating_sub(p.created_at.0)));
        super::Observed {
            queued: self.queue.len(),
            oldest_wait,
            idle,
            busy,
        }
    }

    /// Requests waiting in the queue.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    // The rules.

    fn assign(&mut self, worker: Key, pending: Pending) {
        self.workers.assign(worker, pending, &self.catalog);
    }

    /// Moves queued requests to workers while any can take them, in order.
    ///
    /// Requests with a stream or socket also wait for a worker below its
    /// descriptor limit: while none is, they keep their place and the
    /// requests without one behind them go on (each kind stays in order).
    /// A request without a descriptor that finds no worker stops the pass,
    /// since no worker can take anything then.
    fn pump(&mut self) {
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
            let Some(worker) = self.workers.pick(next.avoid(), need) else {
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
            self.assign(worker, pending);
        }
        self.settle();
    }

    /// Publishes the queue's length, and once a soft kill's queue is empty,
    /// seals it and says so: the workers are told to finish next, so nothing
    /// queued later could be served.
    fn settle(&mut self) {
        self.counters.set_queued(self.queue.len());
        if self.queue.is_empty() && self.intake == Intake::Closed {
            self.intake = Intake::Sealed;
            self.notices.push_back(Notice::Drained);
        }
    }

    /// Takes a worker's calls out of the catalog.
    fn forget_calls(&mut self, id: WorkerId) {
        if let Some(calls) = self.workers.get_mut(id).and_then(|w| w.calls.take()) {
            self.catalog.remove(&calls);
        }
    }

    /// Fails the queued calls no worker serves: they were queued before any
    /// worker said which calls it serves.
    fn fail_unserved(&mut self) {
        let catalog = &self.catalog;
        let unserved = self
            .queue
            .take_where(|p| catalog.admit(p.call.as_deref()).is_err());
        for pending in unserved {
            let error = pending.not_handled();
            pending.fail(error);
        }
        self.settle();
    }
}

#[cfg(test)]
mod harness;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
