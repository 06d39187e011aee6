//! The Supervisor actor: owns the Balancer and one WorkerHandle per slot,
//! spawns and restarts children (and revives slots given up), re-queues the
//! requests of the dead, runs resize, autoscaling, rolling reloads and the
//! kill phases, handles SIGINT/SIGTERM and publishes events.

mod autoscale;
mod kill;
mod listener;
mod measure;
mod recycle;
pub use listener::BroadcastListener;
mod reload;
mod restart;
mod scale;
mod slot;
mod spawn;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use futures::future::join_all;
use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot};

use autoscale::Autoscaler;
pub use autoscale::{Autoscale, ScaleReason};
pub use kill::KillReport;
pub use measure::Measure;
pub(crate) use recycle::RecycleMe;
use reload::Reloading;
pub use reload::{Reload, ReloadReport, Reloaded, StartFailure};
use restart::RestartWindow;
use slot::{Filled, Live, Slot};

use crate::balancer::{Balancer, PoolDown, Requeue, WorkerLeft};
use crate::events::Subscriber;
use crate::health::{WorkerHealth, WorkerState};
use crate::id::WorkerId;
use crate::request::{AfterDeath, Counters, Pending};
use crate::worker_handle::{
    Drain, HandleConfig, Sample, SendEvent, SendListener, SessionConfig, SignalWorker, WorkerHandle,
};
use crate::{Config, Error, KillReason, PoolEvent, RestartReason, SignalPolicy, WorkerCommand};

/// Reports the health of every worker slot.
#[derive(Debug, Message)]
#[rtype(result = "Vec<WorkerHealth>")]
pub struct Health;

/// Sends a named event with a payload to every live worker; answers how many.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct Broadcast {
    /// Event name, matched against the workers' `on_event` handlers.
    pub name: String,
    /// Postcard-encoded payload.
    pub payload: Vec<u8>,
}

/// Grows or shrinks the pool to this many workers. Growing spawns at once;
/// shrinking soft-kills the surplus workers, which finish their requests first.
///
/// Refused with [`Error::Autoscaling`] while the pool autoscales
/// ([`Config::autoscale`]): the autoscaler owns the size then, between its
/// bounds.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), Error>")]
pub struct Resize(pub usize);

/// Delivers every [`PoolEvent`] to this recipient.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<PoolEvent>);

/// Stops taking requests, serves the queued and in-flight ones, asks every
/// worker to finish, and after the grace period sends SIGTERM then SIGKILL.
/// Resolves when every child is reaped.
#[derive(Debug, Message)]
#[rtype(result = "KillReport")]
pub struct SoftKill;

/// SIGKILLs every worker now; queued and in-flight requests fail with `Killed`.
/// Resolves when every child is reaped.
#[derive(Debug, Message)]
#[rtype(result = "KillReport")]
pub struct HardKill;

/// Resolves once the pool has been online (every worker ready at least once),
/// or with the reason it cannot get there.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct WhenOnline(pub(crate) oneshot::Sender<Result<(), Error>>);

/// The last `Pool` handle is gone: a running pool is hard-killed, so no
/// worker outlives it; a kill already under way goes on as it was.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Abandoned;

