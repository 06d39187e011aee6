//! Pluggable balancing: the [`Balance`] trait that picks a worker for each
//! request, the [`Candidate`] workers it picks from, and the built-in
//! strategies.
//!
//! The split is tower's (`tower::balance::p2c`): the balancer decides which
//! workers *can* take a request, a [`Balance`] decides which one *does*.
//! Before each pick the balancer has already left out every worker that is
//! starting, busy, draining or at [`Config::max_in_flight`](crate::Config::max_in_flight);
//! for a request with a stream or socket, every worker at
//! [`Config::max_fds_in_flight`](crate::Config::max_fds_in_flight); for a
//! socket, every worker but those holding the fewest sockets; and for a
//! retried request, the slot of its last attempt unless no other worker is
//! left. A strategy only chooses among what remains, so it cannot break
//! those limits.
//!
//! Pick one with [`Config::strategy`](crate::Config::strategy): a
//! [`Strategy`](crate::Strategy) names a built-in,
//! [`Strategy::custom`](crate::Strategy::custom) takes your own.
//!
//! # Examples
//!
//! A strategy that sends everything to the lowest slot that can take it,
//! and one that wraps a built-in:
//!
//! ```
//! use lpm_actors::balance::{Balance, Candidate, LeastPressure};
//! use lpm_actors::{Config, Strategy};
//!
//! /// Always the lowest slot (the candidates come in slot order).
//! #[derive(Debug, Clone)]
//! struct LowestSlot;
//!
//! impl Balance for LowestSlot {
//!     fn pick(&mut self, _candidates: &[Candidate]) -> usize {
//!         0
//!     }
//! }
//!
//! /// Slot 0 while it is idle (say it keeps a warm cache), else least pressure.
//! #[derive(Debug, Clone, Default)]
//! struct PreferSlotZero(LeastPressure);
//!
//! impl Balance for PreferSlotZero {
//!     fn pick(&mut self, candidates: &[Candidate]) -> usize {
//!         match candidates.first() {
//!             Some(c) if c.slot() == 0 && c.in_flight() == 0 => 0,
//!             _ => self.0.pick(candidates),
//!         }
//!     }
//! }
//!
//! let workers = [
//!     Candidate::new(0).with_in_flight(1),
//!     Candidate::new(1).with_in_flight(3),
//!     Candidate::new(2).with_rss(200 << 20),
//! ];
//! assert_eq!(LowestSlot.pick(&workers), 0);
//! assert_eq!(PreferSlotZero::default().pick(&workers), 2);
//! assert_eq!(PreferSlotZero::default().pick(&[Candidate::new(0), Candidate::new(1)]), 0);
//!
//! let config = Config::default()
//!     .workers(3)
//!     .strategy(Strategy::custom(PreferSlotZero::default()));
//! # let _ = config;
//! ```

use std::fmt;
use std::sync::{Arc, Mutex};

/// Picks the worker for a request, among the candidates that can take it now.
///
/// The balancer owns one instance per pool (see [`Strategy::custom`](crate::Strategy::custom)) and
/// calls [`pick`](Balance::pick) each time it hands a request to a worker,
/// and only then: once per request, and once more for each retry. (It is not
/// called while no worker can take the request, nor for a request whose
/// caller stopped waiting.) `&mut self` lets a strategy keep state, such as
/// [`RoundRobin`]'s position or [`PowerOfTwoChoices`]' random generator.
///
/// It runs inside the balancer actor, on the path of every request: it must
/// be quick and must not block. A panic is not caught.
///
/// **Cost.** A custom strategy sees every worker that can take the request,
/// so the balancer builds that list for each pick: the work per request
/// grows with the number of workers (O(n)). The built-in strategies, named by
/// [`Strategy`](crate::Strategy), pick plain requests from an index kept up
/// to date as loads change (O(log n)), by the same rules as their
/// [`Balance`] implementations (though [`PowerOfTwoChoices`] then draws
/// from the index's order, not the list's); requests with a stream or
/// socket are picked from the list for them too.
///
/// # Examples
///
/// Least resident memory first:
///
/// ```
/// use lpm_actors::balance::{Balance, Candidate};
///
/// #[derive(Debug, Clone, Default)]
/// struct LeastRss;
///
/// impl Balance for LeastRss {
///     fn pick(&mut self, candidates: &[Candidate]) -> usize {
///         let mut best = 0;
///         for (i, c) in candidates.iter().enumerate() {
///             if c.rss() < candidates[best].rss() {
///                 best = i;
///             }
///         }
///         best
///     }
/// }
///
/// let workers = [
///     Candidate::new(0).with_rss(300 << 20),
///     Candidate::new(1).with_rss(120 << 20),
///     Candidate::new(3).with_rss(250 << 20),
/// ];
/// assert_eq!(LeastRss.pick(&workers), 1);
/// ```
pub trait Balance: Send + fmt::Debug + 'static {
    /// Returns the index in `candidates` of the worker that gets the request.
    ///
    /// `candidates` is never empty and is in slot order (then
    /// [`generation`](Candidate::generation) order, should two processes of
    /// one slot both be candidates). An index out of range is taken as `0`,
    /// with a warning in the log.
    fn pick(&mut self, candidates: &[Candidate]) -> usize;
}

