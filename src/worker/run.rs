//! The run loop: read frames in batches, dispatch them, and stop the way the
//! supervisor asks.

use std::io;
use std::ops::ControlFlow;
use std::sync::Arc;

use futures::future::BoxFuture;
use lpm_protocol::{FrameStream, ToSupervisor, ToWorker};
use tokio::task::JoinHandle;

use super::event::{self, Event};
use super::handshake::send_hello;
use super::in_band::{usage, Chunk, InBandReader, RequestStreams};
use super::request::{cancel, reject_duplicate, reject_not_handled, reject_unhandled, Request};
use super::soft_kill;
use super::worker::{Reader, RequestHandler, Shared};
use crate::WorkerError;

/// Why the loop stopped.
#[derive(Debug)]
enum Exit {
    /// The supervisor hung up.
    Eof,
    /// The supervisor asked for an immediate stop.
    HardKill,
    /// The soft kill is complete: hook done, no request in flight.
    SoftKill,
    /// The channel broke.
    Failed(WorkerError),
}

/// Serves until the supervisor stops the worker; see [`Worker::run`](super::Worker::run).
pub(crate) async fn run(shared: Arc<Shared>) -> Result<(), WorkerError> {
    let Reader {
        channel,
        mut frames,
        backlog,
    } = shared.take_reader().ok_or(WorkerError::AlreadyRunning)?;
    let (names, calls) = shared.announce_calls();
    if shared.request_handler().is_none() && calls.is_empty() {
        tracing::warn!("running without a request handler; requests will fail");
    }
    // The Hello goes first, before anything queued in the outbox.
    let max_frame_len = lpm_protocol::max_frame_len_from_env();
    if let Err(e) = send_hello(&channel, shared.codec, names, max_frame_len).await {
        shared.emits.close();
        shared.outbox.close();
        return match e {
            WorkerError::ChannelClosed => Ok(()),
            other => Err(other),
        };
    }
    let mut writer = Some(tokio::spawn(Arc::clone(&shared.outbox).write_all(channel)));
    let mut session = Session {
        shared: &shared,
        calls,
        soft_kill: None,
        request_streams: RequestStreams::default(),
    };
    let exit = session.serve(backlog, &mut frames, &mut writer).await;
    tracing::debug!(?exit, "worker stopping");

    shared.emits.close();
    let result = match exit {
        Exit::SoftKill => {
            let _ = shared.outbox.push(&ToSupervisor::SoftKillDone);
            shared.outbox.close();
            // Everything queued, SoftKillDone last, goes out before `run` returns.
            match writer.take() {
                Some(writer) => match writer_exit(writer.await) {
                    Some(Exit::Failed(e)) => Err(e),
                    _ => Ok(()),
                },
                None => Ok(()),
            }
        }
        Exit::HardKill | Exit::Eof => Ok(()),
        Exit::Failed(e) => Err(e),
    };
    shared.outbox.close();
    if let Some(writer) = writer {
        writer.abort();
    }
    shared.response_credits.clear();
    shared.in_flight.clear();
    result
}

/// The reader's state while serving.
struct Session<'a> {
    shared: &'a Arc<Shared>,
    /// Typed call handlers by number (from 1), as announced in the `Hello`.
    calls: Arc<[RequestHandler]>,
    /// Set once a soft kill started: completes when the worker may stop.
    soft_kill: Option<BoxFuture<'static, ()>>,
    /// The in-band request streams being received.
    request_streams: RequestStreams,
}