/// Starts a soft or hard kill and answers with its report once every child
/// is reaped; sent with `do_send` so the kill starts whatever the mailbox holds.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct StartKill {
    pub(crate) hard: bool,
    pub(crate) report: oneshot::Sender<KillReport>,
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct SubscribeStream(pub(crate) mpsc::Sender<PoolEvent>);

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Publish(pub(crate) PoolEvent);

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct WorkerReady {
    pub(crate) id: WorkerId,
    /// Set when the worker takes no descriptors: the transport that keeps it from them.
    pub(crate) refuses_fds: Option<crate::Transport>,
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct WorkerExited {
    pub(crate) id: WorkerId,
    pub(crate) pid: u32,
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
    pub(crate) stderr_tail: Vec<String>,
    pub(crate) held: Vec<Pending>,
    /// Set when the pool killed it for misbehaving.
    pub(crate) killed_for: Option<KillReason>,
}

#[derive(Debug)]
enum Phase {
    Running,
    Stopping {
        waiters: Vec<oneshot::Sender<KillReport>>,
        hard: bool,
        /// A soft kill still serving the queue: dead workers are still restarted.
        serving: bool,
    },
    Stopped(KillReport),
}

/// Owns the pool: its workers, their restarts, and the kill phases.
#[derive(Debug)]
pub struct Supervisor {
    command: Arc<WorkerCommand>,
    config: Config,
    handle_config: HandleConfig,
    balancer: Addr<Balancer>,
    counters: Arc<Counters>,
    slots: BTreeMap<usize, Slot>,
    /// Workers replaced by a recycle, finishing their requests.
    outgoing: HashMap<WorkerId, Addr<WorkerHandle>>,
    generation: u64,
    /// Spawns not yet answered, and unwanted processes being killed and
    /// reaped (`spawn.rs`): none is in `processes()`, and a kill waits for them.
    in_transit: usize,
    subscribers: Vec<Subscriber>,
    online_sent: bool,
    online_waiters: Vec<oneshot::Sender<Result<(), Error>>>,
    phase: Phase,
    /// Workers the supervisor itself ended with a signal during a kill.
    signalled: HashSet<WorkerId>,
    /// The soft kill's SIGTERM/SIGKILL timers.
    stop_timers: Vec<SpawnHandle>,
    /// The SIGINT/SIGTERM listener.
    signals: Option<SpawnHandle>,
    /// Listeners broadcast so far, sent to every worker started later;
    /// dropped (closed) when the pool stops.
    listeners: Vec<SendListener>,
    /// The autoscaling policy, when the pool autoscales.
    autoscaler: Option<Autoscaler>,
    /// The autoscaler's sampling timer, cancelled when the pool stops.
    sampler: Option<SpawnHandle>,
    /// A sample for the autoscaler is on its way.
    sampling: bool,
    /// The rolling reload under way.
    reload: Option<Reloading>,
    /// Live workers that take no descriptors (no listener goes to them).
    fd_refusals: HashMap<WorkerId, crate::Transport>,
}

impl Supervisor {
    pub(crate) fn new(
        command: WorkerCommand,
        mut config: Config,
        balancer: Addr<Balancer>,
        counters: Arc<Counters>,
    ) -> Self {
        if let Some(bounds) = &config.autoscale {
            config.workers = bounds.clamp(config.workers);
        }
        let autoscaler = config.autoscale.map(Autoscaler::new);
        let handle_config = HandleConfig {
            session: SessionConfig {
                max_frame_len: config.max_frame_len,
                codec: config.codec,
                spawn_timeout: config.spawn_timeout,
                counters: Arc::clone(&counters),
                heartbeat: config.heartbeat,
                recycle_on_timeout: config.recycle_on_timeout,
                term_grace: config.term_grace,
                max_requests: config.max_requests.map(|n| (n, config.max_requests_jitter)),
                max_rss: config.max_rss,
                recycle_retry: config.restart_window,
            },
            sample_interval: config.sample_interval,
        };
        Self {
            command: Arc::new(command),
            config,
            handle_config,
            balancer,
            counters,
            slots: BTreeMap::new(),
            outgoing: HashMap::new(),
            generation: 0,
            in_transit: 0,
            subscribers: Vec::new(),
            online_sent: false,
            online_waiters: Vec::new(),
            phase: Phase::Running,
            signalled: HashSet::new(),
            stop_timers: Vec::new(),
            signals: None,
            listeners: Vec::new(),
            autoscaler,
            sampler: None,
            sampling: false,
            reload: None,
            fd_refusals: HashMap::new(),
        }
    }

    fn publish(&mut self, event: PoolEvent) {
        self.subscribers.retain(|s| s.deliver(&event));
    }

    fn new_slot(&self) -> Slot {
        Slot::new(self.fresh_restart_window())
    }

    fn fresh_restart_window(&self) -> RestartWindow {
        RestartWindow::new(
            self.config.max_restarts,
            self.config.restart_window,
            self.config.restart_backoff,
            self.config.max_restart_backoff,
        )
    }

    fn add_slot(&mut self, ctx: &mut Context<Self>) {
        let slot = (0..).find(|s| !self.slots.contains_key(s)).unwrap_or(0);
        let fresh = self.new_slot();
        self.slots.insert(slot, fresh);
        self.spawn_slot(slot, ctx);
    }

    /// A slot lost its worker (or could not start one), for `reason`:
    /// restart it, retire it, or give up.
    fn after_death(&mut self, slot: usize, reason: RestartReason, ctx: &mut Context<Self>) {
        let running = self.may_spawn();
        let Some(s) = self.slots.get_mut(&slot) else {
            return;
        };
        s.filled = Filled::Empty;
        if s.retiring || !running {
            if s.retiring {
                self.slots.remove(&slot);
                self.check_down();
            }
            return self.check_stopped(ctx);
        }
        match s.restarts.record(Instant::now()) {
            ControlFlow::Continue(delay) => {
                s.total_restarts += 1;
                self.counters.metrics.restarted(reason);
                let timer = ctx.run_later(delay, move |act, ctx| {
                    if let Some(s) = act.slots.get_mut(&slot) {
                        s.filled = Filled::Empty;
                    }
                    act.spawn_slot(slot, ctx);
                });
                s.filled = Filled::Restarting(timer);
            }
            ControlFlow::Break(restarts) => {
                let revival = self
                    .config
                    .revive_after
                    .map(|after| ctx.run_later(after, move |act, ctx| act.revive(slot, ctx)));
                s.filled = Filled::GaveUp(revival);
                tracing::error!(slot, restarts, window = ?self.config.restart_window, revive_after = ?self.config.revive_after, "worker restarted too often; giving up on this slot");
                self.publish(PoolEvent::RestartLimitReached { slot, restarts });
                if !self.online_sent {
                    self.answer_online_waiters(Err(Error::RestartLimit { slot, restarts }));
                }
                self.check_down();
            }
        }
    }

    /// A given-up slot's cool-down is over: its restart window starts over
    /// and it gets a worker again.
    fn revive(&mut self, slot: usize, ctx: &mut Context<Self>) {
        if !matches!(self.phase, Phase::Running) {
            return;
        }
        let window = self.fresh_restart_window();
        let Some(s) = self.slots.get_mut(&slot).filter(|s| s.resting()) else {
            return;
        };
        s.restarts = window;
        s.filled = Filled::Empty;
        tracing::info!(slot, "reviving a slot given up after its restart limit");
        self.publish(PoolEvent::SlotRevived { slot });
        // Requests wait for it again rather than fail with NoWorkers.
        self.balancer.do_send(PoolDown(false));
        self.spawn_slot(slot, ctx);
    }

    /// When no slot can serve again soon (each is retiring, or gave up and
    /// is not revived within `max_restart_backoff`, the longest a restart
    /// waits), requests fail with `NoWorkers` instead of waiting for a worker
    /// that will not come soon.
    fn check_down(&self) {
        let revives_soon = self
            .config
            .revive_after
            .is_some_and(|after| after <= self.config.max_restart_backoff);
        let can_serve = self
            .slots
            .values()
            .any(|s| !s.retiring && (!s.gave_up() || (revives_soon && s.resting())));
        if !can_serve && matches!(self.phase, Phase::Running) {
            self.balancer.do_send(PoolDown(true));
        }
    }

    /// Soft-kills a worker that resize retired; one that has not exited after
    /// the grace periods gets SIGTERM, then SIGKILL. Its requests are retried
    /// elsewhere, as for any death.
    fn retire(&mut self, id: WorkerId, handle: &Addr<WorkerHandle>, ctx: &mut Context<Self>) {
        handle.do_send(Drain);
        let term_grace = self.config.term_grace;
        ctx.run_later(self.config.soft_kill_grace, move |act, ctx| {
            act.signal_if_live(id, Signal::SIGTERM);
            ctx.run_later(term_grace, move |act, _| {
                act.signal_if_live(id, Signal::SIGKILL);
            });
        });
    }

    fn signal_if_live(&self, id: WorkerId, signal: Signal) {
        if let Some((_, handle)) = self.processes().find(|(w, _)| *w == id) {
            tracing::warn!(
                slot = id.slot,
                ?signal,
                "retired worker did not finish in time"
            );
            handle.do_send(SignalWorker(signal));
        }
    }

    fn check_online(&mut self) {
        if self.online_sent || !matches!(self.phase, Phase::Running) {
            return;
        }
        let ready = self
            .slots
            .values()
            .filter(|s| s.live().is_some_and(|l| l.ready))
            .count();
        if ready >= self.config.workers {
            self.online_sent = true;
            self.answer_online_waiters(Ok(()));
            self.publish(PoolEvent::Online);
        }
    }

    fn answer_online_waiters(&mut self, result: Result<(), Error>) {
        for w in self.online_waiters.drain(..) {
            let _ = w.send(result.clone());
        }
    }

    /// The workers that serve or will serve: each slot's, and successors starting up.
    fn serving(&self) -> impl Iterator<Item = &Live> {
        self.slots
            .values()
            .flat_map(|s| s.live().into_iter().chain(s.successor()))
    }

    /// Every worker process the pool has: serving ones, and recycled ones
    /// still finishing their requests.
    fn processes(&self) -> impl Iterator<Item = (WorkerId, &Addr<WorkerHandle>)> {
        self.serving()
            .map(|l| (l.id, &l.handle))
            .chain(self.outgoing.iter().map(|(id, h)| (*id, h)))
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.counters.debug_assert_home("Supervisor");
        // Spawn after the first mailbox turn, so subscriptions made right after
        // `Pool::start` see the first ChildSpawned events.
        for slot in 0..self.config.workers.max(1) {
            let fresh = self.new_slot();
            self.slots.insert(slot, fresh);
        }
        ctx.spawn(fut::ready(()).map(|(), act: &mut Self, ctx| {
            let slots: Vec<usize> = act.slots.keys().copied().collect();
            for slot in slots {
                act.spawn_slot(slot, ctx);
            }
        }));
        if self.config.on_signal != SignalPolicy::Ignore {
            self.signals = Some(ctx.add_stream(kill::signals()));
        }
        self.start_autoscaling(ctx);
    }
}

impl StreamHandler<i32> for Supervisor {
    fn handle(&mut self, signal: i32, ctx: &mut Context<Self>) {
        self.on_signal(signal, ctx);
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<Health> for Supervisor {
    type Result = ResponseFuture<Vec<WorkerHealth>>;

    fn handle(&mut self, _msg: Health, _ctx: &mut Context<Self>) -> Self::Result {
        let stopped = !matches!(self.phase, Phase::Running);
        let target = self.config.workers;
        let slots: Vec<_> = self
            .slots
            .iter()
            .map(|(&slot, s)| {
                // A slot resting before its revival waits for a restart too.
                let down = if (s.gave_up() && !s.resting()) || stopped {
                    WorkerState::Stopped
                } else if s.total_restarts == 0 {
                    WorkerState::Starting
                } else {
                    WorkerState::Restarting
                };
                let counts = (s.total_restarts, s.recycles, s.quarantined);
                (slot, counts, down, s.live().map(|l| l.handle.clone()))
            })
            .collect();
        Box::pin(async move {
            join_all(slots.into_iter().map(
                |(slot, (restarts, recycles, quarantined), down, handle)| async move {
                    let sampled = match handle {
                        Some(h) => h.send(Sample).await.ok(),
                        None => None,
                    };
                    let mut health =
                        sampled.unwrap_or_else(|| WorkerHealth::down(slot, restarts, down));
                    // A process whose channel closed shows `Stopped` until it
                    // is reaped; while the slot can still restart, say so.
                    if health.state == WorkerState::Stopped && down != WorkerState::Stopped {
                        health.state = WorkerState::Restarting;
                    }
                    health.restarts = restarts;
                    health.recycles = recycles;
                    health.quarantined = quarantined;
                    health.target = target;
                    health
                },
            ))
            .await
        })
    }
}

impl Handler<Broadcast> for Supervisor {
    type Result = usize;

    fn handle(&mut self, msg: Broadcast, _ctx: &mut Context<Self>) -> usize {
        let event = SendEvent {
            name: msg.name,
            payload: msg.payload,
        };
        let mut reached = 0;
        for live in self.serving() {
            live.handle.do_send(event.clone());
            reached += 1;
        }
        reached
    }
}

impl Handler<Resize> for Supervisor {
    type Result = Result<(), Error>;

    fn handle(&mut self, msg: Resize, ctx: &mut Context<Self>) -> Result<(), Error> {
        let Resize(target) = msg;
        if target == 0 {
            return Err(Error::InvalidSize { requested: 0 });
        }
        if !matches!(self.phase, Phase::Running) {
            return Err(Error::ShuttingDown);
        }
        if let Some(a) = &self.autoscaler {
            let bounds = a.config();
            return Err(Error::Autoscaling {
                min: bounds.min,
                max: bounds.max,
            });
        }
        // Slots that gave up are forgotten; a resize is a fresh start for them.
        let given_up: Vec<usize> = self
            .slots
            .iter()
            .filter(|(_, s)| s.gave_up())
            .map(|(&slot, _)| slot)
            .collect();
        for slot in given_up {
            if let Some(mut s) = self.slots.remove(&slot) {
                s.cancel_restart(ctx);
            }
        }
        self.set_size(target, ctx);
        Ok(())
    }
}

impl Handler<Subscribe> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Context<Self>) {
        self.subscribers.push(Subscriber::Actor(msg.0));
    }
}

impl Handler<WhenOnline> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: WhenOnline, _ctx: &mut Context<Self>) {
        let gave_up = self
            .slots
            .iter()
            .find(|(_, s)| s.gave_up())
            .map(|(&slot, s)| (slot, s.total_restarts));
        let answer = if self.online_sent {
            Ok(())
        } else if !matches!(self.phase, Phase::Running) {
            Err(Error::ShuttingDown)
        } else if let Some((slot, restarts)) = gave_up {
            Err(Error::RestartLimit { slot, restarts })
        } else {
            return self.online_waiters.push(msg.0);
        };
        let _ = msg.0.send(answer);
    }
}

