//! The pool's numbers: [`Metrics`], a snapshot taken with
//! [`Pool::metrics`](crate::Pool::metrics) or the [`Measure`](crate::Measure)
//! message.
//!
//! Counters are kept where each thing is decided (a request's outcome where
//! it resolves, a restart in the supervisor, a dispatch in the balancer) in
//! relaxed atomics shared by the pool's actors, so the hot path takes no lock
//! and sends no message for them. They belong to the pool, so they survive
//! worker restarts. With the `prometheus` feature, `Metrics::to_prometheus`
//! writes them in the Prometheus text format.

mod histogram;
#[cfg(feature = "prometheus")]
mod prometheus;
mod reason;
mod recorder;

use std::fmt;

pub use histogram::Histogram;
#[cfg(feature = "prometheus")]
pub use prometheus::PROMETHEUS_CONTENT_TYPE;
pub use reason::RestartReason;
pub(crate) use recorder::{Mark, Recorder};

use crate::{ErrorKind, WorkerHealth};

/// A snapshot of a pool's numbers.
///
/// Request counts are by outcome, as the pool decided it: a request is
/// counted once, when it resolves (a caller that then fails to decode the
/// reply was still served). Requests refused before they reach the pool
/// (their payload did not encode) are not counted.
///
/// It serializes as an object with the fields below, under the same names
/// (`requests` and `restarts` as objects of name to count, histograms as
/// [`Histogram`] describes), so a JSON endpoint can answer it as is.
///
/// # Examples
///
/// ```no_run
/// use lpm_actors::{ErrorKind, Outcome};
///
/// # async fn demo(pool: lpm_actors::Pool) -> Result<(), lpm_actors::Error> {
/// let m = pool.metrics().await?;
/// println!("{m}");
/// println!(
///     "{} served, {} timed out, queue {} (at most {})",
///     m.requests.served(),
///     m.requests.get(Outcome::Failed(ErrorKind::Timeout)),
///     m.queue_depth,
///     m.queue_depth_max,
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Metrics {
    /// Requests by outcome, over the pool's life.
    pub requests: Outcomes,
    /// Attempts made beyond each request's first (after a worker died or an
    /// attempt timed out, with retries left).
    pub retries: u64,
    /// Attempts that ran out of time, in the queue or on a worker (a
    /// request retried after a timeout counts each one; see
    /// [`Error::Timeout`](crate::Error::Timeout) for the requests that failed so).
    pub timeouts: u64,
    /// Worker slots restarted, by reason.
    pub restarts: Restarts,
    /// Workers replaced at a recycling limit (`Config::max_requests`, `Config::max_rss`).
    pub recycles: u64,
    /// Requests waiting in the queue now.
    pub queue_depth: usize,
    /// The most requests that ever waited in the queue at once.
    pub queue_depth_max: usize,
    /// How long requests waited before they were handed to a worker: one
    /// observation each time one is (so a retried request counts again).
    pub queue_wait: Histogram,
    /// How long requests took from being handed to their worker to their
    /// outcome (served, a handler error, a timeout, the worker's death ...):
    /// one observation per request that ended on a worker; cancelled ones
    /// are not observed. Both ends are the times the pool's actors read the
    /// clock at for the batch they belong to (a turn of the balancer, a read
    /// of answers, a timer, an exit), so no request reads the clock itself.
    pub service_time: Histogram,
    /// Each worker slot, as [`Pool::health`](crate::Pool::health) reports it:
    /// RSS, CPU, in flight.
    pub workers: Vec<WorkerHealth>,
}

impl Metrics {
    pub(crate) fn new(recorder: &Recorder, queue_depth: usize, workers: Vec<WorkerHealth>) -> Self {
        Self {
            requests: recorder.outcomes(),
            retries: recorder.retries(),
            timeouts: recorder.timeouts(),
            restarts: recorder.restarts(),
            recycles: recorder.recycles(),
            queue_depth,
            queue_depth_max: recorder.queue_depth_max().max(queue_depth),
            queue_wait: recorder.queue_wait(),
            service_time: recorder.service_time(),
            workers,
        }
    }

    /// Requests on workers now, over every slot.
    pub fn in_flight(&self) -> usize {
        self.workers.iter().map(|w| w.in_flight).sum()
    }
}

impl fmt::Display for Metrics {
    /// One line: outcomes, load and service time (its quantiles once
    /// something was served), e.g. from the quickstart:
    /// `served 4000, failed 0, cancelled 0 | in flight 0, queue 0 (max 2976) | service p50 1.0s p99 2.4s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "served {}, failed {}, cancelled {} | in flight {}, queue {} (max {})",
            self.requests.served(),
            self.requests.failed(),
            self.requests.cancelled(),
            self.in_flight(),
            self.queue_depth,
            self.queue_depth_max,
        )?;
        if let (Some(p50), Some(p99)) = (self.service_time.p50(), self.service_time.p99()) {
            write!(f, " | service p50 {p50:.1?} p99 {p99:.1?}")?;
        }
        Ok(())
    }
}

