//! The balancer's table of workers: each one's state, load and pending
//! batch, and which of them can take a request now.
//!
//! Loads change outside the balancer (a request's guard drops wherever the
//! request ends), so before a pick the table re-reads the workers whose load
//! [changed](crate::request::Changed), and only those; then a plain request
//! is picked from the strategy's index ([`Picker`]). A request with a stream
//! or socket, or any request under a custom strategy, is picked from a list
//! of every eligible worker, as [`Balance`](crate::balance::Balance) documents:
//! O(n) in the number of workers.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::catalog::{Catalog, Numbers};
use super::pick::{Key, Member, Picker};
use crate::balance::{Candidate, Pressure};
use crate::health::WorkerState;
use crate::id::WorkerId;
use crate::request::{Changed, FdNeed, Load, LoadGuard, Pending};
use crate::{Strategy, Transport};

/// One worker process as the balancer sees it.
#[derive(Debug)]
pub(super) struct Worker {
    pub(super) id: WorkerId,
    load: Arc<Load>,
    state: WorkerState,
    rss: u64,
    /// Its pressure as the index holds it while it can take a request (ready,
    /// below `max_in_flight`); `None` while it cannot.
    open: Option<Pressure>,
    /// Requests assigned this turn, sent together when the turn ends.
    pub(super) batch: Vec<Pending>,
    /// Its numbers for the calls it serves, once it said hello.
    pub(super) calls: Option<Numbers>,
    /// Whether it takes descriptors, once it said hello.
    fds: Fds,
}

/// Whether a worker takes descriptors (sockets can only go to those that do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fds {
    /// It has not said hello yet.
    Unknown,
    Taken,
    /// Refused: its channel is this transport.
    Refused(Transport),
}

impl Worker {
    fn candidate(&self) -> Candidate {
        Candidate {
            slot: self.id.slot,
            generation: self.id.generation,
            in_flight: self.load.in_flight(),
            rss: self.rss,
            fds_in_flight: self.load.fds(),
            sockets: self.load.sockets(),
        }
    }
}

/// Every worker the balancer knows, and the index to pick them from.
#[derive(Debug)]
pub(super) struct Workers {
    table: Vec<Option<Worker>>,
    /// Keys of empty places in `table`.
    free: Vec<Key>,
    /// Slot order, for custom strategies and for finding a worker by id.
    by_id: BTreeMap<WorkerId, Key>,
    picker: Picker,
    changed: Arc<Changed>,
    /// Keys taken from `changed`, kept for its allocation.
    to_read: Vec<Key>,
    /// Workers with a batch to send.
    batched: Vec<Key>,
    /// Scratch for scanned picks: each candidate with its key.
    candidates: Vec<Candidate>,
    candidate_keys: Vec<Key>,
    max_in_flight: usize,
    max_fds: usize,
    /// Workers read to keep the index and to pick: the work of dispatch,
    /// which must not grow with the number of workers.
    #[cfg(test)]
    pub(super) reads: usize,
}

impl Workers {
    pub(super) fn new(strategy: &Strategy, max_in_flight: usize, max_fds: usize) -> Self {
        Self {
            table: Vec::new(),
            free: Vec::new(),
            by_id: BTreeMap::new(),
            picker: Picker::new(strategy),
            changed: Arc::default(),
            to_read: Vec::new(),
            batched: Vec::new(),
            candidates: Vec::new(),
            candidate_keys: Vec::new(),
            max_in_flight: max_in_flight.max(1),
            max_fds: max_fds.max(1),
            #[cfg(test)]
            reads: 0,
        }
    }

    /// Adds a worker, starting; a worker already known under `id` is replaced
    /// and returned.
    pub(super) fn join(&mut self, id: WorkerId, load: Arc<Load>) -> Option<Worker> {
        let old = self.leave(id);
        let key = self.free.pop().unwrap_or(self.table.len());
        if !load.watch(&self.changed, key) {
            // Only the supervisor makes loads, one per process: a second
            // watcher is a bug here, and the first one's key would be stale.
            tracing::error!(
                ?id,
                "a worker's load was already watched; its changes may go unseen"
            );
        }
        let worker = Worker {
            id,
            load,
            state: WorkerState::Starting,
            rss: 0,
            open: None,
            batch: Vec::new(),
            calls: None,
            fds: Fds::Unknown,
        };
        match self.table.get_mut(key) {
            Some(place) => *place = Some(worker),
            None => self.table.push(Some(worker)),
        }
        self.by_id.insert(id, key);
        old
    }

