//! The pool's size: growing and shrinking it (for [`Resize`](crate::Resize)
//! and the autoscaler), and the autoscaler's sampling loop, which asks the
//! Balancer how the queue and the workers look, lets
//! [`Autoscaler`](super::autoscale::Autoscaler) decide, and applies it.

use std::time::Instant;

use actix::prelude::*;

use super::autoscale::Observation;
use super::{Phase, Supervisor};
use crate::balancer::{Observe, Observed};
use crate::PoolEvent;

impl Supervisor {
    /// Slots the pool keeps: all but those being retired.
    pub(super) fn size(&self) -> usize {
        self.slots.values().filter(|s| !s.retiring).count()
    }

    /// Grows the pool to `target` slots at once, or retires the surplus:
    /// the highest slots, each of whose worker finishes its requests first;
    /// a slot without a worker (waiting for a restart, or given up) goes at once.
    pub(super) fn set_size(&mut self, target: usize, ctx: &mut Context<Self>) {
        self.config.workers = target;
        let active: Vec<usize> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.retiring)
            .map(|(&slot, _)| slot)
            .collect();
        if active.len() < target {
            for _ in active.len()..target {
                self.add_slot(ctx);
            }
            return;
        }
        let surplus = active.len() - target;
        for slot in active.into_iter().rev().take(surplus) {
            self.retire_slot(slot, ctx);
        }
        // Fewer workers to wait for: the pool may be online now, if the
        // ones retired were the ones still starting.
        self.check_online();
        self.advance_reload(ctx);
    }

    fn retire_slot(&mut self, slot: usize, ctx: &mut Context<Self>) {
        let Some(s) = self.slots.get_mut(&slot) else {
            return;
        };
        s.retiring = true;
        s.cancel_restart(ctx);
        if let Some(successor) = s.take_successor(ctx) {
            self.outgoing.insert(successor.id, successor.handle.clone());
            self.retire(successor.id, &successor.handle, ctx);
        }
        let Some(s) = self.slots.get_mut(&slot) else {
            return;
        };
        match s.live().map(|l| (l.id, l.handle.clone())) {
            Some((id, handle)) => self.retire(id, &handle, ctx),
            None => {
                self.slots.remove(&slot);
                self.check_down();
            }
        }
    }

    /// Starts the autoscaler's sampling loop, if the pool autoscales.
    pub(super) fn start_autoscaling(&mut self, ctx: &mut Context<Self>) {
        let Some(every) = self.autoscaler.as_ref().map(|a| a.config().sample_every) else {
            return;
        };
        self.sampler = Some(ctx.run_interval(every, |act, ctx| act.sample(ctx)));
    }

    /// Asks the Balancer for a sample, one at a time.
    fn sample(&mut self, ctx: &mut Context<Self>) {
        if self.sampling || !matches!(self.phase, Phase::Running) {
            return;
        }
        self.sampling = true;
        let observe = self.balancer.send(Observe);
        ctx.spawn(observe.into_actor(self).map(|observed, act, ctx| {
            act.sampling = false;
            if let Ok(observed) = observed {
                act.autoscale(observed, ctx);
            }
        }));
    }

    /// Applies the autoscaler's answer to a sample.
    fn autoscale(&mut self, observed: Observed, ctx: &mut Context<Self>) {
        if !matches!(self.phase, Phase::Running) {
            return;
        }
        let seen = Observation {
            size: self.size(),
            starting: self
                .slots
                .values()
                .filter(|s| !s.retiring && s.starting())
                .count(),
            idle: observed.idle,
            busy: observed.busy,
            queued: observed.queued,
            oldest_wait: observed.oldest_wait,
        };
        let Some(scale) = self
            .autoscaler
            .as_mut()
            .and_then(|a| a.decide(&seen, Instant::now()))
        else {
            return;
        };
        let from = seen.size;
        tracing::info!(from, to = scale.to, reason = %scale.reason, "autoscaling");
        self.set_size(scale.to, ctx);
        self.publish(PoolEvent::Scaled {
            from,
            to: scale.to,
            reason: scale.reason,
        });
    }
}
