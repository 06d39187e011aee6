//! The WorkerHandle actor: one per child process. It writes request frames
//! (batched), reads everything the child sends, owns the in-flight map and the
//! per-request deadlines, samples RSS/CPU, and reports the child's exit with
//! the requests it still held.

mod cancel_fence;
mod fds;
mod group_guard;
mod in_flight;
mod inbound;
mod liveness;
mod output;
mod sampler;
pub(crate) mod spawn;

use std::collections::{BTreeSet, HashMap};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use lpm_protocol::{
    FrameSink, FrameStream, IdMap, RequestId, ToSupervisor, ToWorker, PROTOCOL_VERSION,
};
use nix::sys::signal::Signal;

use crate::alarm::Alarm;
use crate::balancer::{Balancer, CancelRequests, LoadSample, WorkerStatus};
use crate::events::DeliverReply;
use crate::health::{WorkerHealth, WorkerState};
use crate::id::WorkerId;
use crate::request::Pending;
use crate::supervisor::{Publish, Supervisor, WorkerExited};
use crate::{Error, KillReason, PoolEvent};
pub(crate) use fds::SendListener;
use output::StderrTail;
use sampler::Sampler;
use spawn::{signal_group, Spawned};

/// Requests the balancer assigned to this worker.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Assign(pub(crate) Vec<Pending>);

/// A named event for the worker (broadcast).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct SendEvent {
    pub(crate) name: String,
    pub(crate) payload: Vec<u8>,
}

/// Soft kill: take nothing new, finish what is in flight, exit.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Drain;

/// Hard kill: fail everything in flight with `Killed`, SIGKILL the process group.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Kill;

/// Sends a signal to the worker's process group (soft kill stragglers).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct SignalWorker(pub(crate) Signal);

/// Asks for the worker's health.
#[derive(Debug, Message)]
#[rtype(result = "WorkerHealth")]
pub(crate) struct Sample;

/// How long a worker that closed its channel may take to exit before SIGKILL.
const EXIT_AFTER_EOF: Duration = Duration::from_secs(2);
/// How long the exit report waits for the last stderr lines.
const STDERR_DRAIN: Duration = Duration::from_millis(200);

/// Settings a handle needs, shared by all handles.
#[derive(Debug, Clone)]
pub(crate) struct HandleConfig {
    pub(crate) max_frame_len: usize,
    /// The pool's payload codec; the worker's `Hello` must name the same.
    pub(crate) codec: lpm_protocol::Codec,
    pub(crate) sample_interval: Duration,
    pub(crate) spawn_timeout: Duration,
    /// Shared with the balancer: how many requests wait in its queue.
    pub(crate) counters: std::sync::Arc<crate::request::Counters>,
    pub(crate) heartbeat: Option<crate::Heartbeat>,
    pub(crate) recycle_on_timeout: bool,
    pub(crate) term_grace: Duration,
    pub(crate) max_requests: Option<(u64, u64)>,
    pub(crate) max_rss: Option<u64>,
    /// How long before a worker whose recycling was refused asks again.
    pub(crate) recycle_retry: Duration,
}

/// Bridges one child process to the actors.
#[derive(Debug)]
pub(crate) struct WorkerHandle {
    id: WorkerId,
    pid: u32,
    config: HandleConfig,
    balancer: Addr<Balancer>,
    supervisor: Addr<Supervisor>,
    sink: FrameSink,
    flush_waiting: bool,
    stream: Option<FrameStream<ToSupervisor>>,
    child: Option<spawn::Child>,
    in_flight: IdMap<Pending>,
    deadlines: BTreeSet<(Instant, RequestId)>,
    timer: Alarm,
    state: WorkerState,
    handshaken: bool,
    channel_open: bool,
    exited: bool,
    started_at: Instant,
    served: u64,
    rss: u64,
    cpu: f32,
    stats: Vec<(String, f64)>,
    sampler: Sampler,
    sampling: Option<SpawnHandle>,
    handshake_deadline: Option<SpawnHandle>,
    stderr_tail: StderrTail,
    stderr_eof: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Why the pool is killing this worker, if it is.
    kill_reason: Option<KillReason>,
    /// Cancelled requests whose late answers are still expected.
    fence: cancel_fence::CancelFence,
    last_pong: Instant,
    heartbeat: Option<SpawnHandle>,
    /// Kills a worker that closed its channel but did not exit; cancelled
    /// once it is reaped, so the actor (and its socket) can end at once.
    exit_deadline: Option<SpawnHandle>,
    /// Requests to answer before this worker is recycled (`Config::max_requests`).
    recycle_after: Option<u64>,
    recycle_asked: Option<Instant>,
    /// Response streams open and sockets held (`fds.rs`).
    fds: fds::FdBook,
}

