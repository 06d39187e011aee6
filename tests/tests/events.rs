//! Custom events both ways: broadcasts to the workers, and events the
//! workers emit, with a reply when they await one.

use std::collections::HashSet;

use lpm::PoolEvent;
use lpm_tests::{
    call, config, health, online, pids, recv_n_or_fail, recv_or_fail, start, test_worker, Op, ASK,
    DEADLINE, PING, PONG,
};

/// A broadcast reaches every worker: each answers with a pong carrying its pid.
#[actix_rt::test]
async fn broadcast_reaches_every_worker() {
    let (pool, mut events) = start(test_worker!(), config(4));
    online(&pool).await;
    let workers: HashSet<u32> = pids(&health(&pool).await).into_iter().collect();
    assert_eq!(pool.broadcast(PING, &()).await, Ok(4), "4 workers reached");
    let pongs = recv_n_or_fail(
        &mut events,
        "pong",
        4,
        DEADLINE,
        |e| matches!(e, PoolEvent::Custom(c) if c.name() == PONG),
    )
    .await;
    let mut from = HashSet::new();
    for pong in pongs {
        let PoolEvent::Custom(c) = pong else {
            unreachable!()
        };
        assert_eq!(
            c.data::<u32>(),
            Ok(c.pid()),
            "the payload is the sender's pid"
        );
        assert!(!c.wants_reply());
        from.insert(c.pid());
    }
    assert_eq!(from, workers, "one pong from each worker");
    pool.soft_kill().await.expect("the pool is running");
}

/// Waits for the worker's `ASK` event.
async fn next_ask(events: &mut lpm::EventStream) -> lpm::CustomEvent {
    let event = recv_or_fail(
        events,
        "the ask event",
        DEADLINE,
        |e| matches!(e, PoolEvent::Custom(c) if c.name() == ASK),
    )
    .await;
    let PoolEvent::Custom(c) = event else {
        unreachable!("recv_or_fail returned an event its predicate refused")
    };
    c
}

/// A worker's emit_with_reply gets the reply a subscriber sends.
#[actix_rt::test]
async fn emit_with_reply_round_trips() {
    let (pool, mut events) = start(test_worker!(), config(1));
    online(&pool).await;
    let op = Op::Ask("hello".into());
    let ask = pool.enqueue(&op);
    let answer_the_question = async {
        let c = next_ask(&mut events).await;
        assert!(c.wants_reply());
        let question: String = c.data().unwrap();
        c.reply(&question.to_uppercase())
            .expect("the reply is delivered");
        assert!(c.reply(&"twice").is_err(), "a second reply is refused");
    };
    let (answer, ()) = futures::join!(ask, answer_the_question);
    let answer: Result<String, String> = answer.expect("the request succeeds").data().unwrap();
    assert_eq!(answer, Ok("HELLO".to_owned()));
    pool.soft_kill().await.expect("the pool is running");
}

/// When the subscriber drops an event without replying, the worker's
/// emit_with_reply fails instead of waiting forever.
#[actix_rt::test]
async fn an_emit_dropped_without_reply_fails_in_the_worker() {
    let (pool, mut events) = start(test_worker!(), config(1));
    online(&pool).await;
    let op = Op::Ask("anyone?".into());
    let ask = pool.enqueue(&op);
    let ignore_the_question = async {
        drop(next_ask(&mut events).await);
    };
    let (answer, ()) =
        tokio::time::timeout(DEADLINE, async { futures::join!(ask, ignore_the_question) })
            .await
            .expect("the worker does not hang on an emit nobody answers");
    let answer: Result<String, String> = answer.expect("the request succeeds").data().unwrap();
    let error = answer.expect_err("no reply was given");
    assert!(error.contains("no subscriber"), "{error}");
    pool.soft_kill().await.expect("the pool is running");
}

/// With no subscriber at all, emit_with_reply fails at once too.
#[actix_rt::test]
async fn an_emit_with_no_subscriber_fails_in_the_worker() {
    let (pool, events) = start(test_worker!(), config(1));
    drop(events);
    online(&pool).await;
    let (answer, _): (Result<String, String>, _) = call(&pool, &Op::Ask("anyone?".into())).await;
    let error = answer.expect_err("no reply was given");
    assert!(error.contains("no subscriber"), "{error}");
    pool.soft_kill().await.expect("the pool is running");
}

/// Collects the pool events an actor receives, for the subscribe test.
struct Collector(tokio::sync::mpsc::UnboundedSender<PoolEvent>);

impl actix::Actor for Collector {
    type Context = actix::Context<Self>;
}

impl actix::Handler<PoolEvent> for Collector {
    type Result = ();

    fn handle(&mut self, event: PoolEvent, _ctx: &mut actix::Context<Self>) {
        let _ = self.0.send(event);
    }
}

/// An actor subscribed with `Pool::subscribe` receives the pool's events.
#[actix_rt::test]
async fn a_subscribed_actor_receives_the_events() {
    use actix::Actor;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let collector = Collector(tx).start();
    let pool = lpm::Pool::start(test_worker!(), config(2));
    pool.subscribe(collector.recipient());
    let mut spawned = HashSet::new();
    let mut online_seen = false;
    while !(online_seen && spawned.len() == 2) {
        let event = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("subscriber missed events: spawned {spawned:?}, online {online_seen}")
            })
            .expect("collector stopped");
        match event {
            PoolEvent::ChildSpawned { pid, .. } => {
                spawned.insert(pid);
            }
            PoolEvent::Online => online_seen = true,
            _ => {}
        }
    }
    pool.soft_kill().await.expect("the pool is running");
}
