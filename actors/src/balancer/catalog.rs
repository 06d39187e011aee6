//! Which calls the pool's workers serve, so a call no worker serves is
//! refused at once instead of being sent, and each worker's number for a
//! call is found by index rather than by hashing its name per request.
//!
//! A name is interned once, as a pool-wide [`CallId`]; each worker gets a
//! [`Numbers`] table from `CallId` to the number its `Hello` gave the call.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A call name, interned for the pool's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallId(u32);

/// One worker's call numbers, by [`CallId`]; `0` where it does not serve the call.
#[derive(Debug, Default)]
pub(super) struct Numbers(Vec<u32>);

impl Numbers {
    /// The number this worker gave the call, if it serves it.
    pub(super) fn get(&self, id: CallId) -> Option<u32> {
        self.0.get(id.0 as usize).copied().filter(|&n| n != 0)
    }
}

/// The calls of the workers that said hello, each with how many serve it.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    ids: HashMap<Box<str>, CallId, BuildHasherDefault<Fnv>>,
    /// Workers serving each call, by [`CallId`].
    serving: Vec<usize>,
    /// Workers whose calls are known (they may serve none).
    workers: usize,
}

impl Catalog {
    /// True until some worker said which calls it serves.
    pub(super) fn is_empty(&self) -> bool {
        self.workers == 0
    }

    /// The id of a name some worker announced once.
    pub(super) fn id(&self, name: &str) -> Option<CallId> {
        self.ids.get(name).copied()
    }

    /// Counts a worker's calls (as its `Hello` listed them, numbered from 1)
    /// and returns its table of numbers.
    pub(super) fn add(&mut self, calls: &[Box<str>]) -> Numbers {
        self.workers += 1;
        let mut numbers = Vec::new();
        for (name, number) in calls.iter().zip(1..) {
            let next = CallId(self.serving.len() as u32);
            let id = *self.ids.entry(name.clone()).or_insert(next);
            if id == next {
                self.serving.push(0);
            }
            self.serving[id.0 as usize] += 1;
            let i = id.0 as usize;
            if numbers.len() <= i {
                numbers.resize(i + 1, 0);
            }
            numbers[i] = number;
        }
        Numbers(numbers)
    }

    /// Takes a worker's calls out of the counts.
    pub(super) fn remove(&mut self, numbers: &Numbers) {
        self.workers = self.workers.saturating_sub(1);
        for (i, &n) in numbers.0.iter().enumerate() {
            if n != 0 {
                self.serving[i] = self.serving[i].saturating_sub(1);
            }
        }
    }

    /// Whether a request for `call` may be served, and its id when known: an
    /// untyped request always; a call while no worker said what it serves
    /// (one may); else only a call some worker serves.
    pub(super) fn admit(&self, call: Option<&str>) -> Result<Option<CallId>, ()> {
        let Some(name) = call else {
            return Ok(None);
        };
        match self.id(name) {
            Some(id) if self.serving[id.0 as usize] > 0 => Ok(Some(id)),
            _ if self.is_empty() => Ok(None),
            _ => Err(()),
        }
    }
}

/// FNV-1a: call names are short and announced by the pool's own workers, so
/// a keyed hash would only cost time on every request.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<Box<str>> {
        list.iter().map(|&n| n.into()).collect()
    }

    #[test]
    fn untyped_requests_and_calls_before_any_hello_may_be_served() {
        let catalog = Catalog::default();
        assert_eq!(catalog.admit(None), Ok(None));
        assert_eq!(catalog.admit(Some("anything")), Ok(None));
    }

    #[test]
    fn a_call_is_served_while_one_worker_serves_it() {
        let mut catalog = Catalog::default();
        let a = catalog.add(&names(&["primes", "echo"]));
        let b = catalog.add(&names(&["echo"]));
        let primes = catalog.admit(Some("primes")).unwrap().unwrap();
        let echo = catalog.admit(Some("echo")).unwrap().unwrap();
        assert!(catalog.admit(Some("sort")).is_err());
        assert_eq!((a.get(primes), a.get(echo)), (Some(1), Some(2)));
        assert_eq!((b.get(primes), b.get(echo)), (None, Some(1)));
        catalog.remove(&a);
        assert!(catalog.admit(Some("primes")).is_err());
        assert_eq!(catalog.admit(Some("echo")), Ok(Some(echo)));
        catalog.remove(&b);
        assert!(
            catalog.is_empty(),
            "no worker known: anything may be served again"
        );
        assert_eq!(catalog.admit(Some("primes")), Ok(None));
    }

    #[test]
    fn ids_stay_the_same_for_later_workers() {
        let mut catalog = Catalog::default();
        let first = catalog.add(&names(&["a", "b"]));
        catalog.remove(&first);
        let later = catalog.add(&names(&["b", "a"]));
        let a = catalog.id("a").unwrap();
        assert_eq!(later.get(a), Some(2));
    }

    #[test]
    fn a_worker_that_serves_no_call_still_counts() {
        let mut catalog = Catalog::default();
        catalog.add(&[]);
        assert!(!catalog.is_empty());
        assert!(catalog.admit(Some("primes")).is_err());
        assert_eq!(catalog.admit(None), Ok(None));
    }
}
