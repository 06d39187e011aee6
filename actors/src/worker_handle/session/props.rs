//! Properties of the session over random interleavings of assignments,
//! answers, cancels, pings, timeouts, kills and exits, against a simulated
//! worker that keeps the protocol: it answers only requests it has read and
//! not seen cancelled, and answers pings in order. Some answers are in-band
//! response streams, which the worker sends within the credit it has read
//! and stops when it reads their `Cancel`; their callers read them (granting
//! credit) or drop them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use lpm_protocol::{Codec, RequestId, ToSupervisor, ToWorker, STREAM_CHUNK, STREAM_WINDOW};
use proptest::prelude::*;
use tokio::sync::oneshot::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use super::tests::{config, effects, hello, request, sent, worker_id, Answer, PID};
use super::{Effect, Feedback, Session};
use crate::request::{Pending, Response};
use crate::stream::StreamEnd;
use crate::{Error, Heartbeat, KillReason, Transport};

#[derive(Debug, Clone)]
enum Op {
    /// The balancer assigns `n` requests, each with the timeout (seconds) and retries given.
    Assign(Vec<(Option<u8>, u8)>),
    /// The worker reads what was sent to it.
    WorkerReads,
    /// The worker answers the `i`-th request it holds (modulo), as `how`
    /// (3: with an in-band stream).
    WorkerAnswers(usize, u8),
    /// The worker sends up to this many bytes of the `i`-th stream it sends.
    WorkerStreams(usize, u32),
    /// The worker ends the `i`-th stream it sends.
    WorkerEndsStream(usize),
    /// The caller of the `i`-th stream reads what has arrived.
    CallerReads(usize),
    /// The caller of the `i`-th stream drops it.
    CallerDropsStream(usize),
    /// The worker answers the pings it read.
    WorkerPongs,
    /// The caller of the `i`-th request still waiting (modulo) stops waiting.
    CallerCancels(usize),
    /// Time passes; the session's timer rings if it is due.
    Advance(u16),
    SoftKill,
    HardKill,
    /// The worker closes its channel.
    Eof,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec((prop::option::of(1u8..4), 0u8..2), 1..4).prop_map(Op::Assign),
        3 => Just(Op::WorkerReads),
        4 => (any::<usize>(), 0u8..4).prop_map(|(i, how)| Op::WorkerAnswers(i, how)),
        2 => (any::<usize>(), 1u32..200_000).prop_map(|(i, n)| Op::WorkerStreams(i, n)),
        1 => any::<usize>().prop_map(Op::WorkerEndsStream),
        2 => any::<usize>().prop_map(Op::CallerReads),
        1 => any::<usize>().prop_map(Op::CallerDropsStream),
        2 => Just(Op::WorkerPongs),
        1 => any::<usize>().prop_map(Op::CallerCancels),
        2 => (0u16..2500).prop_map(Op::Advance),
        1 => Just(Op::SoftKill),
        1 => Just(Op::HardKill),
        1 => Just(Op::Eof),
    ]
}

/// How each request ended, as its caller or the balancer saw it.
#[derive(Debug, Default)]
struct Ledger {
    /// The callers still waiting.
    answers: BTreeMap<u128, Answer>,
    /// What the others got; `None` when their reply channel closed unanswered.
    ended: BTreeMap<u128, Option<Result<Response, Error>>>,
    cancelled: BTreeSet<u128>,
    /// Handed back to the balancer (retry, drain, exit): not answered here.
    handed_back: BTreeSet<u128>,
    /// Deadlines the session was given, to check a `Timeout` was due.
    deadlines: BTreeMap<u128, Instant>,
    killed: bool,
    exits: usize,
    signals_after_exit: usize,
    violations: Vec<KillReason>,
    /// The in-band response streams callers hold.
    streams: BTreeMap<u128, CallerStream>,
    /// Streams whose callers dropped them, or that ended: each must have
    /// ended exactly once.
    done_streams: Vec<oneshot::Receiver<StreamEnd>>,
}

