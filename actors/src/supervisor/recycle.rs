//! Recycling: a worker that reached a limit (`Config::max_requests`,
//! `Config::max_rss`) gets a successor in its slot, and is drained only once
//! the successor is ready, so the pool never drops below strength. Recycles
//! count against the slot's restart window, so a worker that is over the
//! limit from birth cannot cause a respawn loop.

use std::ops::ControlFlow;
use std::time::Instant;

use actix::prelude::*;

use super::slot::{Filled, Successor, Why};
use super::{Phase, Supervisor};
use crate::id::WorkerId;
use crate::{PoolEvent, RecycleReason};

/// A worker reached a recycling limit and asks for its replacement.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct RecycleMe {
    pub(crate) id: WorkerId,
    pub(crate) pid: u32,
    pub(crate) reason: RecycleReason,
}

impl Handler<RecycleMe> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: RecycleMe, ctx: &mut Context<Self>) {
        if !matches!(self.phase, Phase::Running) {
            return;
        }
        let slot = msg.id.slot;
        let Some(s) = self.slots.get_mut(&slot) else {
            return;
        };
        if s.retiring || s.successor.is_some() || s.live().map(|l| l.id) != Some(msg.id) {
            return;
        }
        match s.restarts.record(Instant::now()) {
            ControlFlow::Continue(delay) => {
                tracing::info!(slot, pid = msg.pid, reason = %msg.reason, "recycling worker");
                let timer = ctx.run_later(delay, move |act, ctx| act.start_successor(msg, ctx));
                s.successor = Some(Successor::Planned(timer));
            }
            ControlFlow::Break(restarts) => {
                tracing::warn!(
                    slot,
                    pid = msg.pid,
                    restarts,
                    reason = %msg.reason,
                    "worker is due for recycling, but its slot restarted too often within the window; keeping it"
                );
            }
        }
    }
}

impl Supervisor {
    fn start_successor(&mut self, msg: RecycleMe, ctx: &mut Context<Self>) {
        let slot = msg.id.slot;
        let due = matches!(self.phase, Phase::Running)
            && self.slots.get(&slot).is_some_and(|s| {
                s.live().map(|l| l.id) == Some(msg.id)
                    && matches!(s.successor, Some(Successor::Planned(_)))
            });
        if !due {
            return;
        }
        let id = self.spawn(slot, ctx);
        if let Some(s) = self.slots.get_mut(&slot) {
            s.successor = Some(Successor::Spawning {
                id,
                replaces: msg.pid,
                why: Why::Recycle(msg.reason),
            });
        }
    }

    /// A successor said ready: it takes the slot, and the worker it replaces
    /// drains. False when `id` is no successor.
    pub(super) fn successor_ready(&mut self, id: WorkerId, ctx: &mut Context<Self>) -> bool {
        let is_successor = self
            .slots
            .get(&id.slot)
            .and_then(|s| s.successor())
            .is_some_and(|l| l.id == id);
        if is_successor {
            self.promote(id.slot, true, ctx);
        }
        is_successor
    }

    /// The slot's worker died while a successor was starting: the successor
    /// takes the slot at once (no restart needed). False when there was none.
    pub(super) fn successor_takes_over(&mut self, slot: usize, ctx: &mut Context<Self>) -> bool {
        let starting = self.slots.get(&slot).and_then(|s| s.successor()).is_some();
        if starting {
            self.promote(slot, false, ctx);
        } else if let Some(s) = self.slots.get_mut(&slot) {
            // A planned recycle has nothing left to replace.
            drop(s.take_successor(ctx));
        }
        starting
    }

    /// The successor takes the slot: because it is ready (the old worker then
    /// drains), or because the old worker died (`ready` false). A recycle
    /// says so here; a reload says so once its successor is ready (`reload.rs`).
    fn promote(&mut self, slot: usize, ready: bool, ctx: &mut Context<Self>) {
        let Some(s) = self.slots.get_mut(&slot) else {
            return;
        };
        let Some(Successor::Starting {
            mut live,
            replaces,
            why,
        }) = s.successor.take()
        else {
            return;
        };
        live.ready = ready;
        let successor = live.pid;
        if matches!(why, Why::Recycle(_)) {
            s.recycles += 1;
            self.counters.metrics.recycled();
        }
        let old = std::mem::replace(&mut s.filled, Filled::Live(live));
        if let (Filled::Live(old), true) = (old, ready) {
            self.outgoing.insert(old.id, old.handle.clone());
            self.retire(old.id, &old.handle, ctx);
        }
        if let Why::Recycle(reason) = why {
            tracing::info!(slot, pid = replaces, successor, %reason, "worker recycled");
            self.publish(PoolEvent::WorkerRecycled {
                slot,
                pid: replaces,
                successor,
                reason,
            });
        }
    }

    /// A successor died before it was ready: the worker it was to replace
    /// keeps serving (and asks again later, for a recycle).
    pub(super) fn successor_died(&mut self, id: WorkerId) {
        if let Some(s) = self.slots.get_mut(&id.slot) {
            if s.successor().is_some_and(|l| l.id == id) {
                tracing::warn!(
                    slot = id.slot,
                    "successor of a replaced worker died before it was ready"
                );
                s.successor = None;
            }
        }
    }
}
