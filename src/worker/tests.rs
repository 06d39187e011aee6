//! In-process tests of the worker runtime: each test plays the supervisor on
//! the other end of a socketpair, speaking the real protocol.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lpm_protocol::{
    Codec, FrameSink, FrameStream, RequestFrame, Timestamp, ToSupervisor, ToWorker,
    DEFAULT_MAX_FRAME_LEN, PROTOCOL_VERSION,
};
use serde::{Serialize, Serializer};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{Done, Event, Request, Worker};
use crate::{BoxError, WorkerError};

const DEADLINE: Duration = Duration::from_secs(5);

/// Awaits `fut`, failing the test with `what` if it takes longer than [`DEADLINE`].
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// The supervisor's end of the channel.
struct Supervisor {
    stream: Arc<UnixStream>,
    sink: FrameSink,
    frames: FrameStream<ToSupervisor>,
    backlog: VecDeque<ToSupervisor>,
    /// The calls the worker announced in its `Hello`, once it came.
    calls: Option<Vec<String>>,
    /// The codec the worker's `Hello` must name.
    codec: Codec,
}

impl Supervisor {
    fn new(stream: std::os::unix::net::UnixStream) -> Self {
        stream.set_nonblocking(true).unwrap();
        let stream = Arc::new(UnixStream::from_std(stream).unwrap());
        Self {
            sink: FrameSink::new(Arc::clone(&stream), DEFAULT_MAX_FRAME_LEN),
            frames: FrameStream::new(Arc::clone(&stream), DEFAULT_MAX_FRAME_LEN),
            stream,
            backlog: VecDeque::new(),
            calls: None,
            codec: Codec::Postcard,
        }
    }

    async fn send(&mut self, msg: ToWorker) {
        self.sink.push(&msg).unwrap();
        within("the frame to be written", self.sink.flush())
            .await
            .unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        within("the socket to be writable", self.stream.writable())
            .await
            .unwrap();
        assert_eq!(self.stream.try_write(bytes).unwrap(), bytes.len());
    }

    /// The next message from the worker after its `Hello` (checked and
    /// kept aside); fails the test if none comes.
    async fn recv(&mut self, what: &str) -> ToSupervisor {
        loop {
            let msg = match self.backlog.pop_front() {
                Some(msg) => msg,
                None => match within(what, self.frames.next_batch()).await {
                    Some(Ok(batch)) => {
                        self.backlog.extend(batch);
                        continue;
                    }
                    Some(Err(e)) => panic!("channel error while waiting for {what}: {e}"),
                    None => panic!("the worker closed the channel while we waited for {what}"),
                },
            };
            if let Some(msg) = self.past_hello(msg) {
                return msg;
            }
        }
    }

    /// Checks and keeps aside the worker's `Hello`, which must come first;
    /// any other message is handed back.
    fn past_hello(&mut self, msg: ToSupervisor) -> Option<ToSupervisor> {
        match (msg, &self.calls) {
            (
                ToSupervisor::Hello {
                    version,
                    pid,
                    codec,
                    calls,
                    takes_fds: true,
                },
                None,
            ) => {
                assert_eq!(version, PROTOCOL_VERSION);
                assert_eq!(pid, std::process::id());
                assert_eq!(codec, self.codec);
                self.calls = Some(calls);
                None
            }
            (msg, None) => panic!("expected the worker's Hello first, got {msg:?}"),
            (msg, Some(_)) => Some(msg),
        }
    }

    /// Waits for the worker to close its end.
    async fn expect_eof(&mut self, what: &str) {
        loop {
            if let Some(msg) = self.backlog.pop_front() {
                if let Some(msg) = self.past_hello(msg) {
                    panic!("expected {what}, got {msg:?}");
                }
                continue;
            }
            match within(what, self.frames.next_batch()).await {
                Some(Ok(batch)) => self.backlog.extend(batch),
                Some(Err(e)) => panic!("channel error while waiting for {what}: {e}"),
                None => return,
            }
        }
    }
}

fn pair() -> (std::os::unix::net::UnixStream, Supervisor) {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    (ours, Supervisor::new(theirs))
}

fn hello(slot: u32) -> ToWorker {
    ToWorker::Hello {
        version: PROTOCOL_VERSION,
        slot,
        codec: Codec::Postcard,
    }
}

/// A connected worker (the supervisor's `Hello` read; the worker's comes
/// when it runs, and `Supervisor::recv` checks it) and the supervisor's end.
async fn connected(slot: u32) -> (Worker, Supervisor) {
    let (ours, mut sup) = pair();
    sup.send(hello(slot)).await;
    let worker = within("the handshake", Worker::connect(ours))
        .await
        .expect("handshake");
    (worker, sup)
}

fn spawn_run(worker: &Worker) -> JoinHandle<Result<(), WorkerError>> {
    tokio::spawn(worker.clone().run())
}

async fn run_result(
    run: JoinHandle<Result<(), WorkerError>>,
    what: &str,
) -> Result<(), WorkerError> {
    within(what, run).await.expect("run() panicked")
}

fn request<T: Serialize + ?Sized>(payload: &T) -> (Uuid, ToWorker) {
    request_with_id(Uuid::new_v4(), payload)
}

fn request_with_id<T: Serialize + ?Sized>(id: Uuid, payload: &T) -> (Uuid, ToWorker) {
    let frame = RequestFrame {
        id,
        created_at: Timestamp::now(),
        call: 0,
        payload: postcard::to_allocvec(payload).unwrap(),
        trace: None,
    };
    (id, ToWorker::Request(frame))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    postcard::from_bytes(bytes).unwrap()
}

/// An echo handler that upper-cases a `String`.
fn echo(worker: &Worker) {
    worker.on_request(|req: Request| async move {
        let text: String = req.data()?;
        req.respond(&text.to_uppercase())?;
        Ok(())
    });
}

#[track_caller]
fn assert_failed(msg: ToSupervisor, id: Uuid, contains: &str) {
    match msg {
        ToSupervisor::Failed { id: got, message } => {
            assert_eq!(got, id);
            assert!(
                message.contains(contains),
                "failure message {message:?} does not contain {contains:?}"
            );
        }
        other => panic!("expected Failed for {id}, got {other:?}"),
    }
}

#[track_caller]
fn assert_response<T>(msg: ToSupervisor, id: Uuid, expected: T)
where
    T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    match msg {
        ToSupervisor::Response { id: got, payload } => {
            assert_eq!(got, id);
            assert_eq!(decode::<T>(&payload), expected);
        }
        other => panic!("expected a Response for {id}, got {other:?}"),
    }
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Worker>();
    send_sync::<Request>();
    send_sync::<super::RequestInfo>();
    send_sync::<Event>();
    send_sync::<Done>();
    send_sync::<super::Reply>();
    send_sync::<WorkerError>();
}

// ---- handshake -------------------------------------------------------------

