//! Each worker's load, counted by guards that live as long as what they
//! count, and the feed that tells the balancer whose load changed.
//!
//! A guard may drop anywhere: in the worker's handle when the answer comes,
//! in the balancer, or on the caller's thread when a response stream ends.
//! So the balancer does not learn of a change by message; instead a load it
//! [watches](Load::watch) reports itself on the balancer's [`Changed`] feed
//! at its first change after the balancer last read it. Before picking a
//! worker the balancer re-reads just those, never every worker.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The loads that changed since the balancer last looked, by the key the
/// balancer gave each one when it started watching it.
#[derive(Debug, Default)]
pub(crate) struct Changed {
    /// Set after a key is pushed, so a look that finds nothing takes no lock.
    any: AtomicBool,
    keys: Mutex<Vec<usize>>,
}

impl Changed {
    fn push(&self, key: usize) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(key);
        self.any.store(true, Ordering::Release);
    }

    /// Moves the keys reported so far into `into` (a key may come twice).
    pub(crate) fn take(&self, into: &mut Vec<usize>) {
        // A plain load first: most looks find nothing, and cost no write then.
        if self.any.load(Ordering::Relaxed) && self.any.swap(false, Ordering::Acquire) {
            into.append(&mut self.keys.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }
}

/// Where a watched load reports its changes.
#[derive(Debug)]
struct Watcher {
    changed: Arc<Changed>,
    key: usize,
}

/// A worker's in-flight count, shared between the balancer (which reads it to
/// pick) and the requests assigned to the worker (which hold it up).
#[derive(Debug, Default)]
pub(crate) struct Load {
    in_flight: AtomicUsize,
    /// Descriptors in flight: requests with a stream or socket not answered
    /// yet, and response streams not ended yet.
    fds: AtomicUsize,
    /// Handed-off connections the worker still holds.
    sockets: AtomicUsize,
    watcher: OnceLock<Watcher>,
    /// Reported on the feed and not read since: later changes need no report.
    reported: AtomicBool,
}

impl Load {
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn fds(&self) -> usize {
        self.fds.load(Ordering::Relaxed)
    }

    pub(crate) fn sockets(&self) -> usize {
        self.sockets.load(Ordering::Relaxed)
    }

    /// Reports every later change on `changed` under `key`. A load has one
    /// watcher: false (and nothing changes) if it already has one.
    pub(crate) fn watch(&self, changed: &Arc<Changed>, key: usize) -> bool {
        let watcher = Watcher {
            changed: Arc::clone(changed),
            key,
        };
        self.watcher.set(watcher).is_ok()
    }

    /// Called by the watcher before it reads the counts: the next change is
    /// reported again.
    pub(crate) fn mark_read(&self) {
        // Pairs with the swap in `changed`: a change made before this sees
        // `reported` set and is read now; one made after reports itself anew.
        self.reported.swap(false, Ordering::AcqRel);
    }

    fn add(&self, counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.changed();
    }

    fn sub(&self, counter: &AtomicUsize) {
        counter.fetch_sub(1, Ordering::Relaxed);
        self.changed();
    }

    fn changed(&self) {
        if let Some(watcher) = self.watcher.get() {
            if !self.reported.swap(true, Ordering::AcqRel) {
                watcher.changed.push(watcher.key);
            }
        }
    }
}

/// Counts one connection the worker holds, for as long as it lives.
#[derive(Debug)]
pub(crate) struct SocketGuard(Arc<Load>);

impl SocketGuard {
    pub(crate) fn new(load: &Arc<Load>) -> Self {
        load.add(&load.sockets);
        Self(Arc::clone(load))
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.0.sub(&self.0.sockets);
    }
}

/// What a [`LoadGuard`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counts {
    /// One request in flight.
    Request,
    /// One request in flight and one descriptor with it.
    RequestAndFd,
}

/// Counts one request against a worker's load for as long as it lives, so a
/// request that ends in any way (answer, timeout, death, drop) frees its slot.
#[derive(Debug)]
pub(crate) struct LoadGuard {
    load: Arc<Load>,
    counts: Counts,
}

impl LoadGuard {
    pub(crate) fn new(load: &Arc<Load>) -> Self {
        load.add(&load.in_flight);
        Self {
            load: Arc::clone(load),
            counts: Counts::Request,
        }
    }

    /// Counts a descriptor in flight too, until the guard drops (once).
    pub(crate) fn count_fd(&mut self) {
        if self.counts == Counts::Request {
            self.counts = Counts::RequestAndFd;
            self.load.add(&self.load.fds);
        }
    }

    /// The load it counts against.
    pub(crate) fn load(&self) -> &Arc<Load> {
        &self.load
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.load.sub(&self.load.in_flight);
        if self.counts == Counts::RequestAndFd {
            self.load.sub(&self.load.fds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed_keys(changed: &Changed) -> Vec<usize> {
        let mut keys = Vec::new();
        changed.take(&mut keys);
        keys
    }

    #[test]
    fn a_watched_load_reports_its_first_change_until_it_is_read() {
        let changed = Arc::new(Changed::default());
        let load = Arc::new(Load::default());
        assert!(load.watch(&changed, 7));
        assert!(!load.watch(&changed, 8), "one watcher per load");

        let first = LoadGuard::new(&load);
        let mut second = LoadGuard::new(&load);
        second.count_fd();
        assert_eq!(changed_keys(&changed), [7], "reported once until read");
        assert_eq!((load.in_flight(), load.fds()), (2, 1));

        load.mark_read();
        drop(second);
        drop(first);
        assert_eq!(changed_keys(&changed), [7]);
        assert_eq!((load.in_flight(), load.fds()), (0, 0));
        assert!(changed_keys(&changed).is_empty());
    }

    #[test]
    fn sockets_count_while_their_guard_lives() {
        let changed = Arc::new(Changed::default());
        let load = Arc::new(Load::default());
        load.watch(&changed, 0);
        let socket = SocketGuard::new(&load);
        assert_eq!(load.sockets(), 1);
        load.mark_read();
        changed_keys(&changed);
        drop(socket);
        assert_eq!(load.sockets(), 0);
        assert_eq!(changed_keys(&changed), [0]);
    }

    #[test]
    fn an_unwatched_load_counts_without_reporting() {
        let load = Arc::new(Load::default());
        let guard = LoadGuard::new(&load);
        assert_eq!(load.in_flight(), 1);
        drop(guard);
        assert_eq!(load.in_flight(), 0);
    }
}