impl Session<'_> {
    async fn serve(
        &mut self,
        backlog: Vec<ToWorker>,
        frames: &mut FrameStream<ToWorker>,
        writer: &mut Option<JoinHandle<io::Result<()>>>,
    ) -> Exit {
        if let ControlFlow::Break(exit) = self.handle(backlog) {
            return exit;
        }
        let Some(writing) = writer.as_mut() else {
            return Exit::Eof;
        };
        loop {
            tokio::select! {
                batch = frames.next_batch() => match batch {
                    Some(Ok(batch)) => {
                        if let ControlFlow::Break(exit) = self.handle(batch) {
                            return exit;
                        }
                    }
                    Some(Err(e)) => return Exit::Failed(WorkerError::channel(e)),
                    None => return Exit::Eof,
                },
                () = async { self.soft_kill.as_mut().expect("guarded by the branch condition").await },
                    if self.soft_kill.is_some() => return Exit::SoftKill,
                finished = &mut *writing => {
                    *writer = None;
                    // The writer only stops by itself on an error.
                    return writer_exit(finished).unwrap_or(Exit::Eof);
                }
            }
        }
    }

    /// Dispatches one batch of messages, in order.
    fn handle(&mut self, batch: Vec<ToWorker>) -> ControlFlow<Exit> {
        // Looked up once per batch, not once per request.
        let mut request_handler: Option<Option<RequestHandler>> = None;
        for msg in batch {
            match msg {
                ToWorker::Request(frame) => {
                    let (id, call) = (frame.id, frame.call);
                    let Some(request) = Request::receive(frame, self.shared) else {
                        reject_duplicate(self.shared, id);
                        continue;
                    };
                    self.dispatch(request, call, &mut request_handler);
                }
                ToWorker::RequestWithFd {
                    request: frame,
                    kind,
                    mut fd,
                } => {
                    let (id, call) = (frame.id, frame.call);
                    let Some(fd) = fd.take() else {
                        // The kernel dropped it: this process is out of descriptors.
                        let message = "the request's descriptor did not arrive: the worker is \
                                       out of file descriptors (raise its RLIMIT_NOFILE)"
                            .to_owned();
                        let _ = self
                            .shared
                            .outbox
                            .push(&ToSupervisor::Failed { id, message });
                        continue;
                    };
                    let Some(request) =
                        Request::receive_with(frame, Some((kind, fd)), None, self.shared)
                    else {
                        reject_duplicate(self.shared, id);
                        continue;
                    };
                    self.dispatch(request, call, &mut request_handler);
                }
                ToWorker::EventWithFd {
                    name,
                    payload,
                    kind,
                    mut fd,
                } => {
                    let handler = self.shared.event_handler(&name);
                    let codec = self.shared.codec;
                    match fd.take() {
                        Some(fd) => {
                            event::dispatch(
                                handler,
                                Event::with_listener(name, payload, codec, (kind, fd)),
                            );
                        }
                        None => event::dispatch(handler, Event::new(name, payload, codec)),
                    }
                }
                ToWorker::Event { name, payload } => {
                    let event = Event::new(name, payload, self.shared.codec);
                    event::dispatch(self.shared.event_handler(&event.name), event);
                }
                ToWorker::EmitReply { emit_id, outcome } => {
                    self.shared
                        .emits
                        .resolve(emit_id, outcome.map(|bytes| bytes.into_vec()));
                }
                ToWorker::SoftKill => {
                    if self.soft_kill.is_some() {
                        tracing::debug!("soft kill already under way; repeated SoftKill ignored");
                    } else {
                        tracing::debug!(
                            in_flight = self.shared.in_flight.len(),
                            "soft kill: waiting for the hook and the requests in flight"
                        );
                        let hook = self.shared.take_soft_kill_hook();
                        self.soft_kill = Some(soft_kill::start(hook, Arc::clone(self.shared)));
                    }
                }
                ToWorker::HardKill => return ControlFlow::Break(Exit::HardKill),
                ToWorker::RequestStreamed(frame) => {
                    let (id, call) = (frame.id, frame.call);
                    let chunks = self.request_streams.open(id);
                    let reader = InBandReader::new(id, chunks, Arc::clone(self.shared));
                    let Some(request) =
                        Request::receive_with(frame, None, Some(reader), self.shared)
                    else {
                        self.request_streams.stop(&id);
                        reject_duplicate(self.shared, id);
                        continue;
                    };
                    self.dispatch(request, call, &mut request_handler);
                }
                ToWorker::StreamData { id, data } => {
                    self.request_streams.feed(id, Chunk::Data(data));
                }
                ToWorker::StreamEnd { id, outcome } => {
                    self.request_streams.feed(id, Chunk::End(outcome));
                }
                ToWorker::StreamCredit { id, bytes } => {
                    self.shared.response_credits.grant(&id, bytes);
                }
                ToWorker::ReportUsage => {
                    let (rss_bytes, cpu_ns) = usage();
                    let _ = self
                        .shared
                        .outbox
                        .push(&ToSupervisor::Usage { rss_bytes, cpu_ns });
                }
                // Settled here, in order: a retry with the same id later in
                // this batch or the next is received as a new request. Its
                // streams stop here too, before the fence's Pong is queued.
                ToWorker::Cancel { id } => {
                    cancel(self.shared, id);
                    self.request_streams.stop(&id);
                    self.shared.response_credits.stop(&id);
                }
                // Answered from the reader, so a busy handler does not look hung;
                // a worker whose runtime is blocked does not answer, as intended.
                ToWorker::Ping { seq } => {
                    let _ = self.shared.outbox.push(&ToSupervisor::Pong { seq });
                }
                other @ ToWorker::Hello { .. } => {
                    tracing::warn!(
                        message = other.kind(),
                        "unexpected message after the handshake; ignored"
                    );
                }
            }
        }
        ControlFlow::Continue(())
    }
}

impl Session<'_> {
    /// Hands a request to the handler of its call: `0` the untyped one
    /// (looked up once per batch), `n` the `n`-th typed call announced.
    fn dispatch(&self, request: Request, call: u32, untyped: &mut Option<Option<RequestHandler>>) {
        let handler = match call {
            0 => untyped
                .get_or_insert_with(|| self.shared.request_handler())
                .as_ref(),
            n => self.calls.get(n as usize - 1),
        };
        match (handler, call) {
            (Some(spawn), _) => spawn(request),
            (None, 0) => reject_unhandled(request),
            (None, n) => reject_not_handled(request, n),
        }
    }
}

/// What the writer task's end means: `None` when it wrote everything of a
/// closed outbox, otherwise the reason to stop.
fn writer_exit(finished: Result<io::Result<()>, tokio::task::JoinError>) -> Option<Exit> {
    match finished {
        Ok(Ok(())) => None,
        // The supervisor is gone: the same as end of file.
        Ok(Err(e))
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) =>
        {
            tracing::debug!(error = %e, "the supervisor hung up while the worker was writing");
            Some(Exit::Eof)
        }
        Ok(Err(e)) => Some(Exit::Failed(WorkerError::channel(e))),
        Err(e) => Some(Exit::Failed(WorkerError::channel(e))),
    }
}