impl WorkerHandle {
    pub(crate) fn new(
        id: WorkerId,
        spawned: Spawned,
        config: HandleConfig,
        balancer: Addr<Balancer>,
        supervisor: Addr<Supervisor>,
    ) -> Self {
        let Spawned {
            mut child,
            pid,
            channel,
        } = spawned;
        let channel = Arc::new(channel);
        let stderr_tail = StderrTail::default();
        let stderr_eof = output::forward(
            id.slot,
            pid,
            child.stdout.take(),
            child.stderr.take(),
            stderr_tail.clone(),
        );
        Self {
            id,
            pid,
            sink: FrameSink::new(Arc::clone(&channel), config.max_frame_len),
            stream: Some(FrameStream::new(channel, config.max_frame_len)),
            balancer,
            supervisor,
            flush_waiting: false,
            child: Some(child),
            in_flight: HashMap::default(),
            deadlines: BTreeSet::new(),
            timer: Alarm::default(),
            state: WorkerState::Starting,
            handshaken: false,
            channel_open: true,
            exited: false,
            started_at: Instant::now(),
            served: 0,
            rss: 0,
            cpu: 0.0,
            stats: Vec::new(),
            sampler: Sampler::new(pid),
            sampling: None,
            handshake_deadline: None,
            stderr_tail,
            stderr_eof: Some(stderr_eof),
            kill_reason: None,
            fence: cancel_fence::CancelFence::default(),
            last_pong: Instant::now(),
            heartbeat: None,
            exit_deadline: None,
            recycle_after: config
                .max_requests
                .map(|(n, jitter)| n + liveness::jitter(id, jitter)),
            recycle_asked: None,
            fds: fds::FdBook::default(),
            config,
        }
    }

    fn set_state(&mut self, state: WorkerState) {
        // Nothing brings a closed channel back: a dead worker's late Ready is ignored.
        if self.state == state || self.state == WorkerState::Stopped {
            return;
        }
        self.state = state;
        self.balancer.do_send(WorkerStatus { id: self.id, state });
    }

