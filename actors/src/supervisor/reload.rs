//! Rolling reload: every worker is replaced by one running a new command,
//! one slot at a time, successor first as recycling does, so the pool never
//! drops below strength and no request fails. The first successor that
//! cannot get ready stops the reload: the workers not replaced yet keep
//! serving, and later spawns use the old command again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::slot::{Filled, Successor, Why};
use super::{Phase, Supervisor};
use crate::id::WorkerId;
use crate::{Error, KillReason, PoolEvent, WorkerCommand};

/// Replaces every worker with one running this command, one slot at a
/// time: the new worker starts beside the old one, and only once it is
/// ready does the old one stop taking requests, finish those it holds and
/// exit. Workers started from now on (restarts, recycles, scale-ups) run
/// the new command.
///
/// A slot whose new worker cannot get ready (it cannot be spawned, exits,
/// fails the handshake, or is not ready within
/// [`Config::spawn_timeout`](crate::Config::spawn_timeout) of its spawn)
/// stops the reload: that slot and the ones after it keep their old
/// workers, the pool's command goes back to the old one, and the report's
/// `error` says why ([`Error::ReloadFailed`]). Slots replaced before keep
/// their new workers.
///
/// Answers [`Error::ReloadInProgress`] while another reload runs and
/// [`Error::ShuttingDown`] during a kill (a kill that starts during a
/// reload ends it with that error in the report).
#[derive(Debug, Message)]
#[rtype(result = "Result<ReloadReport, Error>")]
pub struct Reload(pub WorkerCommand);

/// One slot a reload replaced (also sent as [`PoolEvent::Reloaded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Reloaded {
    /// The slot.
    pub slot: usize,
    /// The old worker's process id.
    pub old_pid: u32,
    /// The new worker's process id.
    pub new_pid: u32,
}

/// What a rolling reload did: the slots it replaced, in order, and why it
/// stopped early, if it did.
///
/// It serializes as `{"replaced": [{"slot": 0, "old_pid": 41, "new_pid": 57}],
/// "error": null}` (an error as `{"kind", "message"}`).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
#[non_exhaustive]
#[must_use = "a reload may stop early; look at `error`"]
pub struct ReloadReport {
    /// The slots whose worker was replaced.
    pub replaced: Vec<Reloaded>,
    /// Why the reload stopped before the last slot: [`Error::ReloadFailed`],
    /// or [`Error::ShuttingDown`] when a kill started.
    pub error: Option<Error>,
}

impl ReloadReport {
    /// True when every worker was replaced (or already ran the new command).
    pub fn is_complete(&self) -> bool {
        self.error.is_none()
    }

    /// The replaced slots, or the error that stopped the reload.
    ///
    /// # Errors
    ///
    /// The report's `error`, when there is one.
    pub fn into_result(self) -> Result<Vec<Reloaded>, Error> {
        match self.error {
            None => Ok(self.replaced),
            Some(e) => Err(e),
        }
    }
}

/// Why a new worker did not get ready (see [`Error::ReloadFailed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartFailure {
    /// The process could not be started (no such program, not executable ...).
    #[error("could not be started: {reason}")]
    Spawn {
        /// What the system said.
        reason: String,
    },
    /// It exited on its own before it was ready.
    #[error("exited before it was ready ({})", exit_status(*code, *signal))]
    Exited {
        /// Its process id.
        pid: u32,
        /// Exit code, when it exited.
        code: Option<i32>,
        /// Signal number, when a signal ended it.
        signal: Option<i32>,
        /// The last lines it wrote to stderr.
        stderr_tail: Vec<String>,
    },
    /// The pool killed it before it was ready (a failed handshake, no
    /// handshake within the spawn timeout ...).
    #[error("was killed before it was ready: {reason}")]
    Killed {
        /// Its process id.
        pid: u32,
        /// Why.
        reason: KillReason,
    },
    /// It did not say ready within the spawn timeout; it was stopped.
    #[error("did not say ready within {after:?} (Config::spawn_timeout)")]
    NotReady {
        /// The spawn timeout.
        after: Duration,
    },
}

fn exit_status(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => "no status".to_owned(),
    }
}

/// A reload under way.
#[derive(Debug)]
pub(super) struct Reloading {
    /// The command before the reload, put back if it fails.
    previous: Arc<WorkerCommand>,
    /// Slots still to look at, in order; the first is the one in hand.
    todo: VecDeque<usize>,
    /// The successor started for the first slot of `todo`.
    step: Option<Step>,
    replaced: Vec<Reloaded>,
    report: oneshot::Sender<ReloadReport>,
}

#[derive(Debug)]
struct Step {
    slot: usize,
    successor: WorkerId,
    replaces: u32,
    /// Rings when the successor has had `spawn_timeout` to get ready.
    deadline: SpawnHandle,
}

