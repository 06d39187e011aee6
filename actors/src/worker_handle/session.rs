//! One worker's session, as a state machine without I/O: the handshake, the
//! lifecycle, the requests in flight with their deadlines, the cancel fence,
//! the heartbeat, descriptors and recycling.
//!
//! Its inputs are decoded frames, channel errors, assignments, cancels, kill
//! orders, samples, the chunks of in-band request streams, what callers do
//! with in-band response streams, the exit status and [`Session::on_timeout`]
//! with `now`. It knows its transport only as far as the `Hello` tells it:
//! whether the worker takes descriptors, and whether it is remote (its pid is
//! not the process the pool started: it is then asked for its usage and
//! stopped by closing its input, see `remote.rs`).
//! Its outputs are frames queued in [`Session::outbox`] and [`Effect`]s
//! taken with [`Session::take_effects`]; [`Session::next_timeout`] says when
//! to call it next. The [`WorkerHandle`](super::WorkerHandle) actor does the
//! channel, the timers, the child and the messages to the other actors.

mod cancel_fence;
mod effect;
mod fds;
mod in_band;
mod in_flight;
mod inbound;
mod lifecycle;
mod liveness;
#[cfg(test)]
mod props;
mod remote;
#[cfg(test)]
mod stdio_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lpm_protocol::{Codec, FrameBuf, RequestId, ToWorker, PROTOCOL_VERSION};
use nix::sys::signal::Signal;

use crate::health::{UsageSource, WorkerHealth};
use crate::id::WorkerId;
use crate::request::{Counters, Pending};
use crate::{Error, Heartbeat, KillReason, Transport};
pub(crate) use effect::CallerStream;
pub(crate) use effect::{Effect, Exit};
pub(crate) use fds::SharedListener;
pub(crate) use in_band::{Feedback, RequestChunk};
use in_flight::InFlight;
use lifecycle::{Phase, Recycling};
use remote::{Ladder, LastUsage};

/// How long a worker that closed its channel may take to exit before SIGKILL.
const EXIT_AFTER_EOF: Duration = Duration::from_secs(2);

/// Settings a session needs, shared by all of a pool's handles.
#[derive(Debug, Clone)]
pub(crate) struct SessionConfig {
    pub(crate) max_frame_len: usize,
    /// The pool's payload codec; the worker's `Hello` must name the same.
    pub(crate) codec: Codec,
    pub(crate) spawn_timeout: Duration,
    /// Shared with the balancer: how many requests wait in its queue.
    pub(crate) counters: Arc<Counters>,
    pub(crate) heartbeat: Option<Heartbeat>,
    pub(crate) recycle_on_timeout: bool,
    pub(crate) term_grace: Duration,
    pub(crate) max_requests: Option<(u64, u64)>,
    pub(crate) max_rss: Option<u64>,
    /// How long before a worker whose recycling was refused asks again.
    pub(crate) recycle_retry: Duration,
}

/// The supervisor's side of one worker process.
#[derive(Debug)]
pub(crate) struct Session {
    id: WorkerId,
    pid: u32,
    transport: Transport,
    /// Whether descriptors may be sent: never over stdio; over the
    /// socketpair, as the worker's `Hello` says.
    takes_fds: bool,
    /// The worker's `Hello` named another pid than the process started: a
    /// worker behind a launcher, maybe on another machine.
    remote: bool,
    config: SessionConfig,
    phase: Phase,
    outbox: FrameBuf,
    effects: Vec<Effect>,
    in_flight: InFlight,
    /// Cancelled requests whose late answers are still expected.
    fence: cancel_fence::CancelFence,
    /// Response streams open and sockets held.
    fds: fds::FdBook,
    started_at: Instant,
    served: u64,
    rss: u64,
    cpu: f32,
    /// A remote worker's last usage report, to measure CPU between two.
    last_usage: Option<LastUsage>,
    /// The worker's input was closed (it reads end of file).
    input_closed: bool,
    /// A remote worker being stopped: when its launcher gets which signal.
    ladder: Option<Ladder>,
    stats: Vec<(String, f64)>,
    last_pong: Instant,
    /// When the next heartbeat ping is due, once the handshake is done.
    next_ping: Option<Instant>,
    /// Requests to answer before this worker is recycled (`Config::max_requests`).
    recycle_after: Option<u64>,
    recycle_asked: Option<Instant>,
}