#[tokio::test]
async fn handshake_exchanges_hello_and_slot() {
    let (worker, _sup) = connected(7).await;
    assert_eq!(worker.slot(), 7);
    assert!(worker.requests().is_empty());
    let debug = format!("{worker:?}");
    assert!(debug.contains("slot: 7"), "{debug}");
}

#[tokio::test]
async fn handshake_rejects_another_protocol_version() {
    let (ours, mut sup) = pair();
    sup.send(ToWorker::Hello {
        version: PROTOCOL_VERSION + 1,
        slot: 0,
        codec: Codec::Postcard,
    })
    .await;
    let err = within("the handshake", Worker::connect(ours))
        .await
        .unwrap_err();
    match err {
        WorkerError::VersionMismatch { ours, theirs } => {
            assert_eq!(ours, PROTOCOL_VERSION);
            assert_eq!(theirs, PROTOCOL_VERSION + 1);
        }
        other => panic!("expected VersionMismatch, got {other:?}"),
    }
}

/// Connecting to a peer that says nothing and hangs up is a handshake error.
async fn err_text(fut: impl Future<Output = Result<Worker, WorkerError>>) -> Option<String> {
    match within("the handshake to fail", fut).await {
        Err(WorkerError::Handshake { reason }) => Some(reason),
        Err(other) => panic!("expected a Handshake error, got {other:?}"),
        Ok(_) => panic!("handshake succeeded without a supervisor"),
    }
}

#[tokio::test]
async fn handshake_rejects_a_first_message_other_than_hello() {
    let (ours, mut sup) = pair();
    sup.send(ToWorker::SoftKill).await;
    let err = within("the handshake", Worker::connect(ours))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WorkerError::Handshake { reason } if reason.contains("SoftKill")),
        "{err:?}"
    );
    assert!(err.to_string().contains("not an lpm supervisor"), "{err}");
}

#[tokio::test]
async fn handshake_fails_when_the_channel_closes_first() {
    let (ours, sup) = pair();
    drop(sup);
    let reason = err_text(Worker::connect(ours)).await.unwrap();
    assert!(reason.contains("closed"), "{reason}");
}

#[tokio::test]
async fn messages_in_the_same_read_as_hello_are_served() {
    let (ours, mut sup) = pair();
    let (id, req) = request("early");
    sup.sink.push(&hello(1)).unwrap();
    sup.sink.push(&req).unwrap();
    sup.sink.flush().await.unwrap();
    let worker = within("the handshake", Worker::connect(ours))
        .await
        .unwrap();
    echo(&worker);
    let _run = spawn_run(&worker);
    assert_response(sup.recv("the early response").await, id, "EARLY".to_owned());
}

// ---- requests --------------------------------------------------------------

#[tokio::test]
async fn request_is_answered_with_the_handler_response() {
    let (worker, mut sup) = connected(0).await;
    echo(&worker);
    worker.ready();
    let _run = spawn_run(&worker);
    assert_eq!(sup.recv("Ready").await, ToSupervisor::Ready);

    let (id, req) = request("hello");
    sup.send(req).await;
    assert_response(sup.recv("the response").await, id, "HELLO".to_owned());
}

#[tokio::test]
async fn request_can_be_acked() {
    let (worker, mut sup) = connected(0).await;
    worker.on_request(|req: Request| async move {
        req.ack();
        Ok(())
    });
    let _run = spawn_run(&worker);
    let (id, req) = request(&());
    sup.send(req).await;
    assert_eq!(sup.recv("the ack").await, ToSupervisor::Ack { id });
}

#[derive(Debug)]
struct Outer(std::io::Error);

impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("lookup failed")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[tokio::test]
async fn handler_error_fails_the_request_with_the_error_chain() {
    let (worker, mut sup) = connected(0).await;
    worker.on_request(|_req: Request| async move {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "no such key");
        Err::<(), BoxError>(Box::new(Outer(inner)))
    });
    let _run = spawn_run(&worker);
    let (id, req) = request(&1u8);
    sup.send(req).await;
    assert_failed(
        sup.recv("the failure").await,
        id,
        "lookup failed: no such key",
    );
}

#[tokio::test]
async fn decode_error_in_handler_fails_the_request() {
    let (worker, mut sup) = connected(0).await;
    echo(&worker);
    let _run = spawn_run(&worker);
    let (id, req) = request(&[0xFFu8, 0xFF, 0xFF]); // not a valid String
    sup.send(req).await;
    assert_failed(
        sup.recv("the failure").await,
        id,
        "could not decode the payload",
    );
}

#[tokio::test]
async fn handler_panic_fails_the_request_and_the_worker_keeps_serving() {
    let (worker, mut sup) = connected(0).await;
    worker.on_request(|req: Request| async move {
        let text: String = req.data()?;
        if text == "boom" {
            panic!("exploded on {text}");
        }
        req.respond(&text)?;
        Ok(())
    });
    let _run = spawn_run(&worker);

    let (boom, req) = request("boom");
    sup.send(req).await;
    assert_failed(
        sup.recv("the failure").await,
        boom,
        "handler panicked: exploded on boom",
    );

    let (next, req) = request("next");
    sup.send(req).await;
    assert_response(sup.recv("the next response").await, next, "next".to_owned());
    assert!(worker.requests().is_empty());
}

#[tokio::test]
async fn panic_while_creating_the_handler_future_is_caught() {
    let (worker, mut sup) = connected(0).await;
    worker.on_request(|req: Request| {
        let text: String = req.data().unwrap();
        assert_ne!(text, "boom", "synchronous part refused");
        async move {
            req.respond(&text)?;
            Ok(())
        }
    });
    let _run = spawn_run(&worker);
    let (boom, req) = request("boom");
    sup.send(req).await;
    assert_failed(
        sup.recv("the failure").await,
        boom,
        "handler panicked: assertion",
    );
    let (ok, req) = request("fine");
    sup.send(req).await;
    assert_response(sup.recv("the response").await, ok, "fine".to_owned());
}

#[tokio::test]
async fn request_dropped_by_the_handler_fails() {
    let (worker, mut sup) = connected(0).await;
    worker.on_request(|req: Request| async move {
        drop(req);
        Ok(())
    });
    let _run = spawn_run(&worker);
    let (id, req) = request(&());
    sup.send(req).await;
    assert_failed(
        sup.recv("the failure").await,
        id,
        &format!("handler finished without answering request {id}"),
    );
}

/// A handler that moves each request to another task, which answers (or
/// drops) it when the test says so.
fn deferring_handler(worker: &Worker) -> mpsc::UnboundedReceiver<Request> {
    let (tx, rx) = mpsc::unbounded_channel();
    worker.on_request(move |req: Request| {
        let tx = tx.clone();
        async move {
            tx.send(req).map_err(|_| "test gone")?;
            Ok(())
        }
    });
    rx
}