/// How a request ended, as [`Metrics::requests`] counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Its worker answered it (`"served"`).
    Served,
    /// Its caller stopped waiting first (`"cancelled"`): dropped the future,
    /// or the actix message's sender went away.
    Cancelled,
    /// It failed with an error of this kind (the kind's name, e.g. `"timeout"`).
    Failed(ErrorKind),
}

impl Outcome {
    /// The outcome's snake_case name, the `outcome` label of `lpm_requests_total`:
    /// `"served"`, `"cancelled"`, or the error kind's [`ErrorKind::as_str`].
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Served => "served",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed(kind) => kind.as_str(),
        }
    }
}

impl fmt::Display for Outcome {
    /// Writes [`Outcome::as_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Requests by [`Outcome`], over a pool's life.
///
/// It serializes as an object of every outcome's name to its count,
/// e.g. `{"served": 120, "cancelled": 1, "queue_full": 0, "timeout": 2, ...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcomes {
    served: u64,
    cancelled: u64,
    /// Indexed as [`ErrorKind::ALL`].
    failed: [u64; ErrorKind::ALL.len()],
}

impl Outcomes {
    /// Requests that ended with `outcome`.
    pub fn get(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Served => self.served,
            Outcome::Cancelled => self.cancelled,
            Outcome::Failed(kind) => self.failed[kind as usize],
        }
    }

    /// Requests their worker answered.
    pub fn served(&self) -> u64 {
        self.served
    }

    /// Requests whose caller stopped waiting.
    pub fn cancelled(&self) -> u64 {
        self.cancelled
    }

    /// Requests that failed, whatever the error.
    pub fn failed(&self) -> u64 {
        self.failed.iter().sum()
    }

    /// Every request that ended, whatever the outcome.
    pub fn total(&self) -> u64 {
        self.served + self.cancelled + self.failed()
    }

    /// Every outcome with its count (zeros included): served, cancelled,
    /// then each error kind in [`ErrorKind::ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = (Outcome, u64)> + '_ {
        [Outcome::Served, Outcome::Cancelled]
            .into_iter()
            .chain(ErrorKind::ALL.into_iter().map(Outcome::Failed))
            .map(|outcome| (outcome, self.get(outcome)))
    }
}

impl serde::Serialize for Outcomes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter().map(|(o, n)| (o.as_str(), n)))
    }
}

/// Worker restarts by [`RestartReason`], over a pool's life.
///
/// It serializes as an object of every reason's name to its count,
/// e.g. `{"exited": 0, "crashed": 2, "protocol_violation": 0, ...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Restarts([u64; RestartReason::ALL.len()]);

impl Restarts {
    /// Restarts for `reason`.
    pub fn get(&self, reason: RestartReason) -> u64 {
        self.0[reason as usize]
    }

    /// Restarts, whatever the reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Every reason with its count (zeros included), in [`RestartReason::ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = (RestartReason, u64)> + '_ {
        RestartReason::ALL.into_iter().map(|r| (r, self.get(r)))
    }
}

impl serde::Serialize for Restarts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter().map(|(r, n)| (r.as_str(), n)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::WorkerState;

    fn sample() -> Metrics {
        let recorder = Recorder::default();
        for _ in 0..3 {
            recorder.served();
            recorder.serviced(Duration::from_millis(2));
        }
        recorder.failed(ErrorKind::Handler);
        recorder.restarted(RestartReason::Crashed);
        recorder.queue_depth(4);
        let mut worker = WorkerHealth::down(0, 1, WorkerState::Ready);
        worker.in_flight = 2;
        Metrics::new(&recorder, 1, vec![worker])
    }

    #[test]
    fn outcomes_list_every_outcome_once_with_distinct_names() {
        let m = sample();
        let names: std::collections::HashSet<_> =
            m.requests.iter().map(|(o, _)| o.as_str()).collect();
        assert_eq!(names.len(), 2 + ErrorKind::ALL.len());
        assert_eq!(m.requests.total(), 4);
        assert_eq!(m.requests.failed(), 1);
        assert_eq!(m.requests.get(Outcome::Failed(ErrorKind::Handler)), 1);
        assert_eq!(Outcome::Failed(ErrorKind::Timeout).to_string(), "timeout");
    }

    #[test]
    fn it_serializes_with_outcomes_and_reasons_as_objects() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["requests"]["served"], 3);
        assert_eq!(v["requests"]["handler"], 1);
        assert_eq!(v["requests"]["cancelled"], 0);
        assert_eq!(v["restarts"]["crashed"], 1);
        assert_eq!(v["restarts"]["spawn_failed"], 0);
        assert_eq!(
            (v["queue_depth"].clone(), v["queue_depth_max"].clone()),
            (json!(1), json!(4))
        );
        assert_eq!(v["service_time"]["count"], 3);
        assert_eq!(v["workers"][0]["in_flight"], 2);
    }

    #[test]
    fn it_displays_as_one_summary_line() {
        let line = sample().to_string();
        assert!(
            line.starts_with(
                "served 3, failed 1, cancelled 0 | in flight 2, queue 1 (max 4) | service p50 "
            ),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }
}