/// What a [`Balance`] may weigh about one worker that can take a request now.
///
/// A snapshot taken by the balancer just before the pick: the numbers are
/// the balancer's own (no system call), and RSS is as of the last sample
/// ([`Config::sample_interval`](crate::Config::sample_interval)).
///
/// [`Candidate::new`] and the `with_*` methods build one by hand, to test a
/// strategy without a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Candidate {
    pub(crate) slot: usize,
    pub(crate) generation: u64,
    pub(crate) in_flight: usize,
    pub(crate) rss: u64,
    pub(crate) fds_in_flight: usize,
    pub(crate) sockets: usize,
}

impl Candidate {
    /// A worker in `slot` with generation 0 and no load at all; for tests.
    pub fn new(slot: usize) -> Self {
        Self {
            slot,
            generation: 0,
            in_flight: 0,
            rss: 0,
            fds_in_flight: 0,
            sockets: 0,
        }
    }

    /// Sets [`generation`](Candidate::generation).
    #[must_use]
    pub fn with_generation(mut self, generation: u64) -> Self {
        self.generation = generation;
        self
    }

    /// Sets [`in_flight`](Candidate::in_flight).
    #[must_use]
    pub fn with_in_flight(mut self, in_flight: usize) -> Self {
        self.in_flight = in_flight;
        self
    }

    /// Sets [`rss`](Candidate::rss).
    #[must_use]
    pub fn with_rss(mut self, bytes: u64) -> Self {
        self.rss = bytes;
        self
    }

    /// Sets [`fds_in_flight`](Candidate::fds_in_flight).
    #[must_use]
    pub fn with_fds_in_flight(mut self, fds: usize) -> Self {
        self.fds_in_flight = fds;
        self
    }

    /// Sets [`sockets`](Candidate::sockets).
    #[must_use]
    pub fn with_sockets(mut self, sockets: usize) -> Self {
        self.sockets = sockets;
        self
    }

    /// The worker's slot (`0..Config::workers`), as in
    /// [`WorkerHealth::slot`](crate::WorkerHealth::slot) and
    /// [`Response::slot`](crate::Response::slot).
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Which process this is: a number the pool gives each worker process it
    /// starts, increasing, never reused. It changes when the slot's worker is
    /// restarted or recycled, so a strategy that keeps state per worker can
    /// tell a new process from the old one.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Requests assigned to the worker and not answered yet (an answer with
    /// a stream counts until the stream ends), as in
    /// [`WorkerHealth::in_flight`](crate::WorkerHealth::in_flight).
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Resident set size in bytes, from the last sample; 0 until the first.
    pub fn rss(&self) -> u64 {
        self.rss
    }

    /// Descriptors in flight to or from the worker: requests with a stream
    /// or socket not answered yet, and response streams not ended yet
    /// (bounded by [`Config::max_fds_in_flight`](crate::Config::max_fds_in_flight)).
    pub fn fds_in_flight(&self) -> usize {
        self.fds_in_flight
    }

    /// Connections handed to the worker that it has not closed yet, as in
    /// [`WorkerHealth::sockets`](crate::WorkerHealth::sockets).
    pub fn sockets(&self) -> usize {
        self.sockets
    }

    /// How loaded the worker is, for the built-ins.
    pub(crate) fn pressure(&self) -> Pressure {
        Pressure {
            in_flight: self.in_flight,
            rss: self.rss,
        }
    }
}

/// How loaded a worker is, as the built-in strategies compare workers: in
/// flight first, RSS second (the field order makes the derived order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Pressure {
    pub(crate) in_flight: usize,
    pub(crate) rss: u64,
}

/// An idle worker first, else the least pressure: fewest in flight, then
/// smallest RSS; on a tie, the lowest slot. The default
/// ([`Strategy::LeastPressure`](crate::Strategy::LeastPressure)).
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastPressure;

impl Balance for LeastPressure {
    fn pick(&mut self, candidates: &[Candidate]) -> usize {
        let mut best = 0;
        for (i, c) in candidates.iter().enumerate().skip(1) {
            if c.pressure() < candidates[best].pressure() {
                best = i;
            }
        }
        best
    }
}

/// Each worker in turn, by slot: the next slot after the last one picked
/// among the candidates, else the lowest ([`Strategy::RoundRobin`](crate::Strategy::RoundRobin)).
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    last_slot: Option<usize>,
}

impl RoundRobin {
    /// The slot the last pick went to: the next pick is the first slot after it.
    pub(crate) fn last_slot(&self) -> Option<usize> {
        self.last_slot
    }

    /// Records a pick (the balancer's indexed picks share the cursor).
    pub(crate) fn picked(&mut self, slot: usize) {
        self.last_slot = Some(slot);
    }
}

