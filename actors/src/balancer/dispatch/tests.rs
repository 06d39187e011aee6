//! Events in, outputs out: the balancer's rules without processes, actors
//! or sleeping.

use std::time::Duration;

use super::harness::*;
use super::{Notice, WhenFull};
use crate::balance::{Balance, Candidate};
use crate::health::WorkerState;
use crate::{Error, ErrorKind, Strategy};

fn slots(assigned: &[(usize, crate::request::Pending)]) -> Vec<usize> {
    assigned.iter().map(|(slot, _)| *slot).collect()
}

#[test]
fn a_request_goes_straight_to_a_ready_worker() {
    let mut pool = Harness::with_ready(&config(), [0]);
    let mut caller = pool.send(plain());
    let assigned = pool.assigned();
    assert_eq!(slots(&assigned), [0]);
    assert_eq!(
        pool.load(worker(0)).in_flight(),
        1,
        "counted from assignment"
    );
    assert_eq!(pool.dispatch.queued(), 0);
    assert!(outcome(&mut caller).is_none());
    respond(assigned);
    assert!(matches!(outcome(&mut caller), Some(Ok(r)) if r.slot() == 0));
    assert_eq!(pool.load(worker(0)).in_flight(), 0);
}

#[test]
fn a_burst_becomes_one_batch_per_worker() {
    let mut pool = Harness::with_ready(&config(), [0, 1]);
    let callers: Vec<_> = (0..8).map(|_| pool.send(plain())).collect();
    let batches = pool.batches();
    let sizes: Vec<(usize, usize)> = batches.iter().map(|(id, b)| (id.slot, b.len())).collect();
    assert_eq!(sizes, [(0, 4), (1, 4)], "least pressure alternates");
    assert!(pool.batches().is_empty(), "each batch is handed out once");
    drop(batches);
    drop(callers);
}

#[test]
fn nothing_goes_to_a_worker_that_is_not_ready() {
    let mut pool = Harness::new(&config());
    pool.join(worker(0));
    let mut caller = pool.send(plain());
    assert!(pool.assigned().is_empty(), "starting: no work yet");
    pool.dispatch.worker_status(worker(0), WorkerState::Busy);
    assert!(pool.assigned().is_empty());
    pool.dispatch.worker_status(worker(0), WorkerState::Ready);
    let assigned = pool.assigned();
    assert_eq!(slots(&assigned), [0]);
    pool.dispatch
        .worker_status(worker(0), WorkerState::Draining);
    let _queued = pool.send(plain());
    assert!(pool.assigned().is_empty());
    respond(assigned);
    assert!(matches!(outcome(&mut caller), Some(Ok(_))));
}

#[test]
fn a_worker_gets_no_more_than_max_in_flight_and_a_freed_slot_moves_the_queue() {
    let mut pool = Harness::with_ready(&config(), [0]);
    let _callers: Vec<_> = (0..6).map(|_| pool.send(plain())).collect();
    let mut first = pool.assigned();
    assert_eq!(first.len(), 4);
    assert_eq!(pool.dispatch.queued(), 2);
    // Two answers come back; the worker's handle says so.
    respond(first.drain(..2));
    pool.dispatch.freed();
    let second = pool.assigned();
    assert_eq!(second.len(), 2);
    assert_eq!(pool.dispatch.queued(), 0);
    assert_eq!(pool.load(worker(0)).in_flight(), 4);
    drop((first, second));
}

#[test]
fn requests_with_descriptors_wait_for_a_worker_below_its_limit_while_plain_ones_go_on() {
    let mut pool = Harness::with_ready(&config(), [0]);
    let _streams: Vec<_> = (0..2).map(|_| pool.send(with_stream())).collect();
    let held = pool.assigned();
    assert_eq!(pool.load(worker(0)).fds(), 2, "at its descriptor limit");

    let _blocked_stream = pool.send(with_stream());
    let _blocked_socket = pool.send(with_socket());
    let _plain = pool.send(plain());
    let passed = pool.assigned();
    assert_eq!(passed.len(), 1);
    assert!(
        passed[0].1.attachment.is_none(),
        "the plain request went past"
    );
    assert_eq!(
        pool.dispatch.queued(),
        2,
        "the stream and the socket keep their place"
    );

    // One stream's answer frees a descriptor: the next in line with one goes.
    let mut held = held.into_iter();
    respond(held.next());
    pool.dispatch.freed();
    let next = pool.assigned();
    assert_eq!(next.len(), 1);
    assert!(
        next[0]
            .1
            .attachment
            .as_ref()
            .is_some_and(|a| !a.is_socket()),
        "in order: the stream first"
    );
    assert_eq!(pool.dispatch.queued(), 1);
    drop((held, passed, next));
}