#[tokio::test]
async fn request_moved_elsewhere_is_answered_once_later() {
    let (worker, mut sup) = connected(0).await;
    let mut moved = deferring_handler(&worker);
    let _run = spawn_run(&worker);

    let (id, req) = request("later");
    sup.send(req).await;
    let req = within("the moved request", moved.recv()).await.unwrap();
    // The handler has returned Ok; the request is still in flight.
    assert_eq!(worker.requests().len(), 1);
    req.respond(&"answered later").unwrap();
    assert_response(
        sup.recv("the late response").await,
        id,
        "answered later".to_owned(),
    );

    // Nothing else was sent for it: the next message is the next request's.
    let (next, req) = request("next");
    sup.send(req).await;
    let req = within("the next request", moved.recv()).await.unwrap();
    req.ack();
    assert_eq!(
        sup.recv("the next ack").await,
        ToSupervisor::Ack { id: next }
    );
}

#[tokio::test]
async fn request_moved_elsewhere_and_dropped_fails_once() {
    let (worker, mut sup) = connected(0).await;
    let mut moved = deferring_handler(&worker);
    let _run = spawn_run(&worker);

    let (id, req) = request("dropped");
    sup.send(req).await;
    let req = within("the moved request", moved.recv()).await.unwrap();
    drop(req);
    assert_failed(
        sup.recv("the failure").await,
        id,
        &format!("request {id} was dropped without an answer"),
    );
    let (next, req) = request("next");
    sup.send(req).await;
    let req = within("the next request", moved.recv()).await.unwrap();
    req.ack();
    assert_eq!(
        sup.recv("the next ack").await,
        ToSupervisor::Ack { id: next }
    );
}

#[tokio::test]
async fn respond_after_the_handler_failed_reports_already_answered() {
    let (worker, mut sup) = connected(0).await;
    let (tx, mut moved) = mpsc::unbounded_channel();
    worker.on_request(move |req: Request| {
        let tx = tx.clone();
        async move {
            tx.send(req).map_err(|_| "test gone")?;
            Err::<(), BoxError>("gave up".into())
        }
    });
    let _run = spawn_run(&worker);
    let (id, req) = request(&());
    sup.send(req).await;
    assert_failed(sup.recv("the failure").await, id, "gave up");
    let req = within("the moved request", moved.recv()).await.unwrap();
    let err = req.respond(&"too late").unwrap_err();
    assert!(
        matches!(err, WorkerError::AlreadyAnswered { id: got } if got == id),
        "{err:?}"
    );
}

struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refuses to be encoded"))
    }
}

