//! In-process tests of the runtime over the stdio transport: each test
//! plays the supervisor on the other ends of two pipes, speaking the real
//! protocol: the codec adopted from the supervisor's `Hello`, in-band
//! request and response streams with their credit, a cancel that stops a
//! response stream, and usage reports.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use lpm_protocol::{
    Codec, FrameBuf, FrameStream, Pipe, RequestFrame, Timestamp, ToSupervisor, ToWorker,
    DEFAULT_MAX_FRAME_LEN, PROTOCOL_VERSION, STREAM_CHUNK, STREAM_WINDOW,
};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use super::{Request, Worker};

const DEADLINE: Duration = Duration::from_secs(5);

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// The supervisor's ends of the two pipes.
struct Supervisor {
    to_worker: Arc<Pipe>,
    frames: FrameStream<ToSupervisor>,
    backlog: VecDeque<ToSupervisor>,
}

impl Supervisor {
    async fn send(&mut self, msg: ToWorker) {
        let mut buf = FrameBuf::new(DEFAULT_MAX_FRAME_LEN);
        buf.push(&msg).unwrap();
        while !buf.write_to_pipe(&self.to_worker).unwrap() {
            within("the pipe to take more", self.to_worker.writable())
                .await
                .unwrap();
        }
    }

    async fn recv(&mut self, what: &str) -> ToSupervisor {
        loop {
            if let Some(msg) = self.backlog.pop_front() {
                return msg;
            }
            match within(what, self.frames.next_batch()).await {
                Some(Ok(batch)) => self.backlog.extend(batch),
                Some(Err(e)) => panic!("channel error while waiting for {what}: {e}"),
                None => panic!("the worker closed its output while we waited for {what}"),
            }
        }
    }
}

/// A worker connected over pipes to a supervisor of `codec` (its own codec
/// left to adopt), with its `Hello` checked and its `Ready` read.
async fn connected(codec: Codec, setup: impl FnOnce(&Worker)) -> Supervisor {
    let (worker_in, supervisor_out) = lpm_protocol::pipe().unwrap();
    let (supervisor_in, worker_out) = lpm_protocol::pipe().unwrap();
    let mut supervisor = Supervisor {
        to_worker: Arc::new(Pipe::new(supervisor_out).unwrap()),
        frames: FrameStream::from_pipe(
            Arc::new(Pipe::new(supervisor_in).unwrap()),
            DEFAULT_MAX_FRAME_LEN,
        ),
        backlog: VecDeque::new(),
    };
    supervisor
        .send(ToWorker::Hello {
            version: PROTOCOL_VERSION,
            slot: 0,
            codec,
        })
        .await;
    let worker = within(
        "the handshake",
        Worker::connect_pipes(worker_in, worker_out, None),
    )
    .await
    .unwrap();
    assert_eq!(worker.codec(), codec, "the pool's codec is adopted");
    setup(&worker);
    worker.ready();
    tokio::spawn(worker.run());
    match supervisor.recv("the worker's Hello").await {
        ToSupervisor::Hello {
            codec: theirs,
            takes_fds,
            ..
        } => {
            assert_eq!(theirs, codec);
            assert!(!takes_fds, "no descriptor passes over pipes");
        }
        other => panic!("expected the Hello, got {other:?}"),
    }
    assert_eq!(supervisor.recv("Ready").await, ToSupervisor::Ready);
    supervisor
}

/// Serves untyped requests by reading their stream to the end and answering its length.
fn answer_stream_length(worker: &Worker) {
    worker.on_request(|mut req: Request| async move {
        let mut stream = req.stream()?.ok_or("no stream")?;
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await?;
        req.respond(&all.len())?;
        Ok(())
    });
}

fn frame(id: Uuid, payload: Vec<u8>) -> RequestFrame {
    RequestFrame {
        id,
        created_at: Timestamp::now(),
        call: 0,
        payload,
        trace: None,
    }
}

