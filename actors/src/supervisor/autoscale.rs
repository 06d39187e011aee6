//! Autoscaling: when to add workers and when to let one go, as a policy
//! without I/O. [`Autoscaler::decide`] takes what the pool looks like
//! ([`Observation`]) and `now`, and answers the size to move to and why;
//! the Supervisor samples the pool on a timer and applies the answer
//! (`scale.rs`). So every rule is tested here without a process or a sleep.

use std::time::{Duration, Instant};

/// How the pool scales with load, between `min` and `max` workers
/// ([`Config::autoscale`](crate::Config::autoscale)).
///
/// - **Up by `step`** (never past `max`) when the oldest queued request has
///   waited `backlog_wait` (uWSGI's backlog algorithm), or when no worker
///   has been idle for `no_idle_for` while some were busy (its spare
///   algorithm). Not while a worker the pool started is still on its way
///   to ready: those already count as capacity.
/// - **Down by one** (never below `min`) once the queue has been empty and
///   a worker spare for `idle_for`; "spare" means one more idle worker than
///   the spare rule keeps, so while any worker is busy one idle worker
///   stays (scaling down never undoes a scale-up for lack of an idle
///   worker). The retired worker drains as with
///   [`Resize`](crate::Resize): it finishes its requests first.
/// - **`cooldown`** after any change before the next one, against flapping;
///   each rule's period starts over after a change.
///
/// The pool samples its queue and workers every `sample_every`; periods
/// are measured between samples, so they are met up to one sample late.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lpm_actors::{Autoscale, Config};
///
/// let config = Config::default().autoscale(
///     Autoscale::new(2, 16)
///         .step(2)
///         .backlog_wait(Duration::from_millis(100))
///         .idle_for(Duration::from_secs(60)),
/// );
/// assert_eq!(config.autoscale.map(|a| (a.min, a.max)), Some((2, 16)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Autoscale {
    /// Fewest workers (at least 1).
    pub min: usize,
    /// Most workers (at least `min`).
    pub max: usize,
    /// Workers added per scale-up (at least 1).
    pub step: usize,
    /// Scale up once the oldest queued request has waited this long.
    pub backlog_wait: Duration,
    /// Scale up once no worker has been idle, and some busy, for this long.
    pub no_idle_for: Duration,
    /// Scale down once a worker has been spare, and the queue empty, for this long.
    pub idle_for: Duration,
    /// Time after any change before the next one.
    pub cooldown: Duration,
    /// How often the pool looks at its queue and workers.
    pub sample_every: Duration,
}

impl Autoscale {
    /// Between `min` and `max` workers, with the defaults: step 1, backlog
    /// wait 200 ms, no idle worker for 2 s, idle for 30 s, cool-down 1 s,
    /// a sample every 100 ms.
    ///
    /// `min` is raised to 1 and `max` to `min` if they are lower.
    #[must_use]
    pub fn new(min: usize, max: usize) -> Self {
        let min = min.max(1);
        Self {
            min,
            max: max.max(min),
            step: 1,
            backlog_wait: Duration::from_millis(200),
            no_idle_for: Duration::from_secs(2),
            idle_for: Duration::from_secs(30),
            cooldown: Duration::from_secs(1),
            sample_every: Duration::from_millis(100),
        }
    }

    /// Sets [`Autoscale::step`] (raised to 1 if 0).
    #[must_use]
    pub fn step(mut self, workers: usize) -> Self {
        self.step = workers.max(1);
        self
    }

    /// Sets [`Autoscale::backlog_wait`].
    #[must_use]
    pub fn backlog_wait(mut self, wait: Duration) -> Self {
        self.backlog_wait = wait;
        self
    }

    /// Sets [`Autoscale::no_idle_for`].
    #[must_use]
    pub fn no_idle_for(mut self, period: Duration) -> Self {
        self.no_idle_for = period;
        self
    }

    /// Sets [`Autoscale::idle_for`].
    #[must_use]
    pub fn idle_for(mut self, period: Duration) -> Self {
        self.idle_for = period;
        self
    }

    /// Sets [`Autoscale::cooldown`].
    #[must_use]
    pub fn cooldown(mut self, period: Duration) -> Self {
        self.cooldown = period;
        self
    }

    /// Sets [`Autoscale::sample_every`] (raised to 1 ms if shorter).
    #[must_use]
    pub fn sample_every(mut self, period: Duration) -> Self {
        self.sample_every = period.max(Duration::from_millis(1));
        self
    }