impl Handler<Reload> for Supervisor {
    type Result = ResponseFuture<Result<ReloadReport, Error>>;

    fn handle(&mut self, msg: Reload, ctx: &mut Context<Self>) -> Self::Result {
        let started = self.begin_reload(msg.0, ctx);
        Box::pin(async move { started?.await.map_err(|_| Error::PoolStopped) })
    }
}

impl Supervisor {
    fn begin_reload(
        &mut self,
        command: WorkerCommand,
        ctx: &mut Context<Self>,
    ) -> Result<oneshot::Receiver<ReloadReport>, Error> {
        if !matches!(self.phase, Phase::Running) {
            return Err(Error::ShuttingDown);
        }
        if self.reload.is_some() {
            return Err(Error::ReloadInProgress);
        }
        let (report, rx) = oneshot::channel();
        let previous = std::mem::replace(&mut self.command, Arc::new(command));
        tracing::info!(program = %self.command.program.display(), "rolling reload started");
        self.reload = Some(Reloading {
            previous,
            todo: self
                .slots
                .iter()
                .filter(|(_, s)| !s.retiring)
                .map(|(&slot, _)| slot)
                .collect(),
            step: None,
            replaced: Vec::new(),
            report,
        });
        self.advance_reload(ctx);
        Ok(rx)
    }

    /// Moves the reload on: past slots that need nothing (gone, or whose
    /// next worker runs the new command anyway), to the first slot whose
    /// worker runs an old command, which gets a successor. Called after
    /// every change to the slots; it waits while the slot in hand is busy
    /// with a recycle or a spawn.
    pub(super) fn advance_reload(&mut self, ctx: &mut Context<Self>) {
        loop {
            let Some(r) = &self.reload else {
                return;
            };
            if let Some(step) = &r.step {
                if self.step_in_hand(step) {
                    return;
                }
                // Its successor is gone without a word (the slot was retired, or
                // its old worker died before the successor started): the slot's
                // next worker runs the new command.
                self.end_step(ctx);
                continue;
            }
            let Some(&slot) = r.todo.front() else {
                return self.finish_reload(None, ctx);
            };
            let Some(s) = self.slots.get(&slot).filter(|s| !s.retiring) else {
                self.skip_slot();
                continue;
            };
            if s.successor.is_some() {
                return; // A recycle is under way; its end calls back.
            }
            let replaces = match &s.filled {
                Filled::Live(live) if Arc::ptr_eq(&live.command, &self.command) => {
                    self.skip_slot();
                    continue;
                }
                Filled::Live(live) => live.pid,
                // Which command it runs shows once it is started.
                Filled::Spawning(_) => return,
                Filled::Empty | Filled::Restarting(_) | Filled::GaveUp(_) => {
                    self.skip_slot();
                    continue;
                }
            };
            return self.start_step(slot, replaces, ctx);
        }
    }

    fn start_step(&mut self, slot: usize, replaces: u32, ctx: &mut Context<Self>) {
        let successor = self.spawn(slot, ctx);
        if let Some(s) = self.slots.get_mut(&slot) {
            s.successor = Some(Successor::Spawning {
                id: successor,
                replaces,
                why: Why::Reload,
            });
        }
        let after = self.config.spawn_timeout;
        let deadline = ctx.run_later(after, move |act, ctx| act.step_late(successor, after, ctx));
        if let Some(r) = &mut self.reload {
            r.step = Some(Step {
                slot,
                successor,
                replaces,
                deadline,
            });
        }
    }

    /// The step's successor still waits for its start or its ready, in its
    /// slot: as the successor, or as the slot's worker (its old worker died).
    fn step_in_hand(&self, step: &Step) -> bool {
        let id = step.successor;
        self.slots.get(&step.slot).is_some_and(|s| {
            !s.retiring
                && (s.awaits(id)
                    || s.successor().is_some_and(|l| l.id == id)
                    || s.live().is_some_and(|l| l.id == id && !l.ready))
        })
    }

    /// Whether worker `id` is the successor the reload waits for.
    pub(super) fn reload_awaits(&self, id: WorkerId) -> bool {
        self.reload
            .as_ref()
            .and_then(|r| r.step.as_ref())
            .is_some_and(|step| step.successor == id)
    }

