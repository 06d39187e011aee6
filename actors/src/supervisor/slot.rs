//! One place in the pool: the worker filling it, or why none does.

use std::sync::Arc;

use actix::prelude::*;

use super::restart::RestartWindow;
use crate::id::WorkerId;
use crate::worker_handle::WorkerHandle;
use crate::{RecycleReason, WorkerCommand};

/// A running worker process.
#[derive(Debug)]
pub(super) struct Live {
    pub(super) id: WorkerId,
    pub(super) pid: u32,
    pub(super) handle: Addr<WorkerHandle>,
    /// It has said ready at least once.
    pub(super) ready: bool,
    /// The command it was started with (a rolling reload replaces the
    /// workers whose command is not the pool's current one).
    pub(super) command: Arc<WorkerCommand>,
}

/// Who fills the slot.
#[derive(Debug)]
pub(super) enum Filled {
    /// Nobody: not spawned yet, or its worker died and no restart is planned.
    Empty,
    /// Its worker is being started on a spawner thread.
    Spawning(WorkerId),
    /// A worker process.
    Live(Live),
    /// Its worker died; a restart is timed.
    Restarting(SpawnHandle),
    /// It restarted too often within the window and is given up: for good
    /// (`None`), or until its revival timer rings (`Config::revive_after`).
    GaveUp(Option<SpawnHandle>),
}

/// Why a slot's worker gets a successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// It reached a recycling limit.
    Recycle(RecycleReason),
    /// A rolling reload replaces it with the pool's new command.
    Reload,
}

/// The worker that will take over a slot whose worker is being recycled.
#[derive(Debug)]
pub(super) enum Successor {
    /// Its start is timed (the restart window's backoff).
    Planned(SpawnHandle),
    /// Being started on a spawner thread.
    Spawning {
        id: WorkerId,
        /// The process it replaces.
        replaces: u32,
        why: Why,
    },
    /// Started; it takes over once it says ready.
    Starting {
        live: Live,
        /// The process it replaces.
        replaces: u32,
        why: Why,
    },
}

#[derive(Debug)]
pub(super) struct Slot {
    pub(super) filled: Filled,
    /// Set while the slot's worker is being recycled.
    pub(super) successor: Option<Successor>,
    pub(super) restarts: RestartWindow,
    /// Restarts over the slot's life, for health.
    pub(super) total_restarts: u32,
    /// Recycles over the slot's life, for health.
    pub(super) recycles: u32,
    /// Requests quarantined after killing this slot's workers, for health.
    pub(super) quarantined: u64,
    /// Resize is removing it: once its worker is gone, so is the slot.
    pub(super) retiring: bool,
}

impl Slot {
    pub(super) fn new(restarts: RestartWindow) -> Self {
        Self {
            filled: Filled::Empty,
            successor: None,
            restarts,
            total_restarts: 0,
            recycles: 0,
            quarantined: 0,
            retiring: false,
        }
    }

    pub(super) fn live(&self) -> Option<&Live> {
        match &self.filled {
            Filled::Live(live) => Some(live),
            _ => None,
        }
    }

    pub(super) fn live_mut(&mut self) -> Option<&mut Live> {
        match &mut self.filled {
            Filled::Live(live) => Some(live),
            _ => None,
        }
    }

    /// The successor process, once started.
    pub(super) fn successor(&self) -> Option<&Live> {
        match &self.successor {
            Some(Successor::Starting { live, .. }) => Some(live),
            _ => None,
        }
    }

    /// Cancels a planned successor; answers a started one, which the caller
    /// must end. One still being spawned is dropped when its spawn completes.
    pub(super) fn take_successor<A>(&mut self, ctx: &mut Context<A>) -> Option<Live>
    where
        A: Actor<Context = Context<A>>,
    {
        match self.successor.take()? {
            Successor::Planned(timer) => {
                ctx.cancel_future(timer);
                None
            }
            Successor::Spawning { .. } => None,
            Successor::Starting { live, .. } => Some(live),
        }
    }

    /// Whether the slot waits for worker `id`'s spawn, as its worker or as
    /// a successor.
    pub(super) fn awaits(&self, id: WorkerId) -> bool {
        matches!(self.filled, Filled::Spawning(spawning) if spawning == id)
            || matches!(self.successor, Some(Successor::Spawning { id: spawning, .. }) if spawning == id)
    }

    pub(super) fn gave_up(&self) -> bool {
        matches!(self.filled, Filled::GaveUp(_))
    }

    /// Given up, with a revival timed.
    pub(super) fn resting(&self) -> bool {
        matches!(self.filled, Filled::GaveUp(Some(_)))
    }

    /// Started and not ready yet: spawning, or spawned and not ready.
    pub(super) fn starting(&self) -> bool {
        match &self.filled {
            Filled::Spawning(_) => true,
            Filled::Live(live) => !live.ready,
            _ => false,
        }
    }

    pub(super) fn is_restarting(&self) -> bool {
        matches!(self.filled, Filled::Restarting(_))
    }

    /// Cancels a timed restart (the slot is left empty) or a timed revival
    /// (the slot stays given up).
    pub(super) fn cancel_restart<A>(&mut self, ctx: &mut Context<A>)
    where
        A: Actor<Context = Context<A>>,
    {
        match self.filled {
            Filled::Restarting(timer) => {
                ctx.cancel_future(timer);
                self.filled = Filled::Empty;
            }
            Filled::GaveUp(Some(timer)) => {
                ctx.cancel_future(timer);
                self.filled = Filled::GaveUp(None);
            }
            _ => {}
        }
    }
}
