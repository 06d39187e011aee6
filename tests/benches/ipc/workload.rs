//! The shape of the workloads beside the hot path (W3, W5, scaling, online
//! time, restart storm, memory): each runs its rounds, then reports its
//! median figures as rows of the summary table, lines of the details and a
//! part of the JSON.

use crate::json::Json;
use crate::params::Params;
use crate::report::Row;

/// A workload in progress: its rounds so far.
pub(crate) trait Workload {
    /// Runs round `round` (counting from 1), interleaved with the other workloads' rounds.
    fn round(&mut self, p: &Params, round: usize);

    /// The figures of the rounds run.
    fn finish(self: Box<Self>) -> Box<dyn Section>;
}

/// A workload's figures, as the report shows them.
pub(crate) trait Section {
    /// Its rows of the summary table.
    fn rows(&self, rows: &mut Vec<Row>);

    /// Its lines below the details table (each prints its own header).
    fn print_details(&self);

    /// Its keys in the JSON results.
    fn json(&self) -> Vec<(&'static str, Json)>;
}
