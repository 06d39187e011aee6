//! The kill phases: a soft kill serves the queue, then asks every worker to
//! finish, then signals stragglers; a hard kill SIGKILLs at once. Both end
//! with a [`KillReport`] once every child is reaped. SIGINT/SIGTERM start one.

use actix::prelude::*;
use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use super::slot::Slot;
use super::{Phase, Supervisor};
use crate::balancer::{Close, FailQueued, PoolDown};
use crate::worker_handle::{Drain, Kill, SignalWorker};
use crate::{Error, PoolEvent, SignalPolicy};

/// What a kill ended with.
///
/// It serializes as `{"served": 6, "failed": 1, "killed": 0}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct KillReport {
    /// Requests answered over the pool's life.
    pub served: u64,
    /// Requests that ended with an error over the pool's life.
    pub failed: u64,
    /// Workers that had to be ended by a signal (hard kill, or soft-kill stragglers).
    pub killed: usize,
}

impl Supervisor {
    pub(super) fn begin_stop(
        &mut self,
        hard: bool,
        ctx: &mut Context<Self>,
    ) -> oneshot::Receiver<KillReport> {
        let (tx, rx) = oneshot::channel();
        match &mut self.phase {
            Phase::Stopped(report) => {
                let _ = tx.send(*report);
                return rx;
            }
            Phase::Stopping {
                waiters,
                hard: was_hard,
                ..
            } => {
                waiters.push(tx);
                if hard && !*was_hard {
                    *was_hard = true;
                    self.kill_all(ctx);
                }
                return rx;
            }
            Phase::Running => {
                self.phase = Phase::Stopping {
                    waiters: vec![tx],
                    hard,
                    serving: !hard,
                };
            }
        }
        self.answer_online_waiters(Err(Error::ShuttingDown));
        self.abort_reload(ctx);
        let (drained_tx, drained_rx) = oneshot::channel();
        self.balancer.do_send(Close {
            drained: drained_tx,
        });
        if hard {
            self.kill_all(ctx);
        } else {
            // Workers serve the queue first (dead ones are still restarted),
            // then get the soft-kill message.
            ctx.spawn(
                drained_rx
                    .into_actor(self)
                    .map(|_, act, ctx| act.stop_serving(ctx)),
            );
            let grace = self.config.soft_kill_grace;
            let term_grace = self.config.term_grace;
            let timer = ctx.run_later(grace, move |act, ctx| {
                act.signal_stragglers(Signal::SIGTERM);
                let timer = ctx.run_later(term_grace, |act, ctx| act.kill_all(ctx));
                act.stop_timers.push(timer);
            });
            self.stop_timers.push(timer);
        }
        self.check_stopped(ctx);
        rx
    }

    /// The queue is drained (or a kill took over): no more restarts, and
    /// every worker is told to finish.
    pub(super) fn stop_serving(&mut self, ctx: &mut Context<Self>) {
        if let Phase::Stopping { serving, .. } = &mut self.phase {
            *serving = false;
        }
        self.cancel_restarts(ctx);
        for live in self.serving() {
            live.handle.do_send(Drain);
        }
        self.check_stopped(ctx);
    }

    /// Cancels timed restarts, and recycles not yet started or not yet ready
    /// (the worker being replaced stays and is stopped with the others).
    fn cancel_restarts(&mut self, ctx: &mut Context<Self>) {
        let mut starting = Vec::new();
        for s in self.slots.values_mut() {
            s.cancel_restart(ctx);
            starting.extend(s.take_successor(ctx));
        }
        for live in starting {
            live.handle.do_send(Drain);
            self.outgoing.insert(live.id, live.handle);
        }
    }

    /// Workers may be (re)started: while running, and while a soft kill still serves the queue.
    pub(super) fn may_spawn(&self) -> bool {
        matches!(
            self.phase,
            Phase::Running | Phase::Stopping { serving: true, .. }
        )
    }