#[test]
fn a_socket_goes_to_a_worker_holding_the_fewest_sockets() {
    let mut pool = Harness::with_ready(&config(), [0, 1]);
    let _held = crate::request::SocketGuard::new(pool.load(worker(0)));
    let _caller = pool.send(with_socket());
    assert_eq!(slots(&pool.assigned()), [1]);
}

/// A request whose attempt on `slot` failed, back for another.
fn retried(pool: &Harness, slot: usize) -> (crate::request::Pending, Caller) {
    let (mut pending, caller) = pool.pending(plain());
    pending.retries_left = 1;
    let error = Error::Timeout {
        id: pending.id,
        after: Duration::from_secs(1),
        attempts: 1,
    };
    let pending = pending
        .retry(pool.now, slot, error)
        .expect("a retry is left");
    (pending, caller)
}

#[test]
fn a_retry_goes_to_another_slot_if_it_can() {
    let strategies = [
        Strategy::LeastPressure,
        Strategy::RoundRobin,
        Strategy::PowerOfTwoChoices { seed: 9 },
        Strategy::custom(crate::balance::LeastPressure),
    ];
    for strategy in strategies {
        let mut config = config();
        config.strategy = strategy.clone();
        let mut pool = Harness::with_ready(&config, [0, 1]);
        // Slot 1 is busier, yet the retry avoids slot 0.
        let _busy = crate::request::LoadGuard::new(pool.load(worker(1)));
        pool.dispatch.freed();
        for _ in 0..10 {
            let (pending, _caller) = retried(&pool, 0);
            pool.dispatch.requeue(vec![pending]);
            assert_eq!(slots(&pool.assigned()), [1], "{strategy:?}");
        }
        // The last worker standing takes it even so.
        pool.dispatch.worker_left(worker(1));
        let (pending, _caller) = retried(&pool, 0);
        pool.dispatch.requeue(vec![pending]);
        assert_eq!(slots(&pool.assigned()), [0], "{strategy:?}");
    }
}

#[test]
fn a_full_queue_refuses_new_requests_unless_they_wait_for_room() {
    let mut config = config();
    config.queue_capacity = 2;
    let mut pool = Harness::new(&config);
    let _queued: Vec<_> = (0..2).map(|_| pool.send(plain())).collect();
    let mut refused = pool.send(plain());
    assert_eq!(error(&mut refused), ErrorKind::QueueFull);
    let mut waiting = pool.send_with(plain(), WhenFull::Wait);
    assert!(outcome(&mut waiting).is_none());
    assert_eq!(pool.dispatch.queued(), 3);
    // Retries go back past the bound too: they were admitted once.
    let (pending, mut retry) = retried(&pool, 0);
    pool.dispatch.requeue(vec![pending]);
    assert!(outcome(&mut retry).is_none());
    assert_eq!(pool.dispatch.queued(), 4);
}

#[test]
fn a_full_queue_error_names_the_capacity() {
    let mut config = config();
    config.queue_capacity = 0;
    let mut pool = Harness::new(&config);
    let mut caller = pool.send(plain());
    assert!(matches!(
        caller.try_recv(),
        Ok(Err(Error::QueueFull { capacity: 0 }))
    ));
}

#[test]
fn queued_requests_expire_at_their_deadline_and_are_not_retried() {
    let mut config = config();
    config.retries = 3;
    let mut pool = Harness::new(&config);
    let start = pool.now;
    let mut short = pool.send(timing_out(Duration::from_secs(1)));
    let mut long = pool.send(timing_out(Duration::from_secs(5)));
    let mut forever = pool.send(plain());
    assert_eq!(
        pool.dispatch.poll_timeout(),
        Some(start + Duration::from_secs(1))
    );

    pool.dispatch
        .handle_timeout(start + Duration::from_millis(999));
    assert!(outcome(&mut short).is_none());
    pool.dispatch.handle_timeout(start + Duration::from_secs(1));
    assert_eq!(error(&mut short), ErrorKind::Timeout);
    assert_eq!(
        pool.dispatch.poll_timeout(),
        Some(start + Duration::from_secs(5))
    );

    pool.dispatch
        .handle_timeout(start + Duration::from_secs(60));
    assert_eq!(error(&mut long), ErrorKind::Timeout);
    assert!(outcome(&mut forever).is_none(), "no timeout, no expiry");
    assert_eq!(pool.dispatch.poll_timeout(), None);
    assert_eq!(pool.dispatch.queued(), 1);
}