impl Handler<Abandoned> for Supervisor {
    type Result = ();

    fn handle(&mut self, _msg: Abandoned, ctx: &mut Context<Self>) {
        if matches!(self.phase, Phase::Running) {
            tracing::debug!("last Pool handle dropped; hard-killing the pool");
            drop(self.begin_stop(true, ctx));
        }
    }
}

impl Handler<SubscribeStream> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: SubscribeStream, _ctx: &mut Context<Self>) {
        self.subscribers.push(Subscriber::Stream(msg.0));
    }
}

impl Handler<SoftKill> for Supervisor {
    type Result = ResponseFuture<KillReport>;

    fn handle(&mut self, _msg: SoftKill, ctx: &mut Context<Self>) -> Self::Result {
        let rx = self.begin_stop(false, ctx);
        Box::pin(async move { rx.await.unwrap_or_default() })
    }
}

impl Handler<HardKill> for Supervisor {
    type Result = ResponseFuture<KillReport>;

    fn handle(&mut self, _msg: HardKill, ctx: &mut Context<Self>) -> Self::Result {
        let rx = self.begin_stop(true, ctx);
        Box::pin(async move { rx.await.unwrap_or_default() })
    }
}

impl Handler<StartKill> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: StartKill, ctx: &mut Context<Self>) {
        let rx = self.begin_stop(msg.hard, ctx);
        ctx.spawn(rx.into_actor(self).map(move |report, _, _| {
            if let Ok(report) = report {
                let _ = msg.report.send(report);
            }
        }));
    }
}

