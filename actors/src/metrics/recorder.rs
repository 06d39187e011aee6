//! The pool's counters as they are kept: relaxed atomics that a request's
//! outcome, a restart or a dispatch bumps where it is decided, without a
//! lock or a message. They live as long as the pool, not a worker, so they
//! survive restarts.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::histogram::Recording;
use super::{Histogram, Outcomes, RestartReason, Restarts};
use crate::ErrorKind;

/// A moment as a request keeps it: microseconds since its pool started,
/// on a 32-bit clock that wraps every 71.6 minutes. Four bytes where an
/// `Instant` takes sixteen; an interval is read right up to 35 minutes
/// long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark(u32);

impl Mark {
    /// The time from this mark to a `later` one: zero if `later` is in
    /// fact earlier (or over 35 minutes later, which the clock cannot tell
    /// from earlier).
    pub(crate) fn until(self, later: Mark) -> Duration {
        let micros = later.0.wrapping_sub(self.0);
        if micros > u32::MAX / 2 {
            return Duration::ZERO;
        }
        Duration::from_micros(u64::from(micros))
    }
}

/// Counts what happens to requests and workers over a pool's life.
#[derive(Debug)]
pub(crate) struct Recorder {
    /// What [`Mark`]s count from.
    epoch: Instant,
    /// The latest moment an actor of the pool read the clock at, as a
    /// mark: what a request's outcome is timed by, so that none reads
    /// the clock itself (a clock read costs more than the rest of the
    /// accounting; the actors read it once per batch of frames, per turn
    /// of the balancer, per expiry).
    latest: AtomicU32,
    served: AtomicU64,
    cancelled: AtomicU64,
    /// Failed requests, by [`ErrorKind`] (indexed as [`ErrorKind::ALL`]).
    failed: [AtomicU64; ErrorKind::ALL.len()],
    retries: AtomicU64,
    timeouts: AtomicU64,
    /// Restarts, by [`RestartReason`] (indexed as [`RestartReason::ALL`]).
    restarts: [AtomicU64; RestartReason::ALL.len()],
    recycles: AtomicU64,
    queue_depth_max: AtomicUsize,
    queue_wait: Recording,
    service_time: Recording,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            latest: AtomicU32::new(0),
            served: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            failed: std::array::from_fn(|_| AtomicU64::new(0)),
            retries: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            restarts: std::array::from_fn(|_| AtomicU64::new(0)),
            recycles: AtomicU64::new(0),
            queue_depth_max: AtomicUsize::new(0),
            queue_wait: Recording::default(),
            service_time: Recording::default(),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Recorder {
    /// The moment `at`, as a request keeps it.
    /// The moment `at` (just read from the clock) as a mark; it becomes the
    /// pool's latest.
    pub(crate) fn mark(&self, at: Instant) -> Mark {
        // Truncated: the clock wraps.
        let mark = Mark(at.saturating_duration_since(self.epoch).as_micros() as u32);
        self.latest.store(mark.0, Ordering::Relaxed);
        mark
    }

    /// The clock was read at `now`: what ends later now ends then.
    pub(crate) fn tick(&self, now: Instant) {
        self.mark(now);
    }

    /// The latest moment the pool's actors read the clock at.
    pub(crate) fn latest(&self) -> Mark {
        Mark(self.latest.load(Ordering::Relaxed))
    }

    /// A request was answered by its worker.
    pub(crate) fn served(&self) {
        bump(&self.served);
    }

    /// A request's caller stopped waiting before its answer.
    pub(crate) fn cancelled(&self) {
        bump(&self.cancelled);
    }

    /// A request failed with an error of this kind.
    pub(crate) fn failed(&self, kind: ErrorKind) {
        bump(&self.failed[kind as usize]);
    }

    /// A request starts another attempt.
    pub(crate) fn retried(&self) {
        bump(&self.retries);
    }

    /// An attempt ran out of time (in the queue or on a worker).
    pub(crate) fn timed_out(&self) {
        bump(&self.timeouts);
    }

    /// A worker slot is restarted, for this reason.
    pub(crate) fn restarted(&self, reason: RestartReason) {
        bump(&self.restarts[reason as usize]);
    }

    /// A worker was replaced by its successor at a recycling limit.
    pub(crate) fn recycled(&self) {
        bump(&self.recycles);
    }

    /// The queue holds `depth` requests now.
    pub(crate) fn queue_depth(&self, depth: usize) {
        // A plain load first: the mark is seldom passed, and a load costs no write.
        if depth > self.queue_depth_max.load(Ordering::Relaxed) {
            self.queue_depth_max.fetch_max(depth, Ordering::Relaxed);
        }
    }

    /// A request waited this long before it was handed to a worker.
    pub(crate) fn waited(&self, wait: Duration) {
        self.queue_wait.record(wait);
    }

    /// A request ended this long after it was handed to its worker.
    pub(crate) fn serviced(&self, took: Duration) {
        self.service_time.record(took);
    }

    /// Requests answered so far.
    pub(crate) fn served_count(&self) -> u64 {
        read(&self.served)
    }

    /// Requests failed so far, whatever the error.
    pub(crate) fn failed_count(&self) -> u64 {
        self.failed.iter().map(read).sum()
    }

    pub(crate) fn outcomes(&self) -> Outcomes {
        Outcomes {
            served: read(&self.served),
            cancelled: read(&self.cancelled),
            failed: std::array::from_fn(|i| read(&self.failed[i])),
        }
    }

    pub(crate) fn restarts(&self) -> Restarts {
        Restarts(std::array::from_fn(|i| read(&self.restarts[i])))
    }

    pub(crate) fn retries(&self) -> u64 {
        read(&self.retries)
    }

    pub(crate) fn timeouts(&self) -> u64 {
        read(&self.timeouts)
    }

    pub(crate) fn recycles(&self) -> u64 {
        read(&self.recycles)
    }

    pub(crate) fn queue_depth_max(&self) -> usize {
        self.queue_depth_max.load(Ordering::Relaxed)
    }

    pub(crate) fn queue_wait(&self) -> Histogram {
        self.queue_wait.snapshot()
    }

    pub(crate) fn service_time(&self) -> Histogram {
        self.service_time.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Outcome;

    #[test]
    fn counts_go_where_they_were_recorded() {
        let r = Recorder::default();
        r.served();
        r.served();
        r.cancelled();
        r.failed(ErrorKind::Timeout);
        r.failed(ErrorKind::CodecMismatch);
        r.retried();
        r.timed_out();
        r.restarted(RestartReason::SpawnFailed);
        r.recycled();
        let outcomes = r.outcomes();
        assert_eq!(outcomes.get(Outcome::Served), 2);
        assert_eq!(outcomes.get(Outcome::Cancelled), 1);
        assert_eq!(outcomes.get(Outcome::Failed(ErrorKind::Timeout)), 1);
        assert_eq!(outcomes.get(Outcome::Failed(ErrorKind::CodecMismatch)), 1);
        assert_eq!(outcomes.get(Outcome::Failed(ErrorKind::QueueFull)), 0);
        assert_eq!((r.served_count(), r.failed_count()), (2, 2));
        assert_eq!((r.retries(), r.timeouts(), r.recycles()), (1, 1, 1));
        assert_eq!(r.restarts().get(RestartReason::SpawnFailed), 1);
        assert_eq!(r.restarts().total(), 1);
    }

    #[test]
    fn marks_measure_intervals_in_microseconds_across_the_wrap() {
        let r = Recorder::default();
        let at = r.epoch + Duration::from_millis(5);
        let mark = r.mark(at);
        let later = r.mark(at + Duration::from_micros(1500));
        assert_eq!(mark.until(later), Duration::from_micros(1500));
        assert_eq!(mark.until(mark), Duration::ZERO);
        // Past the 32-bit clock's wrap, an interval still reads right.
        let late = r.epoch + Duration::from_micros(u64::from(u32::MAX) - 10);
        let mark = r.mark(late);
        let later = r.mark(late + Duration::from_micros(30));
        assert!(later.0 < mark.0, "the clock wrapped");
        assert_eq!(mark.until(later), Duration::from_micros(30));
        // An earlier mark is no time later.
        assert_eq!(later.until(mark), Duration::ZERO);
    }

    #[test]
    fn the_latest_mark_is_the_last_clock_read() {
        let r = Recorder::default();
        let first = r.mark(r.epoch + Duration::from_millis(1));
        assert_eq!(r.latest(), first);
        r.tick(r.epoch + Duration::from_millis(3));
        assert_eq!(first.until(r.latest()), Duration::from_millis(2));
    }

    #[test]
    fn the_queue_mark_only_rises() {
        let r = Recorder::default();
        for depth in [3, 7, 2, 0, 5] {
            r.queue_depth(depth);
        }
        assert_eq!(r.queue_depth_max(), 7);
    }

    #[test]
    fn durations_land_in_their_histograms() {
        let r = Recorder::default();
        r.waited(Duration::from_micros(5));
        r.serviced(Duration::from_millis(3));
        r.serviced(Duration::from_millis(4));
        assert_eq!(r.queue_wait().count(), 1);
        assert_eq!(r.service_time().count(), 2);
        assert_eq!(r.service_time().sum(), Duration::from_millis(7));
    }
}