    /// Worker `id` said ready: if it is the step's successor, its slot is replaced.
    pub(super) fn reload_step_ready(&mut self, id: WorkerId, ctx: &mut Context<Self>) {
        let Some(step) = self.reload.as_ref().and_then(|r| r.step.as_ref()) else {
            return;
        };
        if step.successor != id {
            return;
        }
        let (slot, old_pid) = (step.slot, step.replaces);
        let Some(new_pid) = self
            .slots
            .get(&slot)
            .and_then(|s| s.live())
            .filter(|l| l.id == id)
            .map(|l| l.pid)
        else {
            return;
        };
        tracing::info!(slot, old_pid, new_pid, "worker reloaded");
        let done = Reloaded {
            slot,
            old_pid,
            new_pid,
        };
        if let Some(r) = &mut self.reload {
            r.replaced.push(done);
        }
        self.publish(PoolEvent::Reloaded {
            slot,
            old_pid,
            new_pid,
        });
        self.end_step(ctx);
        self.advance_reload(ctx);
    }

    /// Worker `id` could not get ready: if it is the step's successor, the
    /// reload stops.
    pub(super) fn reload_step_failed(
        &mut self,
        id: WorkerId,
        cause: StartFailure,
        ctx: &mut Context<Self>,
    ) {
        let Some(step) = self.reload.as_ref().and_then(|r| r.step.as_ref()) else {
            return;
        };
        if step.successor != id {
            return;
        }
        let slot = step.slot;
        tracing::warn!(slot, %cause, "rolling reload stopped: the new worker could not get ready");
        self.finish_reload(Some(Error::ReloadFailed { slot, cause }), ctx);
    }

    /// The successor `id` had its spawn timeout to get ready and is not:
    /// it is stopped (unless it already holds the slot) and the reload ends.
    fn step_late(&mut self, id: WorkerId, after: Duration, ctx: &mut Context<Self>) {
        let Some(step) = self.reload.as_ref().and_then(|r| r.step.as_ref()) else {
            return;
        };
        if step.successor != id {
            return;
        }
        let slot = step.slot;
        let late = self
            .slots
            .get_mut(&slot)
            .filter(|s| s.awaits(id) || s.successor().is_some_and(|l| l.id == id))
            .and_then(|s| s.take_successor(ctx));
        if let Some(live) = late {
            self.outgoing.insert(live.id, live.handle.clone());
            self.retire(live.id, &live.handle, ctx);
        }
        self.reload_step_failed(id, StartFailure::NotReady { after }, ctx);
    }

    /// A kill started: the reload ends with `ShuttingDown`.
    pub(super) fn abort_reload(&mut self, ctx: &mut Context<Self>) {
        self.finish_reload(Some(Error::ShuttingDown), ctx);
    }

    fn skip_slot(&mut self) {
        if let Some(r) = &mut self.reload {
            r.todo.pop_front();
        }
    }

    /// The slot in hand is done with; on to the next.
    fn end_step(&mut self, ctx: &mut Context<Self>) {
        if let Some(r) = &mut self.reload {
            if let Some(step) = r.step.take() {
                ctx.cancel_future(step.deadline);
            }
            r.todo.pop_front();
        }
    }

    /// Answers the reload; a failed one puts the old command back.
    fn finish_reload(&mut self, error: Option<Error>, ctx: &mut Context<Self>) {
        let Some(r) = self.reload.take() else {
            return;
        };
        if let Some(step) = &r.step {
            ctx.cancel_future(step.deadline);
        }
        if error.is_some() {
            self.command = r.previous;
        } else {
            tracing::info!(replaced = r.replaced.len(), "rolling reload done");
        }
        let _ = r.report.send(ReloadReport {
            replaced: r.replaced,
            error,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_failure_says_what_happened() {
        let exited = StartFailure::Exited {
            pid: 42,
            code: Some(17),
            signal: None,
            stderr_tail: vec!["boom".into()],
        };
        assert_eq!(
            exited.to_string(),
            "exited before it was ready (exit code 17)"
        );
        let signalled = StartFailure::Exited {
            pid: 42,
            code: None,
            signal: Some(9),
            stderr_tail: Vec::new(),
        };
        assert_eq!(
            signalled.to_string(),
            "exited before it was ready (signal 9)"
        );
        let e = Error::ReloadFailed {
            slot: 1,
            cause: StartFailure::NotReady {
                after: Duration::from_secs(10),
            },
        };
        assert!(
            e.to_string().contains("did not say ready within 10s"),
            "{e}"
        );
    }

    #[test]
    fn a_report_serializes_its_slots_and_its_error() {
        let report = ReloadReport {
            replaced: vec![Reloaded {
                slot: 0,
                old_pid: 41,
                new_pid: 57,
            }],
            error: Some(Error::ReloadInProgress),
        };
        assert!(!report.is_complete());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["replaced"],
            serde_json::json!([{"slot": 0, "old_pid": 41, "new_pid": 57}])
        );
        assert_eq!(json["error"]["kind"], "reload_in_progress");
        assert_eq!(report.into_result(), Err(Error::ReloadInProgress));
    }
}
