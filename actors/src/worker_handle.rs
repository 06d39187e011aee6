//! The WorkerHandle actor: one per child process. It is the I/O shell of a
//! [`Session`] (the state machine in `session.rs`): it reads the channel
//! (a socket or the worker's stdout, `channel.rs`) and feeds the session,
//! writes what the session queues, keeps one timer for the session's next
//! deadline, samples RSS/CPU (or asks a remote worker for them), awaits the
//! child's exit, pumps request streams, and carries the session's effects to
//! the Balancer and the Supervisor.

mod channel;
mod group_guard;
mod output;
mod pump;
mod sampler;
mod session;
pub(crate) mod spawn;

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use actix::prelude::*;
use lpm_protocol::{FrameStream, RequestId, ToSupervisor};
use nix::sys::signal::Signal;

use crate::alarm::Alarm;
use crate::balancer::{
    Balancer, CancelRequests, Freed, LoadSample, Requeue, WorkerCalls, WorkerStatus,
};
use crate::events::{CustomEvent, DeliverReply};
use crate::health::WorkerHealth;
use crate::id::WorkerId;
use crate::request::Pending;
use crate::stream::ResponseStream;
use crate::supervisor::{Publish, RecycleMe, Supervisor, WorkerExited, WorkerReady};
use crate::{Error, PoolEvent};
use channel::Channel;
use output::StderrTail;
use sampler::Sampler;
use session::{Effect, Exit, RequestChunk, Session};
pub(crate) use session::{Feedback, SessionConfig, SharedListener};
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

/// A listener for the worker, with its event.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct SendListener(pub(crate) SharedListener);

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

/// What a caller did with an in-band response stream of this worker.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct StreamFeedback {
    pub(crate) id: RequestId,
    pub(crate) feedback: Feedback,
}

/// The next piece of an in-band request stream, from its pump.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct RequestChunkFor {
    pub(crate) id: RequestId,
    pub(crate) chunk: RequestChunk,
}

/// How long the exit report waits for the last stderr lines.
const STDERR_DRAIN: Duration = Duration::from_millis(200);

/// Settings a handle needs, shared by all handles.
#[derive(Debug, Clone)]
pub(crate) struct HandleConfig {
    pub(crate) session: SessionConfig,
    pub(crate) sample_interval: Duration,
}

