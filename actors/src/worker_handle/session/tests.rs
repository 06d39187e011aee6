//! The session driven by hand: events in, frames and effects out. No
//! process, no socket, no sleeping: time is an `Instant` moved by the test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use lpm_protocol::{
    Codec, FrameDecoder, RequestId, ToSupervisor, ToWorker, DEFAULT_MAX_FRAME_LEN, PROTOCOL_VERSION,
};
use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use super::{Effect, Session, SessionConfig};
use crate::health::WorkerState;
use crate::id::WorkerId;
use crate::request::{Counters, Defaults, Job, Options, Pending, Response};
use crate::{Error, Heartbeat, KillReason, RecycleReason, Transport};

pub(super) const PID: u32 = 4242;

pub(super) type Answer = oneshot::Receiver<Result<Response, Error>>;

pub(super) fn config() -> SessionConfig {
    SessionConfig {
        max_frame_len: DEFAULT_MAX_FRAME_LEN,
        codec: Codec::Postcard,
        spawn_timeout: Duration::from_secs(5),
        counters: Arc::new(Counters::default()),
        heartbeat: None,
        recycle_on_timeout: false,
        term_grace: Duration::from_secs(1),
        max_requests: None,
        max_rss: None,
        recycle_retry: Duration::from_secs(60),
    }
}

pub(super) fn worker_id() -> WorkerId {
    WorkerId {
        slot: 3,
        generation: 7,
    }
}

/// A request made at `now`, and what its caller will get.
pub(super) fn request(
    n: u128,
    timeout: Option<Duration>,
    retries: u32,
    now: Instant,
) -> (Pending, Answer) {
    let (tx, rx) = oneshot::channel();
    let job = Job::new(
        None,
        n.to_le_bytes().to_vec(),
        Options {
            timeout: Some(timeout),
            retries: Some(retries),
            ..Options::default()
        },
    );
    let defaults = Defaults {
        timeout: None,
        retries: 0,
        codec: Codec::Postcard,
        counters: Arc::new(Counters::default()),
    };
    let mut pending = Pending::new(RequestId::from_u128(n), job, tx, &defaults, now);
    // The balancer numbers the call for the worker it assigns to; untyped here.
    pending.wire_call = Some(0);
    (pending, rx)
}

pub(super) fn hello(codec: Codec) -> ToSupervisor {
    ToSupervisor::Hello {
        version: PROTOCOL_VERSION,
        pid: PID,
        codec,
        calls: Vec::new(),
        takes_fds: true,
    }
}

/// The frames the session queued since the last call, decoded.
pub(super) fn sent(session: &mut Session) -> Vec<ToWorker> {
    let mut buf = BytesMut::from(session.outbox().unwritten());
    session.outbox().clear();
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
    let mut frames = Vec::new();
    while let Some(frame) = decoder
        .decode::<ToWorker>(&mut buf)
        .expect("a frame the session wrote")
    {
        frames.push(frame);
    }
    frames
}

pub(super) fn effects(session: &mut Session) -> Vec<Effect> {
    session.take_effects(Vec::new())
}

/// A session past its handshake, ready, with its frames and effects taken.
pub(super) fn ready(config: SessionConfig, now: Instant) -> Session {
    let mut session = Session::new(worker_id(), PID, Transport::Socketpair, config, now);
    session.on_frames(vec![hello(Codec::Postcard), ToSupervisor::Ready], now);
    sent(&mut session);
    effects(&mut session);
    session
}

fn response(n: u128) -> ToSupervisor {
    ToSupervisor::Response {
        id: RequestId::from_u128(n),
        payload: vec![n as u8],
    }
}

pub(super) fn killed_for(effects: &[Effect]) -> Option<&KillReason> {
    effects.iter().find_map(|e| match e {
        Effect::Killing(reason) => Some(reason),
        _ => None,
    })
}

pub(super) fn signals(effects: &[Effect]) -> Vec<Signal> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Signal(s) => Some(*s),
            _ => None,
        })
        .collect()
}

fn statuses(effects: &[Effect]) -> Vec<WorkerState> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Status(s) => Some(*s),
            _ => None,
        })
        .collect()
}

