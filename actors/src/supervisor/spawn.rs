//! Starting workers without waiting for them: the Supervisor asks the
//! spawner for a process and goes on; the answer arrives as a future on the
//! actor thread. Meanwhile the slot (or its recycle) is `Spawning`, and many
//! slots may be at once. A process that arrives after the pool stopped
//! wanting it (the pool is stopping, resize removed its slot, the recycle it
//! was for was called off) is killed and reaped, and a kill waits for that.

use std::io;
use std::sync::Arc;

use actix::prelude::*;

use super::reload::StartFailure;
use super::slot::{Filled, Live, Successor};
use super::Supervisor;
use crate::balancer::WorkerJoined;
use crate::id::WorkerId;
use crate::request::Load;
use crate::worker_handle::spawn::{spawn_worker, Spawned};
use crate::worker_handle::WorkerHandle;
use crate::{PoolEvent, RestartReason, WorkerCommand};

/// True for a spawn error that says the supervisor ran short of a resource
/// (descriptors, processes, threads, memory), which passes, rather than that
/// the worker cannot start.
fn is_shortage(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOMEM)
    )
}

impl Supervisor {
    /// Starts a worker for `slot`, which waits for it as `Spawning`.
    pub(super) fn spawn_slot(&mut self, slot: usize, ctx: &mut Context<Self>) {
        if !self.may_spawn() {
            return self.check_stopped(ctx);
        }
        let id = self.spawn(slot, ctx);
        if let Some(s) = self.slots.get_mut(&slot) {
            s.filled = Filled::Spawning(id);
        }
    }

    /// Asks the spawner for a worker process for `slot`; [`Self::spawned`]
    /// gets the answer. The caller records the id where the answer is awaited.
    pub(super) fn spawn(&mut self, slot: usize, ctx: &mut Context<Self>) -> WorkerId {
        self.generation += 1;
        let id = WorkerId {
            slot,
            generation: self.generation,
        };
        self.in_transit += 1;
        let command = Arc::clone(&self.command);
        let spawn = spawn_worker(
            Arc::clone(&command),
            self.config.max_frame_len,
            self.config.codec,
        );
        ctx.spawn(
            spawn
                .into_actor(self)
                .map(move |result, act, ctx| act.spawned(id, command, result, ctx)),
        );
        id
    }

    /// The spawner answered for worker `id`, started with `command`.
    fn spawned(
        &mut self,
        id: WorkerId,
        command: Arc<WorkerCommand>,
        result: io::Result<Spawned>,
        ctx: &mut Context<Self>,
    ) {
        self.in_transit -= 1;
        let wanted = self.may_spawn() && self.slots.get(&id.slot).is_some_and(|s| s.awaits(id));
        match result {
            Ok(spawned) if wanted => {
                let live = self.introduce(id, command, spawned, ctx);
                self.place(live);
            }
            Ok(spawned) => self.discard(id, spawned, ctx),
            Err(e) => {
                let slot = id.slot;
                tracing::error!(slot, program = %command.program.display(), error = %e, "could not start worker");
                if wanted {
                    self.spawn_failed(id, &e, ctx);
                } else {
                    self.check_stopped(ctx);
                }
            }
        }
        self.advance_reload(ctx);
    }

    /// A started worker takes the place that waited for it: its slot, or
    /// the slot's recycle (where it takes over once ready).
    fn place(&mut self, live: Live) {
        let Some(s) = self.slots.get_mut(&live.id.slot) else {
            return;
        };
        match s.successor.take() {
            Some(Successor::Spawning { id, replaces, why }) if id == live.id => {
                s.successor = Some(Successor::Starting {
                    live,
                    replaces,
                    why,
                });
            }
            other => {
                s.successor = other;
                s.filled = Filled::Live(live);
            }
        }
    }

    /// A spawn the slot waited for failed.
    fn spawn_failed(&mut self, id: WorkerId, e: &io::Error, ctx: &mut Context<Self>) {
        let slot = id.slot;
        let Some(s) = self.slots.get_mut(&slot) else {
            return;
        };
        if !matches!(s.filled, Filled::Spawning(spawning) if spawning == id) {
            // A successor that could not start: the worker it was to
            // replace keeps serving (and asks again later).
            s.successor = None;
            let cause = StartFailure::Spawn {
                reason: e.to_string(),
            };
            return self.reload_step_failed(id, cause, ctx);
        }
        if !is_shortage(e) {
            return self.after_death(slot, RestartReason::SpawnFailed, ctx);
        }
        // Out of descriptors or processes: the supervisor's shortage, not the
        // worker's crash, so it does not count against the restart window.
        let delay = self.config.max_restart_backoff;
        let timer = ctx.run_later(delay, move |act, ctx| {
            if let Some(s) = act.slots.get_mut(&slot) {
                s.filled = Filled::Empty;
            }
            act.spawn_slot(slot, ctx);
        });
        s.filled = Filled::Restarting(timer);
    }

    /// Introduces a started worker to the pool: its actor, the balancer, the
    /// broadcast listeners, and the `ChildSpawned` event.
    fn introduce(
        &mut self,
        id: WorkerId,
        command: Arc<WorkerCommand>,
        spawned: Spawned,
        ctx: &mut Context<Self>,
    ) -> Live {
        let pid = spawned.pid;
        let load = Arc::new(Load::default());
        let handle = WorkerHandle::new(
            id,
            spawned,
            self.handle_config.clone(),
            self.balancer.clone(),
            ctx.address(),
        )
        .start();
        self.send_listeners(&handle);
        self.balancer.do_send(WorkerJoined {
            id,
            assign: handle.clone().recipient(),
            cancel: handle.clone().recipient(),
            load,
        });
        tracing::debug!(slot = id.slot, pid, "worker spawned");
        self.publish(PoolEvent::ChildSpawned { slot: id.slot, pid });
        Live {
            id,
            pid,
            handle,
            ready: false,
            command,
        }
    }

    /// Kills and reaps a worker that arrived after the pool stopped wanting
    /// it; a kill in progress waits for the reap.
    fn discard(&mut self, id: WorkerId, spawned: Spawned, ctx: &mut Context<Self>) {
        let Spawned { child, pid, .. } = spawned;
        tracing::debug!(
            slot = id.slot,
            pid,
            "worker started after it was no longer wanted; killing it"
        );
        self.in_transit += 1;
        ctx.spawn(child.kill().into_actor(self).map(move |status, act, ctx| {
            if let Err(e) = status {
                tracing::warn!(slot = id.slot, pid, error = %e, "could not reap an unwanted worker");
            }
            act.in_transit -= 1;
            act.check_stopped(ctx);
        }));
    }
}
