//! A [`Dispatch`] driven by hand: workers with real loads, requests with
//! real reply channels, and a clock that moves only when a test says so.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lpm_protocol::{FdKind, RequestId};
use tokio::sync::oneshot;

use super::{Dispatch, Notice, WhenFull};
use crate::health::WorkerState;
use crate::id::WorkerId;
use crate::request::{Counters, Defaults, Job, Load, Options, Pending};
use crate::stream::Attachment;
use crate::{Config, Error, ErrorKind, Response};

/// The caller's end of a request.
pub(super) type Caller = oneshot::Receiver<Result<Response, Error>>;

/// The pool settings the tests start from: room for 4 requests and 2
/// descriptors in flight per worker, 8 queued.
pub(super) fn config() -> Config {
    Config {
        queue_capacity: 8,
        max_in_flight: 4,
        max_fds_in_flight: 2,
        ..Config::default()
    }
}

/// The worker process of `slot`, first generation.
pub(super) fn worker(slot: usize) -> WorkerId {
    WorkerId {
        slot,
        generation: 0,
    }
}

/// A request with a payload and nothing else.
pub(super) fn plain() -> Job {
    job(Options::default())
}

/// A request that carries a byte stream.
pub(super) fn with_stream() -> Job {
    job(Options {
        attachment: Some(Attachment::Reader(Box::new(tokio::io::empty()))),
        ..Options::default()
    })
}

/// A request that hands over a connection.
pub(super) fn with_socket() -> Job {
    let (ours, _theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    job(Options {
        attachment: Some(Attachment::Fd(FdKind::UnixStream, OwnedFd::from(ours))),
        ..Options::default()
    })
}

/// A request for a named call.
pub(super) fn call(name: &'static str) -> Job {
    let plain = plain();
    Job::new(Some(name.into()), plain.payload, plain.options)
}

/// A request whose attempts each last `timeout`.
pub(super) fn timing_out(timeout: Duration) -> Job {
    job(Options {
        timeout: Some(Some(timeout)),
        ..Options::default()
    })
}

fn job(options: Options) -> Job {
    Job::new(None, b"payload".to_vec(), options)
}

/// What a caller got so far: `None` while it waits.
pub(super) fn outcome(caller: &mut Caller) -> Option<Result<Response, ErrorKind>> {
    match caller.try_recv() {
        Ok(result) => Some(result.map_err(|e| e.kind())),
        Err(oneshot::error::TryRecvError::Empty) => None,
        Err(oneshot::error::TryRecvError::Closed) => panic!("a reply channel closed unanswered"),
    }
}

/// The error a caller got; panics if it got none or a response.
pub(super) fn error(caller: &mut Caller) -> ErrorKind {
    match outcome(caller) {
        Some(Err(kind)) => kind,
        Some(Ok(_)) => panic!("expected an error, got a response"),
        None => panic!("expected an error, the caller still waits"),
    }
}

pub(super) struct Harness {
    pub(super) dispatch: Dispatch,
    pub(super) defaults: Defaults,
    /// The clock requests are admitted by and ticks carry.
    pub(super) now: Instant,
    loads: BTreeMap<WorkerId, Arc<Load>>,
}

impl Harness {
    pub(super) fn new(config: &Config) -> Self {
        let counters = Arc::new(Counters::default());
        Self {
            dispatch: Dispatch::new(config, Arc::clone(&counters)),
            defaults: Defaults {
                timeout: config.timeout,
                retries: config.retries,
                codec: config.codec,
                counters,
            },
            now: Instant::now(),
            loads: BTreeMap::new(),
        }
    }

    /// A pool whose workers in `slots` are all ready.
    pub(super) fn with_ready(config: &Config, slots: impl IntoIterator<Item = usize>) -> Self {
        let mut harness = Self::new(config);
        for slot in slots {
            harness.ready(worker(slot));
        }
        harness
    }

    /// A worker that joins (it is starting).
    pub(super) fn join(&mut self, id: WorkerId) {
        let load = Arc::new(Load::default());
        self.loads.insert(id, Arc::clone(&load));
        self.dispatch.worker_joined(id, load);
    }

    /// A worker that joins and says ready.
    pub(super) fn ready(&mut self, id: WorkerId) {
        self.join(id);
        self.dispatch.worker_status(id, WorkerState::Ready);
    }

    pub(super) fn load(&self, id: WorkerId) -> &Arc<Load> {
        &self.loads[&id]
    }

    /// A request taken in now, and its caller.
    pub(super) fn pending(&self, job: Job) -> (Pending, Caller) {
        let (tx, rx) = oneshot::channel();
        let pending = Pending::new(RequestId::new_v4(), job, tx, &self.defaults, self.now);
        (pending, rx)
    }

    /// Admits a request that fails when the queue is full.
    pub(super) fn send(&mut self, job: Job) -> Caller {
        self.send_with(job, WhenFull::Fail)
    }

    pub(super) fn send_with(&mut self, job: Job, when_full: WhenFull) -> Caller {
        let (pending, caller) = self.pending(job);
        self.dispatch.admit(pending, when_full);
        caller
    }

    /// Every batch the dispatch wants sent, by worker.
    pub(super) fn batches(&mut self) -> BTreeMap<WorkerId, Vec<Pending>> {
        let mut batches = BTreeMap::new();
        while let Some((id, batch)) = self.dispatch.poll_assign() {
            let previous = batches.insert(id, batch);
            assert!(previous.is_none(), "two batches for {id:?} in one turn");
        }
        batches
    }

    /// The assigned requests, in order, with their workers' slots.
    pub(super) fn assigned(&mut self) -> Vec<(usize, Pending)> {
        self.batches()
            .into_iter()
            .flat_map(|(id, batch)| batch.into_iter().map(move |p| (id.slot, p)))
            .collect()
    }

    pub(super) fn notices(&mut self) -> Vec<Notice> {
        std::iter::from_fn(|| self.dispatch.poll_notice()).collect()
    }
}

/// Answers requests as their worker would, freeing their slots.
pub(super) fn respond(assigned: impl IntoIterator<Item = (usize, Pending)>) {
    for (slot, pending) in assigned {
        pending.respond(1, slot, Vec::new(), true);
    }
}