#[test]
fn an_empty_queue_needs_no_tick() {
    let mut pool = Harness::new(&config());
    let _caller = pool.send(timing_out(Duration::from_secs(1)));
    assert!(pool.dispatch.poll_timeout().is_some());
    pool.ready(worker(0));
    assert_eq!(slots(&pool.assigned()), [0]);
    assert_eq!(
        pool.dispatch.poll_timeout(),
        None,
        "its deadline is the worker's now"
    );
}

#[test]
fn a_cancelled_queued_request_leaves_the_queue_and_the_workers_hear_of_it() {
    let mut pool = Harness::new(&config());
    let kept = pool.send(plain());
    let (gone, gone_id) = {
        let (pending, caller) = pool.pending(plain());
        let id = pending.id;
        pool.dispatch.admit(pending, WhenFull::Fail);
        (caller, id)
    };
    drop(gone);
    pool.dispatch.cancel(vec![gone_id]);
    assert_eq!(pool.dispatch.queued(), 1);
    assert_eq!(pool.notices(), [Notice::Cancel(vec![gone_id].into())]);
    let counters = &pool.defaults.counters;
    assert_eq!(
        (counters.served(), counters.failed()),
        (0, 0),
        "abandoned is neither"
    );
    pool.ready(worker(0));
    assert_eq!(pool.assigned().len(), 1);
    drop(kept);
}

