//! Byte streams both ways, passed as descriptors: exact content (by
//! SHA-256) for 0 bytes, 1 byte and 64 MiB, slow readers on either side, a
//! worker that dies mid-stream, and the retry rule.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lpm::{Config, Enqueue, PoolError, WorkerCommand};
use lpm_tests::{
    hash_reader, pattern_bytes, sha256_hex, start_stream_pool, within, Counted, Digest,
    PatternReader, StreamOp,
};
use tokio::io::AsyncReadExt;

const MIB: u64 = 1024 * 1024;

fn command() -> WorkerCommand {
    WorkerCommand::new(env!("CARGO_BIN_EXE_stream_worker"))
}

fn expected(len: u64) -> Digest {
    Digest {
        len,
        sha256: sha256_hex(&pattern_bytes(len)),
    }
}

#[actix_rt::test]
async fn request_streams_of_0_1_and_64_mib_arrive_whole() {
    let pool = start_stream_pool(command(), Config::default().workers(2)).await;
    for len in [0, 1, 64 * MIB] {
        let request = Enqueue::new(&StreamOp::Hash)
            .unwrap()
            .stream(PatternReader::new(len));
        let response = within("a hashed request stream", pool.send(request))
            .await
            .unwrap();
        let digest: Digest = response.data().unwrap();
        assert_eq!(digest, expected(len), "stream of {len} bytes");
    }
    pool.hard_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_file_is_passed_as_its_own_descriptor() {
    let pool = start_stream_pool(command(), Config::default()).await;
    let mut file = tempfile::tempfile().unwrap();
    let content = pattern_bytes(300_000);
    file.write_all(&content).unwrap();
    std::io::Seek::rewind(&mut file).unwrap();
    let request = Enqueue::new(&StreamOp::Hash).unwrap().file(file);
    let digest: Digest = within("a hashed file", pool.send(request))
        .await
        .unwrap()
        .data()
        .unwrap();
    assert_eq!(digest, expected(300_000));
    pool.hard_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn response_streams_of_0_1_and_64_mib_arrive_whole() {
    let pool = start_stream_pool(command(), Config::default().workers(2)).await;
    for len in [0, 1, 64 * MIB] {
        let response = within(
            "a streamed response",
            pool.enqueue(&StreamOp::Generate { len }),
        )
        .await
        .unwrap();
        assert!(response.has_stream());
        assert_eq!(response.data::<u64>().unwrap(), len);
        let stream = response.take_stream().expect("the response has a stream");
        assert!(response.take_stream().is_none(), "taken once");
        let digest = within("the response stream", hash_reader(stream))
            .await
            .unwrap();
        assert_eq!(digest, expected(len), "stream of {len} bytes");
    }
    pool.hard_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_slow_worker_reads_at_its_pace() {
    // 2 MiB read 64 KiB at a time with pauses: the pump waits on the pipe
    // (a generated stream, so nothing is buffered but the pipe).
    let pool = start_stream_pool(command(), Config::default()).await;
    let len = 2 * MIB;
    let request = Enqueue::new(&StreamOp::SlowHash {
        every: 64 * 1024,
        ms: 5,
    })
    .unwrap()
    .stream(PatternReader::new(len));
    let digest: Digest = within("a slowly read stream", pool.send(request))
        .await
        .unwrap()
        .data()
        .unwrap();
    assert_eq!(digest, expected(len));
    pool.hard_kill().await.expect("the pool is running");
}

/// A worker that stops reading stops the pump: of a 64 MiB stream, the
/// supervisor reads no more than the pipe and its buffer hold beyond what
/// the worker took.
#[actix_rt::test]
async fn a_worker_that_stops_reading_stops_the_caller_reader() {
    let pool = start_stream_pool(command(), Config::default()).await;
    let yielded = Arc::new(AtomicU64::new(0));
    let taken = 100_000;
    let request = Enqueue::new(&StreamOp::ReadThenHold { bytes: taken })
        .unwrap()
        .stream(Counted(PatternReader::new(64 * MIB), Arc::clone(&yielded)));
    let pending = pool.send(request);
    tokio::pin!(pending);
    // The worker holds the request forever; give the pump time to run ahead.
    let early = tokio::time::timeout(Duration::from_millis(500), &mut pending).await;
    assert!(early.is_err(), "{early:?}");
    let ahead = yielded.load(Ordering::Relaxed) - taken;
    println!("the pump is {ahead} bytes ahead of the worker");
    // A pipe holds 64 KiB by default (1 MiB at most), the pump 64 KiB more.
    assert!(
        ahead <= 2 * MIB,
        "the pump read {ahead} bytes ahead of the worker"
    );
    pool.hard_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_slow_caller_reads_at_its_pace_and_the_worker_waits() {
    let pool = start_stream_pool(command(), Config::default()).await;
    let len = 4 * MIB;
    let response = within(
        "a streamed response",
        pool.enqueue(&StreamOp::Generate { len }),
    )
    .await
    .unwrap();
    let mut stream = response.take_stream().unwrap();
    let mut all = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = within("a chunk", stream.read(&mut buf)).await.unwrap();
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
        // While we dawdle, the request is still in flight on the worker.
        if all.len() < MIB as usize {
            let health = pool.health().await.unwrap();
            assert_eq!(health[0].in_flight, 1, "in flight until the stream ends");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(all.len() as u64, len);
    lpm_tests::wait_for_health(
        &pool,
        "the stream request to leave",
        lpm_tests::DEADLINE,
        |h| h[0].in_flight == 0,
    )
    .await;
    assert_eq!(sha256_hex(&all), expected(len).sha256);
    pool.hard_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_worker_dying_mid_response_stream_fails_the_reader() {
    let pool = start_stream_pool(command(), Config::default()).await;
    let response = within(
        "a streamed response",
        pool.enqueue(&StreamOp::GenerateThenExit { bytes: 100_000 }),
    )
    .await
    .unwrap();
    let stream = response.take_stream().unwrap();
    let err = within("the cut stream", hash_reader(stream))
        .await
        .expect_err("a cut stream must not end cleanly");
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    assert!(err.to_string().contains("died"), "{err}");
    pool.hard_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_worker_dying_mid_request_stream_fails_the_request() {
    let pool = start_stream_pool(command(), Config::default()).await;
    let request = Enqueue::new(&StreamOp::ReadThenExit { bytes: 10_000 })
        .unwrap()
        .stream(PatternReader::new(MIB));
    let err = within("the failed request", pool.send(request))
        .await
        .unwrap_err();
    assert!(matches!(err, PoolError::WorkerDied { .. }), "{err}");
    pool.hard_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_partly_consumed_stream_is_never_resent() {
    // Retries left, but the stream was handed over: NotRetried, naming the death.
    let pool = start_stream_pool(command(), Config::default().workers(2).retries(3)).await;
    let request = Enqueue::new(&StreamOp::ReadThenExit { bytes: 10_000 })
        .unwrap()
        .stream(PatternReader::new(MIB));
    let err = within("the failed request", pool.send(request))
        .await
        .unwrap_err();
    match err {
        PoolError::NotRetried { what, cause } => {
            assert_eq!(what, "stream");
            assert!(matches!(*cause, PoolError::WorkerDied { .. }), "{cause}");
        }
        other => panic!("expected NotRetried, got {other}"),
    }
    pool.hard_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_descriptor_of_the_wrong_kind_fails_with_a_typed_error() {
    let pool = start_stream_pool(command(), Config::default()).await;
    // A pipe is not a connection.
    let (r, _w) = lpm_protocol::pipe().unwrap();
    let not_a_socket = std::os::unix::net::UnixStream::from(r);
    let request = Enqueue::new(&StreamOp::Serve).unwrap().unix(not_a_socket);
    let err = within("the refused request", pool.send(request))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PoolError::Descriptor { what: "socket", .. }),
        "{err}"
    );
    // The worker is still fine.
    let response = within(
        "a stream after",
        pool.enqueue(&StreamOp::Generate { len: 5 }),
    )
    .await
    .unwrap();
    assert_eq!(response.data::<u64>().unwrap(), 5);
    pool.hard_kill().await.expect("the pool is running");
}
