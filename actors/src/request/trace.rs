//! A request's span in the supervisor, and the trace context its request
//! frames carry to the worker.
//!
//! Made only when a subscriber wants the span (target `lpm::request`,
//! level DEBUG) or the caller gave a context ([`Enqueue::trace_parent`]):
//! otherwise a request holds a `None` and pays one interest check, cached
//! by `tracing` per call site.
//!
//! [`Enqueue::trace_parent`]: crate::Enqueue::trace_parent

use std::time::Duration;

use lpm_protocol::{RequestId, TraceParent, TRACE_SAMPLED};
use tracing::field::{display, Empty};
use tracing::Span;

use crate::ErrorKind;

/// A traced request: its span, and the `traceparent` its frames carry.
#[derive(Debug)]
pub(crate) struct RequestTrace {
    span: Span,
    /// Written once; every attempt sends the same.
    traceparent: String,
}

impl RequestTrace {
    /// Opens the span of request `id` (a child of the caller's current
    /// span), or `None` when nobody listens and the caller gave no context.
    ///
    /// The span's own id in the trace comes from the request id, and so does
    /// the trace id when the caller gave none: both random, as W3C asks,
    /// without drawing more randomness.
    pub(crate) fn open(
        id: RequestId,
        call: Option<&str>,
        given: Option<TraceParent>,
    ) -> Option<Self> {
        let span = tracing::debug_span!(
            target: "lpm::request",
            "request",
            %id,
            call = %call.unwrap_or_default(),
            trace_id = Empty,
            span_id = Empty,
            attempt = Empty,
            queue_wait_us = Empty,
            slot = Empty,
            pid = Empty,
            outcome = Empty,
        );
        if span.is_disabled() {
            // Passed on untouched: this process adds no span to the trace.
            return given.map(|context| Self {
                span,
                traceparent: context.to_string(),
            });
        }
        let bits = id.as_u128();
        let span_id = (bits as u64 ^ (bits >> 64) as u64).max(1);
        let context = match given {
            Some(caller) => caller.child(span_id),
            None => TraceParent::new(bits.max(1), span_id, TRACE_SAMPLED)
                .expect("both ids are at least 1"),
        };
        span.record(
            "trace_id",
            display(format_args!("{:032x}", context.trace_id())),
        );
        span.record("span_id", display(format_args!("{span_id:016x}")));
        Some(Self {
            span,
            traceparent: context.to_string(),
        })
    }

    /// The `traceparent` for the request frames.
    pub(crate) fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// An attempt leaves the queue after `waited`.
    pub(crate) fn dispatched(&self, attempt: u32, waited: Duration) {
        self.span.record("attempt", attempt);
        self.span.record("queue_wait_us", waited.as_micros() as u64);
    }

    /// The attempt was sent to the worker in `slot`, process `pid`.
    pub(crate) fn sent(&self, slot: usize, pid: u32) {
        self.span.record("slot", slot);
        self.span.record("pid", pid);
    }

    /// The request ended: `None` served, else the error's kind.
    pub(crate) fn finish(&self, outcome: Outcome) {
        let outcome = match outcome {
            Outcome::Served => "served",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed(kind) => kind.as_str(),
        };
        self.span.record("outcome", outcome);
        tracing::debug!(target: "lpm::request", parent: &self.span, "request finished");
    }
}

/// How a traced request ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    Served,
    Cancelled,
    Failed(ErrorKind),
}
