//! Descriptors passed with frames over a real socketpair: each lands on the
//! frame that declared it, among plain frames and across batches; they are
//! close-on-exec; a frame that declares one without it ends the stream.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use lpm_protocol::{
    frame, pipe, Error, Fd, FdKind, FrameSink, FrameStream, RequestFrame, Timestamp, ToWorker,
    DEFAULT_MAX_FRAME_LEN,
};
use tokio::net::UnixStream;

fn request_with(n: u8, fd: OwnedFd) -> ToWorker {
    ToWorker::RequestWithFd {
        request: RequestFrame {
            id: uuid::Uuid::from_u128(u128::from(n)),
            created_at: Timestamp(u64::from(n)),
            call: u32::from(n),
            payload: vec![n; usize::from(n) * 100],
            trace: None,
        },
        kind: FdKind::Pipe,
        fd: Fd::new(fd),
    }
}

fn is_cloexec(fd: &OwnedFd) -> bool {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFD).unwrap();
    FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC)
}

#[tokio::test]
async fn each_descriptor_reaches_the_frame_that_declared_it() {
    let (a, b) = UnixStream::pair().unwrap();
    let mut sink = FrameSink::new(Arc::new(a), DEFAULT_MAX_FRAME_LEN);
    let mut stream = FrameStream::<ToWorker>::new(Arc::new(b), DEFAULT_MAX_FRAME_LEN);

    // 50 descriptor frames, each between plain frames, some in the same flush.
    let mut writers = Vec::new();
    let mut sent = 0;
    for n in 0..50u8 {
        sink.push(&ToWorker::Ping { seq: u64::from(n) }).unwrap();
        let (r, w) = pipe().unwrap();
        sink.push_with_fd(request_with(n, r)).unwrap();
        writers.push(w);
        sent += 2;
        if n % 7 == 0 {
            sink.flush().await.unwrap();
        }
    }
    sink.flush().await.unwrap();
    // Each pipe carries its own number, so a descriptor on the wrong frame shows.
    for (n, w) in writers.into_iter().enumerate() {
        std::fs::File::from(w).write_all(&[n as u8]).unwrap();
    }

    let mut got = 0;
    let mut requests = 0u8;
    while got < sent {
        let batch = stream.next_batch().await.unwrap().unwrap();
        got += batch.len();
        for msg in batch {
            match msg {
                ToWorker::Ping { .. } => {}
                ToWorker::RequestWithFd {
                    request, mut fd, ..
                } => {
                    let n = request.created_at.0 as u8;
                    assert_eq!(n, requests, "frames arrive in order");
                    let fd = fd.take().expect("the stream attached the descriptor");
                    assert!(is_cloexec(&fd), "received descriptors are close-on-exec");
                    let mut byte = [0u8];
                    std::fs::File::from(fd).read_exact(&mut byte).unwrap();
                    assert_eq!(byte[0], n, "descriptor of frame {n} landed elsewhere");
                    requests += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(requests, 50);
}

#[tokio::test]
async fn a_frame_declaring_a_descriptor_without_one_ends_the_stream() {
    let (a, b) = UnixStream::pair().unwrap();
    let mut stream = FrameStream::<ToWorker>::new(Arc::new(b), DEFAULT_MAX_FRAME_LEN);
    let (r, _w) = pipe().unwrap();
    // Written with a plain write: the declared descriptor is missing.
    let bytes = frame(&request_with(1, r), DEFAULT_MAX_FRAME_LEN).unwrap();
    a.writable().await.unwrap();
    a.try_write(&bytes).unwrap();
    match stream.next_batch().await {
        Some(Err(Error::MissingFd { .. })) => {}
        other => panic!("expected MissingFd, got {other:?}"),
    }
}

#[tokio::test]
async fn push_with_fd_refuses_a_message_without_a_descriptor() {
    let (a, _b) = UnixStream::pair().unwrap();
    let mut sink = FrameSink::new(Arc::new(a), DEFAULT_MAX_FRAME_LEN);
    let err = sink.push_with_fd(ToWorker::Ping { seq: 1 }).unwrap_err();
    assert!(matches!(err, Error::MissingFd { .. }), "{err}");
    assert_eq!(sink.pending(), 0);
}

#[tokio::test]
async fn unclaimed_descriptors_close_with_the_stream() {
    let (a, b) = UnixStream::pair().unwrap();
    let mut sink = FrameSink::new(Arc::new(a), DEFAULT_MAX_FRAME_LEN);
    let mut stream = FrameStream::<ToWorker>::new(Arc::new(b), DEFAULT_MAX_FRAME_LEN);
    let (r, w) = pipe().unwrap();
    sink.push_with_fd(request_with(3, r)).unwrap();
    sink.flush().await.unwrap();
    let batch = stream.next_batch().await.unwrap().unwrap();
    drop(batch);
    drop(stream);
    // The only read end is closed: writing to the pipe fails with EPIPE.
    let err = std::fs::File::from(w).write_all(b"x").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
}