    /// Removes a worker and returns it (with its unsent batch).
    pub(super) fn leave(&mut self, id: WorkerId) -> Option<Worker> {
        let key = self.by_id.remove(&id)?;
        let worker = self.table.get_mut(key)?.take()?;
        if let Some(was) = worker.open {
            self.picker.remove(key, id, was);
        }
        self.batched.retain(|&k| k != key);
        self.free.push(key);
        Some(worker)
    }

    pub(super) fn get_mut(&mut self, id: WorkerId) -> Option<&mut Worker> {
        let key = *self.by_id.get(&id)?;
        self.table.get_mut(key)?.as_mut()
    }

    /// Sets a worker's state; false if it is unknown.
    pub(super) fn set_state(&mut self, id: WorkerId, state: WorkerState) -> bool {
        self.update(id, |w| w.state = state)
    }

    /// Records whether a worker takes descriptors: `refuses` names the
    /// transport of one that does not.
    pub(super) fn set_fds(&mut self, id: WorkerId, refuses: Option<Transport>) {
        if let Some(worker) = self.get_mut(id) {
            worker.fds = refuses.map_or(Fds::Taken, Fds::Refused);
        }
    }

    /// Why no socket can be handed to any worker: every worker that said
    /// hello refuses descriptors (the transport of one of them); `None` while
    /// some worker takes them, or none has said hello yet.
    pub(super) fn refuses_sockets(&self) -> Option<Transport> {
        let mut refused = None;
        for worker in self.table.iter().flatten() {
            match worker.fds {
                Fds::Taken => return None,
                Fds::Refused(transport) => refused = Some(transport),
                Fds::Unknown => {}
            }
        }
        refused
    }

    /// Sets a worker's latest RSS sample; false if it is unknown.
    pub(super) fn set_rss(&mut self, id: WorkerId, rss: u64) -> bool {
        self.update(id, |w| w.rss = rss)
    }

    fn update(&mut self, id: WorkerId, change: impl FnOnce(&mut Worker)) -> bool {
        let Some(&key) = self.by_id.get(&id) else {
            return false;
        };
        if let Some(worker) = self.table[key].as_mut() {
            change(worker);
        }
        self.reindex(key);
        true
    }

    /// Puts a worker where its state and load say it belongs in the index.
    fn reindex(&mut self, key: Key) {
        #[cfg(test)]
        {
            self.reads += 1;
        }
        let Some(worker) = self.table.get_mut(key).and_then(Option::as_mut) else {
            return;
        };
        let in_flight = worker.load.in_flight();
        let now = (worker.state == WorkerState::Ready && in_flight < self.max_in_flight).then_some(
            Pressure {
                in_flight,
                rss: worker.rss,
            },
        );
        let was = std::mem::replace(&mut worker.open, now);
        let id = worker.id;
        match (was, now) {
            (was, Some(pressure)) if was != now => {
                self.picker.insert(Member { key, id, pressure }, was);
            }
            (Some(was), None) => self.picker.remove(key, id, was),
            _ => {}
        }
    }

    /// Re-reads the workers whose load changed since the last look.
    fn catch_up(&mut self) {
        self.changed.take(&mut self.to_read);
        let mut keys = std::mem::take(&mut self.to_read);
        for &key in &keys {
            if let Some(worker) = self.table.get(key).and_then(Option::as_ref) {
                worker.load.mark_read();
                self.reindex(key);
            }
        }
        keys.clear();
        self.to_read = keys;
    }

    /// A worker that can take a request with this need now: not one in slot
    /// `avoid` unless it is the only one. A request with a descriptor needs
    /// a worker below its descriptor limit; a socket goes to one of the
    /// workers holding the fewest sockets, then as the strategy picks.
    pub(super) fn pick(&mut self, avoid: Option<usize>, fd: FdNeed) -> Option<Key> {
        self.catch_up();
        if fd == FdNeed::None && self.picker.is_indexed() {
            self.pick_indexed(avoid)
        } else {
            self.pick_scanned(avoid, fd)
        }
    }

