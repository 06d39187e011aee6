//! What a workload's figures are made of: CPU time and context switches
//! from `/proc`, snapshots of them around a measured stretch, latency and
//! throughput figures, and the median round of several.

use std::time::Instant;

use crate::alloc::thread_allocs;

/// Total CPU time of `pid`'s threads, from `/proc/<pid>/task/*/schedstat`
/// (first field: nanoseconds on CPU); also the voluntary and involuntary
/// context switches from `status`.
pub(crate) fn proc_cpu(pid: u32) -> (u64, u64) {
    let mut cpu = 0;
    let mut switches = 0;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    for task in tasks.flatten() {
        let dir = task.path();
        if let Ok(s) = std::fs::read_to_string(dir.join("schedstat")) {
            cpu += s
                .split_whitespace()
                .next()
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(s) = std::fs::read_to_string(dir.join("status")) {
            for line in s.lines() {
                if line.starts_with("voluntary_ctxt_switches:")
                    || line.starts_with("nonvoluntary_ctxt_switches:")
                {
                    switches += line
                        .split_whitespace()
                        .nth(1)
                        .and_then(|f| f.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
    }
    (cpu, switches)
}

/// CPU and allocation counters of the benchmark process and its children at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    pub(crate) at: Instant,
    pub(crate) parent_cpu_ns: u64,
    pub(crate) parent_switches: u64,
    pub(crate) child_cpu_ns: u64,
    pub(crate) allocs: u64,
}

impl Snapshot {
    /// At the start of a measured stretch: the children are read first, so
    /// that reading them counts neither in the stretch's time nor in this
    /// process's CPU.
    pub(crate) fn start(children: &[u32]) -> Self {
        let child_cpu_ns = children_cpu(children);
        let (parent_cpu_ns, parent_switches) = proc_cpu(std::process::id());
        Self {
            allocs: thread_allocs(),
            at: Instant::now(),
            parent_cpu_ns,
            parent_switches,
            child_cpu_ns,
        }
    }

    /// At the end of a measured stretch: the time and this process's
    /// counters first, for the same reason.
    pub(crate) fn end(children: &[u32]) -> Self {
        let at = Instant::now();
        let allocs = thread_allocs();
        let (parent_cpu_ns, parent_switches) = proc_cpu(std::process::id());
        Self {
            at,
            parent_cpu_ns,
            parent_switches,
            child_cpu_ns: children_cpu(children),
            allocs,
        }
    }
}

/// CPU time of these processes, summed.
fn children_cpu(children: &[u32]) -> u64 {
    children.iter().map(|&pid| proc_cpu(pid).0).sum()
}

/// Per-operation costs between two snapshots.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Costs {
    /// CPU of the benchmark process (the supervisor side, or the raw
    /// writer and reader), microseconds per operation.
    pub(crate) parent_cpu_us: f64,
    /// CPU of the child processes, microseconds per operation.
    pub(crate) child_cpu_us: f64,
    /// Context switches of the benchmark process per operation.
    pub(crate) parent_switches: f64,
    /// Allocations per operation on the measuring thread (for lpm: the
    /// actix thread, where all the supervisor's actors run).
    pub(crate) allocs: f64,
}

impl Costs {
    pub(crate) fn between(a: &Snapshot, b: &Snapshot, ops: u64) -> Self {
        let ops = ops.max(1) as f64;
        Self {
            parent_cpu_us: b.parent_cpu_ns.saturating_sub(a.parent_cpu_ns) as f64 / ops / 1e3,
            child_cpu_us: b.child_cpu_ns.saturating_sub(a.child_cpu_ns) as f64 / ops / 1e3,
            parent_switches: b.parent_switches.saturating_sub(a.parent_switches) as f64 / ops,
            allocs: b.allocs.saturating_sub(a.allocs) as f64 / ops,
        }
    }
}

// ---------------------------------------------------------------------------
// Figures.

/// Sequential round-trip latency.
#[derive(Debug, Clone, Default)]
pub(crate) struct Latency {
    /// p50 of every round (µs); this figure is the median round.
    pub(crate) rounds: Vec<f64>,
    /// The costs of every round, in the order they ran.
    pub(crate) round_costs: Vec<Costs>,
    pub(crate) samples: usize,
    pub(crate) errors: u64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) mean_us: f64,
    pub(crate) costs: Costs,
}

impl Latency {
    pub(crate) fn from_samples(mut ns: Vec<u64>, errors: u64, costs: Costs) -> Self {
        ns.sort_unstable();
        let mean = if ns.is_empty() {
            0.0
        } else {
            ns.iter().sum::<u64>() as f64 / ns.len() as f64
        };
        Self {
            rounds: Vec::new(),
            round_costs: Vec::new(),
            samples: ns.len(),
            errors,
            p50_us: percentile(&ns, 50.0) / 1e3,
            p99_us: percentile(&ns, 99.0) / 1e3,
            mean_us: mean / 1e3,
            costs,
        }
    }
}

/// Throughput with a window of operations in flight.
#[derive(Debug, Clone, Default)]
pub(crate) struct Throughput {
    /// Rate of every round, in the order they ran; this figure is the median round.
    pub(crate) rounds: Vec<f64>,
    /// The costs of every round, in the order they ran.
    pub(crate) round_costs: Vec<Costs>,
    pub(crate) ops: u64,
    pub(crate) secs: f64,
    pub(crate) per_sec: f64,
    pub(crate) errors: u64,
    /// Per-request latency under load (lpm only: the raw baseline does not time messages).
    pub(crate) p50_us: Option<f64>,
    pub(crate) p99_us: Option<f64>,
    pub(crate) costs: Costs,
}

/// Nearest-rank percentile of sorted nanoseconds.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// A figure measured in rounds: the value the median is taken by.
pub(crate) trait Figure {
    fn key(&self) -> f64;
    fn costs(&self) -> Costs;
    fn set_rounds(&mut self, rounds: Vec<f64>, costs: Vec<Costs>);
    fn rounds(&self) -> &[f64];
}

/// `Figure` for a figure type whose median key is the field `$key` and
/// whose rounds are kept in `rounds` and `round_costs`.
macro_rules! figure {
    ($ty:ty, $key:ident) => {
        impl Figure for $ty {
            fn key(&self) -> f64 {
                self.$key
            }
            fn costs(&self) -> Costs {
                self.costs
            }
            fn set_rounds(&mut self, rounds: Vec<f64>, costs: Vec<Costs>) {
                self.rounds = rounds;
                self.round_costs = costs;
            }
            fn rounds(&self) -> &[f64] {
                &self.rounds
            }
        }
    };
}

figure!(Latency, p50_us);
figure!(Throughput, per_sec);

/// The median round of a workload (`None` when it did not run; the first
/// error when every round failed).
pub(crate) fn median_round<T: Figure>(
    name: &str,
    runs: Vec<Result<T, String>>,
) -> Option<Result<T, String>> {
    let mut good = Vec::new();
    let mut first_error = None;
    for run in runs {
        match run {
            Ok(figure) => good.push(figure),
            Err(e) => {
                eprintln!("  {name}: a round failed: {e}");
                first_error.get_or_insert(e);
            }
        }
    }
    if good.is_empty() {
        return first_error.map(Err);
    }
    let values: Vec<f64> = good.iter().map(Figure::key).collect();
    let costs: Vec<Costs> = good.iter().map(Figure::costs).collect();
    good.sort_by(|a, b| a.key().total_cmp(&b.key()));
    let mut median = good.swap_remove(good.len() / 2);
    median.set_rounds(values, costs);
    Some(Ok(median))
}

/// The median of `a[i] / b[i]` over the rounds: rounds of one workload
/// paired with the same rounds of another, so that a slow stretch of the
/// machine weighs on both sides of each ratio. `None` unless both have the
/// same number of rounds (a failed round breaks the pairing).
pub(crate) fn paired_ratio(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.is_empty() || a.len() != b.len() {
        return None;
    }
    let mut ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    Some(if n % 2 == 1 {
        ratios[n / 2]
    } else {
        (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0
    })
}

/// The spread of the rounds: (max - min) / median, in percent.
pub(crate) fn spread(figure: &impl Figure) -> Option<f64> {
    let rounds = figure.rounds();
    if rounds.len() < 2 {
        return None;
    }
    let max = rounds.iter().copied().fold(f64::MIN, f64::max);
    let min = rounds.iter().copied().fold(f64::MAX, f64::min);
    let mid = figure.key();
    (mid > 0.0).then(|| (max - min) / mid * 100.0)
}