/// A caller's in-band response stream.
#[derive(Debug)]
struct CallerStream {
    chunks: mpsc::UnboundedReceiver<Vec<u8>>,
    end: oneshot::Receiver<StreamEnd>,
}

impl Ledger {
    /// Moves the callers that got their answer (or lost their channel) to `ended`.
    fn poll(&mut self) {
        let mut ended = Vec::new();
        for (id, rx) in &mut self.answers {
            match rx.try_recv() {
                Err(TryRecvError::Empty) => {}
                Ok(result) => ended.push((*id, Some(result))),
                Err(TryRecvError::Closed) => ended.push((*id, None)),
            }
        }
        for (id, result) in ended {
            self.answers.remove(&id);
            let first = self.ended.insert(id, result);
            assert!(first.is_none(), "request {id} ended twice");
        }
    }

    fn take(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Requeue(batch) => {
                    self.handed_back
                        .extend(batch.iter().map(|p| p.id.as_u128()));
                    batch.into_iter().for_each(Pending::abandon);
                }
                Effect::Exited(exit) => {
                    self.exits += 1;
                    self.handed_back
                        .extend(exit.held.iter().map(|p| p.id.as_u128()));
                    exit.held.into_iter().for_each(Pending::abandon);
                }
                Effect::Signal(_) | Effect::SignalLauncher(_) if self.exits > 0 => {
                    self.signals_after_exit += 1;
                }
                Effect::AnswerStreamed {
                    pending,
                    payload,
                    chunks,
                    end,
                } => {
                    self.streams
                        .insert(pending.id.as_u128(), CallerStream { chunks, end });
                    pending.respond(PID, 0, payload, false);
                }
                Effect::Killing(reason @ KillReason::ProtocolViolation(_)) => {
                    self.violations.push(reason);
                }
                _ => {}
            }
        }
    }
}

/// The simulated worker.
#[derive(Debug, Default)]
struct Worker {
    /// Requests read and not answered or seen cancelled, in arrival order.
    holds: Vec<u128>,
    pings: VecDeque<u64>,
    closed: bool,
    /// The response streams it sends: each one's credit left and bytes sent.
    sending: BTreeMap<u128, (u64, u64)>,
}

impl Worker {
    fn read(&mut self, frames: Vec<ToWorker>) {
        for frame in frames {
            match frame {
                ToWorker::Request(r) => self.holds.push(r.id.as_u128()),
                ToWorker::Cancel { id } => {
                    self.holds.retain(|h| *h != id.as_u128());
                    self.sending.remove(&id.as_u128());
                }
                ToWorker::StreamCredit { id, bytes } => {
                    if let Some((credit, _)) = self.sending.get_mut(&id.as_u128()) {
                        *credit += bytes;
                    }
                }
                ToWorker::Ping { seq } => self.pings.push_back(seq),
                ToWorker::HardKill => self.closed = true,
                _ => {}
            }
        }
    }
}

fn answer(id: u128, how: u8) -> ToSupervisor {
    let id = RequestId::from_u128(id);
    match how {
        0 => ToSupervisor::Ack { id },
        1 => ToSupervisor::Failed {
            id,
            message: "no".into(),
        },
        3 => ToSupervisor::ResponseStreamed {
            id,
            payload: id.as_u128().to_le_bytes().to_vec(),
        },
        _ => ToSupervisor::Response {
            id,
            payload: id.as_u128().to_le_bytes().to_vec(),
        },
    }
}

