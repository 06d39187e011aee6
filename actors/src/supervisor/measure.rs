//! The pool's numbers on request: [`Measure`] answers a [`Metrics`]
//! snapshot of the shared counters and every slot's health.

use actix::prelude::*;

use super::Supervisor;
use crate::{Health, Metrics};

/// Answers a [`Metrics`] snapshot: requests by outcome, retries, timeouts,
/// restarts by reason, recycles, the queue, the queue-wait and
/// service-time histograms, and each slot's health (RSS, CPU, in flight).
/// [`Pool::metrics`](crate::Pool::metrics) sends it.
#[derive(Debug, Message)]
#[rtype(result = "Metrics")]
pub struct Measure;

impl Handler<Measure> for Supervisor {
    type Result = ResponseFuture<Metrics>;

    fn handle(&mut self, _msg: Measure, ctx: &mut Context<Self>) -> Self::Result {
        let counters = std::sync::Arc::clone(&self.counters);
        // The slots' health as `Health` reports it, after this turn.
        let health = ctx.address().send(Health);
        Box::pin(async move {
            let workers = health.await.unwrap_or_default();
            Metrics::new(&counters.metrics, counters.queued(), workers)
        })
    }
}