/// Bridges one child process to the actors.
#[derive(Debug)]
pub(crate) struct WorkerHandle {
    id: WorkerId,
    pid: u32,
    session: Session,
    sample_interval: Duration,
    balancer: Addr<Balancer>,
    supervisor: Addr<Supervisor>,
    channel: Channel,
    /// Waiting for the channel to take more.
    flush_waiting: bool,
    /// The session asked to close the worker's input, once the outbox is written.
    close_input: bool,
    stream: Option<FrameStream<ToSupervisor>>,
    child: Option<spawn::Child>,
    /// Rings at the session's next deadline.
    timer: Alarm,
    /// The session's effects list between two inputs, kept for its capacity.
    spare_effects: Vec<Effect>,
    sampler: Sampler,
    sampling: Option<SpawnHandle>,
    stderr_tail: StderrTail,
    stderr_eof: Option<tokio::sync::oneshot::Receiver<()>>,
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
        let stderr_tail = StderrTail::default();
        let stderr_eof = output::forward(
            id.slot,
            pid,
            child.stdout.take(),
            child.stderr.take(),
            stderr_tail.clone(),
        );
        let max_frame_len = config.session.max_frame_len;
        Self {
            id,
            pid,
            session: Session::new(id, pid, channel.transport(), config.session, Instant::now()),
            sample_interval: config.sample_interval,
            balancer,
            supervisor,
            stream: Some(channel.frames(max_frame_len)),
            channel,
            flush_waiting: false,
            close_input: false,
            child: Some(child),
            timer: Alarm::default(),
            spare_effects: Vec::new(),
            sampler: Sampler::new(pid),
            sampling: None,
            stderr_tail,
            stderr_eof: Some(stderr_eof),
        }
    }

    /// Does what the session decided after an input: writes its frames,
    /// carries its effects, and rearms the timer for its next deadline.
    fn apply(&mut self, ctx: &mut Context<Self>) {
        // Effects first: an exit report must not wait behind a write.
        let mut effects = self
            .session
            .take_effects(std::mem::take(&mut self.spare_effects));
        for effect in effects.drain(..) {
            self.carry(effect, ctx);
        }
        self.spare_effects = effects;
        self.flush(ctx);
        match self.session.next_timeout() {
            Some(at) => self.timer.arm(at, ctx, |act, ctx| {
                act.timer.rang();
                act.session.on_timeout(Instant::now());
                act.apply(ctx);
            }),
            None => self.timer.disarm(ctx),
        }
    }

    fn carry(&mut self, effect: Effect, ctx: &mut Context<Self>) {
        let id = self.id;
        match effect {
            Effect::Status(state) => self.balancer.do_send(WorkerStatus { id, state }),
            Effect::Requeue(requests) => self.balancer.do_send(Requeue(requests)),
            Effect::Freed => self.balancer.do_send(Freed),
            Effect::Rss(rss) => self.balancer.do_send(LoadSample { id, rss }),
            Effect::Calls { calls, refuses_fds } => self.balancer.do_send(WorkerCalls {
                id,
                calls,
                refuses_fds,
            }),
            Effect::Killing(reason) => self.supervisor.do_send(Publish(PoolEvent::WorkerKilled {
                slot: id.slot,
                pid: self.pid,
                reason,
            })),
            Effect::Online => self.supervisor.do_send(WorkerReady {
                id,
                refuses_fds: self.session.refuses_fds(),
            }),
            Effect::Emitted {
                name,
                payload,
                reply_to,
            } => {
                let reply = reply_to.map(|emit_id| (emit_id, ctx.address().recipient()));
                let codec = self.session.codec();
                let event = CustomEvent::new(id.slot, self.pid, name, payload, codec, reply);
                self.supervisor.do_send(Publish(PoolEvent::Custom(event)));
            }
            Effect::Recycle(reason) => self.supervisor.do_send(RecycleMe {
                id,
                pid: self.pid,
                reason,
            }),
            Effect::Exited(exit) => self.report_exit(exit, ctx),
            Effect::Signal(signal) => signal_group(self.pid, signal),
            Effect::SignalLauncher(signal) => signal_process(self.pid, signal),
            Effect::CloseInput => {
                self.close_input = true;
                self.close_input_when_written();
            }
            Effect::Pump { id, reader, writer } => pump::start(id, reader, writer),
            Effect::PumpInBand {
                id,
                reader,
                credit,
                chunk,
            } => {
                let handle = ctx.address().recipient();
                pump::start_in_band(id, reader, credit, chunk, handle);
            }
            Effect::AnswerStreamed {
                pending,
                payload,
                chunks,
                end,
            } => {
                let request = pending.id;
                let feedback = ctx.address().recipient();
                let stream = ResponseStream::in_band(request, chunks, end, self.pid, feedback);
                pending.respond_with_stream(self.pid, id.slot, payload, stream);
            }
            Effect::AnswerWithStream {
                pending,
                payload,
                fd,
                end,
            } => match ResponseStream::new(fd, end, self.pid) {
                Ok(stream) => pending.respond_with_stream(self.pid, id.slot, payload, stream),
                Err(e) => pending.fail(Error::Descriptor {
                    what: "response stream",
                    reason: e.to_string(),
                }),
            },
        }
    }

    /// Closes the worker's input if it is to be closed and nothing queued
    /// for it is left to write.
    fn close_input_when_written(&mut self) {
        if self.close_input && !self.flush_waiting && self.session.outbox().pending() == 0 {
            self.channel.close_input();
        }
    }

    /// Writes what the channel takes now; waits for writability once if it is full.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flush_waiting || self.session.outbox().pending() == 0 {
            return self.close_input_when_written();
        }
        match self.channel.write(self.session.outbox()) {
            Ok(true) => self.close_input_when_written(),
            Ok(false) => {
                self.flush_waiting = true;
                ctx.spawn(
                    self.channel
                        .writable()
                        .into_actor(self)
                        .map(|ready, act, ctx| {
                            act.flush_waiting = false;
                            match ready {
                                Ok(()) => act.flush(ctx),
                                Err(e) => {
                                    act.session.on_io_error(e, Instant::now());
                                    act.apply(ctx);
                                }
                            }
                        }),
                );
            }
            Err(e) => {
                // The channel is gone for good: nothing queued can go now.
                self.session.outbox().clear();
                self.session.on_io_error(e, Instant::now());
                self.apply(ctx);
            }
        }
    }

    fn on_exit(&mut self, status: std::io::Result<ExitStatus>, ctx: &mut Context<Self>) {
        use std::os::unix::process::ExitStatusExt;
        group_guard::unwatch(self.pid);
        // The session's endless timers are gone with it; the sampling one is ours.
        if let Some(sampling) = self.sampling.take() {
            ctx.cancel_future(sampling);
        }
        let (code, signal) = match &status {
            Ok(s) => (s.code(), s.signal()),
            Err(e) => {
                tracing::error!(slot = self.id.slot, pid = self.pid, error = %e, "could not reap worker");
                (None, None)
            }
        };
        self.session.on_exit(code, signal, Instant::now());
        self.apply(ctx);
    }

    /// Sends the exit report once the last stderr lines are in (or after `STDERR_DRAIN`).
    fn report_exit(&mut self, exit: Exit, ctx: &mut Context<Self>) {
        let report = move |act: &mut Self| {
            act.supervisor.do_send(WorkerExited {
                id: act.id,
                pid: act.pid,
                code: exit.code,
                signal: exit.signal,
                stderr_tail: act.stderr_tail.lines(),
                held: exit.held,
                killed_for: exit.killed_for,
            });
            // No ctx.stop(): the actor ends once the supervisor and balancer drop
            // its address, and until then late assignments are sent back, not lost.
        };
        match self.stderr_eof.take() {
            Some(eof) => {
                ctx.spawn(
                    async move {
                        let _ = tokio::time::timeout(STDERR_DRAIN, eof).await;
                    }
                    .into_actor(self)
                    .map(move |(), act, _| report(act)),
                );
            }
            None => report(self),
        }
    }

    /// Samples the worker's RSS and CPU, or asks a remote worker for them.
    fn sample(&mut self) {
        if self.session.is_remote() {
            self.session.request_usage();
            return;
        }
        let sample = self.sampler.sample();
        self.session.on_sample(sample, Instant::now());
    }
}