    /// `workers` brought within the bounds.
    pub(crate) fn clamp(&self, workers: usize) -> usize {
        workers.clamp(self.min, self.max)
    }
}

/// Why the autoscaler changed the pool's size
/// (see [`PoolEvent::Scaled`](crate::PoolEvent::Scaled)).
///
/// It serializes as an object with a snake_case `kind`, the duration in
/// seconds, and the `Display` text as `message`:
///
/// ```json
/// {"kind": "backlog", "waited": 0.25, "message": "the oldest queued request waited 250ms"}
/// {"kind": "no_idle_worker", "for": 2.0, "message": "no worker was idle for 2s"}
/// {"kind": "idle", "for": 30.0, "message": "a worker was spare for 30s"}
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScaleReason {
    /// Requests waited in the queue ([`Autoscale::backlog_wait`]).
    #[error("the oldest queued request waited {waited:?}")]
    Backlog {
        /// How long the oldest queued request had waited.
        waited: Duration,
    },
    /// Every worker was busy ([`Autoscale::no_idle_for`]).
    #[error("no worker was idle for {period:?}")]
    NoIdleWorker {
        /// How long no worker had been idle.
        period: Duration,
    },
    /// A worker had nothing to do ([`Autoscale::idle_for`]).
    #[error("a worker was spare for {period:?}")]
    Idle {
        /// How long a worker had been spare.
        period: Duration,
    },
}

impl serde::Serialize for ScaleReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (kind, field, value) = match self {
            ScaleReason::Backlog { waited } => ("backlog", "waited", waited),
            ScaleReason::NoIdleWorker { period } => ("no_idle_worker", "for", period),
            ScaleReason::Idle { period } => ("idle", "for", period),
        };
        let mut s = serializer.serialize_struct("ScaleReason", 3)?;
        s.serialize_field("kind", kind)?;
        s.serialize_field(field, &value.as_secs_f64())?;
        s.serialize_field("message", &self.to_string())?;
        s.end()
    }
}

/// What the pool looks like at one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Observation {
    /// Workers the pool keeps now (its slots, without those being retired).
    pub(crate) size: usize,
    /// Of those, workers started and not ready yet.
    pub(crate) starting: usize,
    /// Ready workers holding no request.
    pub(crate) idle: usize,
    /// Workers holding requests, or that said busy.
    pub(crate) busy: usize,
    /// Requests waiting in the queue.
    pub(crate) queued: usize,
    /// How long the first of them has waited.
    pub(crate) oldest_wait: Option<Duration>,
}

/// A change of size the autoscaler asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scale {
    pub(crate) to: usize,
    pub(crate) reason: ScaleReason,
}

/// The autoscaling policy with what it remembers between samples.
#[derive(Debug, Clone)]
pub(crate) struct Autoscaler {
    config: Autoscale,
    /// The last change, for the cool-down.
    changed_at: Option<Instant>,
    /// Since when every sample showed no idle worker and some busy.
    saturated_since: Option<Instant>,
    /// Since when every sample showed a spare worker and an empty queue.
    spare_since: Option<Instant>,
}

impl Autoscaler {
    pub(crate) fn new(config: Autoscale) -> Self {
        Self {
            config,
            changed_at: None,
            saturated_since: None,
            spare_since: None,
        }
    }

    pub(crate) fn config(&self) -> &Autoscale {
        &self.config
    }

    /// Takes in the sample `seen` at `now`: the size to move to and why, or
    /// `None` to stay. A change it answers is taken as done at `now`.
    pub(crate) fn decide(&mut self, seen: &Observation, now: Instant) -> Option<Scale> {
        let c = self.config;
        let saturated = seen.idle == 0 && seen.busy > 0;
        // Keep one idle worker while any is busy: that is what the spare rule wants.
        let spare = seen.queued == 0 && (seen.idle > 1 || (seen.idle == 1 && seen.busy == 0));
        self.saturated_since = saturated.then(|| self.saturated_since.unwrap_or(now));
        self.spare_since = spare.then(|| self.spare_since.unwrap_or(now));
        if self
            .changed_at
            .is_some_and(|at| now.saturating_duration_since(at) < c.cooldown)
        {
            return None;
        }
        let size = seen.size;
        let up = size.saturating_add(c.step).min(c.max);
        let scale = if up > size && seen.starting == 0 {
            let backlog = seen
                .oldest_wait
                .filter(|&waited| seen.queued > 0 && waited >= c.backlog_wait);
            let no_idle = held_for(self.saturated_since, now).filter(|&p| p >= c.no_idle_for);
            match (backlog, no_idle) {
                (Some(waited), _) => Some(ScaleReason::Backlog { waited }),
                (None, Some(period)) => Some(ScaleReason::NoIdleWorker { period }),
                (None, None) => None,
            }
            .map(|reason| Scale { to: up, reason })
        } else {
            None
        };
        let scale = scale.or_else(|| {
            let period = held_for(self.spare_since, now).filter(|&p| p >= c.idle_for)?;
            (size > c.min).then_some(Scale {
                to: size - 1,
                reason: ScaleReason::Idle { period },
            })
        });
        if scale.is_some() {
            self.changed_at = Some(now);
            self.saturated_since = None;
            self.spare_since = None;
        }
        scale
    }
}

