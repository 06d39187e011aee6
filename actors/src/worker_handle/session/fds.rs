//! The descriptors a handle passes and tracks: request frames with a stream
//! or socket, the response streams still open, the sockets the worker holds,
//! and listeners broadcast to every worker.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use lpm_protocol::{Fd, FdKind, IdMap, RequestFrame, RequestId, ToWorker};
use tokio::sync::oneshot;

use super::cancel_fence::MAX_UNFENCED;
use super::effect::CallerStream;
use super::in_band::{Incoming, Outgoing};
use super::{Effect, Session};
use crate::request::{LoadGuard, Pending, SocketGuard};
use crate::stream::{Attachment, StreamEnd};
use crate::Error;

/// A listener for every worker, with an event (from [`Pool::broadcast_listener`](crate::Pool::broadcast_listener)).
#[derive(Debug, Clone)]
pub(crate) struct SharedListener {
    pub(crate) name: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) kind: FdKind,
    /// Shared by every handle; each sends its own duplicate.
    pub(crate) fd: Arc<OwnedFd>,
}

/// Streams and descriptors a handle keeps track of after sending or receiving them.
#[derive(Debug, Default)]
pub(super) struct FdBook {
    /// Response streams (pipes or in-band) whose end the worker has not reported yet.
    pub(super) streams: IdMap<OpenStream>,
    /// Connections handed to the worker and not reported closed.
    sockets: IdMap<SocketGuard>,
    /// Request streams being sent in-band.
    pub(super) outgoing: IdMap<Outgoing>,
    /// Pipe response streams dropped unread (a stale answer, or a pipe
    /// that did not arrive) whose `StreamEnd` is still to come.
    unwanted_ends: HashSet<RequestId>,
}

impl FdBook {
    /// Response streams not ended yet (their requests count as in flight).
    pub(super) fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Sockets the worker holds.
    pub(super) fn sockets(&self) -> usize {
        self.sockets.len()
    }

    /// The worker is gone: its open streams fail (their readers see the
    /// sender dropped) and its sockets no longer count.
    pub(super) fn clear(&mut self) {
        self.streams.clear();
        self.sockets.clear();
        self.outgoing.clear();
        self.unwanted_ends.clear();
    }

    /// The channel closed: request streams stop being read.
    pub(super) fn stop_sending(&mut self) {
        self.outgoing.clear();
    }
}

/// A response stream the worker has not ended yet.
#[derive(Debug)]
pub(super) struct OpenStream {
    /// Keeps the request counted on the worker until the stream ends.
    pub(super) _load: Option<LoadGuard>,
    pub(super) end: oneshot::Sender<StreamEnd>,
    /// Set for an in-band stream: where its chunks go.
    pub(super) incoming: Option<Incoming>,
}

impl Session {
    /// Queues the frame of an assigned request: `Request`, or `RequestWithFd`
    /// with its stream's pipe, its file or its socket.
    pub(super) fn push_request_frame(&mut self, pending: &mut Pending) -> Result<(), Error> {
        // A worker of this pool that lacks a call others serve.
        let call = pending.wire_call.ok_or_else(|| pending.not_handled())?;
        let Some(attachment) = pending.attachment.take() else {
            let trace = pending.trace_to(self.id.slot, self.pid);
            return self
                .outbox
                .push_request(
                    pending.id,
                    pending.created_at,
                    call,
                    &pending.payload,
                    trace,
                )
                .map_err(frame_error);
        };
        let what = attachment.what();
        if !self.takes_fds {
            return self.push_without_fds(pending, call, attachment);
        }
        let descriptor = |e: std::io::Error| Error::Descriptor {
            what,
            reason: e.to_string(),
        };
        let (kind, fd, pump) = match attachment {
            Attachment::Reader(reader) => {
                let (read_end, write_end) = lpm_protocol::pipe().map_err(descriptor)?;
                (FdKind::Pipe, read_end, Some((reader, write_end)))
            }
            Attachment::Fd(kind, fd) => {
                check_kind(kind, &fd).map_err(descriptor)?;
                (kind, fd, None)
            }
        };
        let msg = ToWorker::RequestWithFd {
            request: RequestFrame {
                id: pending.id,
                created_at: pending.created_at,
                call,
                payload: pending.payload.clone(),
                trace: pending.trace_to(self.id.slot, self.pid).map(str::to_owned),
            },
            kind,
            fd: Fd::new(fd),
        };
        // On error the descriptor closes with the message.
        self.outbox.push_with_fd(msg).map_err(frame_error)?;
        pending.fd_sent = Some(what);
        if let Some((reader, writer)) = pump {
            self.effects.push(Effect::Pump {
                id: pending.id,
                reader: CallerStream(reader),
                writer,
            });
        }
        if matches!(kind, FdKind::TcpStream | FdKind::UnixStream) {
            if let Some(load) = &pending.load {
                let guard = SocketGuard::new(load.load());
                self.fds.sockets.insert(pending.id, guard);
            }
        }
        Ok(())
    }

    /// A request with a stream or file for a worker that takes no
    /// descriptors: the stream goes in-band (a file is read for it); a socket
    /// cannot go at all.
    fn push_without_fds(
        &mut self,
        pending: &mut Pending,
        call: u32,
        attachment: Attachment,
    ) -> Result<(), Error> {
        let what = attachment.what();
        let reader = match attachment {
            Attachment::Reader(reader) => reader,
            Attachment::Fd(FdKind::File | FdKind::Pipe, fd) => {
                Box::new(tokio::fs::File::from_std(std::fs::File::from(fd)))
            }
            Attachment::Fd(_, _) => {
                return Err(Error::NoFdPassing {
                    what,
                    transport: self.transport,
                })
            }
        };
        self.push_streamed(pending, call, CallerStream(reader), what)
    }