impl Handler<Publish> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Publish, _ctx: &mut Context<Self>) {
        self.publish(msg.0);
    }
}

impl Handler<WorkerReady> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: WorkerReady, ctx: &mut Context<Self>) {
        if let Some(transport) = msg.refuses_fds {
            self.fd_refusals.insert(msg.id, transport);
        }
        if !self.successor_ready(msg.id, ctx) {
            if let Some(live) = self
                .slots
                .get_mut(&msg.id.slot)
                .and_then(Slot::live_mut)
                .filter(|l| l.id == msg.id)
            {
                live.ready = true;
            }
        }
        self.check_online();
        self.reload_step_ready(msg.id, ctx);
        self.advance_reload(ctx);
    }
}

impl Handler<WorkerExited> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: WorkerExited, ctx: &mut Context<Self>) {
        self.fd_refusals.remove(&msg.id);
        let WorkerExited {
            id,
            pid,
            code,
            signal,
            stderr_tail,
            held,
            killed_for,
        } = msg;
        let current = self
            .slots
            .get(&id.slot)
            .and_then(Slot::live)
            .is_some_and(|l| l.id == id);
        let stopping = matches!(self.phase, Phase::Stopping { .. });
        // A worker the kill ended takes its requests with it; one that died on
        // its own has them retried, as at any other time.
        let killed = self.signalled.contains(&id);
        if stopping || code != Some(0) {
            tracing::info!(slot = id.slot, pid, ?code, ?signal, "worker exited");
        }
        // A reload's successor that dies stops the reload before its slot restarts.
        if self.reload_awaits(id) {
            let cause = match &killed_for {
                Some(reason) => StartFailure::Killed {
                    pid,
                    reason: reason.clone(),
                },
                None => StartFailure::Exited {
                    pid,
                    code,
                    signal,
                    stderr_tail: stderr_tail.clone(),
                },
            };
            self.reload_step_failed(id, cause, ctx);
        }
        self.balancer.do_send(WorkerLeft { id });
        let now = Instant::now();
        // The requests it held are timed by it.
        self.counters.metrics.tick(now);
        let mut retry = Vec::new();
        let mut quarantined = 0;
        for pending in held {
            if killed {
                pending.fail(Error::Killed);
                continue;
            }
            let retries_spent = pending.attempts - 1;
            let error = match &killed_for {
                Some(reason) => Error::WorkerKilled {
                    id: pending.id,
                    slot: id.slot,
                    pid,
                    reason: reason.clone(),
                    retries_spent,
                },
                None => Error::WorkerDied {
                    id: pending.id,
                    slot: id.slot,
                    pid,
                    retries_spent,
                },
            };
            match pending.after_death(now, id.slot, error) {
                AfterDeath::Retry(again) => retry.push(*again),
                AfterDeath::Failed => {}
                AfterDeath::Quarantined => quarantined += 1,
            }
        }
        if let Some(s) = self.slots.get_mut(&id.slot) {
            s.quarantined += quarantined;
        }
        if !retry.is_empty() {
            self.balancer.do_send(Requeue(retry));
        }
        self.publish(PoolEvent::ChildExited {
            slot: id.slot,
            pid,
            code,
            signal,
            stderr_tail,
        });
        if current {
            if !self.successor_takes_over(id.slot, ctx) {
                let reason = RestartReason::after_exit(killed_for.as_ref(), code);
                self.after_death(id.slot, reason, ctx);
            }
        } else {
            self.outgoing.remove(&id);
            self.successor_died(id);
            self.check_stopped(ctx);
        }
        self.advance_reload(ctx);
    }
}