impl Actor for WorkerHandle {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.session.debug_assert_home();
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
        self.sample();
        let sampling = ctx.run_interval(self.sample_interval, |act, ctx| {
            act.sample();
            act.apply(ctx);
        });
        self.sampling = Some(sampling);
        self.apply(ctx);
    }
}

impl StreamHandler<Result<Vec<ToSupervisor>, lpm_protocol::Error>> for WorkerHandle {
    fn handle(
        &mut self,
        batch: Result<Vec<ToSupervisor>, lpm_protocol::Error>,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        match batch {
            Ok(batch) => self.session.on_frames(batch, now),
            Err(e) => self.session.on_read_error(e, now),
        }
        self.apply(ctx);
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.session.on_eof(Instant::now());
        self.apply(ctx);
    }
}

impl Handler<Assign> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, msg: Assign, ctx: &mut Context<Self>) {
        self.session.assign(msg.0);
        self.apply(ctx);
    }
}

impl Handler<CancelRequests> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, msg: CancelRequests, ctx: &mut Context<Self>) {
        self.session.cancel(&msg.0, Instant::now());
        self.apply(ctx);
    }
}

impl Handler<SendEvent> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, msg: SendEvent, ctx: &mut Context<Self>) {
        self.session.send_event(msg.name, msg.payload);
        self.apply(ctx);
    }
}

impl Handler<SendListener> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, msg: SendListener, ctx: &mut Context<Self>) {
        self.session.send_listener(&msg.0);
        self.apply(ctx);
    }
}

impl Handler<DeliverReply> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, msg: DeliverReply, ctx: &mut Context<Self>) {
        self.session.deliver_reply(msg.emit_id, msg.outcome);
        self.apply(ctx);
    }
}

impl Handler<Drain> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, _msg: Drain, ctx: &mut Context<Self>) {
        self.session.drain();
        self.apply(ctx);
    }
}

impl Handler<Kill> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, _msg: Kill, ctx: &mut Context<Self>) {
        self.session.kill(Instant::now());
        self.apply(ctx);
    }
}

impl Handler<SignalWorker> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, msg: SignalWorker, ctx: &mut Context<Self>) {
        self.session.signal(msg.0, Instant::now());
        self.apply(ctx);
    }
}

impl Handler<StreamFeedback> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, msg: StreamFeedback, ctx: &mut Context<Self>) {
        self.session
            .on_stream_feedback(msg.id, msg.feedback, Instant::now());
        self.apply(ctx);
    }
}

impl Handler<RequestChunkFor> for WorkerHandle {
    type Result = ();

    fn handle(&mut self, msg: RequestChunkFor, ctx: &mut Context<Self>) {
        self.session.on_request_chunk(msg.id, msg.chunk);
        self.apply(ctx);
    }
}

/// Sends `signal` to the process `pid` alone (a remote worker's launcher).
fn signal_process(pid: u32, signal: Signal) {
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    if let Err(e) = nix::sys::signal::kill(pid, signal) {
        if e != nix::errno::Errno::ESRCH {
            tracing::warn!(%pid, ?signal, error = %e, "could not signal a remote worker's launcher");
        }
    }
}

impl Handler<Sample> for WorkerHandle {
    type Result = MessageResult<Sample>;

    fn handle(&mut self, _msg: Sample, ctx: &mut Context<Self>) -> Self::Result {
        // A fresh sample: CPU is measured since the previous one.
        self.sample();
        let mut health = self.session.health(Instant::now());
        health.cpu_time = self.sampler.cpu_time();
        self.apply(ctx);
        MessageResult(health)
    }
}
