//! The requests received and neither answered nor cancelled yet: for
//! [`Worker::requests`], for a soft kill, which waits until there are none,
//! and for the supervisor's `Cancel`, which finds them by id.
//!
//! [`Worker::requests`]: super::Worker::requests

use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lpm_protocol::IdMap;
use tokio::sync::Notify;
use uuid::Uuid;

use super::request::RequestState;

type ById = IdMap<Arc<RequestState>>;

/// Unanswered requests by id, plus a count that drops only once the answer
/// is queued (or the request is cancelled), so "none in flight" implies every
/// answer is already in the outbox.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    by_id: Mutex<ById>,
    unanswered: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, ById> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new request; `false` if one with the same id is in flight.
    pub(crate) fn insert(&self, state: &Arc<RequestState>) -> bool {
        match self.lock().entry(state.id()) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(Arc::clone(state));
                self.unanswered.fetch_add(1, Ordering::AcqRel);
                true
            }
        }
    }

    /// The request registered under `id`, if any.
    pub(crate) fn get(&self, id: &Uuid) -> Option<Arc<RequestState>> {
        self.lock().get(id).cloned()
    }

    /// Runs `settle` (which marks `state` answered or cancelled, or fails
    /// when it was settled already) and, when it succeeds, takes `state` out
    /// of the registry, both under the registry lock.
    ///
    /// One step, so the reader never finds a request that is settled but
    /// still registered: a `Cancel` meets either an unsettled request or
    /// none, and a new attempt with the same id received after a `Cancel`
    /// is never mistaken for a duplicate. Call it before queueing the answer
    /// (a request leaves the snapshot before its answer can reach the
    /// supervisor); count the request with [`InFlight::answered`] after.
    pub(crate) fn settle<E>(
        &self,
        state: &RequestState,
        settle: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        let mut by_id = self.lock();
        settle()?;
        // The entry under this id is `state` itself (a request with the same
        // id is only accepted once `state` has left); checked anyway, so an
        // old attempt can never take a new attempt's place.
        if let Entry::Occupied(entry) = by_id.entry(state.id()) {
            if std::ptr::eq(Arc::as_ptr(entry.get()), state) {
                entry.remove();
            }
        }
        Ok(())
    }

    /// Counts a settled request as answered; call after queueing its answer
    /// (at once for a cancelled request, which has none).
    pub(crate) fn answered(&self) {
        if self.unanswered.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// The requests not yet answered, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<Arc<RequestState>> {
        let mut states: Vec<_> = self.lock().values().cloned().collect();
        states.sort_by_key(|s| (s.created_at_raw(), s.id()));
        states
    }

    /// How many requests are not answered yet.
    pub(crate) fn len(&self) -> usize {
        self.unanswered.load(Ordering::Acquire)
    }

    /// Waits until every request received so far is answered.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Register before checking, so an answer in between is not missed.
            notified.as_mut().enable();
            if self.len() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Forgets every request (they hold the worker's state: this breaks the
    /// cycle once the worker has stopped).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}
