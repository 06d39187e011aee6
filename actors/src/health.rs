//! The per-worker health snapshot returned by [`Health`](crate::Health).

use std::time::Duration;

/// Where a worker slot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WorkerState {
    /// Spawned, not yet ready.
    Starting,
    /// Takes requests.
    Ready,
    /// Said busy: gets no new requests until ready again.
    Busy,
    /// Finishing its requests before it exits (soft kill, resize).
    Draining,
    /// Dead, waiting for its restart.
    Restarting,
    /// Dead and not coming back (restart limit reached, or the pool stopped).
    Stopped,
}

/// Health of one worker slot.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WorkerHealth {
    /// The slot.
    pub slot: usize,
    /// The current process, if one is running.
    pub pid: Option<u32>,
    /// Resident set size in bytes, from the last sample.
    pub rss: u64,
    /// CPU use in percent of one core, from the last sample.
    pub cpu: f32,
    /// Requests assigned and not yet answered, or answered with a stream
    /// that has not ended yet.
    pub in_flight: usize,
    /// Requests this process has answered.
    pub served: u64,
    /// Times this slot was restarted.
    pub restarts: u32,
    /// Times this slot's worker was recycled at a limit (`Config::max_requests`, `Config::max_rss`).
    pub recycles: u32,
    /// Requests quarantined in this slot: each of their attempts killed a worker
    /// ([`Error::Quarantined`](crate::Error::Quarantined)).
    pub quarantined: u64,
    /// How long the current process has run.
    pub uptime: Duration,
    /// The slot's state.
    pub state: WorkerState,
    /// Statistics the worker reported itself (`Worker::report_stats`).
    pub stats: Vec<(String, f64)>,
    /// Connections handed to this worker ([`Enqueue::tcp`](crate::Enqueue::tcp))
    /// that it has not closed yet.
    pub sockets: usize,
}

impl WorkerHealth {
    pub(crate) fn down(slot: usize, restarts: u32, state: WorkerState) -> Self {
        Self {
            slot,
            pid: None,
            rss: 0,
            cpu: 0.0,
            in_flight: 0,
            served: 0,
            restarts,
            recycles: 0,
            quarantined: 0,
            uptime: Duration::ZERO,
            state,
            sockets: 0,
            stats: Vec::new(),
        }
    }
}