    /// Writes what the socket takes now; waits for writability once if it is full.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if !self.channel_open {
            return;
        }
        match self.sink.try_flush() {
            Ok(true) => {}
            Ok(false) => {
                if !self.flush_waiting {
                    self.flush_waiting = true;
                    let stream = Arc::clone(self.sink.stream());
                    ctx.spawn(async move { stream.writable().await }.into_actor(self).map(
                        |ready, act, ctx| {
                            act.flush_waiting = false;
                            match ready {
                                Ok(()) => act.flush(ctx),
                                Err(e) => act.io_failed(e, ctx),
                            }
                        },
                    ));
                }
            }
            Err(e) => self.io_failed(e, ctx),
        }
    }

    fn push(&mut self, msg: &ToWorker, ctx: &mut Context<Self>) {
        if let Err(e) = self.sink.push(msg) {
            tracing::warn!(slot = self.id.slot, pid = self.pid, error = %e, "could not encode a frame for the worker");
            return;
        }
        self.flush(ctx);
    }

    /// The worker misbehaved: stop assigning, kill it, wait for its exit.
    fn kill_for(&mut self, reason: KillReason, ctx: &mut Context<Self>) {
        self.record_kill(reason);
        self.close_channel(ctx);
        self.signal(Signal::SIGKILL);
    }

    /// Remembers why the worker is being killed (the first reason wins) and tells subscribers.
    fn record_kill(&mut self, reason: KillReason) {
        if self.kill_reason.is_some() || self.exited {
            return;
        }
        tracing::error!(slot = self.id.slot, pid = self.pid, %reason, "killing worker");
        self.supervisor.do_send(Publish(PoolEvent::WorkerKilled {
            slot: self.id.slot,
            pid: self.pid,
            reason: reason.clone(),
        }));
        self.kill_reason = Some(reason);
    }

    /// The socket failed. A worker that dies with unread requests resets the
    /// connection: that is a death (its exit report follows), not misbehaviour.
    fn io_failed(&mut self, e: std::io::Error, ctx: &mut Context<Self>) {
        use std::io::ErrorKind::{BrokenPipe, ConnectionReset};
        if matches!(e.kind(), BrokenPipe | ConnectionReset) {
            tracing::debug!(slot = self.id.slot, pid = self.pid, error = %e, "worker channel closed");
            self.close_channel(ctx);
        } else {
            self.kill_for(KillReason::ChannelFailed(e.to_string()), ctx);
        }
    }

    /// Signals the worker's process group, unless it was reaped already (its
    /// process group id may then belong to someone else).
    fn signal(&self, signal: Signal) {
        if !self.exited {
            signal_group(self.pid, signal);
        }
    }

    fn close_channel(&mut self, ctx: &mut Context<Self>) {
        if !self.channel_open {
            return;
        }
        self.channel_open = false;
        self.set_state(WorkerState::Stopped);
        let pid = self.pid;
        let deadline = ctx.run_later(EXIT_AFTER_EOF, move |act, _| {
            if !act.exited {
                tracing::warn!(
                    slot = act.id.slot,
                    pid,
                    "worker closed its channel but did not exit; killing it"
                );
                signal_group(pid, Signal::SIGKILL);
            }
        });
        self.exit_deadline = Some(deadline);
    }

    fn on_exit(&mut self, status: std::io::Result<ExitStatus>, ctx: &mut Context<Self>) {
        use std::os::unix::process::ExitStatusExt;
        // Whatever the worker started in its process group goes with it; right
        // after the reap the group id cannot belong to anyone else yet.
        signal_group(self.pid, Signal::SIGKILL);
        group_guard::unwatch(self.pid);
        self.exited = true;
        self.close_channel(ctx);
        // Endless timers would keep the actor alive after its worker is gone.
        for timer in [
            self.sampling.take(),
            self.heartbeat.take(),
            self.exit_deadline.take(),
        ]
        .into_iter()
        .flatten()
        {
            ctx.cancel_future(timer);
        }
        let (code, signal) = match &status {
            Ok(s) => (s.code(), s.signal()),
            Err(e) => {
                tracing::error!(slot = self.id.slot, pid = self.pid, error = %e, "could not reap worker");
                (None, None)
            }
        };
        let held: Vec<Pending> = self.in_flight.drain().map(|(_, p)| p).collect();
        self.fds.clear();
        self.deadlines.clear();
        let eof = self.stderr_eof.take();
        let report = move |act: &mut Self, _ctx: &mut Context<Self>| {
            act.supervisor.do_send(WorkerExited {
                id: act.id,
                pid: act.pid,
                code,
                signal,
                stderr_tail: act.stderr_tail.lines(),
                held,
                killed_for: act.kill_reason.clone(),
            });
            // No ctx.stop(): the actor ends once the supervisor and balancer drop
            // its address, and until then late assignments are sent back, not lost.
        };
        match eof {
            Some(eof) => {
                ctx.spawn(
                    async move {
                        let _ = tokio::time::timeout(STDERR_DRAIN, eof).await;
                    }
                    .into_actor(self)
                    .map(move |(), act, ctx| report(act, ctx)),
                );
            }
            None => report(self, ctx),
        }
    }
}

impl Actor for WorkerHandle {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.config.counters.debug_assert_home("WorkerHandle");
        let hello = ToWorker::Hello {
            version: PROTOCOL_VERSION,
            slot: self.id.slot as u32,
            codec: self.config.codec,
        };
        self.push(&hello, ctx);
        if let Some(stream) = self.stream.take() {
            ctx.add_stream(stream);
        }
        if let Some(mut child) = self.child.take() {
            ctx.spawn(
                async move { child.wait().await }
                    .into_actor(self)
                    .map(|status, act, ctx| act.on_exit(status, ctx)),
            );
        }
        let handshake_deadline = ctx.run_later(self.config.spawn_timeout, |act, ctx| {
            if !act.handshaken && act.channel_open {
                let after = act.config.spawn_timeout;
                act.kill_for(KillReason::NoHandshake { after }, ctx);
            }
        });
        self.handshake_deadline = Some(handshake_deadline);
        self.sample();
        let sampling = ctx.run_interval(self.config.sample_interval, |act, _| act.sample());
        self.sampling = Some(sampling);
    }
}

impl WorkerHandle {
    fn sample(&mut self) {
        if let Some((rss, cpu)) = self.sampler.sample() {
            self.rss = rss;
            self.cpu = cpu;
            self.balancer.do_send(LoadSample { id: self.id, rss });
            self.check_recycle();
        }
    }
}

