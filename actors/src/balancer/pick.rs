//! The built-in strategies over an index of the workers that have room, so
//! a pick reads one or two workers however many the pool has.
//!
//! Each built-in keeps the index its rule needs: [`LeastPressure`] an
//! ordered set by pressure (the first is the pick), [`RoundRobin`] an
//! ordered map by slot (the first after the cursor), [`PowerOfTwoChoices`]
//! a dense list to draw two from. An update costs O(log n) or O(1) and a
//! pick O(log n) at most. A custom [`Balance`] has no index: it sees every
//! candidate, so its picks cost O(n) (see [`Picker::strategy`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::balance::{Balance, LeastPressure, PowerOfTwoChoices, Pressure, RoundRobin};
use crate::id::WorkerId;
use crate::Strategy;

/// A worker's place in the balancer's table of workers.
pub(super) type Key = usize;

/// One worker in the index: who, where, and how loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Member {
    pub(super) key: Key,
    pub(super) id: WorkerId,
    pub(super) pressure: Pressure,
}

/// The pool's strategy, with the index of the workers that have room when
/// the strategy is a built-in.
#[derive(Debug)]
pub(super) enum Picker {
    /// The least pressure, then the lowest slot: the first of the set.
    LeastPressure {
        strategy: LeastPressure,
        open: BTreeSet<(Pressure, WorkerId, Key)>,
    },
    /// The first slot after the cursor, else the lowest.
    RoundRobin {
        strategy: RoundRobin,
        open: BTreeMap<WorkerId, Key>,
    },
    /// The less pressed of two drawn at random.
    PowerOfTwo {
        strategy: PowerOfTwoChoices,
        open: Vec<Member>,
        /// Each member's index in `open`, by key.
        positions: Vec<Option<usize>>,
    },
    /// A custom strategy: no index, every pick sees every candidate.
    Custom(Box<dyn Balance>),
}

impl Picker {
    pub(super) fn new(strategy: &Strategy) -> Self {
        match strategy {
            Strategy::LeastPressure => Picker::LeastPressure {
                strategy: LeastPressure,
                open: BTreeSet::new(),
            },
            Strategy::RoundRobin => Picker::RoundRobin {
                strategy: RoundRobin::default(),
                open: BTreeMap::new(),
            },
            Strategy::PowerOfTwoChoices { seed } => Picker::PowerOfTwo {
                strategy: PowerOfTwoChoices::new(*seed),
                open: Vec::new(),
                positions: Vec::new(),
            },
            Strategy::Custom(_) => Picker::Custom(strategy.instantiate()),
        }
    }

    /// Whether picks come from the index ([`Picker::pick`]) rather than from
    /// a scan of every worker ([`Picker::strategy`]).
    pub(super) fn is_indexed(&self) -> bool {
        !matches!(self, Picker::Custom(_))
    }

    /// The strategy itself, to pick from a list of candidates: for a custom
    /// strategy always, for a built-in when a request has needs the index
    /// does not know (a stream or socket). Built-ins share their state
    /// (cursor, random generator) between both ways of picking.
    pub(super) fn strategy(&mut self) -> &mut dyn Balance {
        match self {
            Picker::LeastPressure { strategy, .. } => strategy,
            Picker::RoundRobin { strategy, .. } => strategy,
            Picker::PowerOfTwo { strategy, .. } => strategy,
            Picker::Custom(strategy) => strategy.as_mut(),
        }
    }

    /// How many workers the index holds.
    pub(super) fn len(&self) -> usize {
        match self {
            Picker::LeastPressure { open, .. } => open.len(),
            Picker::RoundRobin { open, .. } => open.len(),
            Picker::PowerOfTwo { open, .. } => open.len(),
            Picker::Custom(_) => 0,
        }
    }

    /// Puts a worker that has room in the index, or updates its pressure.
    pub(super) fn insert(&mut self, member: Member, was: Option<Pressure>) {
        match self {
            Picker::LeastPressure { open, .. } => {
                if let Some(was) = was {
                    open.remove(&(was, member.id, member.key));
                }
                open.insert((member.pressure, member.id, member.key));
            }
            Picker::RoundRobin { open, .. } => {
                open.insert(member.id, member.key);
            }
            Picker::PowerOfTwo {
                open, positions, ..
            } => {
                if positions.len() <= member.key {
                    positions.resize(member.key + 1, None);
                }
                match positions[member.key] {
                    Some(at) => open[at] = member,
                    None => {
                        positions[member.key] = Some(open.len());
                        open.push(member);
                    }
                }
            }
            Picker::Custom(_) => {}
        }
    }

    /// Takes a worker out of the index (it has no room, or is gone);
    /// `was` is the pressure it was inserted with.
    pub(super) fn remove(&mut self, key: Key, id: WorkerId, was: Pressure) {
        match self {
            Picker::LeastPressure { open, .. } => {
                open.remove(&(was, id, key));
            }
            Picker::RoundRobin { open, .. } => {
                open.remove(&id);
            }
            Picker::PowerOfTwo {
                open, positions, ..
            } => {
                let Some(at) = positions.get_mut(key).and_then(Option::take) else {
                    return;
                };
                open.swap_remove(at);
                if let Some(moved) = open.get(at) {
                    positions[moved.key] = Some(at);
                }
            }
            Picker::Custom(_) => {}
        }
    }

