//! What a response carries: the request's id, its creation time, and the
//! worker that answered.

use std::time::{Duration, SystemTime};

use lpm::PoolError;

use lpm_tests::{call, config, health, online, process_alive, start, test_worker, Op, Seen};

/// The id is a v4 UUID and the one the worker saw; created_at is the
/// enqueue time; pid is a live worker of this pool.
#[actix_rt::test]
async fn response_carries_id_created_at_and_pid() {
    let (pool, _events) = start(test_worker!(), config(2));
    online(&pool).await;
    let before = SystemTime::now();
    let (seen, response): (Seen, _) = call(&pool, &Op::Inspect).await;
    let after = SystemTime::now();

    assert_eq!(
        response.id().get_version_num(),
        4,
        "id {} is a v4 UUID",
        response.id()
    );
    assert_eq!(response.id(), seen.id, "the worker saw the same id");

    let created = response.created_at();
    assert!(
        before - Duration::from_millis(1) <= created && created <= after,
        "created_at {created:?} not within the enqueue call [{before:?}, {after:?}]"
    );
    assert_eq!(
        created, seen.created_at,
        "the worker saw the same created_at"
    );

    assert_eq!(response.pid(), seen.pid, "pid is the worker that answered");
    assert!(process_alive(response.pid()));
    let h = health(&pool).await;
    let slot = h
        .iter()
        .find(|w| w.pid == Some(response.pid()))
        .unwrap_or_else(|| panic!("pid {} is not a worker of the pool: {h:#?}", response.pid()));
    assert_eq!(response.slot(), slot.slot);
    assert_eq!(seen.slot as usize, slot.slot);
    pool.soft_kill().await.expect("the pool is running");
}

/// Each request gets its own id.
#[actix_rt::test]
async fn every_request_has_its_own_id() {
    let (pool, _events) = start(test_worker!(), config(2));
    online(&pool).await;
    let answers = futures::future::join_all((0..50).map(|_| pool.enqueue(&Op::Pid))).await;
    let ids: std::collections::HashSet<_> = answers
        .into_iter()
        .map(|a| a.expect("request succeeds").id())
        .collect();
    assert_eq!(ids.len(), 50);
    pool.soft_kill().await.expect("the pool is running");
}

/// A worker's ack answers without a payload.
#[actix_rt::test]
async fn ack_answers_without_payload() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    let response = pool.enqueue(&Op::Ack).await.expect("ack succeeds");
    assert!(response.is_ack());
    assert!(response.bytes().is_empty());
    let echoed = pool
        .enqueue(&Op::Echo(vec![1, 2, 3]))
        .await
        .expect("echo succeeds");
    assert!(!echoed.is_ack());
    assert_eq!(echoed.data::<Vec<u8>>(), Ok(vec![1, 2, 3]));
    pool.soft_kill().await.expect("the pool is running");
}

/// Decoding an answer as the wrong type is a Decode error naming the type.
#[actix_rt::test]
async fn decoding_as_the_wrong_type_is_a_decode_error() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    let response = pool
        .enqueue(&Op::Echo(vec![]))
        .await
        .expect("echo succeeds");
    match response.data::<Seen>() {
        Err(PoolError::Decode { type_name, .. }) => {
            assert!(type_name.contains("Seen"), "{type_name}");
        }
        other => panic!("expected Decode, got {other:?}"),
    }
    pool.soft_kill().await.expect("the pool is running");
}

/// The typed actix message works as well as `Pool::send`: sent straight to
/// the balancer, it answers with the same kind of response.
#[actix_rt::test]
async fn the_enqueue_actix_message_answers_like_pool_send() {
    let (pool, _events) = start(test_worker!(), config(1));
    online(&pool).await;
    let request = lpm::Enqueue::new(&Op::Echo(vec![7, 8])).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), pool.balancer().send(request))
        .await
        .expect("no answer within 10 s")
        .expect("the balancer's mailbox is closed")
        .expect("the request failed");
    assert_eq!(response.data::<Vec<u8>>().unwrap(), [7, 8]);
    assert!(process_alive(response.pid()));
    pool.soft_kill().await.expect("the pool is running");
}
