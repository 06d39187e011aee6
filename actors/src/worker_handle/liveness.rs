//! Whether the worker still earns its place: heartbeats, cancels with their
//! fence (`cancel_fence.rs`), the late-request recycle (harakiri), and asking
//! to be recycled at a limit.

use std::hash::BuildHasher;
use std::time::Instant;

use actix::prelude::*;
use lpm_protocol::{RequestId, ToWorker};
use nix::sys::signal::Signal;

use super::cancel_fence::MAX_UNFENCED;
use super::WorkerHandle;
use crate::health::WorkerState;
use crate::id::WorkerId;
use crate::supervisor::RecycleMe;
use crate::{KillReason, RecycleReason};

/// A random share of `jitter` (0 to `jitter`), different for every worker.
pub(super) fn jitter(id: WorkerId, jitter: u64) -> u64 {
    if jitter == 0 {
        return 0;
    }
    std::collections::hash_map::RandomState::new().hash_one(id) % (jitter + 1)
}

impl WorkerHandle {
    /// Starts pinging once the handshake is done, if a heartbeat is configured.
    pub(super) fn start_heartbeat(&mut self, ctx: &mut Context<Self>) {
        self.last_pong = Instant::now();
        if let Some(heartbeat) = self.config.heartbeat {
            let timer = ctx.run_interval(heartbeat.every, move |act, ctx| {
                if !act.channel_open {
                    return;
                }
                let silent_for = act.last_pong.elapsed();
                if silent_for > heartbeat.timeout {
                    return act.kill_for(KillReason::Unresponsive { silent_for }, ctx);
                }
                act.ping(ctx);
            });
            self.heartbeat = Some(timer);
        }
    }

    fn ping(&mut self, ctx: &mut Context<Self>) {
        let seq = self.fence.next_ping();
        self.push(&ToWorker::Ping { seq }, ctx);
    }

    pub(super) fn on_pong(&mut self, seq: u64) {
        self.last_pong = Instant::now();
        // The worker read every Cancel sent before this ping: no stale answer can follow.
        self.fence.pong(seq);
    }

    /// Tells the worker to drop request `id`; its answers are stale until the
    /// next ping comes back. Call [`WorkerHandle::send_fence`] after a batch of these.
    pub(super) fn cancel_in_worker(&mut self, id: RequestId) {
        if let Err(e) = self.sink.push(&ToWorker::Cancel { id }) {
            tracing::warn!(slot = self.id.slot, pid = self.pid, error = %e, "could not encode Cancel");
        }
        self.fence.cancelled(id);
    }

    /// Sends the ping that ends the stale period of the cancels just sent.
    pub(super) fn send_fence(&mut self, ctx: &mut Context<Self>) {
        if self.fence.unfenced() > MAX_UNFENCED {
            let reason = format!(
                "{} cancelled requests and no Pong for their fence; a worker must answer Ping",
                self.fence.unfenced()
            );
            return self.kill_for(KillReason::ProtocolViolation(reason), ctx);
        }
        if self.fence.is_due() {
            self.ping(ctx);
        } else {
            self.flush(ctx);
        }
    }

    /// True when an answer for `id` is a stale one of a cancelled attempt.
    pub(super) fn is_stale(&self, id: &RequestId) -> bool {
        self.fence.is_stale(id)
    }

    /// A request ran past its timeout here: with `Config::recycle_on_timeout`,
    /// the worker takes no more work, gets SIGTERM, and SIGKILL after `term_grace`.
    /// Its other requests are answered until it exits, then retried.
    pub(super) fn recycle_late(&mut self, id: RequestId, ctx: &mut Context<Self>) {
        if !self.config.recycle_on_timeout || self.kill_reason.is_some() || !self.channel_open {
            return;
        }
        self.record_kill(KillReason::RequestTimedOut { id });
        self.set_state(WorkerState::Draining);
        self.signal(Signal::SIGTERM);
        ctx.run_later(self.config.term_grace, |act, _| act.signal(Signal::SIGKILL));
    }

    /// Asks the supervisor for a replacement when a recycling limit is reached.
    pub(super) fn check_recycle(&mut self) {
        if !matches!(self.state, WorkerState::Ready | WorkerState::Busy) {
            return;
        }
        let reason = match (self.recycle_after, self.config.max_rss) {
            (Some(after), _) if self.served >= after => RecycleReason::MaxRequests {
                served: self.served,
            },
            (_, Some(limit)) if self.rss > limit => RecycleReason::MaxRss {
                rss: self.rss,
                limit,
            },
            _ => return,
        };
        if self
            .recycle_asked
            .is_some_and(|at| at.elapsed() < self.config.recycle_retry)
        {
            return;
        }
        self.recycle_asked = Some(Instant::now());
        self.supervisor.do_send(RecycleMe {
            id: self.id,
            pid: self.pid,
            reason,
        });
    }
}
