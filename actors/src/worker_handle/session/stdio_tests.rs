//! The session's side of the stdio transport, driven by hand: in-band
//! request and response streams with their credit and the cancel fence,
//! sockets refused, and a remote worker's usage reports and kill phases.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lpm_protocol::{
    Codec, Credit, RequestId, ToSupervisor, ToWorker, PROTOCOL_VERSION, STREAM_CHUNK, STREAM_WINDOW,
};
use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot};

use super::tests::{config, effects, killed_for, request, sent, signals, worker_id, Answer, PID};
use super::{Effect, Feedback, RequestChunk, Session};
use crate::health::UsageSource;
use crate::request::Pending;
use crate::stream::{Attachment, StreamEnd};
use crate::{Error, KillReason, Transport};

/// A session over `transport` past its handshake and ready; `pid` is the
/// one its `Hello` names (another than [`PID`] makes it remote).
fn ready_over(transport: Transport, pid: u32, now: Instant) -> Session {
    let mut session = Session::new(worker_id(), PID, transport, config(), now);
    let hello = ToSupervisor::Hello {
        version: PROTOCOL_VERSION,
        pid,
        codec: Codec::Postcard,
        calls: Vec::new(),
        takes_fds: transport == Transport::Socketpair,
    };
    session.on_frames(vec![hello, ToSupervisor::Ready], now);
    sent(&mut session);
    effects(&mut session);
    session
}

fn id(n: u128) -> RequestId {
    RequestId::from_u128(n)
}

/// Request `n` carrying `attachment`.
fn with(n: u128, attachment: Attachment, now: Instant) -> (Pending, Answer) {
    let (mut pending, answer) = request(n, None, 0, now);
    pending.attachment = Some(attachment);
    (pending, answer)
}

fn violation(effects: &[Effect]) -> Option<&str> {
    match killed_for(effects) {
        Some(KillReason::ProtocolViolation(m)) => Some(m),
        _ => None,
    }
}

/// The credit of the in-band pump the session asked for.
fn pump_credit(effects: Vec<Effect>) -> Arc<Credit> {
    effects
        .into_iter()
        .find_map(|e| match e {
            Effect::PumpInBand { credit, .. } => Some(credit),
            _ => None,
        })
        .expect("an in-band pump")
}

/// What the caller of an in-band response stream got.
struct Streamed {
    chunks: mpsc::UnboundedReceiver<Vec<u8>>,
    end: oneshot::Receiver<StreamEnd>,
}

fn streamed(effects: Vec<Effect>) -> Streamed {
    effects
        .into_iter()
        .find_map(|e| match e {
            Effect::AnswerStreamed {
                pending,
                chunks,
                end,
                ..
            } => {
                pending.abandon();
                Some(Streamed { chunks, end })
            }
            _ => None,
        })
        .expect("an in-band response stream")
}

/// A stdio session holding request 1, answered with an in-band stream.
fn answered_in_band(now: Instant) -> (Session, Streamed) {
    let mut session = ready_over(Transport::Stdio, PID, now);
    let (p, _answer) = request(1, None, 0, now);
    session.assign(vec![p]);
    sent(&mut session);
    let answer = ToSupervisor::ResponseStreamed {
        id: id(1),
        payload: vec![7],
    };
    session.on_frames(vec![answer], now);
    let streamed = streamed(effects(&mut session));
    (session, streamed)
}

fn data(n: u128, len: usize) -> ToSupervisor {
    ToSupervisor::StreamData {
        id: id(n),
        data: vec![5; len],
    }
}

#[test]
fn a_request_stream_goes_in_band_within_the_workers_credit() {
    let now = Instant::now();
    let mut session = ready_over(Transport::Stdio, PID, now);
    let body: &'static [u8] = b"abc";
    let (p, _answer) = with(1, Attachment::Reader(Box::new(body)), now);
    session.assign(vec![p]);
    assert!(matches!(
        sent(&mut session)[..],
        [ToWorker::RequestStreamed(ref frame)] if frame.id == id(1)
    ));
    let credit = pump_credit(effects(&mut session));
    assert_eq!(credit.available(), STREAM_WINDOW);

    session.on_request_chunk(id(1), RequestChunk::Data(b"abc".to_vec()));
    session.on_frames(
        vec![ToSupervisor::StreamCredit {
            id: id(1),
            bytes: 3,
        }],
        now,
    );
    assert_eq!(credit.available(), STREAM_WINDOW + 3, "the worker's grant");
    session.on_request_chunk(id(1), RequestChunk::End(Ok(3)));
    assert_eq!(
        sent(&mut session),
        [
            ToWorker::StreamData {
                id: id(1),
                data: b"abc".to_vec()
            },
            ToWorker::StreamEnd {
                id: id(1),
                outcome: Ok(3)
            }
        ]
    );
    assert!(credit.is_closed(), "the pump is done");
}

