//! Which calls the pool's workers serve, so a call no worker serves is
//! refused at once instead of being sent.

use std::collections::HashMap;

/// The calls of the workers that said hello, each with how many serve it.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    serving: HashMap<Box<str>, usize>,
    /// Workers whose calls are known (they may serve none).
    workers: usize,
}

impl Catalog {
    /// True until some worker said which calls it serves.
    pub(super) fn is_empty(&self) -> bool {
        self.workers == 0
    }

    pub(super) fn add(&mut self, calls: &[Box<str>]) {
        self.workers += 1;
        for name in calls {
            *self.serving.entry(name.clone()).or_default() += 1;
        }
    }

    pub(super) fn remove(&mut self, calls: &[Box<str>]) {
        self.workers = self.workers.saturating_sub(1);
        for name in calls {
            if let Some(n) = self.serving.get_mut(name) {
                *n -= 1;
                if *n == 0 {
                    self.serving.remove(name);
                }
            }
        }
    }

    /// Whether a request for `call` may be served: an untyped request
    /// always; a call while no worker said what it serves (one may); else
    /// only a call some worker serves.
    pub(super) fn may_serve(&self, call: Option<&str>) -> bool {
        match call {
            None => true,
            Some(name) => self.is_empty() || self.serving.contains_key(name),
        }
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
        assert!(catalog.may_serve(None));
        assert!(catalog.may_serve(Some("anything")));
    }

    #[test]
    fn a_call_is_served_while_one_worker_serves_it() {
        let mut catalog = Catalog::default();
        let a = names(&["primes", "echo"]);
        let b = names(&["echo"]);
        catalog.add(&a);
        catalog.add(&b);
        assert!(catalog.may_serve(Some("primes")));
        assert!(!catalog.may_serve(Some("sort")));
        catalog.remove(&a);
        assert!(!catalog.may_serve(Some("primes")));
        assert!(catalog.may_serve(Some("echo")));
        catalog.remove(&b);
        assert!(
            catalog.is_empty(),
            "no worker known: anything may be served again"
        );
        assert!(catalog.may_serve(Some("primes")));
    }

    #[test]
    fn a_worker_that_serves_no_call_still_counts() {
        let mut catalog = Catalog::default();
        catalog.add(&[]);
        assert!(!catalog.is_empty());
        assert!(!catalog.may_serve(Some("primes")));
        assert!(catalog.may_serve(None));
    }
}
