//! A fixed-bucket log histogram of durations: [`Recording`] takes
//! observations on the hot path (a bucket search and two relaxed atomic
//! adds, no lock), [`Histogram`] is its snapshot with quantiles.
//!
//! The buckets step through each decade as 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6,
//! 8 (at most a third wider than the one before), from 1 µs to 100 s, with
//! one bucket below and one above. Quantiles interpolate inside a bucket,
//! so they are exact to within its width; the Prometheus exposition keeps the
//! 1, 2.5 and 5 steps of each decade.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Each decade's steps, in hundredths.
const STEPS: [u64; 10] = [100, 125, 150, 200, 250, 300, 400, 500, 600, 800];

/// Decades covered, from 1 µs up to (not including) 100 s.
const DECADES: usize = 8;

/// Upper bounds (inclusive) of every bucket but the last, in nanoseconds.
const BOUNDS: [u64; DECADES * STEPS.len() + 1] = bounds();

/// Buckets: one per bound, and the unbounded one above 100 s.
pub(crate) const BUCKETS: usize = BOUNDS.len() + 1;

const fn bounds() -> [u64; DECADES * STEPS.len() + 1] {
    let mut out = [0; DECADES * STEPS.len() + 1];
    // 1 µs is 100 hundredths of 10 ns.
    let mut scale = 10;
    let mut decade = 0;
    while decade < DECADES {
        let mut step = 0;
        while step < STEPS.len() {
            out[decade * STEPS.len() + step] = STEPS[step] * scale;
            step += 1;
        }
        scale *= 10;
        decade += 1;
    }
    out[DECADES * STEPS.len()] = 100 * scale;
    out
}

/// The bucket a duration of `nanos` falls in: the first whose bound is at
/// least `nanos`.
fn bucket(nanos: u64) -> usize {
    BOUNDS.partition_point(|&bound| bound < nanos)
}

/// Observations being recorded, shared by every actor of a pool.
#[derive(Debug)]
pub(crate) struct Recording {
    counts: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
}

impl Default for Recording {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Recording {
    pub(crate) fn record(&self, value: Duration) {
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket(nanos)].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// What was recorded so far. Taken bucket by bucket while others may
    /// record: the count is the sum of the buckets, the sum may be a few
    /// observations ahead or behind.
    pub(crate) fn snapshot(&self) -> Histogram {
        Histogram {
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// A snapshot of a duration histogram (see [`Metrics`](crate::Metrics)):
/// how many observations, their sum, and estimated quantiles.
///
/// It serializes as `{"count": 12, "sum": 0.034, "p50": 0.0021, "p99": 0.0125}`
/// (seconds; `p50` and `p99` are `null` while it is empty).
///
/// # Examples
///
/// ```no_run
/// # async fn demo(pool: lpm_actors::Pool) -> Result<(), lpm_actors::Error> {
/// let metrics = pool.metrics().await?;
/// if let (Some(p50), Some(p99)) = (metrics.service_time.p50(), metrics.service_time.p99()) {
///     println!("{} served, p50 {p50:?}, p99 {p99:?}", metrics.service_time.count());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    /// Observations per bucket, as [`BOUNDS`] orders them, and the last above them.
    counts: Vec<u64>,
    sum: Duration,
}

impl Default for Histogram {
    fn default() -> Self {
        Recording::default().snapshot()
    }
}

impl Histogram {
    /// How many durations were observed.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The sum of every observed duration.
    pub fn sum(&self) -> Duration {
        self.sum
    }

    /// The mean duration; `None` while nothing was observed.
    pub fn mean(&self) -> Option<Duration> {
        let count = u32::try_from(self.count()).ok().filter(|&n| n > 0)?;
        Some(self.sum / count)
    }

    /// The median; `None` while nothing was observed.
    pub fn p50(&self) -> Option<Duration> {
        self.quantile(0.5)
    }

    /// The 99th percentile; `None` while nothing was observed.
    pub fn p99(&self) -> Option<Duration> {
        self.quantile(0.99)
    }

    /// The duration below which a fraction `q` (0 to 1) of the observations
    /// fall, interpolated inside its bucket; `None` while nothing was
    /// observed. Above the last bound (100 s) it answers that bound.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        // The rank of the observation sought, from 1.
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut below = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            if below + n < rank {
                below += n;
                continue;
            }
            let lower = if i == 0 { 0 } else { BOUNDS[i - 1] };
            let Some(&upper) = BOUNDS.get(i) else {
                return Some(Duration::from_nanos(lower));
            };
            let within = (rank - below) as f64 / n as f64;
            let nanos = lower as f64 + (upper - lower) as f64 * within;
            return Some(Duration::from_nanos(nanos.round() as u64));
        }
        None
    }

    /// Each bucket's upper bound (inclusive; `None` for the last, unbounded
    /// one) and the observations in it (not cumulative), from the shortest.
    pub fn buckets(&self) -> impl Iterator<Item = (Option<Duration>, u64)> + '_ {
        self.counts.iter().enumerate().map(|(i, &n)| {
            let bound = BOUNDS.get(i).map(|&b| Duration::from_nanos(b));
            (bound, n)
        })
    }
}

impl Histogram {
    /// The buckets with the 1, 2.5 and 5 steps of each decade as upper
    /// bounds (1 µs, 2.5 µs, 5 µs, 10 µs ... 100 s), each with the
    /// observations above the bound before it (not cumulative); those above
    /// 100 s are in none. What the Prometheus exposition writes, so a
    /// scrape stays small.
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub(crate) fn coarse_buckets(&self) -> Vec<(Duration, u64)> {
        let mut out = Vec::with_capacity(DECADES * 3 + 1);
        let mut since_last = 0;
        for (&bound, &n) in BOUNDS.iter().zip(&self.counts) {
            since_last += n;
            if is_coarse(bound) {
                out.push((Duration::from_nanos(bound), since_last));
                since_last = 0;
            }
        }
        out
    }
}

