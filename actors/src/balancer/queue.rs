//! The requests waiting for a worker, in order, and when the first of them
//! may expire.

use std::collections::VecDeque;
use std::time::Instant;

use crate::request::Pending;

/// The waiting requests. New ones join at the back; requests that come back
/// for another attempt go to the front, having waited longest.
#[derive(Debug, Default)]
pub(super) struct Queue {
    items: VecDeque<Pending>,
    /// No queued request expires before this; `None` while none has a
    /// deadline. Exact after each expiry pass, a lower bound in between
    /// (requests leave the queue without moving it), so the balancer's one
    /// timer may ring early but never late.
    earliest: Option<Instant>,
}

impl Queue {
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(super) fn front(&self) -> Option<&Pending> {
        self.items.front()
    }

    pub(super) fn get(&self, i: usize) -> Option<&Pending> {
        self.items.get(i)
    }

    /// When the queue's first deadline may fall, if any queued request has one.
    pub(super) fn earliest_deadline(&self) -> Option<Instant> {
        self.earliest
    }

    pub(super) fn push_back(&mut self, pending: Pending) {
        self.note_deadline(&pending);
        self.items.push_back(pending);
    }

    pub(super) fn push_front(&mut self, pending: Pending) {
        self.note_deadline(&pending);
        self.items.push_front(pending);
    }

    fn note_deadline(&mut self, pending: &Pending) {
        if let Some(deadline) = pending.deadline {
            self.earliest = Some(self.earliest.map_or(deadline, |e| e.min(deadline)));
        }
    }

    pub(super) fn remove(&mut self, i: usize) -> Option<Pending> {
        let pending = self.items.remove(i);
        if self.items.is_empty() {
            self.earliest = None;
        }
        pending
    }

    /// Takes out every request that `leaves` says goes, keeping the others in order.
    pub(super) fn take_where(&mut self, mut leaves: impl FnMut(&Pending) -> bool) -> Vec<Pending> {
        let mut gone = Vec::new();
        let mut kept = VecDeque::with_capacity(self.items.len());
        for pending in self.items.drain(..) {
            if leaves(&pending) {
                gone.push(pending);
            } else {
                kept.push_back(pending);
            }
        }
        self.items = kept;
        if self.items.is_empty() {
            self.earliest = None;
        }
        gone
    }

    /// Takes out the requests whose deadline is at or before `now`.
    pub(super) fn take_expired(&mut self, now: Instant) -> Vec<Pending> {
        if self.earliest.is_none_or(|e| e > now) {
            return Vec::new();
        }
        let expired = self.take_where(|p| p.deadline.is_some_and(|d| d <= now));
        self.earliest = self.items.iter().filter_map(|p| p.deadline).min();
        expired
    }

    /// Takes out every request.
    pub(super) fn take_all(&mut self) -> VecDeque<Pending> {
        self.earliest = None;
        std::mem::take(&mut self.items)
    }
}
