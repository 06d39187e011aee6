//! The requests a worker holds, each owning its deadline, with an index of
//! those deadlines kept in step inside this type alone.

use std::collections::BTreeSet;
use std::time::Instant;

use lpm_protocol::{IdMap, RequestId};

use crate::request::Pending;

#[derive(Debug, Default)]
pub(super) struct InFlight {
    requests: IdMap<Pending>,
    /// `(deadline, id)` of every held request that has a deadline.
    deadlines: BTreeSet<(Instant, RequestId)>,
}

impl InFlight {
    pub(super) fn insert(&mut self, pending: Pending) {
        if let Some(deadline) = pending.deadline {
            self.deadlines.insert((deadline, pending.id));
        }
        let id = pending.id;
        if let Some(old) = self.requests.insert(id, pending) {
            // An attempt that comes back here left first: ids are unique.
            debug_assert!(false, "request {id} assigned twice to one worker");
            if let Some(deadline) = old.deadline {
                self.deadlines.remove(&(deadline, id));
            }
        }
    }

    pub(super) fn remove(&mut self, id: &RequestId) -> Option<Pending> {
        let pending = self.requests.remove(id)?;
        if let Some(deadline) = pending.deadline {
            self.deadlines.remove(&(deadline, *id));
        }
        Some(pending)
    }

    pub(super) fn len(&self) -> usize {
        self.requests.len()
    }

    pub(super) fn earliest_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    /// The next request whose deadline is at or before `now`, taken out.
    pub(super) fn pop_expired(&mut self, now: Instant) -> Option<Pending> {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(pending) = self.requests.remove(&id) {
                return Some(pending);
            }
        }
        None
    }

    /// Takes every request out.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = Pending> + '_ {
        self.deadlines.clear();
        self.requests.drain().map(|(_, p)| p)
    }
}