/// Whether a bound is 1, 2.5 or 5 times a power of ten.
fn is_coarse(mut nanos: u64) -> bool {
    while nanos >= 10 && nanos % 10 == 0 {
        nanos /= 10;
    }
    matches!(nanos, 1 | 25 | 5)
}

impl serde::Serialize for Histogram {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        let mut s = serializer.serialize_struct("Histogram", 4)?;
        s.serialize_field("count", &self.count())?;
        s.serialize_field("sum", &self.sum.as_secs_f64())?;
        s.serialize_field("p50", &secs(self.p50()))?;
        s.serialize_field("p99", &secs(self.p99()))?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(values: impl IntoIterator<Item = Duration>) -> Histogram {
        let recording = Recording::default();
        for v in values {
            recording.record(v);
        }
        recording.snapshot()
    }

    #[test]
    fn bounds_step_from_one_microsecond_to_a_hundred_seconds() {
        assert_eq!(BOUNDS[0], 1_000);
        assert_eq!(BOUNDS[1], 1_250);
        assert_eq!(BOUNDS[9], 8_000);
        assert_eq!(BOUNDS[10], 10_000);
        assert_eq!(BOUNDS[BOUNDS.len() - 1], 100_000_000_000);
        assert!(BOUNDS.windows(2).all(|w| w[0] < w[1]), "sorted");
        // No bucket is more than a third wider than the bound below it.
        assert!(BOUNDS.windows(2).all(|w| w[1] * 3 <= w[0] * 4));
    }

    #[test]
    fn a_value_on_a_bound_falls_in_that_bucket() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1_000), 0);
        assert_eq!(bucket(1_001), 1);
        assert_eq!(bucket(1_250), 1);
        assert_eq!(bucket(100_000_000_000), BOUNDS.len() - 1);
        assert_eq!(bucket(100_000_000_001), BOUNDS.len());
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn an_empty_histogram_has_no_quantiles() {
        let h = Histogram::default();
        assert_eq!(h.count(), 0);
        assert_eq!(h.sum(), Duration::ZERO);
        assert_eq!((h.p50(), h.p99(), h.mean()), (None, None, None));
        assert_eq!(h.buckets().count(), BUCKETS);
    }

    #[test]
    fn count_sum_and_buckets_add_up() {
        let h = recorded([1, 2, 3, 1000].map(Duration::from_millis));
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum(), Duration::from_millis(1006));
        assert_eq!(h.mean(), Some(Duration::from_nanos(251_500_000)));
        assert_eq!(h.buckets().map(|(_, n)| n).sum::<u64>(), 4);
        let (bound, n) = h.buckets().find(|&(_, n)| n > 0).unwrap();
        assert_eq!((bound, n), (Some(Duration::from_millis(1)), 1));
    }

    #[test]
    fn quantiles_fall_inside_the_bucket_of_the_observation_they_rank() {
        // 100 observations of 1..=100 ms: the median is 50 ms, p99 is 99 ms.
        let h = recorded((1..=100).map(Duration::from_millis));
        let within = |got: Option<Duration>, want_ms: u64| {
            let got = got.unwrap().as_secs_f64() * 1e3;
            let want = want_ms as f64;
            assert!(
                (got - want).abs() <= want / 3.0,
                "{got} ms is not within a bucket of {want} ms"
            );
        };
        within(h.p50(), 50);
        within(h.p99(), 99);
        within(h.quantile(0.0), 1);
        within(h.quantile(1.0), 100);
        assert!(h.p50() <= h.p99());
    }

    #[test]
    fn identical_observations_give_quantiles_in_their_bucket() {
        let h = recorded([Duration::from_micros(700); 10]);
        for q in [0.0, 0.5, 0.99, 1.0] {
            let got = h.quantile(q).unwrap();
            assert!(
                got > Duration::from_micros(600) && got <= Duration::from_micros(800),
                "{got:?}"
            );
        }
    }

    #[test]
    fn above_the_last_bound_a_quantile_answers_that_bound() {
        let h = recorded([Duration::from_secs(1000)]);
        assert_eq!(h.p99(), Some(Duration::from_secs(100)));
        assert_eq!(h.buckets().last(), Some((None, 1)));
    }

    #[test]
    fn coarse_buckets_merge_the_fine_ones_between_their_bounds() {
        let h = recorded([1_100, 2_400, 2_600, 9_000, 200_000_000_000].map(Duration::from_nanos));
        let coarse = h.coarse_buckets();
        assert_eq!(coarse.len(), DECADES * 3 + 1);
        assert_eq!(coarse[0], (Duration::from_micros(1), 0));
        assert_eq!(coarse[1], (Duration::from_nanos(2_500), 2));
        assert_eq!(coarse[2], (Duration::from_micros(5), 1));
        assert_eq!(coarse[3], (Duration::from_micros(10), 1));
        assert_eq!(coarse.last().unwrap().0, Duration::from_secs(100));
        // The one above 100 s is in none of them.
        assert_eq!(coarse.iter().map(|&(_, n)| n).sum::<u64>(), 4);
    }

    #[test]
    fn it_serializes_as_count_sum_and_quantiles_in_seconds() {
        let h = recorded([Duration::from_millis(2); 3]);
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["count"], 3);
        assert_eq!(v["sum"], 0.006);
        assert!(v["p50"].as_f64().unwrap() > 0.0015);
        let empty = serde_json::to_value(Histogram::default()).unwrap();
        assert_eq!(
            empty,
            serde_json::json!({"count": 0, "sum": 0.0, "p50": null, "p99": null})
        );
    }
}