impl Session {
    /// A session with a worker just started over `transport`; its `Hello` is queued.
    pub(crate) fn new(
        id: WorkerId,
        pid: u32,
        transport: Transport,
        config: SessionConfig,
        now: Instant,
    ) -> Self {
        let mut outbox = FrameBuf::new(config.max_frame_len);
        let hello = ToWorker::Hello {
            version: PROTOCOL_VERSION,
            slot: id.slot as u32,
            codec: config.codec,
        };
        if let Err(e) = outbox.push(&hello) {
            tracing::error!(slot = id.slot, pid, error = %e, "could not encode the Hello");
        }
        Self {
            id,
            pid,
            transport,
            takes_fds: transport == Transport::Socketpair,
            remote: false,
            phase: Phase::Handshake {
                until: now + config.spawn_timeout,
            },
            outbox,
            effects: Vec::new(),
            in_flight: InFlight::default(),
            fence: cancel_fence::CancelFence::default(),
            fds: fds::FdBook::default(),
            started_at: now,
            served: 0,
            rss: 0,
            cpu: 0.0,
            last_usage: None,
            input_closed: false,
            ladder: None,
            stats: Vec::new(),
            last_pong: now,
            next_ping: None,
            recycle_after: config
                .max_requests
                .map(|(n, jitter)| n + liveness::jitter(id, jitter)),
            recycle_asked: None,
            config,
        }
    }

    /// The frames to write; the shell writes them (even after the channel
    /// closed: a hard kill's last frame is queued just before).
    pub(crate) fn outbox(&mut self) -> &mut FrameBuf {
        &mut self.outbox
    }

    /// The transport that keeps the worker from descriptors, if it takes none.
    pub(crate) fn refuses_fds(&self) -> Option<Transport> {
        (!self.takes_fds).then_some(self.transport)
    }

    /// The pool's payload codec (custom events are decoded with it).
    pub(crate) fn codec(&self) -> Codec {
        self.config.codec
    }

    /// Checks, in debug builds, that the handle runs on the pool's thread.
    pub(crate) fn debug_assert_home(&self) {
        self.config.counters.debug_assert_home("WorkerHandle");
    }

    /// What the shell must do, in the order it arose. `spare` (emptied by
    /// the caller, its capacity kept) collects the next ones, so a busy
    /// worker's inputs allocate no list each.
    pub(crate) fn take_effects(&mut self, spare: Vec<Effect>) -> Vec<Effect> {
        debug_assert!(spare.is_empty());
        std::mem::replace(&mut self.effects, spare)
    }

    /// When [`Session::on_timeout`] is due next.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        [
            self.phase.deadline(),
            self.in_flight.earliest_deadline(),
            self.next_ping.filter(|_| self.phase.is_open()),
            self.ladder.as_ref().and_then(Ladder::deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Acts on every deadline that passed by `now`.
    pub(crate) fn on_timeout(&mut self, now: Instant) {
        self.climb_ladder(now);
        if self.phase.deadline().is_some_and(|d| d <= now) {
            self.phase_deadline(now);
        }
        if self.in_flight.earliest_deadline().is_some_and(|d| d <= now) {
            self.expire(now);
        }
        if self.phase.is_open() && self.next_ping.is_some_and(|at| at <= now) {
            self.heartbeat(now);
        }
    }

    /// Requests the balancer assigned: each is sent, or answered at once when
    /// it cannot be; all go back to the queue if this worker takes no more.
    pub(crate) fn assign(&mut self, batch: Vec<Pending>) {
        if !self.phase.takes_requests() {
            self.effects.push(Effect::Requeue(batch));
            return;
        }
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
            self.in_flight.insert(pending);
        }
        if freed {
            self.notify_freed();
        }
    }