/// How long a condition noted `since` has held at `now`.
fn held_for(since: Option<Instant>, now: Instant) -> Option<Duration> {
    since.map(|at| now.saturating_duration_since(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn policy() -> Autoscale {
        Autoscale::new(2, 6)
            .step(3)
            .backlog_wait(ms(100))
            .no_idle_for(ms(500))
            .idle_for(ms(1000))
            .cooldown(ms(300))
    }

    fn seen(size: usize, idle: usize, busy: usize, queued: usize, waited_ms: u64) -> Observation {
        Observation {
            size,
            starting: 0,
            idle,
            busy,
            queued,
            oldest_wait: (queued > 0).then(|| ms(waited_ms)),
        }
    }

    /// Feeds `(at ms, observation)` samples in order and collects what each answered.
    fn run(policy: Autoscale, samples: &[(u64, Observation)]) -> Vec<Option<Scale>> {
        let t0 = Instant::now();
        let mut scaler = Autoscaler::new(policy);
        samples
            .iter()
            .map(|(at, seen)| scaler.decide(seen, t0 + ms(*at)))
            .collect()
    }

    fn up(to: usize, waited_ms: u64) -> Option<Scale> {
        Some(Scale {
            to,
            reason: ScaleReason::Backlog {
                waited: ms(waited_ms),
            },
        })
    }

    #[test]
    fn new_keeps_the_bounds_sane() {
        let a = Autoscale::new(0, 0);
        assert_eq!((a.min, a.max), (1, 1));
        let a = Autoscale::new(5, 2);
        assert_eq!((a.min, a.max), (5, 5));
        assert_eq!(Autoscale::new(1, 4).step(0).step, 1);
        assert_eq!(
            Autoscale::new(1, 4)
                .sample_every(Duration::ZERO)
                .sample_every,
            ms(1)
        );
        assert_eq!(Autoscale::new(2, 4).clamp(1), 2);
        assert_eq!(Autoscale::new(2, 4).clamp(9), 4);
        assert_eq!(Autoscale::new(2, 4).clamp(3), 3);
    }

    /// A table of single samples on a fresh policy (no history): what each
    /// answers on its own.
    #[test]
    fn one_sample_decisions() {
        let cases: &[(&str, Observation, Option<Scale>)] = &[
            (
                "a backlog past the wait scales up by the step",
                seen(2, 0, 2, 5, 100),
                up(5, 100),
            ),
            (
                "the step is capped at max",
                seen(4, 0, 4, 5, 150),
                up(6, 150),
            ),
            ("nothing above max", seen(6, 0, 6, 50, 5_000), None),
            ("a short wait is no backlog", seen(2, 0, 2, 5, 99), None),
            (
                "no scale-up while a started worker is not ready yet",
                Observation {
                    starting: 1,
                    ..seen(3, 0, 2, 5, 1_000)
                },
                None,
            ),
            (
                "idle workers, but not for long yet",
                seen(4, 4, 0, 0, 0),
                None,
            ),
        ];
        for (what, observation, expected) in cases {
            let got = run(policy(), &[(0, *observation)]);
            assert_eq!(got, vec![*expected], "{what}");
        }
    }

    #[test]
    fn no_idle_worker_for_the_period_scales_up() {
        let busy = seen(2, 0, 2, 0, 0);
        let got = run(
            policy(),
            &[(0, busy), (250, busy), (499, busy), (500, busy)],
        );
        assert_eq!(
            got,
            vec![
                None,
                None,
                None,
                Some(Scale {
                    to: 5,
                    reason: ScaleReason::NoIdleWorker { period: ms(500) }
                })
            ]
        );
    }

    #[test]
    fn an_idle_worker_in_between_restarts_the_no_idle_period() {
        let busy = seen(2, 0, 2, 0, 0);
        let one_idle = seen(2, 1, 1, 0, 0);
        let got = run(
            policy(),
            &[
                (0, busy),
                (400, one_idle),
                (500, busy),
                (999, busy),
                (1000, busy),
            ],
        );
        assert_eq!(got[..4], [None, None, None, None]);
        assert!(
            matches!(got[4], Some(Scale { to: 5, reason: ScaleReason::NoIdleWorker { period } }) if period == ms(500)),
            "{got:?}"
        );
    }

    #[test]
    fn an_idle_pool_scales_down_one_at_a_time_to_min_and_no_further() {
        let t = |size| seen(size, size, 0, 0, 0);
        let got = run(
            policy(),
            &[
                (0, t(4)),
                (999, t(4)),
                (1000, t(4)),
                // The period starts over after a change.
                (1500, t(3)),
                (2499, t(3)),
                (2500, t(3)),
                (3000, t(2)),
                (10_000, t(2)),
            ],
        );
        let down = |to, after| {
            Some(Scale {
                to,
                reason: ScaleReason::Idle { period: ms(after) },
            })
        };
        assert_eq!(
            got,
            vec![
                None,
                None,
                down(3, 1000),
                None,
                None,
                down(2, 1000),
                None,
                None
            ]
        );
    }

    #[test]
    fn one_idle_worker_stays_while_others_are_busy() {
        // One idle of four, three busy: the spare rule wants that one kept.
        let one_spare = seen(4, 1, 3, 0, 0);
        let got = run(policy(), &[(0, one_spare), (5_000, one_spare)]);
        assert_eq!(got, vec![None, None]);
        // Two idle: one of them may go.
        let two_spare = seen(4, 2, 2, 0, 0);
        let got = run(policy(), &[(0, two_spare), (1000, two_spare)]);
        assert_eq!(got[1].map(|s| s.to), Some(3));
    }

    #[test]
    fn a_queue_stops_the_scale_down() {
        let idle = seen(4, 4, 0, 0, 0);
        let queued = seen(4, 2, 2, 1, 10);
        let got = run(
            policy(),
            &[(0, idle), (900, queued), (1000, idle), (1999, idle)],
        );
        assert_eq!(got, vec![None, None, None, None]);
    }

    #[test]
    fn the_cooldown_holds_every_change() {
        let backlog = seen(2, 0, 2, 9, 200);
        let got = run(
            policy().step(1),
            &[(0, backlog), (100, backlog), (299, backlog), (300, backlog)],
        );
        assert_eq!(got, vec![up(3, 200), None, None, up(3, 200)]);
    }

    #[test]
    fn the_cooldown_keeps_a_burst_and_its_end_from_flapping() {
        let burst = seen(2, 0, 2, 9, 200);
        let after = seen(5, 5, 0, 0, 0);
        // Scaled up at 0; the pool goes idle at once. The idle period counts
        // from the change, and no change comes within the cool-down.
        let got = run(
            policy(),
            &[
                (0, burst),
                (100, after),
                (299, after),
                (1099, after),
                (1100, after),
            ],
        );
        assert_eq!(got[0], up(5, 200));
        assert_eq!(got[1..4], [None, None, None]);
        assert_eq!(got[4].map(|s| s.to), Some(4));
    }

    #[test]
    fn backlog_wins_over_no_idle_and_scale_up_over_scale_down() {
        let busy = seen(2, 0, 2, 0, 0);
        let both = seen(2, 0, 2, 3, 150);
        let got = run(policy(), &[(0, busy), (600, both)]);
        assert_eq!(got, vec![None, up(5, 150)]);
    }

    #[test]
    fn reasons_serialize_with_their_kind_and_seconds() {
        let json = |r: ScaleReason| serde_json::to_value(r).unwrap();
        assert_eq!(
            json(ScaleReason::Backlog { waited: ms(250) }),
            serde_json::json!({"kind": "backlog", "waited": 0.25,
                               "message": "the oldest queued request waited 250ms"})
        );
        assert_eq!(
            json(ScaleReason::NoIdleWorker {
                period: Duration::from_secs(2)
            }),
            serde_json::json!({"kind": "no_idle_worker", "for": 2.0,
                               "message": "no worker was idle for 2s"})
        );
        assert_eq!(
            json(ScaleReason::Idle {
                period: Duration::from_secs(30)
            }),
            serde_json::json!({"kind": "idle", "for": 30.0,
                               "message": "a worker was spare for 30s"})
        );
    }
}
