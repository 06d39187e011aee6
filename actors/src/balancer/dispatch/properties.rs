//! Properties of the dispatch over random interleavings of requests,
//! cancellations, workers coming and going, answers, retries, time, and
//! the pool's close and kill.
//!
//! The test plays the workers: it takes every batch at once (one batch per
//! event), holds the requests, answers them or sends them back. After each
//! event it checks that every request is in exactly one place (queued,
//! held by a worker, or answered), that no worker got more than it may hold
//! or got anything while not ready, and that a new request was queued only
//! below the queue's bound. At the end the pool is closed and its queue
//! served: every caller that waited has its one answer, and the soft kill
//! heard that the queue drained.

use std::collections::HashMap;
use std::time::Duration;

use lpm_protocol::RequestId;
use proptest::prelude::*;

use super::harness::{plain, timing_out, with_socket, with_stream, Caller, Harness};
use super::{Notice, WhenFull};
use crate::health::WorkerState;
use crate::id::WorkerId;
use crate::request::{Job, Pending};
use crate::{Config, Error, ErrorKind, Strategy as Balancing};

#[derive(Debug, Clone, Copy)]
enum Need {
    Nothing,
    Stream,
    Socket,
}

#[derive(Debug, Clone)]
enum Op {
    Admit {
        need: Need,
        timeout_ms: Option<u16>,
        wait: bool,
    },
    /// The caller of the n-th request stops waiting.
    Cancel(usize),
    /// A new worker process for this slot.
    Join(usize),
    /// The n-th worker process dies: what it held comes back while it may.
    Leave(usize),
    Status(usize, WorkerState),
    /// Workers answer up to this many of the requests they hold.
    Answer(usize),
    /// The n-th held request times out in its worker: retried or failed.
    Requeue(usize),
    Tick(u16),
    Sample(usize, u32),
    /// The next batch finds its worker's handle gone.
    Bounce,
    Close,
    Kill,
    Down(bool),
}

fn op() -> impl Strategy<Value = Op> {
    let need = prop_oneof![
        6 => Just(Need::Nothing),
        1 => Just(Need::Stream),
        1 => Just(Need::Socket),
    ];
    let state = prop_oneof![
        4 => Just(WorkerState::Ready),
        1 => Just(WorkerState::Busy),
        1 => Just(WorkerState::Draining),
    ];
    prop_oneof![
        12 => (need, proptest::option::of(1u16..3000), any::<bool>())
            .prop_map(|(need, timeout_ms, wait)| Op::Admit { need, timeout_ms, wait }),
        2 => any::<usize>().prop_map(Op::Cancel),
        2 => (0usize..4).prop_map(Op::Join),
        1 => any::<usize>().prop_map(Op::Leave),
        3 => (any::<usize>(), state).prop_map(|(i, s)| Op::Status(i, s)),
        6 => (1usize..6).prop_map(Op::Answer),
        2 => any::<usize>().prop_map(Op::Requeue),
        2 => (1u16..2000).prop_map(Op::Tick),
        1 => (any::<usize>(), any::<u32>()).prop_map(|(i, rss)| Op::Sample(i, rss)),
        1 => Just(Op::Bounce),
        1 => Just(Op::Close),
        1 => Just(Op::Kill),
        1 => any::<bool>().prop_map(Op::Down),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    let strategy = prop_oneof![
        Just(Balancing::LeastPressure),
        Just(Balancing::RoundRobin),
        any::<u64>().prop_map(|seed| Balancing::PowerOfTwoChoices { seed }),
        Just(Balancing::custom(crate::balance::RoundRobin::default())),
    ];
    (strategy, 1usize..4, 1usize..3, 0usize..6, 0u32..3).prop_map(
        |(strategy, max_in_flight, max_fds_in_flight, queue_capacity, retries)| Config {
            strategy,
            max_in_flight,
            max_fds_in_flight,
            queue_capacity,
            retries,
            ..Config::default()
        },
    )
}

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Inside the dispatch (queued).
    Queued,
    /// Sent to a worker, which holds it.
    Held,
    /// Answered (or, if its caller left, forgotten).
    Done,
}

struct Request {
    caller: Option<Caller>,
    place: Place,
    answer: Option<Result<(), ErrorKind>>,
}

struct Worker {
    id: WorkerId,
    state: WorkerState,
    held: Vec<Pending>,
}

struct Run {
    pool: Harness,
    config: Config,
    requests: Vec<Request>,
    by_id: HashMap<RequestId, usize>,
    workers: Vec<Worker>,
    generation: u64,
    bounce_next: bool,
    /// A batch bounced in the last turn: its requests went back in line,
    /// past the bound like any retry.
    bounced: bool,
    /// Closes not yet answered by a drained notice.
    closes_waiting: usize,
}