fn run(drain_before_hello: bool, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let start = Instant::now();
    let mut now = start;
    let mut config = config();
    config.heartbeat = Some(Heartbeat {
        every: Duration::from_secs(1),
        timeout: Duration::from_secs(3600),
    });
    let mut session = Session::new(worker_id(), PID, Transport::Socketpair, config, now);
    let mut worker = Worker::default();
    let mut ledger = Ledger::default();
    let mut next_id = 1u128;
    // Frames the worker has not read yet, in order.
    let mut wire: Vec<ToWorker> = Vec::new();
    if drain_before_hello {
        // A pool stopped as it starts: the soft kill overtakes the Hello.
        session.drain();
    }
    session.on_frames(vec![hello(Codec::Postcard), ToSupervisor::Ready], now);

    for op in ops {
        wire.extend(sent(&mut session));
        match op {
            Op::Assign(specs) => {
                let batch = specs
                    .into_iter()
                    .map(|(timeout, retries)| {
                        let timeout = timeout.map(|s| Duration::from_secs(s.into()));
                        let (p, rx) = request(next_id, timeout, retries.into(), now);
                        ledger.answers.insert(next_id, rx);
                        if let Some(d) = p.deadline {
                            ledger.deadlines.insert(next_id, d);
                        }
                        next_id += 1;
                        p
                    })
                    .collect();
                session.assign(batch);
            }
            Op::WorkerReads => worker.read(std::mem::take(&mut wire)),
            Op::WorkerAnswers(i, how) if !worker.holds.is_empty() && !worker.closed => {
                let id = worker.holds.remove(i % worker.holds.len());
                if how == 3 {
                    worker.sending.insert(id, (STREAM_WINDOW, 0));
                }
                session.on_frames(vec![answer(id, how)], now);
            }
            Op::WorkerStreams(i, len) if !worker.sending.is_empty() && !worker.closed => {
                let id = *worker.sending.keys().nth(i % worker.sending.len()).unwrap();
                let (credit, total) = worker.sending.get_mut(&id).unwrap();
                let n = u64::from(len).min(*credit).min(STREAM_CHUNK as u64);
                if n > 0 {
                    *credit -= n;
                    *total += n;
                    let data = ToSupervisor::StreamData {
                        id: RequestId::from_u128(id),
                        data: vec![1; n as usize],
                    };
                    session.on_frames(vec![data], now);
                }
            }
            Op::WorkerEndsStream(i) if !worker.sending.is_empty() && !worker.closed => {
                let id = *worker.sending.keys().nth(i % worker.sending.len()).unwrap();
                let (_, total) = worker.sending.remove(&id).unwrap();
                let end = ToSupervisor::StreamEnd {
                    id: RequestId::from_u128(id),
                    outcome: Ok(total),
                };
                session.on_frames(vec![end], now);
            }
            Op::CallerReads(i) if !ledger.streams.is_empty() => {
                let id = *ledger.streams.keys().nth(i % ledger.streams.len()).unwrap();
                let stream = ledger.streams.get_mut(&id).unwrap();
                let mut read = 0;
                while let Ok(chunk) = stream.chunks.try_recv() {
                    read += chunk.len() as u64;
                }
                if read > 0 {
                    let id = RequestId::from_u128(id);
                    session.on_stream_feedback(id, Feedback::Consumed(read), now);
                }
            }
            Op::CallerDropsStream(i) if !ledger.streams.is_empty() => {
                let id = *ledger.streams.keys().nth(i % ledger.streams.len()).unwrap();
                let stream = ledger.streams.remove(&id).unwrap();
                ledger.done_streams.push(stream.end);
                let id = RequestId::from_u128(id);
                session.on_stream_feedback(id, Feedback::Dropped, now);
            }
            Op::WorkerPongs if !worker.closed => {
                let pongs = worker.pings.drain(..).map(|seq| ToSupervisor::Pong { seq });
                session.on_frames(pongs.collect(), now);
            }
            Op::CallerCancels(i) => {
                ledger.poll();
                let waiting: Vec<u128> = ledger.answers.keys().copied().collect();
                if !waiting.is_empty() {
                    let id = waiting[i % waiting.len()];
                    ledger.answers.remove(&id);
                    ledger.cancelled.insert(id);
                    session.cancel(&[RequestId::from_u128(id)], now);
                }
            }
            Op::Advance(ms) => {
                now += Duration::from_millis(ms.into());
                if session.next_timeout().is_some_and(|at| at <= now) {
                    session.on_timeout(now);
                }
            }
            Op::SoftKill => session.drain(),
            Op::HardKill => {
                ledger.killed = true;
                session.kill(now);
            }
            Op::Eof => {
                worker.closed = true;
                session.on_eof(now);
            }
            _ => {}
        }
        ledger.take(effects(&mut session));
        ledger.poll();
        prop_assert!(session.in_flight() <= ledger.answers.len());
    }

    // The end of every run: a soft kill, the worker finishes what it holds, exits.
    session.drain();
    wire.extend(sent(&mut session));
    worker.read(std::mem::take(&mut wire));
    if !worker.closed {
        let answers: Vec<ToSupervisor> = worker.holds.drain(..).map(|id| answer(id, 2)).collect();
        session.on_frames(answers, now);
        let ends = std::mem::take(&mut worker.sending)
            .into_iter()
            .map(|(id, (_, total))| ToSupervisor::StreamEnd {
                id: RequestId::from_u128(id),
                outcome: Ok(total),
            });
        session.on_frames(ends.collect(), now);
        let pongs = worker.pings.drain(..).map(|seq| ToSupervisor::Pong { seq });
        session.on_frames(pongs.collect(), now);
        session.on_eof(now);
    }
    session.on_exit(Some(0), None, now);
    ledger.take(effects(&mut session));
    ledger.poll();

    prop_assert!(
        ledger.answers.is_empty(),
        "callers left waiting: {:?}",
        ledger.answers.keys()
    );
    prop_assert_eq!(ledger.exits, 1, "one exit report");
    // Every response stream ended: with the worker's end, or cut short by
    // the exit (its sender dropped); none is left open.
    let streams = std::mem::take(&mut ledger.streams)
        .into_values()
        .map(|s| s.end);
    for mut end in ledger.done_streams.drain(..).chain(streams) {
        prop_assert!(
            !matches!(end.try_recv(), Err(TryRecvError::Empty)),
            "a response stream was left open"
        );
    }
    prop_assert_eq!(ledger.signals_after_exit, 0, "no signal after the reap");
    prop_assert!(
        ledger.violations.is_empty(),
        "a worker that keeps the protocol is never killed for breaking it: {:?}",
        ledger.violations
    );
    prop_assert_eq!(session.in_flight(), 0);
    prop_assert_eq!(session.next_timeout(), None);
    prop_assert!(
        sent(&mut session).is_empty(),
        "nothing is written after the exit"
    );

    for (id, result) in std::mem::take(&mut ledger.ended) {
        let handed_back = ledger.handed_back.contains(&id);
        match result {
            Some(Ok(response)) => {
                prop_assert!(!handed_back, "request {} answered and handed back", id);
                prop_assert!(response.is_ack() || response.bytes() == id.to_le_bytes());
            }
            Some(Err(Error::Timeout { .. })) => {
                prop_assert!(ledger.deadlines.get(&id).is_some_and(|d| *d <= now));
            }
            Some(Err(Error::Killed)) => prop_assert!(ledger.killed),
            Some(Err(Error::Handler { .. })) => {}
            // Handed back to the balancer, which the test stands for: the
            // request was dropped there, unanswered by this session.
            None => {
                prop_assert!(
                    handed_back,
                    "request {} was lost: never answered, never handed back",
                    id
                );
            }
            other => prop_assert!(false, "request {} ended as {:?}", id, other),
        }
    }
    // A cancelled request's caller is gone; none of them was handed back to
    // be served again either.
    for id in &ledger.cancelled {
        prop_assert!(
            !ledger.handed_back.contains(id),
            "cancelled request {} handed back",
            id
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_request_ends_once_and_a_soft_kill_ends(
        drain_before_hello in proptest::bool::weighted(0.1),
        ops in prop::collection::vec(op(), 0..60),
    ) {
        run(drain_before_hello, ops)?;
    }
}