#[test]
fn an_answer_before_the_end_stops_the_request_stream() {
    let now = Instant::now();
    let mut session = ready_over(Transport::Stdio, PID, now);
    let body: &'static [u8] = b"abc";
    let (p, answer) = with(1, Attachment::Reader(Box::new(body)), now);
    session.assign(vec![p]);
    sent(&mut session);
    let credit = pump_credit(effects(&mut session));
    session.on_frames(vec![ToSupervisor::Ack { id: id(1) }], now);
    assert!(credit.is_closed(), "the caller's reader is read no more");
    session.on_request_chunk(id(1), RequestChunk::Data(b"late".to_vec()));
    assert!(sent(&mut session).is_empty(), "nothing more for that id");
    assert!(answer.blocking_recv().unwrap().unwrap().is_ack());
}

#[test]
fn a_cancel_stops_the_request_stream() {
    let now = Instant::now();
    let mut session = ready_over(Transport::Stdio, PID, now);
    let body: &'static [u8] = b"abc";
    let (p, _answer) = with(1, Attachment::Reader(Box::new(body)), now);
    session.assign(vec![p]);
    sent(&mut session);
    let credit = pump_credit(effects(&mut session));
    session.cancel(&[id(1)], now);
    assert!(credit.is_closed());
    session.on_request_chunk(id(1), RequestChunk::End(Ok(0)));
    assert!(matches!(
        sent(&mut session)[..],
        [ToWorker::Cancel { .. }, ToWorker::Ping { .. }]
    ));
}

#[test]
fn a_socket_for_a_stdio_worker_fails_naming_the_transport() {
    let now = Instant::now();
    let mut session = ready_over(Transport::Stdio, PID, now);
    let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let attachment = Attachment::Fd(lpm_protocol::FdKind::UnixStream, socket.into());
    let (p, answer) = with(1, attachment, now);
    session.assign(vec![p]);
    assert!(sent(&mut session).is_empty(), "nothing reached the worker");
    assert_eq!(session.in_flight(), 0);
    assert_eq!(
        answer.blocking_recv().unwrap().unwrap_err(),
        Error::NoFdPassing {
            what: "socket",
            transport: Transport::Stdio
        }
    );
}

#[test]
fn a_socketpair_worker_that_takes_no_fds_gets_streams_in_band() {
    let now = Instant::now();
    let mut session = Session::new(worker_id(), PID, Transport::Socketpair, config(), now);
    let hello = ToSupervisor::Hello {
        version: PROTOCOL_VERSION,
        pid: PID,
        codec: Codec::Postcard,
        calls: Vec::new(),
        takes_fds: false,
    };
    session.on_frames(vec![hello, ToSupervisor::Ready], now);
    assert!(effects(&mut session).iter().any(|e| matches!(
        e,
        Effect::Calls {
            refuses_fds: Some(Transport::Socketpair),
            ..
        }
    )));
    sent(&mut session);
    let body: &'static [u8] = b"abc";
    let (p, _answer) = with(1, Attachment::Reader(Box::new(body)), now);
    session.assign(vec![p]);
    assert!(matches!(
        sent(&mut session)[..],
        [ToWorker::RequestStreamed(_)]
    ));
}

#[test]
fn response_chunks_within_credit_reach_the_caller_and_the_end_frees_the_slot() {
    let now = Instant::now();
    let (mut session, mut streamed) = answered_in_band(now);
    assert_eq!(session.health(now).in_flight, 1, "held until the end");
    session.on_frames(vec![data(1, 10), data(1, 20)], now);
    assert_eq!(streamed.chunks.try_recv().unwrap().len(), 10);
    assert_eq!(streamed.chunks.try_recv().unwrap().len(), 20);
    let end = ToSupervisor::StreamEnd {
        id: id(1),
        outcome: Ok(30),
    };
    session.on_frames(vec![end], now);
    assert_eq!(streamed.end.try_recv().unwrap(), Ok(30));
    assert!(
        streamed.chunks.try_recv().is_err(),
        "the chunks end with the stream"
    );
    assert_eq!(session.health(now).in_flight, 0);
    assert!(violation(&effects(&mut session)).is_none());
}