impl Balance for RoundRobin {
    fn pick(&mut self, candidates: &[Candidate]) -> usize {
        let next = match self.last_slot {
            Some(last) => candidates.iter().position(|c| c.slot > last).unwrap_or(0),
            None => 0,
        };
        self.picked(candidates[next].slot);
        next
    }
}

/// Power of two choices: two distinct candidates at random, the one under
/// less pressure wins (fewest in flight, then smallest RSS; the first drawn
/// on a tie) ([`Strategy::PowerOfTwoChoices`](crate::Strategy::PowerOfTwoChoices)).
///
/// The random generator is a xorshift seeded by [`new`](PowerOfTwoChoices::new),
/// so a run can be repeated. It is not for anything that needs real randomness.
#[derive(Debug, Clone)]
pub struct PowerOfTwoChoices {
    state: u64,
}

impl PowerOfTwoChoices {
    /// Draws from a generator started at `seed`.
    pub fn new(seed: u64) -> Self {
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

    /// Two distinct indices below `n` (at least 2), in the order drawn.
    pub(crate) fn draw_two(&mut self, n: usize) -> (usize, usize) {
        let a = self.next_below(n);
        let b = (a + 1 + self.next_below(n - 1)) % n;
        (a, b)
    }
}

impl Balance for PowerOfTwoChoices {
    fn pick(&mut self, candidates: &[Candidate]) -> usize {
        let n = candidates.len();
        if n == 1 {
            return 0;
        }
        let (a, b) = self.draw_two(n);
        if candidates[b].pressure() < candidates[a].pressure() {
            b
        } else {
            a
        }
    }
}

/// Your own [`Balance`], inside a [`Strategy`](crate::Strategy): made by
/// [`Strategy::custom`](crate::Strategy::custom).
///
/// It holds the prototype it was given; each pool started with it gets its
/// own clone. Clones of a `CustomStrategy` (as when a [`Config`](crate::Config)
/// is cloned) share that prototype and compare equal.
#[derive(Clone)]
pub struct CustomStrategy(Arc<dyn Prototype>);

impl CustomStrategy {
    pub(crate) fn new<B: Balance + Clone>(prototype: B) -> Self {
        Self(Arc::new(Mutex::new(prototype)))
    }

    /// A fresh instance for one pool.
    pub(crate) fn instantiate(&self) -> Box<dyn Balance> {
        self.0.instantiate()
    }
}

impl fmt::Debug for CustomStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_prototype(f)
    }
}

impl PartialEq for CustomStrategy {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CustomStrategy {}

/// A prototype that can be cloned into a boxed [`Balance`]. Behind a mutex, so
/// that a `Send` strategy need not be `Sync` for a `Config` to be.
trait Prototype: Send + Sync + 'static {
    fn instantiate(&self) -> Box<dyn Balance>;
    fn fmt_prototype(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<B: Balance + Clone> Prototype for Mutex<B> {
    fn instantiate(&self) -> Box<dyn Balance> {
        Box::new(self.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn fmt_prototype(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.lock().unwrap_or_else(|e| e.into_inner()).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Strategy;

    fn c(slot: usize, in_flight: usize, rss: u64) -> Candidate {
        Candidate::new(slot).with_in_flight(in_flight).with_rss(rss)
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

    #[test]
    fn each_instance_of_a_custom_strategy_starts_from_the_prototype() {
        let all = [c(0, 0, 0), c(1, 0, 0), c(2, 0, 0)];
        let strategy = Strategy::custom(RoundRobin::default());
        let config_copy = strategy.clone();
        assert_eq!(strategy, config_copy);
        assert_ne!(strategy, Strategy::custom(RoundRobin::default()));
        assert_eq!(
            format!("{strategy:?}"),
            "Custom(RoundRobin { last_slot: None })"
        );

        let mut first = strategy.instantiate();
        assert_eq!(first.pick(&all), 0);
        assert_eq!(first.pick(&all), 1);
        // Another pool's instance has its own cursor, from the start.
        let mut second = config_copy.instantiate();
        assert_eq!(second.pick(&all), 0);
        assert_eq!(first.pick(&all), 2);
    }

    #[test]
    fn a_config_with_a_strategy_that_is_not_sync_is_still_send_and_sync() {
        #[derive(Debug, Clone, Default)]
        struct NotSync(std::cell::Cell<usize>);
        impl Balance for NotSync {
            fn pick(&mut self, _candidates: &[Candidate]) -> usize {
                self.0.set(self.0.get() + 1);
                0
            }
        }
        fn send_and_sync<T: Send + Sync>(_: &T) {}
        let config = crate::Config::default().strategy(Strategy::custom(NotSync::default()));
        send_and_sync(&config);
        assert_eq!(config.strategy.instantiate().pick(&[c(0, 0, 0)]), 0);
    }

    #[test]
    fn built_in_strategies_instantiate_as_named() {
        assert_eq!(
            format!("{:?}", Strategy::default().instantiate()),
            "LeastPressure"
        );
        assert_eq!(
            format!(
                "{:?}",
                Strategy::PowerOfTwoChoices { seed: 4 }.instantiate()
            ),
            "PowerOfTwoChoices { state: 5 }"
        );
    }
}