impl Run {
    fn new(config: Config) -> Self {
        Self {
            pool: Harness::new(&config),
            config,
            requests: Vec::new(),
            by_id: HashMap::new(),
            workers: Vec::new(),
            generation: 0,
            bounce_next: false,
            bounced: false,
            closes_waiting: 0,
        }
    }

    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Admit {
                need,
                timeout_ms,
                wait,
            } => return self.admit(need, timeout_ms, wait),
            Op::Cancel(n) => self.cancel(n),
            Op::Join(slot) => {
                self.generation += 1;
                let id = WorkerId {
                    slot,
                    generation: self.generation,
                };
                self.pool.join(id);
                self.workers.push(Worker {
                    id,
                    state: WorkerState::Starting,
                    held: Vec::new(),
                });
            }
            Op::Leave(n) => {
                if !self.workers.is_empty() {
                    let worker = self.workers.remove(n % self.workers.len());
                    self.pool.dispatch.worker_left(worker.id);
                    let back = self.retry_all(worker.id.slot, worker.held);
                    self.pool.dispatch.requeue(back);
                }
            }
            Op::Status(n, state) => {
                if !self.workers.is_empty() {
                    let i = n % self.workers.len();
                    self.workers[i].state = state;
                    let id = self.workers[i].id;
                    self.pool.dispatch.worker_status(id, state);
                }
            }
            Op::Answer(n) => {
                let mut left = n;
                for worker in &mut self.workers {
                    while left > 0 {
                        let Some(pending) = worker.held.pop() else {
                            break;
                        };
                        let i = self.by_id[&pending.id];
                        self.requests[i].place = Place::Done;
                        pending.respond(1, worker.id.slot, Vec::new(), true);
                        left -= 1;
                    }
                }
                self.pool.dispatch.freed();
            }
            Op::Requeue(n) => {
                let holders: Vec<usize> = (0..self.workers.len())
                    .filter(|&w| !self.workers[w].held.is_empty())
                    .collect();
                if !holders.is_empty() {
                    let w = holders[n % holders.len()];
                    let pending = self.workers[w].held.remove(0);
                    let slot = self.workers[w].id.slot;
                    let back = self.retry_all(slot, vec![pending]);
                    self.pool.dispatch.requeue(back);
                }
            }
            Op::Tick(ms) => {
                self.pool.now += Duration::from_millis(ms.into());
                self.pool.dispatch.handle_timeout(self.pool.now);
            }
            Op::Sample(n, rss) => {
                if !self.workers.is_empty() {
                    let id = self.workers[n % self.workers.len()].id;
                    self.pool.dispatch.load_sample(id, rss.into());
                }
            }
            Op::Bounce => self.bounce_next = true,
            Op::Close => {
                self.closes_waiting += 1;
                self.pool.dispatch.close();
            }
            Op::Kill => self.pool.dispatch.fail_queued(Error::Killed),
            Op::Down(down) => self.pool.dispatch.pool_down(down),
        }
        self.settle()
    }

    fn admit(
        &mut self,
        need: Need,
        timeout_ms: Option<u16>,
        wait: bool,
    ) -> Result<(), TestCaseError> {
        let job: Job = match (need, timeout_ms) {
            (Need::Stream, _) => with_stream(),
            (Need::Socket, _) => with_socket(),
            (Need::Nothing, Some(ms)) => timing_out(Duration::from_millis(ms.into())),
            (Need::Nothing, None) => plain(),
        };
        let (pending, caller) = self.pool.pending(job);
        let i = self.track(pending.id, caller);
        let queued_before = self.pool.dispatch.queued();
        let when_full = if wait { WhenFull::Wait } else { WhenFull::Fail };
        self.bounced = false;
        self.pool.dispatch.admit(pending, when_full);
        self.settle()?;
        let request = &self.requests[i];
        match (request.place, request.answer) {
            (Place::Queued, _) => prop_assert!(
                wait || self.bounced || queued_before < self.config.queue_capacity,
                "queued past the bound: {queued_before} of {}",
                self.config.queue_capacity
            ),
            (Place::Done, Some(Err(ErrorKind::QueueFull))) => prop_assert!(
                !wait && queued_before >= self.config.queue_capacity,
                "refused with room: {queued_before} of {}",
                self.config.queue_capacity
            ),
            _ => {}
        }
        Ok(())
    }

    fn track(&mut self, id: RequestId, caller: Caller) -> usize {
        self.requests.push(Request {
            caller: Some(caller),
            place: Place::Queued,
            answer: None,
        });
        self.by_id.insert(id, self.requests.len() - 1);
        self.requests.len() - 1
    }

    fn cancel(&mut self, n: usize) {
        if self.requests.is_empty() {
            return;
        }
        let i = n % self.requests.len();
        let Some(caller) = self.requests[i].caller.take() else {
            return;
        };
        drop(caller);
        let id = self
            .by_id
            .iter()
            .find_map(|(&id, &at)| (at == i).then_some(id))
            .expect("every request is tracked");
        self.pool.dispatch.cancel(vec![id]);
        // The dispatch drops every queued request whose caller left.
        for request in &mut self.requests {
            if request.place == Place::Queued && request.caller.is_none() {
                request.place = Place::Done;
            }
        }
    }

    /// Held requests whose attempt failed: those with retries left, to requeue.
    fn retry_all(&mut self, slot: usize, held: Vec<Pending>) -> Vec<Pending> {
        let mut back = Vec::new();
        for pending in held {
            let i = self.by_id[&pending.id];
            let error = Error::Timeout {
                id: pending.id,
                after: Duration::from_secs(1),
                attempts: pending.attempts,
            };
            match pending.retry(self.pool.now, slot, error) {
                Some(again) => {
                    self.requests[i].place = Place::Queued;
                    back.push(again);
                }
                None => self.requests[i].place = Place::Done,
            }
        }
        back
    }

    /// Plays the workers' side of the turn, then checks where every request is.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        while let Some((id, batch)) = self.pool.dispatch.poll_assign() {
            if std::mem::take(&mut self.bounce_next) {
                if let Some(worker) = self.workers.iter_mut().find(|w| w.id == id) {
                    worker.state = WorkerState::Stopped;
                }
                self.pool.dispatch.bounce(id, batch);
                self.bounced = true;
                continue;
            }
            let Some(worker) = self.workers.iter_mut().find(|w| w.id == id) else {
                return Err(TestCaseError::fail(format!(
                    "assigned to {id:?}, not a worker"
                )));
            };
            prop_assert_eq!(worker.state, WorkerState::Ready, "assigned to {:?}", id);
            for pending in batch {
                let i = self.by_id[&pending.id];
                let request = &mut self.requests[i];
                prop_assert_eq!(
                    request.place,
                    Place::Queued,
                    "assigned twice or after its answer"
                );
                prop_assert!(
                    request.caller.is_some(),
                    "an abandoned request was assigned"
                );
                request.place = Place::Held;
                worker.held.push(pending);
            }
        }
        for worker in &self.workers {
            let load = self.pool.load(worker.id);
            prop_assert!(load.in_flight() <= self.config.max_in_flight);
            prop_assert!(load.fds() <= self.config.max_fds_in_flight);
            prop_assert_eq!(load.in_flight(), worker.held.len());
        }
        for request in &mut self.requests {
            let Some(caller) = request.caller.as_mut() else {
                continue;
            };
            match caller.try_recv() {
                Ok(result) => {
                    prop_assert!(request.answer.is_none(), "answered twice");
                    prop_assert_ne!(
                        request.place,
                        Place::Held,
                        "answered while a worker holds it"
                    );
                    request.answer = Some(result.map(drop).map_err(|e| e.kind()));
                    request.place = Place::Done;
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                    prop_assert_ne!(request.place, Place::Done, "done, never answered");
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    prop_assert!(
                        request.answer.is_some(),
                        "a reply channel closed unanswered"
                    );
                }
            }
        }
        // A queued request whose caller left may go at any pass.
        let waiting = self.count(|r| r.place == Place::Queued && r.caller.is_some());
        let abandoned = self.count(|r| r.place == Place::Queued && r.caller.is_none());
        let queued = self.pool.dispatch.queued();
        prop_assert!(
            (waiting..=waiting + abandoned).contains(&queued),
            "requests lost or made up: {} queued, {} waiting and {} abandoned",
            queued,
            waiting,
            abandoned
        );
        for notice in self.pool.notices() {
            if notice == Notice::Drained {
                prop_assert!(self.closes_waiting > 0, "drained without a close");
                self.closes_waiting = 0;
            }
        }
        Ok(())
    }

    fn count(&self, matches: impl Fn(&Request) -> bool) -> usize {
        self.requests.iter().filter(|r| matches(r)).count()
    }

    /// Closes the pool and serves what is left with a fresh ready worker.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        self.apply(Op::Close)?;
        // The worker that serves the rest must keep its handle.
        self.bounce_next = false;
        self.apply(Op::Join(0))?;
        let fresh = self.workers.len() - 1;
        self.apply(Op::Status(fresh, WorkerState::Ready))?;
        let mut rounds = 0;
        while self
            .count(|r| r.place == Place::Held || (r.place == Place::Queued && r.caller.is_some()))
            > 0
        {
            rounds += 1;
            prop_assert!(rounds < 10_000, "the queue does not drain");
            self.apply(Op::Answer(usize::MAX))?;
        }
        prop_assert_eq!(
            self.closes_waiting,
            0,
            "the close never heard the queue drained"
        );
        for request in &self.requests {
            if request.caller.is_some() {
                prop_assert!(request.answer.is_some(), "a caller waits forever");
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_request_is_answered_once_and_no_worker_gets_more_than_it_may(
        config in config(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut run = Run::new(config);
        for op in ops {
            run.apply(op)?;
        }
        run.finish()?;
    }
}