#[test]
fn an_abandoned_request_is_never_picked() {
    #[derive(Debug, Clone, Default)]
    struct Count(std::sync::Arc<std::sync::atomic::AtomicUsize>);
    impl Balance for Count {
        fn pick(&mut self, _: &[Candidate]) -> usize {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            0
        }
    }
    let picks = Count::default();
    let mut config = config();
    config.strategy = Strategy::custom(picks.clone());
    let mut pool = Harness::new(&config);
    drop(pool.send(plain()));
    let _kept = pool.send(plain());
    pool.ready(worker(0));
    assert_eq!(pool.assigned().len(), 1);
    assert_eq!(picks.0.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn a_call_no_worker_serves_is_refused_once_workers_said_what_they_serve() {
    let mut pool = Harness::new(&config());
    pool.join(worker(0));
    // Before any hello, a call may be served: it waits.
    let mut early_sort = pool.send(call("sort"));
    let mut early_echo = pool.send(call("echo"));
    pool.dispatch
        .worker_calls(worker(0), &["primes".into(), "echo".into()]);
    assert_eq!(error(&mut early_sort), ErrorKind::NotHandled);
    assert!(outcome(&mut early_echo).is_none());

    let mut late_sort = pool.send(call("sort"));
    assert!(matches!(
        late_sort.try_recv(),
        Ok(Err(Error::NotHandled { name })) if name == "sort"
    ));
    pool.dispatch.worker_status(worker(0), WorkerState::Ready);
    let _primes = pool.send(call("primes"));
    let _untyped = pool.send(plain());
    let wire: Vec<Option<u32>> = pool.assigned().iter().map(|(_, p)| p.wire_call).collect();
    assert_eq!(wire, [Some(2), Some(1), Some(0)], "echo, primes, untyped");

    // Its only server left: the call is refused again.
    pool.dispatch.worker_left(worker(0));
    pool.join(worker(1));
    pool.dispatch.worker_calls(worker(1), &["echo".into()]);
    let mut primes = pool.send(call("primes"));
    assert_eq!(error(&mut primes), ErrorKind::NotHandled);
}

#[test]
fn a_soft_kill_serves_the_queue_then_seals_it() {
    let mut pool = Harness::with_ready(&config(), [0]);
    let _callers: Vec<_> = (0..5).map(|_| pool.send(plain())).collect();
    let held = pool.assigned();
    pool.dispatch.close();
    assert!(pool.notices().is_empty(), "one request still queued");
    let mut late = pool.send(plain());
    assert_eq!(error(&mut late), ErrorKind::ShuttingDown);

    let mut held = held.into_iter();
    respond(held.next());
    pool.dispatch.freed();
    assert_eq!(pool.assigned().len(), 1, "the queue is still served");
    assert_eq!(pool.notices(), [Notice::Drained]);

    // Sealed: a request coming back fails with its last error.
    let (pending, mut retry) = retried(&pool, 0);
    pool.dispatch.requeue(vec![pending]);
    assert_eq!(error(&mut retry), ErrorKind::Timeout);
    let (pending, mut fresh) = pool.pending(plain());
    pool.dispatch.requeue(vec![pending]);
    assert_eq!(error(&mut fresh), ErrorKind::ShuttingDown);
    // Another close hears at once.
    pool.dispatch.close();
    assert_eq!(pool.notices(), [Notice::Drained]);
}

#[test]
fn closing_an_empty_queue_drains_at_once() {
    let mut pool = Harness::new(&config());
    pool.dispatch.close();
    assert_eq!(pool.notices(), [Notice::Drained]);
}

#[test]
fn a_hard_kill_fails_the_queue_and_everything_after() {
    let mut pool = Harness::new(&config());
    let mut queued = pool.send(plain());
    pool.dispatch.close();
    pool.dispatch.fail_queued(Error::Killed);
    assert_eq!(error(&mut queued), ErrorKind::Killed);
    assert_eq!(
        pool.notices(),
        [Notice::Drained],
        "the soft kill waiting hears too"
    );
    let (pending, mut back) = retried(&pool, 0);
    pool.dispatch.requeue(vec![pending]);
    assert_eq!(error(&mut back), ErrorKind::Killed);
    let mut late = pool.send(plain());
    assert_eq!(error(&mut late), ErrorKind::ShuttingDown);
    pool.dispatch.close();
    assert_eq!(pool.notices(), [Notice::Drained]);
}

#[test]
fn a_pool_without_workers_fails_fast_until_one_joins() {
    let mut pool = Harness::new(&config());
    let mut queued = pool.send(plain());
    let (pending, mut retry) = retried(&pool, 0);
    pool.dispatch.requeue(vec![pending]);
    pool.dispatch.pool_down(true);
    assert_eq!(error(&mut queued), ErrorKind::NoWorkers);
    assert_eq!(error(&mut retry), ErrorKind::Timeout, "its last error");
    let mut new = pool.send(plain());
    assert_eq!(error(&mut new), ErrorKind::NoWorkers);

    pool.ready(worker(0));
    let mut served = pool.send(plain());
    respond(pool.assigned());
    assert!(matches!(outcome(&mut served), Some(Ok(_))));

    pool.dispatch.pool_down(true);
    pool.dispatch.pool_down(false);
    let _open = pool.send(plain());
    assert_eq!(pool.assigned().len(), 1);
}

#[test]
fn a_batch_that_cannot_be_delivered_goes_to_another_worker() {
    let mut pool = Harness::with_ready(&config(), [0, 1]);
    let _caller = pool.send(plain());
    let mut batches = pool.batches();
    let (&id, _) = batches.iter().next().expect("a batch");
    let batch = batches.remove(&id).expect("a batch");
    pool.dispatch.bounce(id, batch);
    let again = pool.assigned();
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].0, id.slot);
}

#[test]
fn a_worker_that_leaves_before_its_batch_is_sent_gives_it_back() {
    let mut pool = Harness::with_ready(&config(), [0]);
    let mut caller = pool.send(plain());
    pool.dispatch.worker_left(worker(0));
    assert!(pool.batches().is_empty());
    assert_eq!(pool.dispatch.queued(), 1);
    assert!(outcome(&mut caller).is_none());
    pool.ready(worker(1));
    assert_eq!(slots(&pool.assigned()), [1]);
}

