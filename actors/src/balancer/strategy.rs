//! Pure worker-picking policies; the balancer hands them only workers that can take work.

use std::cmp::Ordering;

use crate::id::WorkerId;

/// How loaded a worker is: in flight first, RSS second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pressure {
    pub(crate) in_flight: usize,
    pub(crate) rss: u64,
}

impl Ord for Pressure {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.in_flight, self.rss).cmp(&(other.in_flight, other.rss))
    }
}

impl PartialOrd for Pressure {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A worker that can take a request now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub(crate) worker: WorkerId,
    pub(crate) slot: usize,
    pub(crate) pressure: Pressure,
}

/// Picks one of the candidates (given in slot order, never empty).
pub(crate) trait Pick: std::fmt::Debug {
    fn pick(&mut self, candidates: &[Candidate]) -> usize;
}

/// Idle first, else the least pressure.
#[derive(Debug, Default)]
pub(crate) struct LeastPressure;

impl Pick for LeastPressure {
    fn pick(&mut self, candidates: &[Candidate]) -> usize {
        let mut best = 0;
        for (i, c) in candidates.iter().enumerate().skip(1) {
            if c.pressure < candidates[best].pressure {
                best = i;
            }
        }
        best
    }
}

/// Each candidate in turn, by slot.
#[derive(Debug, Default)]
pub(crate) struct RoundRobin {
    last_slot: Option<usize>,
}

impl Pick for RoundRobin {
    fn pick(&mut self, candidates: &[Candidate]) -> usize {
        let next = match self.last_slot {
            Some(last) => candidates.iter().position(|c| c.slot > last).unwrap_or(0),
            None => 0,
        };
        self.last_slot = Some(candidates[next].slot);
        next
    }
}

/// Two candidates at random; the one under less pressure wins.
#[derive(Debug)]
pub(crate) struct PowerOfTwoChoices {
    state: u64,
}

impl PowerOfTwoChoices {
    pub(crate) fn new(seed: u64) -> Self {
        // xorshift must not start at zero.
        Self { state: seed | 1 }
    }

    fn next_below(&mut self, n: usize) -> usize {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        (x % n as u64) as usize
    }
}

impl Pick for PowerOfTwoChoices {
    fn pick(&mut self, candidates: &[Candidate]) -> usize {
        let n = candidates.len();
        if n == 1 {
            return 0;
        }
        let a = self.next_below(n);
        let b = (a + 1 + self.next_below(n - 1)) % n;
        if candidates[b].pressure < candidates[a].pressure {
            b
        } else {
            a
        }
    }
}

pub(crate) fn from_config(strategy: crate::Strategy) -> Box<dyn Pick + Send> {
    match strategy {
        crate::Strategy::LeastPressure => Box::new(LeastPressure),
        crate::Strategy::RoundRobin => Box::<RoundRobin>::default(),
        crate::Strategy::PowerOfTwoChoices { seed } => Box::new(PowerOfTwoChoices::new(seed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(slot: usize, in_flight: usize, rss: u64) -> Candidate {
        Candidate {
            worker: WorkerId {
                slot,
                generation: 0,
            },
            slot,
            pressure: Pressure { in_flight, rss },
        }
    }

    #[test]
    fn least_pressure_prefers_idle_then_fewest_in_flight_then_smallest_rss() {
        let mut p = LeastPressure;
        assert_eq!(p.pick(&[c(0, 3, 1), c(1, 0, 900), c(2, 1, 1)]), 1);
        assert_eq!(p.pick(&[c(0, 2, 500), c(1, 2, 100), c(2, 3, 1)]), 1);
        assert_eq!(p.pick(&[c(0, 1, 5)]), 0);
    }

    #[test]
    fn round_robin_cycles_by_slot_and_skips_missing_slots() {
        let mut p = RoundRobin::default();
        let all = [c(0, 0, 0), c(2, 0, 0), c(5, 0, 0)];
        let picked: Vec<usize> = (0..4).map(|_| all[p.pick(&all)].slot).collect();
        assert_eq!(picked, [0, 2, 5, 0]);
        let without_two = [c(0, 0, 0), c(5, 0, 0)];
        assert_eq!(without_two[p.pick(&without_two)].slot, 5);
    }

    #[test]
    fn power_of_two_never_picks_the_worse_of_two_and_is_repeatable() {
        let cands = [c(0, 9, 0), c(1, 0, 0)];
        let mut p = PowerOfTwoChoices::new(7);
        for _ in 0..100 {
            assert_eq!(p.pick(&cands), 1);
        }
        let many: Vec<Candidate> = (0..8).map(|s| c(s, s, 0)).collect();
        let run = |seed| {
            let mut p = PowerOfTwoChoices::new(seed);
            (0..32).map(|_| p.pick(&many)).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        // The most loaded worker can never win a duel.
        assert!(!run(42).contains(&7));
    }
}
