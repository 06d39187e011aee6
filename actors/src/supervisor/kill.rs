//! The outcome of a soft or hard kill.

/// What a kill ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct KillReport {
    /// Requests answered over the pool's life.
    pub served: u64,
    /// Requests that ended with an error over the pool's life.
    pub failed: u64,
    /// Workers that had to be ended by a signal (hard kill, or soft-kill stragglers).
    pub killed: usize,
}