#[tokio::test]
async fn a_request_stream_is_read_in_band_and_credit_is_granted_as_it_is_read() {
    let mut supervisor = connected(Codec::Json, |worker| {
        answer_stream_length(worker);
    })
    .await;
    let id = Uuid::new_v4();
    let payload = Codec::Json.encode(&()).unwrap();
    supervisor
        .send(ToWorker::RequestStreamed(frame(id, payload)))
        .await;
    // A full window, then the worker must grant more before the rest.
    let window = STREAM_WINDOW as usize / STREAM_CHUNK;
    for _ in 0..window {
        let data = vec![3u8; STREAM_CHUNK];
        supervisor.send(ToWorker::StreamData { id, data }).await;
    }
    let mut granted = 0;
    while granted < STREAM_CHUNK as u64 {
        match supervisor.recv("credit for what was read").await {
            ToSupervisor::StreamCredit { id: for_id, bytes } => {
                assert_eq!(for_id, id);
                granted += bytes;
            }
            other => panic!("expected StreamCredit, got {other:?}"),
        }
    }
    supervisor
        .send(ToWorker::StreamData {
            id,
            data: vec![3u8; 10],
        })
        .await;
    let total = STREAM_WINDOW + 10;
    supervisor
        .send(ToWorker::StreamEnd {
            id,
            outcome: Ok(total),
        })
        .await;
    loop {
        match supervisor.recv("the answer").await {
            ToSupervisor::StreamCredit { .. } => {}
            ToSupervisor::Response {
                id: for_id,
                payload,
            } => {
                assert_eq!(for_id, id);
                assert_eq!(Codec::Json.decode::<u64>(&payload).unwrap(), total);
                break;
            }
            other => panic!("expected the Response, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_request_stream_cut_short_fails_in_the_handler() {
    let mut supervisor = connected(Codec::Postcard, |worker| {
        answer_stream_length(worker);
    })
    .await;
    let id = Uuid::new_v4();
    supervisor
        .send(ToWorker::RequestStreamed(frame(id, Vec::new())))
        .await;
    supervisor
        .send(ToWorker::StreamData {
            id,
            data: vec![1; 5],
        })
        .await;
    supervisor
        .send(ToWorker::StreamEnd {
            id,
            outcome: Err("the caller's reader failed".into()),
        })
        .await;
    match supervisor.recv("the failure").await {
        ToSupervisor::Failed {
            id: for_id,
            message,
        } => {
            assert_eq!(for_id, id);
            assert!(message.contains("the caller's reader failed"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

/// What a response stream sent: its `ResponseStreamed`, then chunks until
/// `until` bytes arrived or the stream ended.
async fn read_stream(supervisor: &mut Supervisor, id: Uuid, until: u64) -> (u64, Option<u64>) {
    let mut got = 0;
    while got < until {
        match supervisor.recv("the stream").await {
            ToSupervisor::StreamData { id: for_id, data } => {
                assert_eq!(for_id, id);
                assert!(data.len() <= STREAM_CHUNK);
                got += data.len() as u64;
            }
            ToSupervisor::StreamEnd {
                id: for_id,
                outcome,
            } => {
                assert_eq!(for_id, id);
                return (got, Some(outcome.unwrap()));
            }
            other => panic!("expected stream frames, got {other:?}"),
        }
    }
    (got, None)
}

fn streaming_worker(len: u64) -> impl FnOnce(&Worker) {
    move |worker| {
        worker.on_request(move |req: Request| async move {
            let bytes: &'static [u8] = Box::leak(vec![9u8; len as usize].into_boxed_slice());
            req.respond_with_stream(&len, bytes)?;
            Ok(())
        });
    }
}

#[tokio::test]
async fn a_response_stream_goes_out_within_the_credit_granted() {
    let len = STREAM_WINDOW + 1000;
    let mut supervisor = connected(Codec::Postcard, streaming_worker(len)).await;
    let id = Uuid::new_v4();
    supervisor
        .send(ToWorker::Request(frame(id, Vec::new())))
        .await;
    match supervisor.recv("the answer").await {
        ToSupervisor::ResponseStreamed { id: for_id, .. } => assert_eq!(for_id, id),
        other => panic!("expected ResponseStreamed, got {other:?}"),
    }
    let (first, end) = read_stream(&mut supervisor, id, STREAM_WINDOW).await;
    assert_eq!((first, end), (STREAM_WINDOW, None), "a window, no more");
    // Nothing beyond the window until credit comes: a Ping round trip shows it.
    supervisor.send(ToWorker::Ping { seq: 1 }).await;
    assert_eq!(
        supervisor.recv("the Pong").await,
        ToSupervisor::Pong { seq: 1 }
    );
    supervisor
        .send(ToWorker::StreamCredit { id, bytes: 1000 })
        .await;
    let (rest, end) = read_stream(&mut supervisor, id, 1000).await;
    assert_eq!((rest, end), (1000, None));
    // The end needs no credit, but the reader's end is only found by
    // reading: a receiver grants credit as it reads, so it comes.
    supervisor
        .send(ToWorker::StreamCredit { id, bytes: 1 })
        .await;
    let (more, end) = read_stream(&mut supervisor, id, 1).await;
    assert_eq!((more, end), (0, Some(len)));
}

#[tokio::test]
async fn a_cancelled_response_stream_sends_nothing_after_the_fence() {
    let mut supervisor = connected(Codec::Postcard, streaming_worker(4 * STREAM_WINDOW)).await;
    let id = Uuid::new_v4();
    supervisor
        .send(ToWorker::Request(frame(id, Vec::new())))
        .await;
    assert!(matches!(
        supervisor.recv("the answer").await,
        ToSupervisor::ResponseStreamed { .. }
    ));
    supervisor.send(ToWorker::Cancel { id }).await;
    supervisor
        .send(ToWorker::StreamCredit {
            id,
            bytes: STREAM_WINDOW,
        })
        .await;
    supervisor.send(ToWorker::Ping { seq: 7 }).await;
    // Chunks sent before the Cancel was read may come; then the Pong; then
    // nothing of the stream, whatever credit it was given.
    loop {
        match supervisor.recv("the fence's Pong").await {
            ToSupervisor::StreamData { .. } => {}
            ToSupervisor::Pong { seq: 7 } => break,
            other => panic!("expected stale data or the Pong, got {other:?}"),
        }
    }
    supervisor.send(ToWorker::ReportUsage).await;
    match supervisor.recv("the usage report").await {
        ToSupervisor::Usage { rss_bytes, cpu_ns } => {
            assert!(rss_bytes > 0 && cpu_ns > 0, "{rss_bytes} {cpu_ns}");
        }
        other => panic!("nothing of the cancelled stream after the fence, got {other:?}"),
    }
}