#[test]
fn least_pressure_weighs_rss_among_equals() {
    let mut pool = Harness::with_ready(&config(), [0, 1, 2]);
    pool.dispatch.load_sample(worker(0), 300 << 20);
    pool.dispatch.load_sample(worker(1), 100 << 20);
    pool.dispatch.load_sample(worker(2), 200 << 20);
    let _callers: Vec<_> = (0..3).map(|_| pool.send(plain())).collect();
    let picked: Vec<usize> = pool.assigned().iter().map(|(s, _)| *s).collect();
    assert_eq!(
        picked,
        [0, 1, 2],
        "one each: after the first, fewer in flight wins"
    );
    let mut pool = Harness::with_ready(&config(), [0, 1, 2]);
    pool.dispatch.load_sample(worker(0), 300 << 20);
    pool.dispatch.load_sample(worker(1), 100 << 20);
    pool.dispatch.load_sample(worker(2), 200 << 20);
    let _caller = pool.send(plain());
    assert_eq!(slots(&pool.assigned()), [1]);
}

#[test]
fn a_slot_freed_on_another_thread_is_seen_at_the_next_pick() {
    let mut config = config();
    config.max_in_flight = 1;
    let mut pool = Harness::with_ready(&config, [0]);
    let _first = pool.send(plain());
    let held = pool.assigned();
    let _second = pool.send(plain());
    assert_eq!(pool.dispatch.queued(), 1);
    std::thread::spawn(move || respond(held))
        .join()
        .expect("the answering thread");
    pool.dispatch.freed();
    assert_eq!(slots(&pool.assigned()), [0]);
}

#[test]
fn a_custom_strategy_sees_every_eligible_worker_in_slot_order() {
    #[derive(Debug, Clone, Default)]
    struct Last(std::sync::Arc<std::sync::Mutex<Vec<Vec<usize>>>>);
    impl Balance for Last {
        fn pick(&mut self, candidates: &[Candidate]) -> usize {
            let seen = candidates.iter().map(Candidate::slot).collect();
            self.0.lock().unwrap().push(seen);
            candidates.len() - 1
        }
    }
    let strategy = Last::default();
    let mut config = config();
    config.strategy = Strategy::custom(strategy.clone());
    let mut pool = Harness::new(&config);
    for slot in [2, 0, 3, 1] {
        pool.ready(worker(slot));
    }
    pool.dispatch.worker_status(worker(3), WorkerState::Busy);
    let _callers: Vec<_> = (0..2).map(|_| pool.send(plain())).collect();
    assert_eq!(slots(&pool.assigned()), [2, 2]);
    assert_eq!(*strategy.0.lock().unwrap(), [vec![0, 1, 2], vec![0, 1, 2]]);
}

/// Keeps every worker at `in_flight` requests and sends `rounds` more one at
/// a time, each after one answer: the workers read per request.
fn reads_per_request(strategy: Strategy, workers: usize, in_flight: usize) -> f64 {
    let mut config = config();
    config.strategy = strategy;
    config.max_in_flight = in_flight;
    config.queue_capacity = usize::MAX;
    let mut pool = Harness::with_ready(&config, 0..workers);
    let mut callers = Vec::new();
    let mut held = std::collections::VecDeque::new();
    for _ in 0..workers * in_flight {
        callers.push(pool.send(plain()));
    }
    held.extend(pool.assigned());
    let rounds = 1000;
    pool.dispatch.workers.reads = 0;
    for _ in 0..rounds {
        respond(held.pop_front());
        pool.dispatch.freed();
        callers.push(pool.send(plain()));
        held.extend(pool.assigned());
    }
    assert_eq!(held.len(), workers * in_flight, "every worker stays full");
    pool.dispatch.workers.reads as f64 / rounds as f64
}

#[test]
fn dispatch_reads_as_many_workers_per_request_at_256_workers_as_at_2() {
    for strategy in [
        Strategy::LeastPressure,
        Strategy::RoundRobin,
        Strategy::PowerOfTwoChoices { seed: 1 },
    ] {
        let at_2 = reads_per_request(strategy.clone(), 2, 4);
        let at_64 = reads_per_request(strategy.clone(), 64, 4);
        let at_256 = reads_per_request(strategy.clone(), 256, 4);
        assert!(
            at_2 <= 6.0,
            "{strategy:?}: {at_2} reads per request at 2 workers"
        );
        assert!(
            at_64 <= at_2,
            "{strategy:?}: {at_64} at 64 against {at_2} at 2"
        );
        assert!(
            at_256 <= at_2,
            "{strategy:?}: {at_256} at 256 against {at_2} at 2"
        );
    }
    // A custom strategy sees every worker: its cost grows, as documented.
    let custom = Strategy::custom(crate::balance::LeastPressure);
    assert!(reads_per_request(custom, 64, 4) >= 64.0);
}