    /// Callers stopped waiting for these requests: the ones held here are
    /// dropped, and the worker is told.
    pub(crate) fn cancel(&mut self, ids: &[RequestId], now: Instant) {
        let mut freed = false;
        for id in ids {
            if let Some(pending) = self.in_flight.remove(id) {
                tracing::debug!(slot = self.id.slot, pid = self.pid, %id, "caller stopped waiting; request cancelled");
                self.cancel_in_worker(*id);
                pending.abandon();
                freed = true;
            }
        }
        if freed {
            self.send_fence(now);
            self.notify_freed();
        }
    }

    /// Soft kill: take nothing new, finish what is in flight, exit.
    pub(crate) fn drain(&mut self) {
        if self.phase.is_open() && !self.phase.is_draining() {
            let hello_by = self.phase.hello_by();
            self.enter(Phase::Draining {
                recycling: None,
                hello_by,
            });
            self.push(&ToWorker::SoftKill);
        }
    }

    /// Hard kill: everything in flight fails with `Killed`, the process group gets SIGKILL.
    pub(crate) fn kill(&mut self, now: Instant) {
        for pending in self.in_flight.drain() {
            pending.fail(Error::Killed);
        }
        if self.phase.is_open() {
            self.push(&ToWorker::HardKill);
        }
        self.close_channel(now);
        self.signal(Signal::SIGKILL, now);
    }

    /// Signals the worker's process group, unless it was reaped already (its
    /// process group id may then belong to someone else). A remote worker is
    /// not ours to signal: its input closes, and its launcher gets the
    /// signal later if it has not exited (`remote.rs`).
    pub(crate) fn signal(&mut self, signal: Signal, now: Instant) {
        if self.phase.is_exited() {
            return;
        }
        if self.remote {
            self.escalate(signal, now);
        } else {
            self.effects.push(Effect::Signal(signal));
        }
    }

    /// A named event for the worker (broadcast).
    pub(crate) fn send_event(&mut self, name: String, payload: Vec<u8>) {
        if self.phase.is_open() {
            self.push(&ToWorker::Event { name, payload });
        }
    }

    /// The supervisor's reply to an event the worker emitted.
    pub(crate) fn deliver_reply(&mut self, emit_id: u64, outcome: Result<Vec<u8>, String>) {
        if self.phase.is_open() {
            let outcome = outcome.map(serde_bytes::ByteBuf::from);
            self.push(&ToWorker::EmitReply { emit_id, outcome });
        }
    }

    /// A fresh RSS (bytes) and CPU (percent) sample; `None` once the process is gone.
    pub(crate) fn on_sample(&mut self, sample: Option<(u64, f32)>, now: Instant) {
        if let Some((rss, cpu)) = sample {
            self.rss = rss;
            self.cpu = cpu;
            self.effects.push(Effect::Rss(rss));
            self.check_recycle(now);
        }
    }

    /// The process was reaped: everything it held goes back with the report.
    pub(crate) fn on_exit(&mut self, code: Option<i32>, signal: Option<i32>, now: Instant) {
        if self.phase.is_exited() {
            return;
        }
        if self.remote {
            // A dead launcher leaves its worker to read end of file.
            self.close_input();
        } else {
            // Whatever the worker started in its process group goes with it;
            // right after the reap the group id cannot belong to anyone else yet.
            self.signal(Signal::SIGKILL, now);
        }
        self.close_channel(now);
        self.ladder = None;
        let killed_for = self.phase.take_kill_reason();
        self.enter(Phase::Exited);
        self.outbox.clear();
        self.fds.clear();
        self.effects.push(Effect::Exited(Exit {
            code,
            signal,
            held: self.in_flight.drain().collect(),
            killed_for,
        }));
    }