impl StreamHandler<Result<Vec<ToSupervisor>, lpm_protocol::Error>> for WorkerHandle {
    fn handle(
        &mut self,
        batch: Result<Vec<ToSupervisor>, lpm_protocol::Error>,
        ctx: &mut Context<Self>,
    ) {
        let batch = match batch {
            Ok(batch) => batch,
            // After we closed the channel (kill, EOF), a reset is expected news.
            Err(e) if !self.channel_open => {
                return tracing::debug!(slot = self.id.slot, pid = self.pid, error = %e, "channel error after close");
            }
            Err(lpm_protocol::Error::Io(e)) => return self.io_failed(e, ctx),
            // A worker that dies while writing leaves half a frame: a death
            // (its exit report follows), not misbehaviour.
            Err(e @ lpm_protocol::Error::Truncated { .. }) => {
                tracing::debug!(slot = self.id.slot, pid = self.pid, error = %e, "worker channel closed mid-frame");
                return self.close_channel(ctx);
            }
            Err(e) => {
                let reason = KillReason::ProtocolViolation(format!("bad frame: {e}"));
                return self.kill_for(reason, ctx);
            }
        };
        let mut freed = false;
        for msg in batch {
            match self.on_message(msg, ctx) {
                Ok(f) => freed |= f,
                Err(reason) => return self.kill_for(KillReason::ProtocolViolation(reason), ctx),
            }
        }
        if freed {
            self.notify_freed();
            self.check_recycle();
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        tracing::debug!(
            slot = self.id.slot,
            pid = self.pid,
            "worker closed its channel"
        );
        self.close_channel(ctx);
    }
}

impl Handler<Assign> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, msg: Assign, ctx: &mut Context<Self>) {
        self.on_assign(msg.0, ctx);
    }
}

impl Handler<CancelRequests> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, msg: CancelRequests, ctx: &mut Context<Self>) {
        let mut freed = false;
        for id in msg.0.iter() {
            if let Some(pending) = self.take(id) {
                tracing::debug!(slot = self.id.slot, pid = self.pid, %id, "caller stopped waiting; request cancelled");
                self.cancel_in_worker(*id);
                pending.abandon();
                freed = true;
            }
        }
        if freed {
            self.send_fence(ctx);
            self.notify_freed();
        }
    }
}

impl Handler<SendEvent> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, msg: SendEvent, ctx: &mut Context<Self>) {
        let event = ToWorker::Event {
            name: msg.name,
            payload: msg.payload,
        };
        self.push(&event, ctx);
    }
}

impl Handler<DeliverReply> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, msg: DeliverReply, ctx: &mut Context<Self>) {
        let reply = ToWorker::EmitReply {
            emit_id: msg.emit_id,
            outcome: msg.outcome.map(serde_bytes::ByteBuf::from),
        };
        self.push(&reply, ctx);
    }
}

impl Handler<Drain> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, _msg: Drain, ctx: &mut Context<Self>) {
        if self.channel_open {
            self.set_state(WorkerState::Draining);
            self.push(&ToWorker::SoftKill, ctx);
        }
    }
}

impl Handler<Kill> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, _msg: Kill, ctx: &mut Context<Self>) {
        for (_, pending) in self.in_flight.drain() {
            pending.fail(Error::Killed);
        }
        self.deadlines.clear();
        if self.channel_open {
            self.push(&ToWorker::HardKill, ctx);
        }
        self.close_channel(ctx);
        self.signal(Signal::SIGKILL);
    }
}

impl Handler<SignalWorker> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, msg: SignalWorker, _ctx: &mut Context<Self>) {
        self.signal(msg.0);
    }
}

impl Handler<Sample> for WorkerHandle {
    type Result = MessageResult<Sample>;

    fn handle(&mut self, _msg: Sample, _ctx: &mut Context<Self>) -> Self::Result {
        // A fresh sample: CPU is measured since the previous one.
        self.sample();
        MessageResult(WorkerHealth {
            slot: self.id.slot,
            pid: Some(self.pid),
            rss: self.rss,
            cpu: self.cpu,
            in_flight: self.in_flight.len() + self.fds.open_streams(),
            served: self.served,
            restarts: 0,
            recycles: 0,
            quarantined: 0,
            uptime: self.started_at.elapsed(),
            state: self.state,
            stats: self.stats.clone(),
            sockets: self.fds.sockets(),
        })
    }
}