#[test]
fn a_worker_joining_again_under_its_id_gives_its_unsent_batch_back() {
    let mut pool = Harness::with_ready(&config(), [0]);
    let mut caller = pool.send(plain());
    pool.join(worker(0));
    assert!(pool.batches().is_empty(), "the new one is starting");
    assert_eq!(pool.dispatch.queued(), 1);
    assert!(outcome(&mut caller).is_none());
    pool.dispatch.worker_status(worker(0), WorkerState::Ready);
    assert_eq!(slots(&pool.assigned()), [0]);
}

#[test]
fn a_queued_request_takes_at_most_224_bytes_of_the_queue() {
    // The queue holds requests inline: this is its slot. A trace and a
    // retry's history are boxed (most requests are not traced and make one
    // attempt); the reply channel and the payload live apart.
    assert!(std::mem::size_of::<crate::request::Pending>() <= 224);
}

#[test]
fn observe_counts_idle_and_busy_workers_and_the_oldest_wait() {
    let mut pool = Harness::with_ready(&config(), [0, 1, 2]);
    pool.join(worker(3)); // starting: neither idle nor busy
    let now = lpm_protocol::Timestamp::now();
    let seen = pool.dispatch.observe(now);
    assert_eq!((seen.idle, seen.busy, seen.queued), (3, 0, 0));
    assert_eq!(seen.oldest_wait, None);
    let callers: Vec<_> = (0..2).map(|_| pool.send(plain())).collect();
    let assigned = pool.assigned();
    pool.dispatch.worker_status(worker(2), WorkerState::Busy);
    let seen = pool.dispatch.observe(now);
    assert_eq!((seen.idle, seen.busy, seen.queued), (0, 3, 0));
    // Two workers are full (4 each) and one said busy: the rest queue up.
    let before = lpm_protocol::Timestamp::now();
    let more: Vec<_> = (0..7).map(|_| pool.send(plain())).collect();
    let after = lpm_protocol::Timestamp::now();
    // Stamped between `before` and `after`; looked at 250 ms after `after`.
    let later = lpm_protocol::Timestamp(after.0 + 250_000_000);
    let seen = pool.dispatch.observe(later);
    assert_eq!(seen.queued, 1);
    let waited = seen.oldest_wait.expect("a request is queued");
    let most = Duration::from_nanos(later.0 - before.0);
    assert!(
        waited >= Duration::from_millis(250) && waited <= most,
        "{waited:?}"
    );
    drop((callers, assigned, more));
}

#[test]
fn a_socket_goes_only_to_a_worker_that_takes_descriptors() {
    let mut pool = Harness::with_ready(&config(), [0, 1]);
    pool.dispatch
        .worker_fds(worker(0), Some(crate::Transport::Stdio));
    pool.dispatch.worker_fds(worker(1), None);
    // Slot 1 holds a socket already, yet only it can take one.
    let _held = crate::request::SocketGuard::new(pool.load(worker(1)));
    let _caller = pool.send(with_socket());
    assert_eq!(slots(&pool.assigned()), [1]);
    // Streams still go to either.
    let _stream = pool.send(with_stream());
    assert_eq!(pool.assigned().len(), 1);
}

#[test]
fn a_socket_fails_at_once_when_no_worker_takes_descriptors() {
    let mut pool = Harness::with_ready(&config(), [0]);
    pool.dispatch
        .worker_fds(worker(0), Some(crate::Transport::Stdio));
    let mut caller = pool.send(with_socket());
    assert_eq!(error(&mut caller), ErrorKind::NoFdPassing);
    assert!(pool.assigned().is_empty());
}

#[test]
fn a_queued_socket_fails_once_the_workers_say_they_take_no_descriptors() {
    let mut pool = Harness::new(&config());
    pool.join(worker(0));
    let mut socket = pool.send(with_socket());
    let mut plain_caller = pool.send(plain());
    assert!(
        outcome(&mut socket).is_none(),
        "queued: no worker said hello yet"
    );
    pool.dispatch
        .worker_fds(worker(0), Some(crate::Transport::Stdio));
    assert_eq!(error(&mut socket), ErrorKind::NoFdPassing);
    assert!(outcome(&mut plain_caller).is_none(), "the rest still waits");
    assert_eq!(pool.dispatch.queued(), 1);
}
