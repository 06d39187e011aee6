//! `FrameSink` and `FrameStream` over a real socketpair: many frames with one
//! flush arrive whole and in order, EOF ends the stream, and EOF inside a
//! frame is `Error::Truncated`.

mod common;

use std::sync::Arc;

use common::{every_to_supervisor, without_fds};
use lpm_protocol::{frame, Error, FrameSink, FrameStream, ToSupervisor, DEFAULT_MAX_FRAME_LEN};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

#[tokio::test]
async fn many_frames_one_flush_arrive_in_batches_then_eof() {
    let (a, b) = UnixStream::pair().unwrap();
    let mut sink = FrameSink::new(Arc::new(a), DEFAULT_MAX_FRAME_LEN);
    let mut stream = FrameStream::<ToSupervisor>::new(Arc::new(b), DEFAULT_MAX_FRAME_LEN);

    let sent: Vec<ToSupervisor> = without_fds(every_to_supervisor())
        .into_iter()
        .cycle()
        .take(50_000)
        .collect();
    for msg in &sent {
        sink.push(msg).unwrap();
    }
    // More than the socket buffer holds: the flush has to wait for the reader.
    assert!(
        !sink.try_flush().unwrap(),
        "the socket took everything at once"
    );

    let write = async move {
        sink.flush().await.unwrap();
        assert_eq!(sink.pending(), 0);
        // Dropping the sink drops the last handle on its end: the reader sees EOF.
    };
    let read = async {
        let mut batches = Vec::new();
        while let Some(batch) = stream.next_batch().await {
            batches.push(batch.unwrap());
        }
        batches
    };
    let ((), batches) = tokio::join!(write, read);

    assert!(batches.iter().all(|b| !b.is_empty()), "an empty batch");
    assert!(
        batches.len() < sent.len(),
        "{} batches for {} messages: nothing was batched",
        batches.len(),
        sent.len()
    );
    let received: Vec<ToSupervisor> = batches.into_iter().flatten().collect();
    assert_eq!(received.len(), sent.len());
    assert!(received == sent, "messages arrived changed or out of order");
    assert!(
        stream.next_batch().await.is_none(),
        "the stream went on after EOF"
    );
}

/// Writes `bytes` raw to one end, closes it, and collects what the other end yields.
async fn read_after_close(bytes: &[u8]) -> Vec<Result<Vec<ToSupervisor>, Error>> {
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(bytes).await.unwrap();
    drop(a);
    let mut stream = FrameStream::<ToSupervisor>::new(Arc::new(b), DEFAULT_MAX_FRAME_LEN);
    let mut items = Vec::new();
    while let Some(item) = stream.next_batch().await {
        items.push(item);
    }
    items
}

#[tokio::test]
async fn eof_inside_a_body_is_truncated() {
    let mut bytes = frame(&ToSupervisor::Ready, DEFAULT_MAX_FRAME_LEN).unwrap();
    let failed = ToSupervisor::Failed {
        id: uuid::Uuid::nil(),
        message: "cut short".into(),
    };
    let cut = frame(&failed, DEFAULT_MAX_FRAME_LEN).unwrap();
    bytes.extend_from_slice(&cut[..cut.len() - 3]);

    let items = read_after_close(&bytes).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap(), &[ToSupervisor::Ready]);
    match &items[1] {
        Err(Error::Truncated { buffered }) => assert_eq!(*buffered, cut.len() - 3),
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[tokio::test]
async fn eof_inside_a_header_is_truncated() {
    let items = read_after_close(&[5, 0]).await;
    assert!(
        matches!(items[..], [Err(Error::Truncated { buffered: 2 })]),
        "{items:?}"
    );
}

#[tokio::test]
async fn eof_at_a_frame_boundary_ends_cleanly() {
    let items = read_after_close(&[]).await;
    assert!(items.is_empty(), "{items:?}");
}

/// Frames that arrived before a malformed one are still delivered, then the
/// error, then nothing: a response the worker did send must not be lost.
#[tokio::test]
async fn malformed_frame_ends_the_stream_after_the_good_ones() {
    let mut bytes = frame(&ToSupervisor::Busy, DEFAULT_MAX_FRAME_LEN).unwrap();
    bytes.extend_from_slice(&[1, 0, 0, 0, 9]); // variant 9 does not exist
    bytes.extend_from_slice(&frame(&ToSupervisor::Ready, DEFAULT_MAX_FRAME_LEN).unwrap());
    let items = read_after_close(&bytes).await;
    assert!(
        matches!(&items[..], [Ok(first), Err(Error::Malformed { .. })] if first == &[ToSupervisor::Busy]),
        "{items:?}"
    );
}
