//! Where a worker is in its life, as one enum: each phase holds what only
//! it needs (its deadline, why the pool is killing the worker).

use std::time::Instant;

use crate::health::WorkerState;
use crate::KillReason;

#[derive(Debug)]
pub(super) enum Phase {
    /// Waiting for the worker's `Hello` until `until`.
    Handshake { until: Instant },
    /// Serving requests: `Starting` until its first `Ready`, then `Ready` or `Busy`.
    Serving(Serving),
    /// Takes nothing new and finishes what it holds: a soft kill, or a
    /// recycle after a request ran late. A soft kill may come before the
    /// worker's `Hello`, which is then still due by `hello_by`.
    Draining {
        recycling: Option<Recycling>,
        hello_by: Option<Instant>,
    },
    /// No frames either way any more; waiting for the process to be reaped.
    Closed {
        killed_for: Option<KillReason>,
        /// When it gets SIGKILL if it has not exited.
        sigkill_at: Option<Instant>,
    },
    /// Reaped; its report went out.
    Exited,
}

/// Whether a serving worker said it can take work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Serving {
    Starting,
    Ready,
    Busy,
}

/// A worker being recycled because a request ran past its timeout: SIGTERM
/// now, SIGKILL at `sigkill_at`.
#[derive(Debug)]
pub(super) struct Recycling {
    pub(super) reason: KillReason,
    pub(super) sigkill_at: Option<Instant>,
}

impl Phase {
    /// The state health and the balancer see.
    pub(super) fn state(&self) -> WorkerState {
        match self {
            Phase::Handshake { .. } | Phase::Serving(Serving::Starting) => WorkerState::Starting,
            Phase::Serving(Serving::Ready) => WorkerState::Ready,
            Phase::Serving(Serving::Busy) => WorkerState::Busy,
            Phase::Draining { .. } => WorkerState::Draining,
            Phase::Closed { .. } | Phase::Exited => WorkerState::Stopped,
        }
    }

    /// The channel still carries frames.
    pub(super) fn is_open(&self) -> bool {
        matches!(
            self,
            Phase::Handshake { .. } | Phase::Serving(_) | Phase::Draining { .. }
        )
    }

    pub(super) fn is_draining(&self) -> bool {
        matches!(self, Phase::Draining { .. })
    }

    pub(super) fn is_exited(&self) -> bool {
        matches!(self, Phase::Exited)
    }

    /// New requests may be sent (the balancer only assigns to ready workers;
    /// one assigned just before a change of phase is still sent if it can be).
    pub(super) fn takes_requests(&self) -> bool {
        matches!(self, Phase::Handshake { .. } | Phase::Serving(_))
    }

    /// When the worker's `Hello` is due, while it is.
    pub(super) fn hello_by(&self) -> Option<Instant> {
        match self {
            Phase::Handshake { until } => Some(*until),
            Phase::Draining { hello_by, .. } => *hello_by,
            _ => None,
        }
    }

    /// When the pool SIGKILLs the worker unless it exits first.
    pub(super) fn sigkill_at(&self) -> Option<Instant> {
        match self {
            Phase::Draining {
                recycling: Some(r), ..
            } => r.sigkill_at,
            Phase::Closed { sigkill_at, .. } => *sigkill_at,
            _ => None,
        }
    }

    /// The phase's own next deadline, if it has one.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.hello_by().into_iter().chain(self.sigkill_at()).min()
    }

    /// Why the pool is killing the worker, if it is.
    pub(super) fn kill_reason(&self) -> Option<&KillReason> {
        match self {
            Phase::Draining {
                recycling: Some(r), ..
            } => Some(&r.reason),
            Phase::Closed { killed_for, .. } => killed_for.as_ref(),
            _ => None,
        }
    }

    /// Why the pool is killing the worker, taken out of the phase.
    pub(super) fn take_kill_reason(&mut self) -> Option<KillReason> {
        match self {
            Phase::Draining { recycling, .. } => recycling.take().map(|r| r.reason),
            Phase::Closed { killed_for, .. } => killed_for.take(),
            _ => None,
        }
    }
}
