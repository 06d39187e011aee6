//! The requests a worker holds: assigning them (one write per batch), their
//! deadlines (one alarm), and taking them out when answered.

use std::time::Instant;

use actix::prelude::*;
use lpm_protocol::RequestId;

use super::WorkerHandle;
use crate::balancer::{Freed, Requeue};
use crate::health::WorkerState;
use crate::request::Pending;

impl WorkerHandle {
    pub(super) fn on_assign(&mut self, batch: Vec<Pending>, ctx: &mut Context<Self>) {
        if !self.channel_open || self.state == WorkerState::Draining {
            self.balancer.do_send(Requeue(batch));
            return;
        }
        let mut earliest = None;
        let mut freed = false;
        for mut pending in batch {
            if pending.is_abandoned() {
                pending.abandon();
                freed = true;
                continue;
            }
            if let Err(error) = self.push_request_frame(&mut pending) {
                pending.fail(error);
                freed = true;
                continue;
            }
            if let Some(deadline) = pending.deadline {
                self.deadlines.insert((deadline, pending.id));
                earliest = Some(earliest.map_or(deadline, |e: Instant| e.min(deadline)));
            }
            self.in_flight.insert(pending.id, pending);
        }
        self.flush(ctx);
        if earliest.is_some() {
            self.arm_timer(ctx);
        }
        if freed {
            self.notify_freed();
        }
    }

    /// Tells the balancer a slot is free, when it has requests waiting for one
    /// (it reads every worker's load directly when it assigns).
    pub(super) fn notify_freed(&self) {
        if self.config.counters.queued() > 0 {
            self.balancer.do_send(Freed);
        }
    }

    pub(super) fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(&(earliest, _)) = self.deadlines.first() {
            self.timer.arm(earliest, ctx, |act, ctx| {
                act.timer.rang();
                act.expire(ctx);
            });
        }
    }

    /// Times out the requests whose deadline passed: retried elsewhere while
    /// retries last, else answered with `Timeout`. Either way the slot is freed.
    pub(super) fn expire(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let mut retry = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(pending) = self.in_flight.remove(&id) else {
                continue;
            };
            tracing::debug!(slot = self.id.slot, pid = self.pid, %id, "request timed out");
            // The worker must not answer it any more; a retry may come back here with the same id.
            self.cancel_in_worker(id);
            self.recycle_late(id, ctx);
            let error = pending.timeout_error();
            retry.extend(pending.retry(now, self.id.slot, error));
        }
        self.send_fence(ctx);
        if !retry.is_empty() {
            self.balancer.do_send(Requeue(retry));
        }
        self.notify_freed();
        self.arm_timer(ctx);
    }

    pub(super) fn take(&mut self, id: &RequestId) -> Option<Pending> {
        let pending = self.in_flight.remove(id)?;
        if let Some(deadline) = pending.deadline {
            self.deadlines.remove(&(deadline, *id));
        }
        Some(pending)
    }
}