    pub(super) fn signal_stragglers(&mut self, signal: Signal) {
        if !matches!(self.phase, Phase::Stopping { .. }) {
            return;
        }
        let live: Vec<_> = self.processes().map(|(id, h)| (id, h.clone())).collect();
        if !live.is_empty() {
            tracing::warn!(workers = live.len(), ?signal, "soft kill grace period over");
        }
        for (id, handle) in live {
            self.signalled.insert(id);
            handle.do_send(SignalWorker(signal));
        }
    }

    pub(super) fn kill_all(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.phase, Phase::Stopping { .. }) {
            return;
        }
        if let Phase::Stopping { serving, .. } = &mut self.phase {
            *serving = false;
        }
        self.cancel_restarts(ctx);
        self.balancer.do_send(FailQueued(Error::Killed));
        let live: Vec<_> = self.processes().map(|(id, h)| (id, h.clone())).collect();
        for (id, handle) in live {
            self.signalled.insert(id);
            handle.do_send(Kill);
        }
    }

    /// Resolves the kill once no worker is left.
    pub(super) fn check_stopped(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.phase, Phase::Stopping { .. }) {
            return;
        }
        let restarting = self.may_spawn() && self.slots.values().any(Slot::is_restarting);
        if restarting || self.in_transit > 0 || self.processes().next().is_some() {
            return;
        }
        // Whatever is still queued can no longer be served; the round trip makes
        // sure those failures are counted before the report is read.
        let balancer = self.balancer.clone();
        ctx.wait(
            async move {
                let _ = balancer.send(PoolDown(true)).await;
            }
            .into_actor(self)
            .map(|(), act, ctx| act.finish_stop(ctx)),
        );
    }

    pub(super) fn finish_stop(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.phase, Phase::Stopping { .. }) {
            return;
        }
        let Phase::Stopping { waiters, .. } = std::mem::replace(&mut self.phase, Phase::Running)
        else {
            return;
        };
        // Nothing is left to time, and a stopped pool has nothing to do on a signal.
        // (tokio keeps its handler installed, so SIGINT no longer ends the process:
        // the application exits on `PoolEvent::Stopped` if it wants to.)
        for timer in self.stop_timers.drain(..) {
            ctx.cancel_future(timer);
        }
        if let Some(signals) = self.signals.take() {
            ctx.cancel_future(signals);
        }
        if let Some(sampler) = self.sampler.take() {
            ctx.cancel_future(sampler);
        }
        // No worker will start again: the broadcast listeners close.
        self.listeners.clear();
        let report = KillReport {
            served: self.counters.served(),
            failed: self.counters.failed(),
            killed: self.signalled.len(),
        };
        self.phase = Phase::Stopped(report);
        for w in waiters {
            let _ = w.send(report);
        }
        tracing::info!(?report, "pool stopped");
        self.publish(PoolEvent::Stopped(report));
    }

    pub(super) fn on_signal(&mut self, signal: i32, ctx: &mut Context<Self>) {
        tracing::info!(signal, "supervisor received a signal");
        self.publish(PoolEvent::Signal { signal });
        let escalate = matches!(self.phase, Phase::Stopping { .. });
        let hard = escalate || self.config.on_signal == SignalPolicy::HardKill;
        drop(self.begin_stop(hard, ctx));
    }
}

pub(super) fn signals() -> impl futures::Stream<Item = i32> {
    use futures::StreamExt;
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind: SignalKind| {
        let s = signal(kind).ok();
        futures::stream::unfold(s, move |s| async move {
            let mut s = s?;
            s.recv().await?;
            Some((kind.as_raw_value(), Some(s)))
        })
    };
    futures::stream::select(
        listen(SignalKind::interrupt()),
        listen(SignalKind::terminate()),
    )
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::KillReport;

    #[test]
    fn kill_report_serializes_as_its_counts() {
        let report = KillReport {
            served: 6,
            failed: 1,
            killed: 2,
        };
        assert_eq!(
            serde_json::to_value(report).unwrap(),
            serde_json::json!({"served": 6, "failed": 1, "killed": 2})
        );
    }
}