#[test]
fn response_data_beyond_the_credit_granted_is_a_violation() {
    let now = Instant::now();
    let (mut session, _streamed) = answered_in_band(now);
    let full = STREAM_WINDOW as usize / STREAM_CHUNK;
    session.on_frames(vec![data(1, STREAM_CHUNK); full], now);
    assert!(violation(&effects(&mut session)).is_none(), "a full window");
    // The caller read a chunk: the worker may send one more, and is told so.
    session.on_stream_feedback(id(1), Feedback::Consumed(STREAM_CHUNK as u64), now);
    assert_eq!(
        sent(&mut session),
        [ToWorker::StreamCredit {
            id: id(1),
            bytes: STREAM_CHUNK as u64
        }]
    );
    session.on_frames(vec![data(1, STREAM_CHUNK)], now);
    assert!(violation(&effects(&mut session)).is_none());
    session.on_frames(vec![data(1, 1)], now);
    assert!(violation(&effects(&mut session)).is_some_and(|m| m.contains("beyond its credit")));
}

#[test]
fn a_response_chunk_over_the_chunk_size_is_a_violation() {
    let now = Instant::now();
    let (mut session, _streamed) = answered_in_band(now);
    session.on_frames(vec![data(1, STREAM_CHUNK + 1)], now);
    assert!(violation(&effects(&mut session)).is_some_and(|m| m.contains("at most")));
}

#[test]
fn a_dropped_response_stream_is_cancelled_and_its_late_chunks_are_stale_until_the_fence() {
    let now = Instant::now();
    let (mut session, _streamed) = answered_in_band(now);
    session.on_stream_feedback(id(1), Feedback::Dropped, now);
    let frames = sent(&mut session);
    let [ToWorker::Cancel { id: cancelled }, ToWorker::Ping { seq }] = frames[..] else {
        panic!("expected Cancel then the fence's Ping, got {frames:?}");
    };
    assert_eq!(cancelled, id(1));
    assert_eq!(session.health(now).in_flight, 0, "the slot is free");
    // Sent before the worker read the Cancel: dropped quietly.
    let end = ToSupervisor::StreamEnd {
        id: id(1),
        outcome: Ok(10),
    };
    session.on_frames(vec![data(1, 10), end.clone()], now);
    assert!(violation(&effects(&mut session)).is_none());
    // After the fence, more of it can only be a bad worker.
    session.on_frames(vec![ToSupervisor::Pong { seq }, data(1, 10)], now);
    assert!(violation(&effects(&mut session)).is_some_and(|m| m.contains("StreamData")));
}

#[test]
fn stream_frames_for_no_stream_are_violations() {
    let now = Instant::now();
    let mut session = ready_over(Transport::Stdio, PID, now);
    session.on_frames(vec![data(9, 1)], now);
    assert!(violation(&effects(&mut session)).is_some());

    let mut session = ready_over(Transport::Stdio, PID, now);
    let end = ToSupervisor::StreamEnd {
        id: id(9),
        outcome: Ok(0),
    };
    session.on_frames(vec![end], now);
    assert!(violation(&effects(&mut session)).is_some_and(|m| m.contains("StreamEnd")));
}

#[test]
fn the_end_of_a_stale_pipe_stream_is_expected_even_after_the_fence() {
    let now = Instant::now();
    let mut session = ready_over(Transport::Socketpair, PID, now);
    let (p, _answer) = request(1, None, 0, now);
    session.assign(vec![p]);
    session.cancel(&[id(1)], now);
    let frames = sent(&mut session);
    let Some(ToWorker::Ping { seq }) = frames.last() else {
        panic!("expected the fence's Ping, got {frames:?}");
    };
    let (read_end, _write_end) = lpm_protocol::pipe().unwrap();
    let stale = ToSupervisor::ResponseWithStream {
        id: id(1),
        payload: Vec::new(),
        fd: lpm_protocol::Fd::new(read_end),
    };
    session.on_frames(vec![stale, ToSupervisor::Pong { seq: *seq }], now);
    // Its writer hit the closed pipe and reports the end, after the fence.
    let end = ToSupervisor::StreamEnd {
        id: id(1),
        outcome: Err("broken pipe".into()),
    };
    session.on_frames(vec![end], now);
    assert!(violation(&effects(&mut session)).is_none());
}