#[tokio::test]
async fn response_that_cannot_be_encoded_fails_the_request() {
    let (worker, mut sup) = connected(0).await;
    let (tx, mut results) = mpsc::unbounded_channel();
    worker.on_request(move |req: Request| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(req.respond(&Unencodable));
            Ok(())
        }
    });
    let _run = spawn_run(&worker);
    let (id, req) = request(&());
    sup.send(req).await;
    assert_failed(sup.recv("the failure").await, id, "could not encode");
    let result = within("respond's result", results.recv()).await.unwrap();
    assert!(
        matches!(result, Err(WorkerError::Encode { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn requests_without_a_handler_fail() {
    let (worker, mut sup) = connected(0).await;
    let _run = spawn_run(&worker);
    let (id, req) = request(&());
    sup.send(req).await;
    assert_failed(sup.recv("the failure").await, id, "no request handler");
}

#[tokio::test]
async fn duplicate_request_id_in_flight_is_rejected() {
    let (worker, mut sup) = connected(0).await;
    let mut moved = deferring_handler(&worker);
    let _run = spawn_run(&worker);
    let id = Uuid::new_v4();
    sup.send(request_with_id(id, "first").1).await;
    let first = within("the first request", moved.recv()).await.unwrap();
    sup.send(request_with_id(id, "second").1).await;
    assert_failed(
        sup.recv("the duplicate's failure").await,
        id,
        "already in flight",
    );
    first.respond(&"first").unwrap();
    assert_response(sup.recv("the first response").await, id, "first".to_owned());
}

#[tokio::test]
async fn requests_snapshot_shows_requests_in_flight_until_answered() {
    let (worker, mut sup) = connected(0).await;
    let release = Arc::new(Semaphore::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    worker.on_request({
        let release = Arc::clone(&release);
        move |req: Request| {
            let release = Arc::clone(&release);
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(req.id());
                release.acquire().await?.forget();
                req.respond(&"done")?;
                Ok(())
            }
        }
    });
    let _run = spawn_run(&worker);

    let created_at = Timestamp::now();
    let id = Uuid::new_v4();
    let frame = RequestFrame {
        id,
        created_at,
        call: 0,
        payload: postcard::to_allocvec(&(42u32, "x".to_owned())).unwrap(),
        trace: None,
    };
    sup.send(ToWorker::Request(frame)).await;
    assert_eq!(
        within("the handler to start", started.recv()).await,
        Some(id)
    );

    let snapshot = worker.requests();
    assert_eq!(snapshot.len(), 1, "{snapshot:?}");
    assert_eq!(snapshot[0].id(), id);
    assert_eq!(snapshot[0].created_at(), created_at.to_system_time());
    assert_eq!(
        snapshot[0].data::<(u32, String)>().unwrap(),
        (42, "x".to_owned())
    );

    release.add_permits(1);
    assert_response(sup.recv("the response").await, id, "done".to_owned());
    assert!(worker.requests().is_empty());
    // A snapshot taken earlier stays readable.
    assert_eq!(snapshot[0].id(), id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_pipelined_requests_are_each_answered_once() {
    const N: u32 = 5_000;
    let (worker, mut sup) = connected(0).await;
    worker.on_request(|req: Request| async move {
        let n: u32 = req.data()?;
        if n % 10 == 0 {
            tokio::task::yield_now().await;
        }
        req.respond(&(n * 2))?;
        Ok(())
    });
    let _run = spawn_run(&worker);

    let mut expected = HashMap::new();
    for n in 0..N {
        let (id, req) = request(&n);
        sup.sink.push(&req).unwrap();
        expected.insert(id, n);
    }
    within("the requests to be written", sup.sink.flush())
        .await
        .unwrap();
    let mut seen = HashSet::new();
    for _ in 0..N {
        match sup.recv("a response").await {
            ToSupervisor::Response { id, payload } => {
                assert!(seen.insert(id), "two answers for {id}");
                assert_eq!(decode::<u32>(&payload), expected[&id] * 2);
            }
            other => panic!("expected a response, got {other:?}"),
        }
    }
    assert!(worker.requests().is_empty());
}

// ---- cancel ----------------------------------------------------------------
//
// These tests run on the current-thread runtime (tokio's default for
// `#[tokio::test]`, named below for the reader): a handler that reports and
// then returns, errs or panics finishes its serving task, answer included,
// in the same poll, before the test task runs again. So when a test has seen
// the report, anything the worker queued for that request is already in the
// outbox, ahead of the answer to a probe sent next.

/// A handler for the cancellation tests. A payload `"echo <text>"` is
/// answered with `<text>` at once. Any other payload names what the handler
/// does once the supervisor has cancelled its request: `respond`, `ack`,
/// `error`, `panic` or `drop` (drop the request, then return `Ok`). It sends
/// the request's id on the first channel when it starts, and on the second,
/// right before it returns or panics, the outcome of `respond` (`Ok` for the
/// other actions).
fn after_cancel_handler(
    worker: &Worker,
) -> (
    mpsc::UnboundedReceiver<Uuid>,
    mpsc::UnboundedReceiver<Result<(), WorkerError>>,
) {
    let (started_tx, started) = mpsc::unbounded_channel();
    let (acted_tx, acted) = mpsc::unbounded_channel();
    worker.on_request(move |req: Request| {
        let started_tx = started_tx.clone();
        let acted_tx = acted_tx.clone();
        async move {
            let op: String = req.data()?;
            if let Some(text) = op.strip_prefix("echo ") {
                req.respond(text)?;
                return Ok(());
            }
            let _ = started_tx.send(req.id());
            req.cancelled().await;
            assert!(req.is_cancelled());
            match op.as_str() {
                "respond" => {
                    let _ = acted_tx.send(req.respond(&"too late"));
                    Ok(())
                }
                "ack" => {
                    req.ack();
                    let _ = acted_tx.send(Ok(()));
                    Ok(())
                }
                "error" => {
                    let _ = acted_tx.send(Ok(()));
                    Err("stopped: cancelled".into())
                }
                "panic" => {
                    let _ = acted_tx.send(Ok(()));
                    panic!("panicked after the cancel");
                }
                "drop" => {
                    drop(req);
                    let _ = acted_tx.send(Ok(()));
                    Ok(())
                }
                other => panic!("unknown op {other:?}"),
            }
        }
    });
    (started, acted)
}

/// Sends an echo request and checks that its answer is the next message
/// from the worker: nothing else was queued before it.
async fn assert_probe_is_next(sup: &mut Supervisor, what: &str) {
    let (probe, req) = request("echo probe");
    sup.send(req).await;
    assert_response(sup.recv(what).await, probe, "probe".to_owned());
}

/// Runs a request whose handler does `op` after the cancel, and checks that
/// the worker sends nothing for it.
async fn assert_nothing_sent_after_cancel(op: &str) {
    let (worker, mut sup) = connected(0).await;
    let (mut started, mut acted) = after_cancel_handler(&worker);
    let _run = spawn_run(&worker);

    let (id, req) = request(op);
    sup.send(req).await;
    assert_eq!(
        within("the handler to start", started.recv()).await,
        Some(id)
    );
    assert_eq!(worker.requests().len(), 1);
    sup.send(ToWorker::Cancel { id }).await;
    let outcome = within("the handler to act after the cancel", acted.recv())
        .await
        .unwrap();
    assert!(outcome.is_ok(), "{op} after the cancel: {outcome:?}");
    assert!(worker.requests().is_empty());
    assert_probe_is_next(&mut sup, &format!("the probe's answer, not the {op}")).await;
}

#[tokio::test(flavor = "current_thread")]
async fn cancel_suppresses_a_later_respond() {
    assert_nothing_sent_after_cancel("respond").await;
}

#[tokio::test(flavor = "current_thread")]
async fn cancel_suppresses_a_later_ack() {
    assert_nothing_sent_after_cancel("ack").await;
}

#[tokio::test(flavor = "current_thread")]
async fn cancel_suppresses_the_failure_of_a_later_error() {
    assert_nothing_sent_after_cancel("error").await;
}

#[tokio::test(flavor = "current_thread")]
async fn cancel_suppresses_the_failure_of_a_later_panic() {
    assert_nothing_sent_after_cancel("panic").await;
}

#[tokio::test(flavor = "current_thread")]
async fn cancel_suppresses_the_failure_of_a_request_dropped_by_its_handler() {
    assert_nothing_sent_after_cancel("drop").await;
}

#[tokio::test(flavor = "current_thread")]
async fn cancel_suppresses_the_failure_of_a_request_dropped_elsewhere() {
    let (worker, mut sup) = connected(0).await;
    let mut moved = deferring_handler(&worker);
    let _run = spawn_run(&worker);

    let (id, req) = request("moved");
    sup.send(req).await;
    let req = within("the moved request", moved.recv()).await.unwrap();
    sup.send(ToWorker::Cancel { id }).await;
    within("the cancel", req.cancelled()).await;
    // The handler returned `Ok` long ago: this drop would answer `Failed`.
    drop(req);

    let (next, req) = request("next");
    sup.send(req).await;
    within("the next request", moved.recv())
        .await
        .unwrap()
        .ack();
    assert_eq!(
        sup.recv("the next ack, not a failure").await,
        ToSupervisor::Ack { id: next }
    );
}

#[tokio::test(flavor = "current_thread")]
async fn cancelled_resolves_when_the_supervisor_cancels() {
    let (worker, mut sup) = connected(0).await;
    let mut moved = deferring_handler(&worker);
    let _run = spawn_run(&worker);

    let (id, req) = request("slow");
    sup.send(req).await;
    let req = within("the moved request", moved.recv()).await.unwrap();
    assert!(!req.is_cancelled());
    let snapshot = worker.requests();
    assert!(!snapshot[0].is_cancelled());
    // The futures borrow nothing: they run in other tasks.
    let waiting = tokio::spawn(req.cancelled());
    let watching = tokio::spawn(snapshot[0].cancelled());
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());

    sup.send(ToWorker::Cancel { id }).await;
    within("cancelled() to resolve", waiting).await.unwrap();
    within("RequestInfo::cancelled() to resolve", watching)
        .await
        .unwrap();
    assert!(req.is_cancelled());
    assert!(snapshot[0].is_cancelled());
    // Once cancelled, a new future resolves at once.
    within("a later cancelled() to resolve", req.cancelled()).await;
    let debug = format!("{req:?}");
    assert!(debug.contains("cancelled: true"), "{debug}");
    req.respond(&"unheard").unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn handler_can_select_on_cancelled_to_stop_early() {
    let (worker, mut sup) = connected(0).await;
    let (stopped_tx, mut stopped) = mpsc::unbounded_channel();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    worker.on_request(move |req: Request| {
        let stopped_tx = stopped_tx.clone();
        let started_tx = started_tx.clone();
        async move {
            let _ = started_tx.send(());
            tokio::select! {
                () = req.cancelled() => {
                    let _ = stopped_tx.send(req.id());
                    Ok(())
                }
                () = std::future::pending::<()>() => Ok(req.respond(&"never")?),
            }
        }
    });
    let _run = spawn_run(&worker);

    let (id, req) = request(&());
    sup.send(req).await;
    within("the handler to start", started.recv())
        .await
        .unwrap();
    sup.send(ToWorker::Cancel { id }).await;
    assert_eq!(
        within("the handler to stop early", stopped.recv()).await,
        Some(id)
    );
    // Returning `Ok` without answering a cancelled request sends nothing.
    let (next, req) = request(&());
    sup.send(req).await;
    within("the next handler to start", started.recv())
        .await
        .unwrap();
    sup.send(ToWorker::Cancel { id: next }).await;
    within("the next handler to stop", stopped.recv())
        .await
        .unwrap();
    sup.send(ToWorker::SoftKill).await;
    assert_eq!(
        sup.recv("SoftKillDone, and nothing before it").await,
        ToSupervisor::SoftKillDone
    );
}

#[tokio::test(flavor = "current_thread")]
async fn requests_snapshot_drops_a_cancelled_request() {
    let (worker, mut sup) = connected(0).await;
    let mut moved = deferring_handler(&worker);
    let _run = spawn_run(&worker);

    let (kept, req) = request("kept");
    sup.send(req).await;
    let kept_req = within("the kept request", moved.recv()).await.unwrap();
    let (gone, req) = request("cancelled");
    sup.send(req).await;
    let gone_req = within("the cancelled request", moved.recv()).await.unwrap();
    assert_eq!(worker.requests().len(), 2);

    sup.send(ToWorker::Cancel { id: gone }).await;
    within("the cancel", gone_req.cancelled()).await;
    let ids: Vec<Uuid> = worker.requests().iter().map(|r| r.id()).collect();
    assert_eq!(ids, vec![kept]);
    // Still held, but no longer in flight for the worker.
    drop(gone_req);
    kept_req.respond(&"kept").unwrap();
    assert_response(sup.recv("the kept response").await, kept, "kept".to_owned());
    assert!(worker.requests().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn soft_kill_completes_while_a_cancelled_request_is_still_in_its_handler() {
    let (worker, mut sup) = connected(0).await;
    // The gate is never opened: the handler ignores the cancel and never ends.
    let (_gate, mut started) = gated_handler(&worker);
    let run = spawn_run(&worker);

    let (id, req) = request(&());
    sup.send(req).await;
    within("the handler to start", started.recv()).await;
    // The soft kill waits for the request; the cancel releases it.
    sup.send(ToWorker::SoftKill).await;
    sup.send(ToWorker::Cancel { id }).await;
    assert_eq!(
        sup.recv("SoftKillDone, with no answer before it").await,
        ToSupervisor::SoftKillDone
    );
    run_result(run, "run() to return after the soft kill")
        .await
        .unwrap();
    sup.expect_eof("the worker to close the channel").await;
}

#[tokio::test(flavor = "current_thread")]
async fn retry_after_cancel_is_served_as_a_new_request() {
    let (worker, mut sup) = connected(0).await;
    let mut moved = deferring_handler(&worker);
    let _run = spawn_run(&worker);

    let id = Uuid::new_v4();
    sup.send(request_with_id(id, "first").1).await;
    let first = within("the first attempt", moved.recv()).await.unwrap();
    sup.send(ToWorker::Cancel { id }).await;
    sup.send(request_with_id(id, "second").1).await;
    // Not rejected as a duplicate: it reaches the handler.
    let second = within("the second attempt", moved.recv()).await.unwrap();
    assert_eq!(second.id(), id);
    assert!(first.is_cancelled());
    assert!(!second.is_cancelled());
    let snapshot = worker.requests();
    assert_eq!(snapshot.len(), 1, "{snapshot:?}");
    assert_eq!(snapshot[0].data::<String>().unwrap(), "second");

    // The first attempt answering late (and dropping) touches neither the
    // channel nor the second attempt.
    first.respond(&"first").unwrap();
    assert_eq!(worker.requests().len(), 1);
    second.respond(&"second").unwrap();
    assert_response(
        sup.recv("the second attempt's response").await,
        id,
        "second".to_owned(),
    );
    assert!(worker.requests().is_empty());

    // Exactly one answer for `id`: the next message is the next request's.
    let (next, req) = request("next");
    sup.send(req).await;
    within("the next request", moved.recv())
        .await
        .unwrap()
        .ack();
    assert_eq!(
        sup.recv("the next ack").await,
        ToSupervisor::Ack { id: next }
    );
}

#[tokio::test(flavor = "current_thread")]
async fn retry_after_cancel_is_not_failed_by_the_old_attempt_panicking() {
    let (worker, mut sup) = connected(0).await;
    let (mut started, mut acted) = after_cancel_handler(&worker);
    let _run = spawn_run(&worker);

    let id = Uuid::new_v4();
    sup.send(request_with_id(id, "panic").1).await;
    within("the first attempt to start", started.recv()).await;
    // Cancel and retry in one write: the worker reads both before the first
    // attempt's handler wakes up and panics.
    sup.sink.push(&ToWorker::Cancel { id }).unwrap();
    sup.sink
        .push(&request_with_id(id, "echo second").1)
        .unwrap();
    within("the frames to be written", sup.sink.flush())
        .await
        .unwrap();
    within("the first attempt to panic", acted.recv())
        .await
        .unwrap()
        .unwrap();
    assert_response(
        sup.recv("the retry's response").await,
        id,
        "second".to_owned(),
    );
    assert_probe_is_next(&mut sup, "the probe's answer, not a failure").await;
}

#[tokio::test(flavor = "current_thread")]
async fn request_cancelled_before_its_handler_starts_is_not_served() {
    let (worker, mut sup) = connected(0).await;
    let (mut started, _acted) = after_cancel_handler(&worker);
    let _run = spawn_run(&worker);

    // In one write: the worker cancels the request before its task runs.
    let (id, req) = request("respond");
    sup.sink.push(&req).unwrap();
    sup.sink.push(&ToWorker::Cancel { id }).unwrap();
    within("the frames to be written", sup.sink.flush())
        .await
        .unwrap();
    assert_probe_is_next(&mut sup, "the probe's answer").await;
    assert!(
        started.try_recv().is_err(),
        "the handler ran for a request cancelled before it started"
    );
    assert!(worker.requests().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn cancel_for_an_unknown_or_answered_id_is_ignored() {
    let (worker, mut sup) = connected(0).await;
    let (_started, _acted) = after_cancel_handler(&worker);
    let _run = spawn_run(&worker);

    let (answered, req) = request("echo done");
    sup.send(req).await;
    assert_response(sup.recv("the response").await, answered, "done".to_owned());
    sup.send(ToWorker::Cancel { id: answered }).await;
    sup.send(ToWorker::Cancel { id: Uuid::new_v4() }).await;
    assert_probe_is_next(&mut sup, "the probe's answer").await;
    assert!(worker.requests().is_empty());
    // The same id again is a new request, served normally.
    sup.send(request_with_id(answered, "echo again").1).await;
    assert_response(sup.recv("the response").await, answered, "again".to_owned());
}

/// First attempts answer on other threads while the reader takes their
/// `Cancel` and retry: a retry is never rejected as a duplicate, because a
/// request is settled and leaves the registry in one step.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_and_retry_under_load_never_fail_as_duplicates() {
    const N: u32 = 2_000;
    let (worker, mut sup) = connected(0).await;
    worker.on_request(|req: Request| async move {
        let n: u32 = req.data()?;
        req.respond(&n)?;
        Ok(())
    });
    let _run = spawn_run(&worker);

    // Each request is cancelled and retried one write after it was sent,
    // while its first attempt's handler may be answering on another thread.
    let sent: Vec<(Uuid, u32)> = (0..N).map(|n| (Uuid::new_v4(), n)).collect();
    for k in 0..=sent.len() {
        if let Some(&(id, n)) = sent.get(k) {
            sup.sink.push(&request_with_id(id, &n).1).unwrap();
        }
        if let Some(&(id, n)) = k.checked_sub(1).map(|k| &sent[k]) {
            sup.sink.push(&ToWorker::Cancel { id }).unwrap();
            sup.sink.push(&request_with_id(id, &n).1).unwrap();
        }
        within("the frames to be written", sup.sink.flush())
            .await
            .unwrap();
    }
    let expected: HashMap<Uuid, u32> = sent.into_iter().collect();
    // SoftKillDone comes after every answer there will be.
    sup.send(ToWorker::SoftKill).await;

    let mut answers = HashMap::<Uuid, usize>::new();
    loop {
        match sup.recv("an answer or SoftKillDone").await {
            ToSupervisor::Response { id, payload } => {
                assert_eq!(decode::<u32>(&payload), expected[&id]);
                *answers.entry(id).or_default() += 1;
            }
            ToSupervisor::SoftKillDone => break,
            other => panic!("expected a response, got {other:?}"),
        }
    }
    // The retry is always answered; the first attempt only when its answer
    // was queued before the worker read the cancel.
    assert_eq!(answers.len(), expected.len());
    assert!(answers.values().all(|&count| count == 1 || count == 2));
}

// ---- messages to the supervisor --------------------------------------------

#[tokio::test]
async fn ready_busy_and_stats_are_sent_in_order() {
    let (worker, mut sup) = connected(0).await;
    worker.busy();
    worker.report_stats(&[("cache_hits", 3.0), ("heap", 1024.5)]);
    worker.ready();
    let _run = spawn_run(&worker);
    assert_eq!(sup.recv("Busy").await, ToSupervisor::Busy);
    assert_eq!(
        sup.recv("Stats").await,
        ToSupervisor::Stats(vec![("cache_hits".into(), 3.0), ("heap".into(), 1024.5)])
    );
    assert_eq!(sup.recv("Ready").await, ToSupervisor::Ready);
}

#[tokio::test]
async fn emit_and_emit_with_reply_round_trip() {
    let (worker, mut sup) = connected(0).await;
    let handle = worker.clone();
    worker.on_request(move |req: Request| {
        let worker = handle.clone();
        async move {
            let question: String = req.data()?;
            worker.emit("progress", &50u8)?;
            let reply = worker.emit_with_reply("ask", question.as_str()).await?;
            req.respond(&reply.data::<String>()?)?;
            Ok(())
        }
    });
    let _run = spawn_run(&worker);

    let (id, req) = request("what?");
    sup.send(req).await;
    match sup.recv("the progress emit").await {
        ToSupervisor::Emit {
            name,
            payload,
            reply_to: None,
        } => {
            assert_eq!(name, "progress");
            assert_eq!(decode::<u8>(&payload), 50);
        }
        other => panic!("expected Emit(progress), got {other:?}"),
    }
    let emit_id = match sup.recv("the emit awaiting a reply").await {
        ToSupervisor::Emit {
            name,
            payload,
            reply_to: Some(emit_id),
        } => {
            assert_eq!(name, "ask");
            assert_eq!(decode::<String>(&payload), "what?");
            emit_id
        }
        other => panic!("expected Emit(ask) with reply_to, got {other:?}"),
    };
    sup.send(ToWorker::EmitReply {
        emit_id,
        outcome: Ok(postcard::to_allocvec("forty-two").unwrap().into()),
    })
    .await;
    assert_response(sup.recv("the response").await, id, "forty-two".to_owned());
}

#[tokio::test]
async fn emit_reply_with_an_error_is_no_reply() {
    let (worker, mut sup) = connected(0).await;
    let _run = spawn_run(&worker);
    let pending = tokio::spawn(worker.emit_with_reply("ask", &1u8));
    let emit_id = match sup.recv("the emit").await {
        ToSupervisor::Emit {
            reply_to: Some(id), ..
        } => id,
        other => panic!("expected an Emit with reply_to, got {other:?}"),
    };
    sup.send(ToWorker::EmitReply {
        emit_id,
        outcome: Err("nobody listens".to_owned()),
    })
    .await;
    let result = within("the emit's outcome", pending).await.unwrap();
    match result {
        Err(WorkerError::NoReply { event, reason }) => {
            assert_eq!(event, "ask");
            assert_eq!(reason, "nobody listens");
        }
        other => panic!("expected NoReply, got {other:?}"),
    }
}

#[tokio::test]
async fn emit_with_reply_future_owns_its_payload() {
    let (worker, mut sup) = connected(0).await;
    let _run = spawn_run(&worker);
    let pending = {
        let local = String::from("borrowed only while encoding");
        worker.emit_with_reply("ask", &local)
    };
    let pending = tokio::spawn(pending);
    let emit_id = match sup.recv("the emit").await {
        ToSupervisor::Emit {
            reply_to: Some(id),
            payload,
            ..
        } => {
            assert_eq!(decode::<String>(&payload), "borrowed only while encoding");
            id
        }
        other => panic!("expected an Emit with reply_to, got {other:?}"),
    };
    sup.send(ToWorker::EmitReply {
        emit_id,
        outcome: Ok(postcard::to_allocvec(&7u16).unwrap().into()),
    })
    .await;
    let reply = within("the reply", pending).await.unwrap().unwrap();
    assert_eq!(reply.data::<u16>().unwrap(), 7);
}

// ---- events ----------------------------------------------------------------

#[tokio::test]
async fn event_handler_gets_the_payload_and_unknown_events_are_ignored() {
    let (worker, mut sup) = connected(0).await;
    let (tx, mut seen) = mpsc::unbounded_channel();
    worker.on_event("reload", move |event: Event| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((event.name().to_owned(), event.data::<Vec<String>>()));
        }
    });
    worker.on_event("explode", |_event: Event| async move {
        panic!("event handler failure");
    });
    let _run = spawn_run(&worker);

    for name in ["unknown", "explode", "reload"] {
        sup.send(ToWorker::Event {
            name: name.to_owned(),
            payload: postcard::to_allocvec(&vec!["a.toml".to_owned()]).unwrap(),
        })
        .await;
    }
    let (name, data) = within("the reload event", seen.recv()).await.unwrap();
    assert_eq!(name, "reload");
    assert_eq!(data.unwrap(), vec!["a.toml".to_owned()]);

    // Still serving after the panicking event handler.
    echo(&worker);
    let (id, req) = request("alive");
    sup.send(req).await;
    assert_response(sup.recv("the response").await, id, "ALIVE".to_owned());
}

// ---- stopping --------------------------------------------------------------

/// A handler that holds each request until a permit is added.
fn gated_handler(worker: &Worker) -> (Arc<Semaphore>, mpsc::UnboundedReceiver<Uuid>) {
    let gate = Arc::new(Semaphore::new(0));
    let (started_tx, started) = mpsc::unbounded_channel();
    let handler_gate = Arc::clone(&gate);
    worker.on_request(move |req: Request| {
        let gate = Arc::clone(&handler_gate);
        let started_tx = started_tx.clone();
        async move {
            let _ = started_tx.send(req.id());
            gate.acquire().await?.forget();
            req.respond(&"finished")?;
            Ok(())
        }
    });
    (gate, started)
}

/// A soft-kill hook that emits "hook-started", waits for the returned sender,
/// emits "hook-finished", then calls done.
fn gated_hook(worker: &Worker) -> oneshot::Sender<()> {
    let (release, released) = oneshot::channel::<()>();
    let handle = worker.clone();
    worker.on_soft_kill(move |done: Done| async move {
        handle.emit("hook-started", &()).unwrap();
        let _ = released.await;
        handle.emit("hook-finished", &()).unwrap();
        done.done();
    });
    release
}

#[track_caller]
fn assert_emit(msg: ToSupervisor, expected: &str) {
    match msg {
        ToSupervisor::Emit { name, .. } if name == expected => {}
        other => panic!("expected Emit({expected}), got {other:?}"),
    }
}

#[tokio::test]
async fn soft_kill_waits_for_the_hook_then_for_requests_in_flight() {
    let (worker, mut sup) = connected(0).await;
    let (gate, mut started) = gated_handler(&worker);
    let release_hook = gated_hook(&worker);
    let run = spawn_run(&worker);

    let (id, req) = request(&());
    sup.send(req).await;
    within("the handler to start", started.recv()).await;
    sup.send(ToWorker::SoftKill).await;
    assert_emit(sup.recv("the hook to start").await, "hook-started");

    release_hook.send(()).unwrap();
    assert_emit(sup.recv("the hook to finish").await, "hook-finished");
    // The hook is done, but a request is in flight: no SoftKillDone yet.
    assert_eq!(worker.requests().len(), 1);
    gate.add_permits(1);
    assert_response(
        sup.recv("the in-flight response").await,
        id,
        "finished".to_owned(),
    );
    assert_eq!(sup.recv("SoftKillDone").await, ToSupervisor::SoftKillDone);
    run_result(run, "run() to return after the soft kill")
        .await
        .unwrap();
    sup.expect_eof("the worker to close the channel").await;
    assert!(matches!(
        worker.emit("late", &()),
        Err(WorkerError::ChannelClosed)
    ));
}

#[tokio::test]
async fn soft_kill_waits_for_done_after_requests_are_answered() {
    let (worker, mut sup) = connected(0).await;
    let (gate, mut started) = gated_handler(&worker);
    let release_hook = gated_hook(&worker);
    let run = spawn_run(&worker);

    let (id, req) = request(&());
    sup.send(req).await;
    within("the handler to start", started.recv()).await;
    sup.send(ToWorker::SoftKill).await;
    assert_emit(sup.recv("the hook to start").await, "hook-started");
    gate.add_permits(1);
    assert_response(
        sup.recv("the in-flight response").await,
        id,
        "finished".to_owned(),
    );
    // No request in flight, but the hook is not done: the next message is the hook's.
    release_hook.send(()).unwrap();
    assert_emit(sup.recv("the hook to finish").await, "hook-finished");
    assert_eq!(sup.recv("SoftKillDone").await, ToSupervisor::SoftKillDone);
    run_result(run, "run() to return after the soft kill")
        .await
        .unwrap();
}

#[tokio::test]
async fn soft_kill_without_a_hook_waits_for_requests_in_flight() {
    let (worker, mut sup) = connected(0).await;
    let (gate, mut started) = gated_handler(&worker);
    let run = spawn_run(&worker);

    let (id, req) = request(&());
    sup.send(req).await;
    within("the handler to start", started.recv()).await;
    sup.send(ToWorker::SoftKill).await;
    // Events still flow during a soft kill.
    let (tx, mut pinged) = mpsc::unbounded_channel();
    worker.on_event("ping", move |_e: Event| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(());
        }
    });
    sup.send(ToWorker::Event {
        name: "ping".into(),
        payload: Vec::new(),
    })
    .await;
    within("the ping event", pinged.recv()).await.unwrap();
    gate.add_permits(1);
    assert_response(
        sup.recv("the in-flight response").await,
        id,
        "finished".to_owned(),
    );
    assert_eq!(sup.recv("SoftKillDone").await, ToSupervisor::SoftKillDone);
    run_result(run, "run() to return after the soft kill")
        .await
        .unwrap();
}

#[tokio::test]
async fn soft_kill_counts_a_dropped_done_as_done() {
    let (worker, mut sup) = connected(0).await;
    worker.on_soft_kill(|_done: Done| async move {
        panic!("hook failed");
    });
    let run = spawn_run(&worker);
    sup.send(ToWorker::SoftKill).await;
    assert_eq!(sup.recv("SoftKillDone").await, ToSupervisor::SoftKillDone);
    run_result(run, "run() to return after the soft kill")
        .await
        .unwrap();
}

#[tokio::test]
async fn hard_kill_returns_at_once() {
    let (worker, mut sup) = connected(0).await;
    let (_gate, mut started) = gated_handler(&worker);
    let run = spawn_run(&worker);
    let (_id, req) = request(&());
    sup.send(req).await;
    within("the handler to start", started.recv()).await;
    sup.send(ToWorker::HardKill).await;
    run_result(run, "run() to return after a hard kill")
        .await
        .unwrap();
}

#[tokio::test]
async fn eof_ends_run_and_fails_pending_emits() {
    let (worker, mut sup) = connected(0).await;
    let run = spawn_run(&worker);
    let pending = tokio::spawn(worker.emit_with_reply("ask", &()));
    assert!(matches!(
        sup.recv("the emit").await,
        ToSupervisor::Emit {
            reply_to: Some(_),
            ..
        }
    ));
    drop(sup);
    run_result(run, "run() to return at end of file")
        .await
        .unwrap();
    let result = within("the pending emit to fail", pending).await.unwrap();
    assert!(
        matches!(result, Err(WorkerError::ChannelClosed)),
        "{result:?}"
    );
    let later = worker.emit_with_reply("ask", &()).await;
    assert!(
        matches!(later, Err(WorkerError::ChannelClosed)),
        "{later:?}"
    );
}

#[tokio::test]
async fn malformed_frame_ends_run_with_an_error() {
    let (worker, mut sup) = connected(0).await;
    let run = spawn_run(&worker);
    // Length 2, then a variant number no ToWorker has.
    sup.send_raw(&[2, 0, 0, 0, 0x7F, 0x00]).await;
    let err = run_result(run, "run() to fail on garbage")
        .await
        .unwrap_err();
    assert!(matches!(err, WorkerError::Channel { .. }), "{err:?}");
    let chain = crate::error::display_chain(&err);
    assert!(chain.contains("malformed"), "{chain}");
}

#[tokio::test]
async fn run_twice_is_refused() {
    let (worker, mut sup) = connected(0).await;
    worker.ready();
    let run = spawn_run(&worker);
    assert_eq!(
        sup.recv("Ready, so the first run() runs").await,
        ToSupervisor::Ready
    );
    let second = within("the second run()", worker.clone().run()).await;
    assert!(
        matches!(second, Err(WorkerError::AlreadyRunning)),
        "{second:?}"
    );
    sup.send(ToWorker::HardKill).await;
    run_result(run, "the first run() to return").await.unwrap();
}

/// Requests per second through one in-process worker, the fake supervisor
/// sharing the same two threads: `cargo test -p lpm --lib --release -- --ignored throughput --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput measurement; run with --release --ignored --nocapture"]
async fn throughput() {
    const N: usize = 1_000_000;
    const WINDOW: usize = 4096;
    let (worker, mut sup) = connected(0).await;
    worker.on_request(|req: Request| async move {
        let n: u64 = req.data()?;
        req.respond(&n)?;
        Ok(())
    });
    let _run = spawn_run(&worker);
    let start = std::time::Instant::now();
    let (mut sent, mut received) = (0, 0);
    while received < N {
        while sent < N && sent - received < WINDOW {
            sup.sink.push(&request(&(sent as u64)).1).unwrap();
            sent += 1;
        }
        sup.sink.flush().await.unwrap();
        let batch = sup.frames.next_batch().await.unwrap().unwrap();
        received += batch.len();
    }
    let rate = N as f64 / start.elapsed().as_secs_f64();
    eprintln!(
        "{N} requests in {:?}: {rate:.0} requests/s",
        start.elapsed()
    );
}

// ---- typed calls -----------------------------------------------------------

#[derive(serde::Serialize, serde::Deserialize)]
struct Double(u64);

impl crate::Call for Double {
    const NAME: &'static str = "double";
    type Reply = u64;
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Shout(String);

impl crate::Call for Shout {
    const NAME: &'static str = "shout";
    type Reply = String;
}

fn typed_request<T: Serialize + ?Sized>(call: u32, payload: &T) -> (Uuid, ToWorker) {
    let (id, request) = request(payload);
    let ToWorker::Request(mut frame) = request else {
        unreachable!()
    };
    frame.call = call;
    (id, ToWorker::Request(frame))
}

fn typed(worker: &Worker) {
    worker.handle(|Double(n): Double, _: super::CallContext| async move { Ok(n * 2) });
    worker.handle(|Shout(s): Shout, _: super::CallContext| async move { Ok(s.to_uppercase()) });
}

#[tokio::test]
async fn the_hello_announces_the_calls_in_registration_order() {
    let (worker, mut sup) = connected(0).await;
    typed(&worker);
    // Registering a name again replaces its handler and keeps its number.
    worker.handle(|Double(n): Double, _: super::CallContext| async move { Ok(n * 3) });
    let _run = spawn_run(&worker);
    let (id, req) = typed_request(1, &Double(7));
    sup.send(req).await;
    assert_response(sup.recv("the tripled answer").await, id, 21u64);
    assert_eq!(
        sup.calls.as_deref(),
        Some(&["double".to_owned(), "shout".to_owned()][..])
    );
}

#[tokio::test]
async fn calls_are_routed_by_their_number_and_untyped_requests_to_on_request() {
    let (worker, mut sup) = connected(0).await;
    typed(&worker);
    echo(&worker);
    let _run = spawn_run(&worker);
    let (a, req) = typed_request(2, &Shout("hi".into()));
    sup.send(req).await;
    assert_response(sup.recv("the shout").await, a, "HI".to_owned());
    let (b, req) = typed_request(1, &Double(21));
    sup.send(req).await;
    assert_response(sup.recv("the double").await, b, 42u64);
    let (c, req) = request("plain");
    sup.send(req).await;
    assert_response(sup.recv("the echo").await, c, "PLAIN".to_owned());
}

#[tokio::test]
async fn a_call_number_the_worker_did_not_announce_is_answered_not_handled() {
    let (worker, mut sup) = connected(0).await;
    typed(&worker);
    let _run = spawn_run(&worker);
    let (id, req) = typed_request(3, &Double(1));
    sup.send(req).await;
    assert_eq!(
        sup.recv("NotHandled").await,
        ToSupervisor::NotHandled { id }
    );
    // The worker serves on.
    let (id, req) = typed_request(1, &Double(1));
    sup.send(req).await;
    assert_response(sup.recv("the double").await, id, 2u64);
}

#[tokio::test]
async fn a_call_whose_payload_does_not_decode_fails_naming_the_type() {
    let (worker, mut sup) = connected(0).await;
    typed(&worker);
    let _run = spawn_run(&worker);
    let (id, req) = typed_request(2, &7u8);
    sup.send(req).await;
    assert_failed(sup.recv("the failure").await, id, "Shout");
}

#[tokio::test]
async fn a_pool_with_another_codec_is_refused_and_still_told_ours() {
    let (ours, mut sup) = pair();
    sup.send(ToWorker::Hello {
        version: PROTOCOL_VERSION,
        slot: 0,
        codec: Codec::Json,
    })
    .await;
    let err = within("the handshake", Worker::connect_with(ours, Codec::Postcard))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            WorkerError::CodecMismatch {
                ours: Codec::Postcard,
                theirs: Codec::Json
            }
        ),
        "{err:?}"
    );
    // Our Hello went out, so the supervisor can say why it kills us.
    sup.expect_eof("the worker to hang up").await;
    assert_eq!(sup.calls.as_deref(), Some(&[][..]));
}

#[tokio::test]
async fn the_json_codec_decodes_and_encodes_payloads() {
    let (ours, mut sup) = pair();
    sup.codec = Codec::Json;
    sup.send(ToWorker::Hello {
        version: PROTOCOL_VERSION,
        slot: 0,
        codec: Codec::Json,
    })
    .await;
    let worker = within("the handshake", Worker::connect_with(ours, Codec::Json))
        .await
        .unwrap();
    assert_eq!(worker.codec(), Codec::Json);
    typed(&worker);
    let _run = spawn_run(&worker);
    let id = Uuid::new_v4();
    sup.send(ToWorker::Request(RequestFrame {
        id,
        created_at: Timestamp::now(),
        call: 1,
        payload: b"21".to_vec(),
        trace: None,
    }))
    .await;
    match sup.recv("the JSON answer").await {
        ToSupervisor::Response { id: got, payload } => {
            assert_eq!(got, id);
            assert_eq!(payload, b"42");
        }
        other => panic!("expected a Response, got {other:?}"),
    }
}