fn requeued(effects: Vec<Effect>) -> Vec<Pending> {
    effects
        .into_iter()
        .flat_map(|e| match e {
            Effect::Requeue(p) => p,
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn the_hello_goes_first_and_the_first_ready_brings_the_worker_online() {
    let now = Instant::now();
    let mut session = Session::new(worker_id(), PID, Transport::Socketpair, config(), now);
    assert!(matches!(
        sent(&mut session)[..],
        [ToWorker::Hello {
            version: PROTOCOL_VERSION,
            slot: 3,
            codec: Codec::Postcard
        }]
    ));
    assert_eq!(session.health(now).state, WorkerState::Starting);
    session.on_frames(vec![hello(Codec::Postcard)], now);
    assert!(matches!(effects(&mut session)[..], [Effect::Calls { .. }]));
    session.on_frames(vec![ToSupervisor::Ready], now);
    assert!(matches!(
        effects(&mut session)[..],
        [Effect::Status(WorkerState::Ready), Effect::Online]
    ));
    session.on_frames(vec![ToSupervisor::Busy, ToSupervisor::Ready], now);
    assert_eq!(
        statuses(&effects(&mut session)),
        [WorkerState::Busy, WorkerState::Ready],
        "Online only once"
    );
}

#[test]
fn a_frame_before_the_hello_is_a_protocol_violation() {
    let now = Instant::now();
    let mut session = Session::new(worker_id(), PID, Transport::Socketpair, config(), now);
    session.on_frames(vec![ToSupervisor::Ready], now);
    let effects = effects(&mut session);
    assert!(matches!(
        killed_for(&effects),
        Some(KillReason::ProtocolViolation(m)) if m.contains("expected Hello first")
    ));
    assert_eq!(statuses(&effects), [WorkerState::Stopped]);
    assert_eq!(signals(&effects), [Signal::SIGKILL]);
}

#[test]
fn a_worker_silent_past_the_spawn_timeout_is_killed() {
    let now = Instant::now();
    let mut session = Session::new(worker_id(), PID, Transport::Socketpair, config(), now);
    let deadline = now + Duration::from_secs(5);
    assert_eq!(session.next_timeout(), Some(deadline));
    session.on_timeout(deadline - Duration::from_millis(1));
    assert!(effects(&mut session).is_empty(), "not yet");
    session.on_timeout(deadline);
    assert!(matches!(
        killed_for(&effects(&mut session)),
        Some(KillReason::NoHandshake { .. })
    ));
}

#[test]
fn a_worker_on_another_codec_is_killed_at_the_handshake() {
    let now = Instant::now();
    let mut session = Session::new(worker_id(), PID, Transport::Socketpair, config(), now);
    session.on_frames(vec![hello(Codec::Json)], now);
    assert!(matches!(
        killed_for(&effects(&mut session)),
        Some(KillReason::CodecMismatch {
            pool: Codec::Postcard,
            worker: Codec::Json
        })
    ));
}

#[test]
fn assigned_requests_go_out_in_one_batch_and_answers_reach_their_callers() {
    let now = Instant::now();
    let mut session = ready(config(), now);
    let (a, mut answer_a) = request(1, None, 0, now);
    let (b, mut answer_b) = request(2, None, 0, now);
    session.assign(vec![a, b]);
    let frames = sent(&mut session);
    assert_eq!(frames.len(), 2);
    assert!(matches!(&frames[0], ToWorker::Request(r) if r.id == RequestId::from_u128(1)));
    assert_eq!(session.in_flight(), 2);

    session.on_frames(vec![response(2)], now);
    let response = answer_b.try_recv().expect("answered").expect("a response");
    assert_eq!(response.bytes(), [2]);
    assert_eq!(response.pid(), PID);
    assert!(answer_a.try_recv().is_err(), "still in flight");
    assert_eq!(session.health(now).served, 1);
}

#[test]
fn an_answer_for_a_request_the_worker_does_not_hold_kills_it() {
    let now = Instant::now();
    let mut session = ready(config(), now);
    session.on_frames(vec![response(9)], now);
    assert!(matches!(
        killed_for(&effects(&mut session)),
        Some(KillReason::ProtocolViolation(m)) if m.contains("does not hold")
    ));
}

#[test]
fn a_request_past_its_deadline_is_retried_elsewhere_then_times_out() {
    let now = Instant::now();
    let mut session = ready(config(), now);
    let (p, mut answer) = request(1, Some(Duration::from_secs(1)), 1, now);
    session.assign(vec![p]);
    sent(&mut session);
    let deadline = now + Duration::from_secs(1);
    assert_eq!(session.next_timeout(), Some(deadline));

    session.on_timeout(deadline);
    assert!(matches!(
        sent(&mut session)[..],
        [ToWorker::Cancel { .. }, ToWorker::Ping { .. }]
    ));
    let mut retry = requeued(effects(&mut session));
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].attempts, 2);
    assert_eq!(
        retry[0].avoid(),
        Some(3),
        "the next attempt avoids this slot"
    );

    // The retry comes back here and times out again: no retries are left.
    let later = deadline + Duration::from_secs(5);
    retry[0].deadline = Some(later);
    session.assign(retry);
    session.on_timeout(later);
    assert!(matches!(
        answer.try_recv(),
        Ok(Err(Error::Timeout { attempts: 2, .. }))
    ));
    assert_eq!(session.next_timeout(), None);
}

#[test]
fn a_late_answer_to_a_cancelled_request_is_dropped_until_the_fence_returns() {
    let now = Instant::now();
    let mut session = ready(config(), now);
    let (p, mut answer) = request(1, None, 0, now);
    let (q, _answer_q) = request(2, None, 0, now);
    session.assign(vec![p, q]);
    sent(&mut session);

    session.cancel(&[RequestId::from_u128(1)], now);
    let frames = sent(&mut session);
    let [ToWorker::Cancel { .. }, ToWorker::Ping { seq }] = frames[..] else {
        panic!("expected Cancel then the fence's Ping, got {frames:?}");
    };
    assert!(
        matches!(answer.try_recv(), Err(oneshot::error::TryRecvError::Closed)),
        "the caller is gone; nobody is answered"
    );
    // Sent before the worker read the Cancel: stale, dropped quietly.
    session.on_frames(vec![response(1)], now);
    assert!(killed_for(&effects(&mut session)).is_none());
    // Once the fence is back, an answer for it can only be a bad one.
    session.on_frames(vec![ToSupervisor::Pong { seq }, response(1)], now);
    assert!(matches!(
        killed_for(&effects(&mut session)),
        Some(KillReason::ProtocolViolation(_))
    ));
}

#[test]
fn a_draining_worker_takes_nothing_new_and_sends_its_assignments_back() {
    let now = Instant::now();
    let mut session = ready(config(), now);
    session.drain();
    assert!(matches!(sent(&mut session)[..], [ToWorker::SoftKill]));
    assert_eq!(statuses(&effects(&mut session)), [WorkerState::Draining]);
    let (p, _answer) = request(1, None, 0, now);
    session.assign(vec![p]);
    assert_eq!(requeued(effects(&mut session)).len(), 1);
    assert!(sent(&mut session).is_empty());
    session.on_frames(vec![ToSupervisor::Ready], now);
    assert!(
        statuses(&effects(&mut session)).is_empty(),
        "a draining worker stays draining"
    );
}

#[test]
fn a_hard_kill_fails_what_is_in_flight_and_kills_the_group() {
    let now = Instant::now();
    let mut session = ready(config(), now);
    let (p, mut answer) = request(1, None, 0, now);
    session.assign(vec![p]);
    sent(&mut session);
    session.kill(now);
    assert!(matches!(answer.try_recv(), Ok(Err(Error::Killed))));
    assert!(matches!(sent(&mut session)[..], [ToWorker::HardKill]));
    let effects = effects(&mut session);
    assert_eq!(statuses(&effects), [WorkerState::Stopped]);
    assert_eq!(signals(&effects), [Signal::SIGKILL]);
    assert!(
        killed_for(&effects).is_none(),
        "the pool's own order, not misbehaviour"
    );
}

#[test]
fn the_exit_report_holds_the_requests_in_flight_and_no_signal_follows_it() {
    let now = Instant::now();
    let mut session = ready(config(), now);
    let (p, _answer) = request(1, Some(Duration::from_secs(1)), 0, now);
    session.assign(vec![p]);
    session.on_exit(None, Some(9), now);
    let effects = effects(&mut session);
    assert_eq!(
        signals(&effects),
        [Signal::SIGKILL],
        "the group, right at the reap"
    );
    let exit = effects.iter().find_map(|e| match e {
        Effect::Exited(exit) => Some(exit),
        _ => None,
    });
    let exit = exit.expect("an exit report");
    assert_eq!(exit.held.len(), 1);
    assert_eq!(exit.signal, Some(9));
    assert_eq!(session.next_timeout(), None, "no timer outlives the worker");
    session.signal(Signal::SIGTERM, now);
    session.kill(now);
    assert!(signals(&session.take_effects(Vec::new())).is_empty());
}

#[test]
fn a_worker_that_closed_its_channel_gets_two_seconds_to_exit() {
    let now = Instant::now();
    let mut session = ready(config(), now);
    session.on_eof(now);
    assert_eq!(statuses(&effects(&mut session)), [WorkerState::Stopped]);
    let deadline = now + Duration::from_secs(2);
    assert_eq!(session.next_timeout(), Some(deadline));
    session.on_timeout(deadline);
    assert_eq!(signals(&effects(&mut session)), [Signal::SIGKILL]);
    assert_eq!(session.next_timeout(), None, "once");
}

#[test]
fn nothing_a_closed_channel_delivers_counts() {
    let now = Instant::now();
    let mut session = ready(config(), now);
    session.on_eof(now);
    effects(&mut session);
    session.on_frames(vec![ToSupervisor::Ready, response(5)], now);
    assert!(effects(&mut session).is_empty());
}

#[test]
fn a_silent_worker_is_pinged_then_killed() {
    let now = Instant::now();
    let mut config = config();
    config.heartbeat = Some(Heartbeat {
        every: Duration::from_secs(1),
        timeout: Duration::from_secs(3),
    });
    let mut session = ready(config, now);
    let mut at = now;
    for _ in 0..3 {
        at += Duration::from_secs(1);
        assert_eq!(session.next_timeout(), Some(at));
        session.on_timeout(at);
        assert!(matches!(sent(&mut session)[..], [ToWorker::Ping { .. }]));
    }
    at += Duration::from_secs(1);
    session.on_timeout(at);
    assert!(matches!(
        killed_for(&effects(&mut session)),
        Some(KillReason::Unresponsive { silent_for }) if *silent_for == Duration::from_secs(4)
    ));
}

#[test]
fn a_pong_keeps_a_worker_alive() {
    let now = Instant::now();
    let mut config = config();
    config.heartbeat = Some(Heartbeat {
        every: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
    });
    let mut session = ready(config, now);
    for s in 1..10 {
        let at = now + Duration::from_secs(s);
        session.on_timeout(at);
        let frames = sent(&mut session);
        let [ToWorker::Ping { seq }] = frames[..] else {
            panic!("expected a Ping, got {frames:?}");
        };
        session.on_frames(vec![ToSupervisor::Pong { seq }], at);
    }
    assert!(killed_for(&effects(&mut session)).is_none());
}

#[test]
fn a_late_request_recycles_its_worker_with_sigterm_then_sigkill() {
    let now = Instant::now();
    let mut config = config();
    config.recycle_on_timeout = true;
    let mut session = ready(config, now);
    let (late, _late_answer) = request(1, Some(Duration::from_secs(1)), 0, now);
    let (other, mut other_answer) = request(2, None, 0, now);
    session.assign(vec![late, other]);
    let deadline = now + Duration::from_secs(1);
    session.on_timeout(deadline);
    let effects_now = effects(&mut session);
    assert!(matches!(
        killed_for(&effects_now),
        Some(KillReason::RequestTimedOut { .. })
    ));
    assert_eq!(statuses(&effects_now), [WorkerState::Draining]);
    assert_eq!(signals(&effects_now), [Signal::SIGTERM]);

    // Its other requests are still answered meanwhile.
    session.on_frames(vec![response(2)], deadline);
    assert!(matches!(other_answer.try_recv(), Ok(Ok(_))));
    let grace_over = deadline + Duration::from_secs(1);
    assert_eq!(session.next_timeout(), Some(grace_over));
    session.on_timeout(grace_over);
    assert_eq!(signals(&effects(&mut session)), [Signal::SIGKILL]);

    session.on_exit(None, Some(9), grace_over);
    let exit = effects(&mut session).into_iter().find_map(|e| match e {
        Effect::Exited(exit) => Some(exit),
        _ => None,
    });
    assert!(matches!(
        exit.and_then(|e| e.killed_for),
        Some(KillReason::RequestTimedOut { .. })
    ));
}

#[test]
fn a_worker_asks_to_be_recycled_after_its_request_limit_once_per_retry_period() {
    let now = Instant::now();
    let mut config = config();
    config.max_requests = Some((2, 0));
    let mut session = ready(config, now);
    let recycles = |effects: Vec<Effect>| {
        effects
            .into_iter()
            .filter(|e| matches!(e, Effect::Recycle(RecycleReason::MaxRequests { .. })))
            .count()
    };
    for n in 1..=3 {
        let (p, _answer) = request(n, None, 0, now);
        session.assign(vec![p]);
        session.on_frames(vec![response(n)], now);
        assert_eq!(recycles(effects(&mut session)), usize::from(n == 2));
    }
    let (p, _answer) = request(4, None, 0, now);
    session.assign(vec![p]);
    session.on_frames(vec![response(4)], now + Duration::from_secs(60));
    assert_eq!(
        recycles(effects(&mut session)),
        1,
        "asks again after the retry period"
    );
}

#[test]
fn a_freed_slot_is_announced_only_while_requests_wait() {
    let now = Instant::now();
    let config = config();
    let counters = Arc::clone(&config.counters);
    let mut session = ready(config, now);
    let freed = |effects: Vec<Effect>| effects.iter().any(|e| matches!(e, Effect::Freed));
    let (p, _a) = request(1, None, 0, now);
    session.assign(vec![p]);
    session.on_frames(vec![response(1)], now);
    assert!(!freed(effects(&mut session)));
    counters.set_queued(1);
    let (p, _a) = request(2, None, 0, now);
    session.assign(vec![p]);
    session.on_frames(vec![response(2)], now);
    assert!(freed(effects(&mut session)));
}

#[test]
fn a_hello_that_lists_a_call_twice_is_a_protocol_violation() {
    let now = Instant::now();
    let mut session = Session::new(worker_id(), PID, Transport::Socketpair, config(), now);
    session.on_frames(
        vec![ToSupervisor::Hello {
            version: PROTOCOL_VERSION,
            pid: PID,
            codec: Codec::Postcard,
            calls: vec!["a".into(), "a".into()],
            takes_fds: true,
        }],
        now,
    );
    assert!(matches!(
        killed_for(&effects(&mut session)),
        Some(KillReason::ProtocolViolation(m)) if m.contains("twice")
    ));
}

#[test]
fn a_soft_kill_before_the_hello_still_expects_the_hello_and_its_deadline() {
    let now = Instant::now();
    let mut session = Session::new(worker_id(), PID, Transport::Socketpair, config(), now);
    sent(&mut session);
    session.drain();
    assert!(matches!(sent(&mut session)[..], [ToWorker::SoftKill]));
    assert_eq!(statuses(&effects(&mut session)), [WorkerState::Draining]);
    session.on_frames(vec![hello(Codec::Postcard), ToSupervisor::Ready], now);
    let effects_now = effects(&mut session);
    assert!(killed_for(&effects_now).is_none(), "{effects_now:?}");
    assert!(statuses(&effects_now).is_empty(), "still draining");
    assert_eq!(
        session.next_timeout(),
        None,
        "the handshake's deadline is met"
    );

    // Without its Hello, the handshake's deadline still holds.
    let mut silent = Session::new(worker_id(), PID, Transport::Socketpair, config(), now);
    silent.drain();
    silent.on_timeout(now + Duration::from_secs(5));
    assert!(matches!(
        killed_for(&effects(&mut silent)),
        Some(KillReason::NoHandshake { .. })
    ));
}