    fn pick_indexed(&mut self, avoid: Option<usize>) -> Option<Key> {
        #[cfg(test)]
        {
            self.reads += 1;
        }
        let Some(slot) = avoid else {
            return self.picker.pick();
        };
        // A retry: the avoided slot's workers leave the index for this pick,
        // unless no other worker is left.
        let excluded: Vec<Member> = self
            .by_id
            .range(
                WorkerId {
                    slot,
                    generation: 0,
                }..=WorkerId {
                    slot,
                    generation: u64::MAX,
                },
            )
            .filter_map(|(&id, &key)| {
                let pressure = self.table[key].as_ref()?.open?;
                Some(Member { key, id, pressure })
            })
            .collect();
        #[cfg(test)]
        {
            self.reads += excluded.len();
        }
        if excluded.is_empty() || excluded.len() == self.picker.len() {
            return self.picker.pick();
        }
        for m in &excluded {
            self.picker.remove(m.key, m.id, m.pressure);
        }
        let picked = self.picker.pick();
        for &m in &excluded {
            self.picker.insert(m, None);
        }
        picked
    }

    fn pick_scanned(&mut self, avoid: Option<usize>, fd: FdNeed) -> Option<Key> {
        self.candidates.clear();
        self.candidate_keys.clear();
        let max_fds = self.max_fds;
        for &key in self.by_id.values() {
            #[cfg(test)]
            {
                self.reads += 1;
            }
            let Some(worker) = self.table[key].as_ref() else {
                continue;
            };
            let fits = match fd {
                FdNeed::None => true,
                FdNeed::Stream => worker.load.fds() < max_fds,
                FdNeed::Socket => {
                    worker.load.fds() < max_fds && !matches!(worker.fds, Fds::Refused(_))
                }
            };
            if worker.open.is_some() && fits {
                self.candidates.push(worker.candidate());
                self.candidate_keys.push(key);
            }
        }
        if fd == FdNeed::Socket {
            if let Some(fewest) = self.candidates.iter().map(Candidate::sockets).min() {
                self.keep(|c| c.sockets() == fewest);
            }
        }
        if let Some(avoid) = avoid {
            if self.candidates.iter().any(|c| c.slot() != avoid) {
                self.keep(|c| c.slot() != avoid);
            }
        }
        if self.candidates.is_empty() {
            return None;
        }
        let picked = self.picker.strategy().pick(&self.candidates);
        if picked >= self.candidates.len() {
            tracing::warn!(
                picked,
                candidates = self.candidates.len(),
                strategy = ?self.picker,
                "the balancing strategy picked an index out of range; taking the first candidate"
            );
            return Some(self.candidate_keys[0]);
        }
        Some(self.candidate_keys[picked])
    }

    /// Keeps the candidates (and their keys) that pass `keep`.
    fn keep(&mut self, keep: impl Fn(&Candidate) -> bool) {
        let mut kept = 0;
        for i in 0..self.candidates.len() {
            if keep(&self.candidates[i]) {
                self.candidates.swap(kept, i);
                self.candidate_keys.swap(kept, i);
                kept += 1;
            }
        }
        self.candidates.truncate(kept);
        self.candidate_keys.truncate(kept);
    }

    /// Adds a request to a picked worker's batch, counted against its load
    /// from now on.
    pub(super) fn assign(&mut self, key: Key, mut pending: Pending, catalog: &Catalog) {
        let Some(worker) = self.table.get_mut(key).and_then(Option::as_mut) else {
            debug_assert!(false, "assigned to a worker that is not in the table");
            return;
        };
        let mut load = LoadGuard::new(&worker.load);
        if pending.fd_need() != FdNeed::None {
            load.count_fd();
        }
        pending.load = Some(load);
        pending.wire_call = wire_call(catalog, worker.calls.as_ref(), &pending);
        if worker.batch.is_empty() {
            self.batched.push(key);
        }
        worker.batch.push(pending);
        self.reindex(key);
    }

    /// Ready workers holding no request, and workers holding some or that
    /// said busy (starting and draining ones are neither).
    pub(super) fn idle_and_busy(&self) -> (usize, usize) {
        let (mut idle, mut busy) = (0, 0);
        for worker in self.table.iter().flatten() {
            match worker.state {
                WorkerState::Ready if worker.load.in_flight() == 0 => idle += 1,
                WorkerState::Ready | WorkerState::Busy => busy += 1,
                _ => {}
            }
        }
        (idle, busy)
    }

    /// Whether some worker has a batch to send.
    pub(super) fn has_batches(&self) -> bool {
        !self.batched.is_empty()
    }

    /// Takes the next batch to send, with its worker.
    pub(super) fn take_batch(&mut self) -> Option<(WorkerId, Vec<Pending>)> {
        while let Some(key) = self.batched.pop() {
            if let Some(worker) = self.table.get_mut(key).and_then(Option::as_mut) {
                if !worker.batch.is_empty() {
                    return Some((worker.id, std::mem::take(&mut worker.batch)));
                }
            }
        }
        None
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
