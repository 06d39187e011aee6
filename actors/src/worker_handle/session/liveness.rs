//! Whether the worker still earns its place: heartbeats, request deadlines,
//! cancels with their fence (`cancel_fence.rs`), the late-request recycle
//! (harakiri), and asking to be recycled at a limit.

use std::hash::BuildHasher;
use std::time::Instant;

use lpm_protocol::{RequestId, ToWorker};
use nix::sys::signal::Signal;

use super::cancel_fence::MAX_UNFENCED;
use super::lifecycle::{Phase, Recycling, Serving};
use super::{Effect, Session};
use crate::id::WorkerId;
use crate::{KillReason, RecycleReason};

/// A random share of `jitter` (0 to `jitter`), different for every worker.
pub(super) fn jitter(id: WorkerId, jitter: u64) -> u64 {
    if jitter == 0 {
        return 0;
    }
    std::collections::hash_map::RandomState::new().hash_one(id) % (jitter + 1)
}

impl Session {
    /// The handshake is done: the heartbeat starts, if one is configured.
    pub(super) fn start_heartbeat(&mut self, now: Instant) {
        self.last_pong = now;
        self.next_ping = self.config.heartbeat.map(|h| now + h.every);
    }

    /// A heartbeat is due: a worker silent for too long is killed, else pinged.
    pub(super) fn heartbeat(&mut self, now: Instant) {
        let Some(heartbeat) = self.config.heartbeat else {
            return;
        };
        self.next_ping = Some(now + heartbeat.every);
        let silent_for = now.saturating_duration_since(self.last_pong);
        if silent_for > heartbeat.timeout {
            return self.kill_for(KillReason::Unresponsive { silent_for }, now);
        }
        self.ping();
    }

    fn ping(&mut self) {
        let seq = self.fence.next_ping();
        self.push(&ToWorker::Ping { seq });
    }

    pub(super) fn on_pong(&mut self, seq: u64, now: Instant) {
        self.last_pong = now;
        // The worker read every Cancel sent before this ping: no stale answer can follow.
        self.fence.pong(seq);
    }

    /// Tells the worker to drop request `id`; its answers are stale until the
    /// next ping comes back. Call [`Session::send_fence`] after a batch of these.
    pub(super) fn cancel_in_worker(&mut self, id: RequestId) {
        self.stop_request_stream(&id);
        self.push(&ToWorker::Cancel { id });
        self.fence.cancelled(id);
    }

    /// Sends the ping that ends the stale period of the cancels just sent.
    pub(super) fn send_fence(&mut self, now: Instant) {
        if self.fence.unfenced() > MAX_UNFENCED {
            let reason = format!(
                "{} cancelled requests and no Pong for their fence; a worker must answer Ping",
                self.fence.unfenced()
            );
            return self.kill_for(KillReason::ProtocolViolation(reason), now);
        }
        if self.fence.is_due() {
            self.ping();
        }
    }

    /// True when an answer for `id` is a stale one of a cancelled attempt.
    pub(super) fn is_stale(&self, id: &RequestId) -> bool {
        self.fence.is_stale(id)
    }

    /// Times out the requests whose deadline passed: retried elsewhere while
    /// retries last, else answered with `Timeout`. Either way the slot is freed.
    pub(super) fn expire(&mut self, now: Instant) {
        let mut retry = Vec::new();
        while let Some(pending) = self.in_flight.pop_expired(now) {
            let id = pending.id;
            tracing::debug!(slot = self.id.slot, pid = self.pid, %id, "request timed out");
            // The worker must not answer it any more; a retry may come back here with the same id.
            self.cancel_in_worker(id);
            self.recycle_late(id, now);
            let error = pending.timed_out();
            retry.extend(pending.retry(now, self.id.slot, error));
        }
        self.send_fence(now);
        if !retry.is_empty() {
            self.effects.push(Effect::Requeue(retry));
        }
        self.notify_freed();
    }

    /// A request ran past its timeout here: with `Config::recycle_on_timeout`,
    /// the worker takes no more work, gets SIGTERM, and SIGKILL after `term_grace`.
    /// Its other requests are answered until it exits, then retried.
    fn recycle_late(&mut self, id: RequestId, now: Instant) {
        if !self.config.recycle_on_timeout
            || !self.phase.is_open()
            || self.phase.kill_reason().is_some()
        {
            return;
        }
        let reason = KillReason::RequestTimedOut { id };
        self.announce_kill(&reason);
        let hello_by = self.phase.hello_by();
        self.enter(Phase::Draining {
            recycling: Some(Recycling {
                reason,
                sigkill_at: Some(now + self.config.term_grace),
            }),
            hello_by,
        });
        self.signal(Signal::SIGTERM, now);
    }

    /// Asks the supervisor for a replacement when a recycling limit is reached.
    pub(super) fn check_recycle(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Serving(Serving::Ready | Serving::Busy)) {
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
            .is_some_and(|at| now.saturating_duration_since(at) < self.config.recycle_retry)
        {
            return;
        }
        self.recycle_asked = Some(now);
        self.effects.push(Effect::Recycle(reason));
    }
}
