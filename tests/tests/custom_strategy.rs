//! A balancing strategy of the caller's own (`Strategy::custom`), on real
//! worker processes: it decides where every request goes, among the workers
//! the balancer offers, and it is asked for every dispatch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use lpm::balance::{Balance, Candidate, LeastPressure};
use lpm::Strategy;
use lpm_tests::{
    call, config, health, online, start, submit_all, test_worker, wait_for_health, Op, DEADLINE,
    HOLD,
};

/// Always the highest slot among the candidates (they come in slot order).
#[derive(Debug, Clone)]
struct HighestSlot;

impl Balance for HighestSlot {
    fn pick(&mut self, candidates: &[Candidate]) -> usize {
        candidates.len() - 1
    }
}

/// Least pressure, counting its calls and noting the slot of each pick.
/// Clones share the tally, so the test keeps one and the pool gets another.
#[derive(Debug, Clone, Default)]
struct Counting {
    inner: LeastPressure,
    calls: Arc<AtomicUsize>,
    picked: Arc<Mutex<Vec<usize>>>,
}

impl Balance for Counting {
    fn pick(&mut self, candidates: &[Candidate]) -> usize {
        assert!(!candidates.is_empty(), "the balancer offered no candidate");
        assert!(
            candidates.windows(2).all(|w| w[0].slot() <= w[1].slot()),
            "candidates out of slot order: {candidates:?}"
        );
        self.calls.fetch_add(1, Ordering::SeqCst);
        let i = self.inner.pick(candidates);
        self.picked.lock().unwrap().push(candidates[i].slot());
        i
    }
}

/// With four workers, a strategy that picks the highest slot sends every
/// request to slot 3, one at a time and in a burst alike.
#[actix_rt::test]
async fn a_strategy_that_picks_the_highest_slot_gets_every_request_there() {
    let (pool, _events) = start(
        test_worker!(),
        config(4).strategy(Strategy::custom(HighestSlot)),
    );
    online(&pool).await;
    let h = health(&pool).await;
    let highest = h.iter().find(|w| w.slot == 3).and_then(|w| w.pid).unwrap();

    for _ in 0..10 {
        let (pid, response): (u32, _) = call(&pool, &Op::Pid).await;
        assert_eq!(response.slot(), 3);
        assert_eq!(pid, highest, "served by slot 3's process");
    }
    let burst = submit_all(&pool, (0..100).map(|i| Op::Sleep { ms: 2, reply: i })).await;
    for (i, answer) in burst.await.into_iter().enumerate() {
        let response = answer.expect("request succeeds");
        assert_eq!(response.data::<u32>(), Ok(i as u32));
        assert_eq!(
            response.slot(),
            3,
            "request {i} went to slot {}",
            response.slot()
        );
    }

    let served: Vec<(usize, u64)> = health(&pool)
        .await
        .iter()
        .map(|w| (w.slot, w.served))
        .collect();
    assert_eq!(served, [(0, 0), (1, 0), (2, 0), (3, 110)]);
    pool.soft_kill().await.expect("the pool is running");
}

/// The strategy only chooses among workers that can take work: with one
/// request in flight per worker at most, while slot 2 holds one, the highest
/// slot offered is 1.
#[actix_rt::test]
async fn a_strategy_is_offered_only_workers_that_can_take_work() {
    let (pool, _events) = start(
        test_worker!(),
        config(3)
            .max_in_flight(1)
            .strategy(Strategy::custom(HighestSlot)),
    );
    online(&pool).await;
    let held = submit_all(&pool, [HOLD]).await;
    wait_for_health(&pool, "slot 2 holds the long request", DEADLINE, |h| {
        h.iter().any(|w| w.slot == 2 && w.in_flight == 1)
    })
    .await;
    for _ in 0..5 {
        let (_pid, response): (u32, _) = call(&pool, &Op::Pid).await;
        assert_eq!(
            response.slot(),
            1,
            "slot 2 is full; the next highest serves"
        );
    }
    pool.hard_kill().await.expect("the pool is running");
    drop(held);
}

/// A strategy that counts its calls is asked once per dispatch: once for
/// each request of a burst (the slots it picked are the slots that served),
/// and once more for a retry, which goes to the other worker.
#[actix_rt::test]
async fn a_counting_strategy_sees_every_dispatch() {
    let dir = tempfile::tempdir().unwrap();
    let counting = Counting::default();
    let (pool, mut events) = start(
        test_worker!(),
        config(2)
            .retries(1)
            .strategy(Strategy::custom(counting.clone())),
    );
    online(&pool).await;
    assert_eq!(counting.calls.load(Ordering::SeqCst), 0, "nothing sent yet");

    let burst = submit_all(&pool, (0..40).map(|i| Op::Sleep { ms: 2, reply: i })).await;
    let mut served: Vec<usize> = burst
        .await
        .into_iter()
        .map(|a| a.expect("request succeeds").slot())
        .collect();
    assert_eq!(counting.calls.load(Ordering::SeqCst), 40);
    let mut picked = counting.picked.lock().unwrap().clone();
    served.sort_unstable();
    picked.sort_unstable();
    assert_eq!(picked, served, "each request went where the strategy said");
    assert!(
        served.contains(&0) && served.contains(&1),
        "least pressure used both workers: {served:?}"
    );

    // The first attempt kills its worker; the retry is a second dispatch.
    let (_pid, response, dead_slot) =
        lpm_tests::retried_after_a_death(&pool, &mut events, dir.path()).await;
    assert_eq!(counting.calls.load(Ordering::SeqCst), 42);
    let picked = counting.picked.lock().unwrap().clone();
    assert_eq!(
        picked[40..],
        [dead_slot, response.slot()],
        "first attempt, then the retry elsewhere"
    );
    assert_ne!(response.slot(), dead_slot);
    pool.soft_kill().await.expect("the pool is running");
}