    /// The worker answered with a stream: the caller gets it now, and the
    /// request stays counted on this worker until the stream's end.
    pub(super) fn on_response_stream(
        &mut self,
        mut pending: Pending,
        payload: Vec<u8>,
        mut fd: Fd,
    ) {
        let Some(fd) = fd.take() else {
            self.expect_unwanted_end(pending.id);
            return pending.fail(Error::Descriptor {
                what: "response stream",
                reason: "its pipe did not arrive: the supervisor may be out of file \
                         descriptors (raise RLIMIT_NOFILE)"
                    .into(),
            });
        };
        let end_rx = self.open_stream(&mut pending, None);
        self.effects.push(Effect::AnswerWithStream {
            pending: Box::new(pending),
            payload,
            fd,
            end: end_rx,
        });
    }

    /// Records request `pending`'s response stream as open (pipe, or in-band
    /// with `incoming`): the request stays counted on this worker, with a
    /// descriptor's weight, until the stream's end, which the answer's
    /// receiver learns.
    pub(super) fn open_stream(
        &mut self,
        pending: &mut Pending,
        incoming: Option<Incoming>,
    ) -> oneshot::Receiver<StreamEnd> {
        let (end_tx, end_rx) = oneshot::channel();
        self.served += 1;
        let mut load = pending.load.take();
        if let Some(load) = &mut load {
            load.count_fd();
        }
        self.fds.streams.insert(
            pending.id,
            OpenStream {
                _load: load,
                end: end_tx,
                incoming,
            },
        );
        end_rx
    }

    /// A pipe response stream is dropped unread: its `StreamEnd` still comes.
    pub(super) fn expect_unwanted_end(&mut self, id: RequestId) {
        self.fds.unwanted_ends.insert(id);
    }

    /// The worker's `StreamEnd` for request `id`'s response stream: `Ok(true)`
    /// when that freed a slot. Stale after a cancel until the fence returns;
    /// the end of a pipe stream dropped unread is expected; any other end of
    /// a stream that is not open breaks the protocol.
    pub(super) fn on_stream_end(
        &mut self,
        id: RequestId,
        outcome: StreamEnd,
    ) -> Result<bool, String> {
        if let Some(open) = self.fds.streams.remove(&id) {
            // A reader that went away does not need the news.
            let _ = open.end.send(outcome);
            return Ok(true);
        }
        if self.fds.unwanted_ends.remove(&id) || self.is_stale(&id) {
            tracing::debug!(slot = self.id.slot, pid = self.pid, %id, "end of an unwanted stream dropped");
            return Ok(false);
        }
        Err(format!(
            "StreamEnd for request {id}, which has no response stream open"
        ))
    }

    /// Whether the pipe streams left without their end stay within bounds.
    pub(super) fn unwanted_ends_in_bounds(&self) -> Result<(), String> {
        if self.fds.unwanted_ends.len() > MAX_UNFENCED {
            return Err(format!(
                "{} response streams dropped unread and never ended",
                self.fds.unwanted_ends.len()
            ));
        }
        Ok(())
    }

    /// The worker closed a connection it was handed.
    pub(super) fn on_socket_closed(&mut self, id: RequestId) {
        if self.fds.sockets.remove(&id).is_none() {
            tracing::debug!(slot = self.id.slot, pid = self.pid, %id, "SocketClosed for no socket this worker holds; ignored");
        }
    }
}

impl Session {
    /// Passes a listener to the worker, with its event (not to a worker
    /// that takes no descriptors: the pool refuses such broadcasts).
    pub(crate) fn send_listener(&mut self, listener: &SharedListener) {
        if !self.phase.is_open() {
            return;
        }
        if !self.takes_fds {
            return tracing::warn!(
                slot = self.id.slot,
                pid = self.pid,
                transport = %self.transport,
                event = %listener.name,
                "listener not sent: this worker takes no file descriptors"
            );
        }
        let fd = match lpm_protocol::dup_cloexec(std::os::fd::AsFd::as_fd(&*listener.fd)) {
            Ok(fd) => fd,
            Err(e) => {
                return tracing::warn!(slot = self.id.slot, pid = self.pid, error = %e, "could not duplicate the listener for the worker");
            }
        };
        let event = ToWorker::EventWithFd {
            name: listener.name.clone(),
            payload: listener.payload.clone(),
            kind: listener.kind,
            fd: Fd::new(fd),
        };
        if let Err(e) = self.outbox.push_with_fd(event) {
            tracing::warn!(slot = self.id.slot, pid = self.pid, error = %e, "could not encode a listener event");
        }
    }
}

/// Our error for a frame that cannot be queued.
pub(super) fn frame_error(e: lpm_protocol::Error) -> Error {
    match e {
        lpm_protocol::Error::FrameTooLarge { len, max } => Error::PayloadTooLarge { len, max },
        other => Error::Encode {
            reason: other.to_string(),
        },
    }
}

/// Checks that `fd` is open and of the kind it is passed as, so the caller
/// hears about a wrong descriptor instead of the worker.
fn check_kind(kind: FdKind, fd: &OwnedFd) -> std::io::Result<()> {
    use nix::sys::stat::{fstat, SFlag};
    let st = fstat(fd).map_err(std::io::Error::from)?;
    let mode = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let ok = match kind {
        FdKind::File | FdKind::Pipe => mode != SFlag::S_IFSOCK && mode != SFlag::S_IFDIR,
        _ => mode == SFlag::S_IFSOCK,
    };
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("the descriptor is not a {kind:?}"),
        ))
    }
}