    /// The worker's health now.
    pub(crate) fn health(&self, now: Instant) -> WorkerHealth {
        WorkerHealth {
            slot: self.id.slot,
            pid: Some(self.pid),
            rss: self.rss,
            cpu: self.cpu,
            usage: if self.remote {
                UsageSource::Reported
            } else {
                UsageSource::Sampled
            },
            // The handle's sampler knows it.
            cpu_time: Duration::ZERO,
            in_flight: self.in_flight.len() + self.fds.open_streams(),
            served: self.served,
            restarts: 0,
            recycles: 0,
            quarantined: 0,
            uptime: now.saturating_duration_since(self.started_at),
            state: self.phase.state(),
            stats: self.stats.clone(),
            sockets: self.fds.sockets(),
            target: 0,
        }
    }

    /// Requests held, for tests and health.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn push(&mut self, msg: &ToWorker) {
        if let Err(e) = self.outbox.push(msg) {
            tracing::warn!(slot = self.id.slot, pid = self.pid, error = %e, "could not encode a frame for the worker");
        }
    }

    /// Tells the balancer a slot is free, when it has requests waiting for one
    /// (it reads every worker's load directly when it assigns).
    fn notify_freed(&mut self) {
        if self.config.counters.queued() > 0 {
            self.effects.push(Effect::Freed);
        }
    }

    /// Moves to `phase`, telling the balancer when the state it sees changes.
    fn enter(&mut self, phase: Phase) {
        let before = self.phase.state();
        self.phase = phase;
        let after = self.phase.state();
        if after != before {
            self.effects.push(Effect::Status(after));
        }
    }

    /// The worker misbehaved: stop assigning, kill it, wait for its exit.
    /// The first reason is the one reported.
    fn kill_for(&mut self, reason: KillReason, now: Instant) {
        self.close_channel(now);
        if let Phase::Closed {
            killed_for: None,
            sigkill_at,
        } = self.phase
        {
            self.announce_kill(&reason);
            self.phase = Phase::Closed {
                killed_for: Some(reason),
                sigkill_at,
            };
        }
        self.signal(Signal::SIGKILL, now);
    }

    /// Tells the supervisor's subscribers why the pool kills the worker.
    fn announce_kill(&mut self, reason: &KillReason) {
        tracing::error!(slot = self.id.slot, pid = self.pid, %reason, "killing worker");
        self.effects.push(Effect::Killing(reason.clone()));
    }

    /// No more frames either way: the worker gets `EXIT_AFTER_EOF` to exit.
    /// A remote worker's input closes, so that it reads end of file; its
    /// launcher is signalled later if it does not exit (`remote.rs`).
    fn close_channel(&mut self, now: Instant) {
        if self.phase.is_open() {
            let killed_for = self.phase.take_kill_reason();
            let sigkill_at = (!self.remote).then_some(now + EXIT_AFTER_EOF);
            self.enter(Phase::Closed {
                killed_for,
                sigkill_at,
            });
            // Nothing more goes out for the streams being sent.
            self.fds.stop_sending();
            if self.remote {
                self.escalate(Signal::SIGKILL, now);
            }
        }
    }

    /// The phase's own deadline passed: the handshake took too long, or the
    /// worker did not exit in time.
    fn phase_deadline(&mut self, now: Instant) {
        if self.phase.hello_by().is_some_and(|at| at <= now) {
            let after = self.config.spawn_timeout;
            return self.kill_for(KillReason::NoHandshake { after }, now);
        }
        if self.phase.sigkill_at().is_none_or(|at| at > now) {
            return;
        }
        match &mut self.phase {
            Phase::Draining {
                recycling: Some(Recycling { sigkill_at, .. }),
                ..
            } => *sigkill_at = None,
            Phase::Closed { sigkill_at, .. } => {
                *sigkill_at = None;
                tracing::warn!(
                    slot = self.id.slot,
                    pid = self.pid,
                    "worker closed its channel but did not exit; killing it"
                );
            }
            _ => {}
        }
        self.signal(Signal::SIGKILL, now);
    }
}
