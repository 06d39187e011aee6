//! The supervisor leaks no descriptor: its count of open descriptors is the
//! same before and after 1,000 stream and socket requests.

use lpm::{Config, Enqueue, WorkerCommand};
use lpm_tests::{
    assert_no_fd_leaked, connection, hash_reader, open_fds, start_stream_pool, wait_for_health,
    within, PatternReader, StreamOp, DEADLINE,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[actix_rt::test]
async fn a_thousand_stream_and_socket_requests_leak_no_descriptor() {
    let pool = start_stream_pool(
        WorkerCommand::new(env!("CARGO_BIN_EXE_stream_worker")),
        Config::default().workers(2),
    )
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // One of each first, so lazily opened descriptors (tokio's blocking
    // pool, the runtime's own) are counted in the baseline.
    let warm = Enqueue::new(&StreamOp::Hash)
        .unwrap()
        .stream(PatternReader::new(10));
    within("warm-up", pool.send(warm)).await.unwrap();
    let before = open_fds();

    for i in 0..1000u64 {
        match i % 3 {
            0 => {
                let request = Enqueue::new(&StreamOp::Hash)
                    .unwrap()
                    .stream(PatternReader::new(1000 + i));
                within("a stream request", pool.send(request))
                    .await
                    .unwrap();
            }
            1 => {
                let response = within(
                    "a stream response",
                    pool.enqueue(&StreamOp::Generate { len: i }),
                )
                .await
                .unwrap();
                let digest = hash_reader(response.take_stream().unwrap()).await.unwrap();
                assert_eq!(digest.len, i);
            }
            _ => {
                let (client, request) = connection(&listener, &StreamOp::Serve).await;
                within("a socket request", pool.send(request))
                    .await
                    .unwrap();
                let (read, mut write) = client.into_split();
                write.write_all(b"hi\n").await.unwrap();
                let mut lines = BufReader::new(read).lines();
                within("an answer", lines.next_line())
                    .await
                    .unwrap()
                    .unwrap();
            }
        }
    }
    wait_for_health(&pool, "every socket to be closed", DEADLINE, |h| {
        h.iter().all(|w| w.sockets == 0 && w.in_flight == 0)
    })
    .await;
    assert_no_fd_leaked(before).await;
    pool.hard_kill().await.expect("the pool is running");
}
