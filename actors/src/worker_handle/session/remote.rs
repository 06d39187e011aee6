//! A remote worker: its `Hello` names another pid than the process the pool
//! started, so that process is only its launcher (`ssh`, `docker run -i`, a
//! shell), and the worker may run on another machine. The supervisor cannot
//! read its `/proc` nor signal it:
//!
//! * its usage comes from the worker itself: `ReportUsage` on every sampling
//!   tick, answered by `Usage`;
//! * it is stopped in phases: the `SoftKill` or `HardKill` frame, then its
//!   input closes (it reads end of file and exits), then, if the launcher has
//!   not exited `EXIT_AFTER_EOF` later, `SIGTERM` to the launcher alone, and
//!   `SIGKILL` `term_grace` after that when a kill was asked for.

use std::time::Instant;

use lpm_protocol::ToWorker;
use nix::sys::signal::Signal;

use super::{Effect, Session, EXIT_AFTER_EOF};

/// When a remote worker's launcher gets its signals.
#[derive(Debug, Default)]
pub(super) struct Ladder {
    sigterm_at: Option<Instant>,
    /// When SIGTERM went out.
    termed_at: Option<Instant>,
    sigkill_at: Option<Instant>,
    /// A SIGKILL was asked for (a hard kill, a misbehaving worker), not only SIGTERM.
    kill: bool,
}

impl Ladder {
    /// The next signal's time.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.sigterm_at.into_iter().chain(self.sigkill_at).min()
    }
}

/// A remote worker's last usage report.
#[derive(Debug, Clone, Copy)]
pub(super) struct LastUsage {
    at: Instant,
    cpu_ns: u64,
}

impl Session {
    /// Whether the worker is remote (known once its `Hello` came).
    pub(crate) fn is_remote(&self) -> bool {
        self.remote
    }

    /// The sampling tick of a remote worker: it is asked for its usage.
    pub(crate) fn request_usage(&mut self) {
        if self.remote && self.phase.is_open() && !self.input_closed {
            self.push(&ToWorker::ReportUsage);
        }
    }

    /// A remote worker's `Usage`: its RSS, and its CPU time since it started,
    /// which gives its CPU share since the previous report.
    pub(super) fn on_usage(&mut self, rss_bytes: u64, cpu_ns: u64, now: Instant) {
        if !self.remote {
            // A local worker is sampled; a report it sends unasked changes nothing.
            return;
        }
        if let Some(last) = self.last_usage {
            let wall = now.saturating_duration_since(last.at).as_nanos() as f64;
            if wall > 0.0 {
                let used = cpu_ns.saturating_sub(last.cpu_ns) as f64;
                self.cpu = (used / wall * 100.0) as f32;
            }
        }
        self.last_usage = Some(LastUsage { at: now, cpu_ns });
        self.rss = rss_bytes;
        self.effects.push(Effect::Rss(rss_bytes));
        self.check_recycle(now);
    }

    /// The worker reads end of file from now on (once the frames queued
    /// before have gone out).
    pub(super) fn close_input(&mut self) {
        if !self.input_closed {
            self.input_closed = true;
            self.effects.push(Effect::CloseInput);
        }
    }

    /// What `signal` means for a remote worker: its input closes now; its
    /// launcher gets SIGTERM `EXIT_AFTER_EOF` later, and, if `signal` is
    /// SIGKILL, SIGKILL `term_grace` after the SIGTERM.
    pub(super) fn escalate(&mut self, signal: Signal, now: Instant) {
        self.close_input();
        let term_grace = self.config.term_grace;
        let ladder = self.ladder.get_or_insert_with(|| Ladder {
            sigterm_at: Some(now + EXIT_AFTER_EOF),
            ..Ladder::default()
        });
        if signal == Signal::SIGKILL && !ladder.kill {
            ladder.kill = true;
            let after = match (ladder.sigterm_at, ladder.termed_at) {
                (Some(at), _) => at + term_grace,
                (None, Some(termed)) => (termed + term_grace).max(now),
                (None, None) => now,
            };
            ladder.sigkill_at = Some(after);
        }
    }

    /// Sends the launcher the signals that are due.
    pub(super) fn climb_ladder(&mut self, now: Instant) {
        let Some(ladder) = &mut self.ladder else {
            return;
        };
        let mut due = Vec::new();
        if ladder.sigterm_at.is_some_and(|at| at <= now) {
            ladder.sigterm_at = None;
            ladder.termed_at = Some(now);
            due.push(Signal::SIGTERM);
        }
        if ladder.sigkill_at.is_some_and(|at| at <= now) {
            ladder.sigkill_at = None;
            due.push(Signal::SIGKILL);
        }
        if !due.is_empty() {
            tracing::warn!(
                slot = self.id.slot,
                launcher = self.pid,
                ?due,
                "remote worker did not exit after its input closed; signalling its launcher"
            );
        }
        if !self.phase.is_exited() {
            self.effects
                .extend(due.into_iter().map(Effect::SignalLauncher));
        }
    }
}