    /// The indexed worker the strategy picks, reading one or two of them;
    /// `None` when the index is empty or the strategy is custom.
    pub(super) fn pick(&mut self) -> Option<Key> {
        match self {
            Picker::LeastPressure { open, .. } => open.first().map(|&(_, _, key)| key),
            Picker::RoundRobin { strategy, open } => {
                let after = strategy.last_slot().and_then(|s| s.checked_add(1));
                let next = after
                    .and_then(|slot| {
                        open.range(
                            WorkerId {
                                slot,
                                generation: 0,
                            }..,
                        )
                        .next()
                    })
                    .or_else(|| open.iter().next());
                let (id, &key) = next?;
                strategy.picked(id.slot);
                Some(key)
            }
            Picker::PowerOfTwo { strategy, open, .. } => match open.len() {
                0 => None,
                1 => Some(open[0].key),
                n => {
                    let (a, b) = strategy.draw_two(n);
                    let winner = if open[b].pressure < open[a].pressure {
                        b
                    } else {
                        a
                    };
                    Some(open[winner].key)
                }
            },
            Picker::Custom(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(key: Key, slot: usize, in_flight: usize, rss: u64) -> Member {
        Member {
            key,
            id: WorkerId {
                slot,
                generation: key as u64,
            },
            pressure: Pressure { in_flight, rss },
        }
    }

    fn filled(strategy: &Strategy, members: &[Member]) -> Picker {
        let mut picker = Picker::new(strategy);
        for &m in members {
            picker.insert(m, None);
        }
        picker
    }

    #[test]
    fn least_pressure_takes_fewest_in_flight_then_smallest_rss_then_lowest_slot() {
        let members = [
            member(0, 0, 2, 10),
            member(1, 1, 1, 900),
            member(2, 2, 1, 100),
            member(3, 3, 1, 100),
        ];
        let mut picker = filled(&Strategy::LeastPressure, &members);
        assert_eq!(picker.pick(), Some(2));
        // Slot 2 takes one: 3 is now the least pressed.
        picker.insert(member(2, 2, 2, 100), Some(members[2].pressure));
        assert_eq!(picker.pick(), Some(3));
        picker.remove(3, members[3].id, members[3].pressure);
        assert_eq!(picker.pick(), Some(1));
        assert_eq!(picker.len(), 3);
    }

    #[test]
    fn round_robin_goes_on_from_the_last_slot_and_wraps() {
        let members = [member(0, 0, 0, 0), member(1, 2, 0, 0), member(2, 5, 0, 0)];
        let mut picker = filled(&Strategy::RoundRobin, &members);
        let picked: Vec<_> = (0..4).map(|_| picker.pick()).collect();
        assert_eq!(picked, [Some(0), Some(1), Some(2), Some(0)]);
        picker.remove(1, members[1].id, members[1].pressure);
        assert_eq!(picker.pick(), Some(2), "slot 2 has no room: on to slot 5");
    }

    #[test]
    fn round_robin_shares_its_cursor_with_scanned_picks() {
        let members = [member(0, 0, 0, 0), member(1, 1, 0, 0), member(2, 2, 0, 0)];
        let mut picker = filled(&Strategy::RoundRobin, &members);
        assert_eq!(picker.pick(), Some(0));
        let candidates = [
            crate::balance::Candidate::new(0),
            crate::balance::Candidate::new(1),
        ];
        assert_eq!(picker.strategy().pick(&candidates), 1);
        assert_eq!(picker.pick(), Some(2));
    }

    #[test]
    fn power_of_two_never_picks_the_most_pressed_and_keeps_positions_right() {
        let members: Vec<Member> = (0..8).map(|k| member(k, k, k, 0)).collect();
        let mut picker = filled(&Strategy::PowerOfTwoChoices { seed: 3 }, &members);
        for _ in 0..200 {
            assert_ne!(picker.pick(), Some(7));
        }
        // Out of order removals move the last member into the hole.
        for k in [0, 5, 7, 1] {
            picker.remove(k, members[k].id, members[k].pressure);
        }
        let mut seen: Vec<Key> = (0..200).filter_map(|_| picker.pick()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, [2, 3, 4], "6 is the most pressed left: never picked");
        assert_eq!(picker.len(), 4);
    }

    #[test]
    fn a_custom_strategy_has_no_index() {
        #[derive(Debug, Clone)]
        struct First;
        impl Balance for First {
            fn pick(&mut self, _: &[crate::balance::Candidate]) -> usize {
                0
            }
        }
        let mut picker = filled(&Strategy::custom(First), &[member(0, 0, 0, 0)]);
        assert!(!picker.is_indexed());
        assert_eq!(picker.pick(), None);
        assert_eq!(picker.len(), 0);
    }
}
