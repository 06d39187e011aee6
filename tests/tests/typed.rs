//! Typed calls end to end (`typed_worker`): a request type names its reply
//! type, the worker routes by the call's name, unserved calls fail with
//! `NotHandled` both ways, typed events go both ways, the JSON codec carries
//! `serde_json::Value`, a codec mismatch is refused at the handshake, and an
//! actix actor forwards typed calls through a `Recipient`.

use actix::prelude::*;
use lpm::prelude::*;
use lpm::WorkerCommand as Command;
use lpm_tests::typed::{
    AskTime, Cancelled, CountPrimes, Keys, Reload, Reloaded, Reverse, Summarise, Summary, Unserved,
    WaitForCancel, Waiting, WhatTime,
};
use lpm_tests::{config, health, online, recv_or_fail, start, wait_until, within, DEADLINE};

fn typed_worker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_typed_worker"))
}

#[actix_rt::test]
async fn three_call_types_round_trip_on_one_worker() {
    let (pool, _events) = start(typed_worker(), config(1));
    online(&pool).await;
    let primes: u64 = within("count_primes", pool.call(CountPrimes { below: 100 }))
        .await
        .unwrap();
    assert_eq!(primes, 25);
    let reversed: String = within("reverse", pool.call(Reverse("lpm".into())))
        .await
        .unwrap();
    assert_eq!(reversed, "mpl");
    let summary = within("summarise", pool.call(Summarise(vec![3.0, -1.0, 2.5])))
        .await
        .unwrap();
    assert_eq!(
        summary,
        Summary {
            count: 3,
            min: -1.0,
            max: 3.0
        }
    );
    // The untyped fallback still serves requests without a call.
    let echoed: String = within("the untyped echo", pool.enqueue("plain"))
        .await
        .unwrap()
        .data()
        .unwrap();
    assert_eq!(echoed, "plain");
    assert_eq!(health(&pool).await[0].served, 4);
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn per_request_options_and_the_whole_response_come_with_the_typed_form() {
    let (pool, _events) = start(typed_worker(), config(1));
    online(&pool).await;
    let request = Enqueue::call(Reverse("abc".into()))
        .timeout(std::time::Duration::from_secs(5))
        .retries(1)
        .with_response();
    let (reply, response) = within("reverse", pool.send(request)).await.unwrap();
    assert_eq!(reply, "cba");
    assert_eq!(response.reply::<Reverse>().unwrap(), "cba");
    assert_eq!(Some(response.pid()), health(&pool).await[0].pid);
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn a_call_no_worker_serves_fails_at_once_without_being_sent() {
    let (pool, _events) = start(typed_worker(), config(2));
    online(&pool).await;
    let err = within("the refusal", pool.call(Unserved))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PoolError::NotHandled {
            name: "unserved".into()
        }
    );
    // The same for untyped bytes routed by name.
    let raw = Enqueue::from_bytes(Vec::new()).named("unserved");
    let err = within("the refusal", pool.send(raw)).await.unwrap_err();
    assert!(matches!(err, PoolError::NotHandled { name } if name == "unserved"));
    let health = health(&pool).await;
    assert!(health.iter().all(|w| w.served == 0 && w.in_flight == 0));
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn a_call_the_workers_do_not_announce_is_refused_and_the_others_served() {
    let (pool, _events) = start(typed_worker().arg("--without-reverse"), config(1));
    online(&pool).await;
    let err = within("the refusal", pool.call(Reverse("x".into())))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PoolError::NotHandled {
            name: "reverse".into()
        }
    );
    let primes = within("count_primes", pool.call(CountPrimes { below: 10 })).await;
    assert_eq!(primes.unwrap(), 4, "the worker serves its other calls");
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn a_worker_that_answers_not_handled_fails_the_call_with_not_handled() {
    let command = Command::new(env!("CARGO_BIN_EXE_hostile_worker")).arg("not-handled");
    let (pool, mut events) = start(command, config(1));
    online(&pool).await;
    let request = Enqueue::from_bytes(vec![1, 2, 3]).named("echo");
    let err = within("the answer", pool.send(request)).await.unwrap_err();
    assert_eq!(
        err,
        PoolError::NotHandled {
            name: "echo".into()
        }
    );
    // A legal answer: the worker is not killed for it.
    let pid = health(&pool).await[0].pid;
    pool.soft_kill().await.unwrap();
    let killed = lpm_tests::drain_now(&mut events)
        .into_iter()
        .any(|e| matches!(e, PoolEvent::WorkerKilled { .. }));
    assert!(
        !killed,
        "worker {pid:?} was killed for answering NotHandled"
    );
}

#[actix_rt::test]
async fn the_json_codec_carries_serde_json_values() {
    let (pool, _events) = start(typed_worker(), config(1).codec(Codec::Json));
    online(&pool).await;
    assert_eq!(pool.codec(), Codec::Json);
    let value = serde_json::json!({ "Hello": "World", "n": [1, 2] });
    let keys = within("keys", pool.call(Keys(value.clone())))
        .await
        .unwrap();
    assert_eq!(keys, ["Hello", "n"]);
    // Untyped, as the seed sends it: `{Hello: "World"}`.
    let response = within("the echo", pool.enqueue(&value)).await.unwrap();
    assert_eq!(response.bytes(), br#"{"Hello":"World","n":[1,2]}"#);
    assert_eq!(response.data::<serde_json::Value>().unwrap(), value);
    // Postcard bytes in a JSON pool are refused before they reach a worker.
    let postcard = Enqueue::new(&value).unwrap();
    let err = within("the refusal", pool.send(postcard))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PoolError::CodecMismatch {
            pool: Codec::Json,
            payload: Codec::Postcard
        }
    );
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn a_worker_with_another_codec_is_refused_at_the_handshake() {
    let config = config(1).max_restarts(1);
    let (pool, mut events) = start(typed_worker().arg("--pin-json"), config);
    let event = recv_or_fail(&mut events, "the worker killed", DEADLINE, |e| {
        matches!(e, PoolEvent::WorkerKilled { .. })
    })
    .await;
    let PoolEvent::WorkerKilled { reason, .. } = event else {
        unreachable!()
    };
    assert_eq!(
        reason,
        KillReason::CodecMismatch {
            pool: Codec::Postcard,
            worker: Codec::Json
        }
    );
    let online = within("online to fail", pool.online()).await;
    assert!(
        matches!(online, Err(PoolError::RestartLimit { .. })),
        "{online:?}"
    );
    pool.hard_kill().await.unwrap();
}

#[actix_rt::test]
async fn typed_events_go_both_ways() {
    let (pool, mut events) = start(typed_worker(), config(2));
    online(&pool).await;
    let reached = within(
        "publish",
        pool.publish(&Reload {
            config: "v2".into(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(reached, 2);
    let mut pids = Vec::new();
    for _ in 0..2 {
        let custom = next_custom::<Reloaded>(&mut events).await;
        assert!(custom.decode::<Reload>().is_none(), "another event's type");
        let reloaded = custom.decode::<Reloaded>().unwrap().unwrap();
        assert_eq!(reloaded.config, "v2");
        assert_eq!(reloaded.pid, custom.pid());
        pids.push(reloaded.pid);
    }
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 2, "each worker answered once");
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn a_worker_asks_and_gets_a_typed_answer() {
    let (pool, mut events) = start(typed_worker(), config(1));
    online(&pool).await;
    let call = pool.call(AskTime);
    let answering = async {
        let custom = next_custom::<WhatTime>(&mut events).await;
        assert!(custom.wants_reply());
        custom.answer::<WhatTime>(&1_700_000_000).unwrap();
    };
    let (answer, ()) = within("the call", futures::future::join(call, answering)).await;
    assert_eq!(answer.unwrap(), 1_700_000_000);
    pool.soft_kill().await.unwrap();
}

/// The next custom event `E` the pool publishes; fails the test if none
/// comes within [`DEADLINE`].
async fn next_custom<E: Topic>(events: &mut lpm::EventStream) -> CustomEvent {
    let event = recv_or_fail(
        events,
        E::NAME,
        DEADLINE,
        |e| matches!(e, PoolEvent::Custom(c) if c.is::<E>()),
    )
    .await;
    let PoolEvent::Custom(custom) = event else {
        unreachable!()
    };
    custom
}

/// An actor of the application's that forwards counting to the pool.
struct Census {
    primes: Recipient<Enqueue<CountPrimes>>,
}

impl Actor for Census {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "Result<u64, PoolError>")]
struct HowMany(u64);

impl Handler<HowMany> for Census {
    type Result = ResponseFuture<Result<u64, PoolError>>;

    fn handle(&mut self, msg: HowMany, _: &mut Context<Self>) -> Self::Result {
        let request = self
            .primes
            .send(Enqueue::call(CountPrimes { below: msg.0 }));
        Box::pin(async move { request.await.map_err(|_| PoolError::PoolStopped)? })
    }
}

#[actix_rt::test]
async fn an_actor_forwards_typed_calls_through_a_recipient() {
    let (pool, _events) = start(typed_worker(), config(2));
    online(&pool).await;
    let census = Census {
        primes: pool.recipient(),
    }
    .start();
    let answers = futures::future::join_all((0..8).map(|i| census.send(HowMany(10 + i)))).await;
    let primes: Vec<u64> = answers.into_iter().map(|a| a.unwrap().unwrap()).collect();
    assert_eq!(primes, [4, 4, 5, 5, 6, 6, 6, 6]);
    // A mismatched reply type does not compile: `Recipient<Enqueue<CountPrimes>>`
    // answers `Result<u64, PoolError>` (see the `compile_fail` doc test of `Pool::call`).
    pool.soft_kill().await.unwrap();
}

#[actix_rt::test]
async fn dropping_a_recipients_request_cancels_the_call() {
    let (pool, mut events) = start(typed_worker(), config(1));
    online(&pool).await;
    let waits: Recipient<Enqueue<WaitForCancel>> = pool.recipient();
    // actix queues the message when `send` is called; the request future
    // only waits for the answer. Drop it once the worker's handler runs.
    let request = waits.send(Enqueue::call(WaitForCancel));
    let started = next_custom::<Waiting>(&mut events).await;
    let waiting = started.decode::<Waiting>().unwrap().unwrap();
    drop(request);
    let custom = next_custom::<Cancelled>(&mut events).await;
    let cancelled = custom.decode::<Cancelled>().unwrap().unwrap();
    assert_eq!(cancelled.id, waiting.id);
    wait_until("the slot is free", DEADLINE, || {
        let pool = pool.clone();
        async move { health(&pool).await[0].in_flight == 0 }
    })
    .await;
    let report = pool.soft_kill().await.unwrap();
    assert_eq!(report.failed, 0, "a cancelled call counts as neither");
}
