//! Names one worker process: its slot plus a generation that changes on every restart,
//! so news from a dead process is never mistaken for news from its replacement.

/// One worker process: slot and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct WorkerId {
    pub(crate) slot: usize,
    pub(crate) generation: u64,
}
