//! `Config::max_fds_in_flight`: a request with a socket waits in the queue
//! while its worker has that many descriptors in flight, and goes once one is
//! answered; requests without a descriptor pass it meanwhile, and each kind
//! keeps its order.

use std::future::Future;
use std::pin::Pin;

use lpm::{Config, Pool, PoolError, Response, WorkerCommand};
use lpm_tests::{connection, start_stream_pool, wait_for_health, within, StreamOp, DEADLINE};
use tokio::net::{TcpListener, TcpStream};

type Answer<'a> = Pin<Box<dyn Future<Output = Result<Response, PoolError>> + 'a>>;

async fn pool(max_fds: usize) -> Pool {
    start_stream_pool(
        WorkerCommand::new(env!("CARGO_BIN_EXE_stream_worker")),
        Config::default().workers(1).max_fds_in_flight(max_fds),
    )
    .await
}

/// Hands a fresh connection to the worker, which holds the request until the
/// client closes it; the request has reached the pool when this returns.
async fn hold<'a>(pool: &'a Pool, listener: &TcpListener) -> (TcpStream, Answer<'a>) {
    let (client, request) = connection(listener, &StreamOp::HoldUntilClosed).await;
    let mut answer: Answer<'a> = Box::pin(pool.send(request));
    // The first poll hands the request to the pool.
    assert!(futures::poll!(answer.as_mut()).is_pending());
    (client, answer)
}

/// How many requests the worker holds, this one included.
async fn held(pool: &Pool) -> u64 {
    within("the Held answer", pool.enqueue(&StreamOp::Held))
        .await
        .unwrap()
        .data()
        .unwrap()
}

async fn wait_in_flight(pool: &Pool, n: usize) {
    let what = format!("{n} requests in flight");
    wait_for_health(pool, &what, DEADLINE, |h| h[0].in_flight == n).await;
}

#[actix_rt::test]
async fn a_socket_request_over_the_limit_waits_until_one_is_answered() {
    let pool = pool(2).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (first, first_answer) = hold(&pool, &listener).await;
    let (_second, _second_answer) = hold(&pool, &listener).await;
    wait_in_flight(&pool, 2).await;

    let (third, third_answer) = hold(&pool, &listener).await;
    // Sent after the third: had the third gone to the worker, the worker
    // would hold four requests here.
    assert_eq!(
        held(&pool).await,
        3,
        "the third request must wait in the queue"
    );

    drop(first);
    assert!(within("the first ack", first_answer)
        .await
        .unwrap()
        .is_ack());
    wait_in_flight(&pool, 2).await;
    assert_eq!(held(&pool).await, 3, "the third request now holds the slot");
    drop(third);
    assert!(within("the third ack", third_answer)
        .await
        .unwrap()
        .is_ack());
    pool.hard_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn socket_requests_waiting_for_a_slot_keep_their_order() {
    let pool = pool(1).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (first, first_answer) = hold(&pool, &listener).await;
    wait_in_flight(&pool, 1).await;
    let (second, second_answer) = hold(&pool, &listener).await;
    let (third, third_answer) = hold(&pool, &listener).await;
    assert_eq!(held(&pool).await, 2, "the others wait for the slot");

    // Each close frees the slot for the next in line: the second, then the third.
    drop(first);
    assert!(within("the first ack", first_answer)
        .await
        .unwrap()
        .is_ack());
    drop(second);
    assert!(within("the second ack", second_answer)
        .await
        .unwrap()
        .is_ack());
    drop(third);
    assert!(within("the third ack", third_answer)
        .await
        .unwrap()
        .is_ack());
    pool.hard_kill().await.expect("the pool is running");
}