#[test]
fn a_remote_worker_is_asked_for_its_usage_and_health_says_so() {
    let now = Instant::now();
    let mut session = ready_over(Transport::Stdio, PID + 1, now);
    assert!(session.is_remote());
    session.request_usage();
    assert_eq!(sent(&mut session), [ToWorker::ReportUsage]);
    let usage = |cpu_ns| ToSupervisor::Usage {
        rss_bytes: 5 << 20,
        cpu_ns,
    };
    session.on_frames(vec![usage(1_000_000_000)], now);
    // Half a second of CPU in one second of wall time: 50 %.
    session.on_frames(vec![usage(1_500_000_000)], now + Duration::from_secs(1));
    let health = session.health(now);
    assert_eq!(health.usage, UsageSource::Reported);
    assert_eq!(health.rss, 5 << 20);
    assert!((health.cpu - 50.0).abs() < 0.01, "{}", health.cpu);
    assert!(effects(&mut session)
        .iter()
        .any(|e| matches!(e, Effect::Rss(r) if *r == 5 << 20)));

    let mut local = ready_over(Transport::Stdio, PID, now);
    local.request_usage();
    assert!(sent(&mut local).is_empty(), "a local worker is sampled");
    assert_eq!(local.health(now).usage, UsageSource::Sampled);
}

fn launcher_signals(effects: &[Effect]) -> Vec<Signal> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::SignalLauncher(s) => Some(*s),
            _ => None,
        })
        .collect()
}

fn closes_input(effects: &[Effect]) -> bool {
    effects.iter().any(|e| matches!(e, Effect::CloseInput))
}

#[test]
fn a_remote_worker_is_hard_killed_in_phases() {
    let now = Instant::now();
    let mut session = ready_over(Transport::Stdio, PID + 1, now);
    session.kill(now);
    assert_eq!(sent(&mut session), [ToWorker::HardKill]);
    let effects_now = effects(&mut session);
    assert!(closes_input(&effects_now), "its input closes");
    assert!(signals(&effects_now).is_empty(), "its group is not ours");
    assert!(launcher_signals(&effects_now).is_empty(), "not yet");

    let term_at = session.next_timeout().expect("the next phase");
    assert_eq!(term_at, now + Duration::from_secs(2));
    session.on_timeout(term_at);
    assert_eq!(launcher_signals(&effects(&mut session)), [Signal::SIGTERM]);
    let kill_at = session.next_timeout().expect("the last phase");
    assert_eq!(kill_at, term_at + config().term_grace);
    session.on_timeout(kill_at);
    assert_eq!(launcher_signals(&effects(&mut session)), [Signal::SIGKILL]);
    session.on_exit(None, Some(9), kill_at);
    let after = effects(&mut session);
    assert!(signals(&after).is_empty() && launcher_signals(&after).is_empty());
    assert_eq!(session.next_timeout(), None);
}

#[test]
fn a_remote_worker_that_exits_in_time_gets_no_signal() {
    let now = Instant::now();
    let mut session = ready_over(Transport::Stdio, PID + 1, now);
    session.drain();
    assert_eq!(sent(&mut session), [ToWorker::SoftKill]);
    session.on_frames(vec![ToSupervisor::SoftKillDone], now);
    session.on_eof(now);
    assert!(closes_input(&effects(&mut session)));
    session.on_exit(Some(0), None, now + Duration::from_millis(10));
    let after = effects(&mut session);
    assert!(signals(&after).is_empty() && launcher_signals(&after).is_empty());
    assert_eq!(session.next_timeout(), None, "no phase left to run");
}

#[test]
fn a_remote_workers_dead_launcher_leaves_it_to_read_end_of_file() {
    let now = Instant::now();
    let mut session = ready_over(Transport::Stdio, PID + 1, now);
    session.on_exit(None, Some(9), now);
    let effects = effects(&mut session);
    assert!(closes_input(&effects));
    assert!(
        signals(&effects).is_empty(),
        "no group kill for a remote worker"
    );
}

#[test]
fn a_local_stdio_worker_is_signalled_as_over_the_socketpair() {
    let now = Instant::now();
    let mut session = ready_over(Transport::Stdio, PID, now);
    assert!(!session.is_remote());
    session.kill(now);
    let effects = effects(&mut session);
    assert_eq!(signals(&effects), [Signal::SIGKILL]);
    assert!(!closes_input(&effects));
}
