//! The descriptors a handle passes and tracks: request frames with a stream
//! or socket, the response streams still open, the sockets the worker holds,
//! and listeners broadcast to every worker.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use lpm_protocol::{Fd, FdKind, IdMap, RequestFrame, RequestId, ToWorker};
use tokio::sync::oneshot;

use super::effect::CallerStream;
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

/// Descriptors a handle keeps track of after sending or receiving them.
#[derive(Debug, Default)]
pub(super) struct FdBook {
    /// Response streams whose end the worker has not reported yet.
    streams: IdMap<OpenStream>,
    /// Connections handed to the worker and not reported closed.
    sockets: IdMap<SocketGuard>,
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
    }
}

#[derive(Debug)]
struct OpenStream {
    /// Keeps the request counted on the worker until the stream ends.
    _load: Option<LoadGuard>,
    end: oneshot::Sender<StreamEnd>,
}

impl Session {
    /// Queues the frame of an assigned request: `Request`, or `RequestWithFd`
    /// with its stream's pipe, its file or its socket.
    pub(super) fn push_request_frame(&mut self, pending: &mut Pending) -> Result<(), Error> {
        // A worker of this pool that lacks a call others serve.
        let call = pending.wire_call.ok_or_else(|| pending.not_handled())?;
        let Some(attachment) = pending.attachment.take() else {
            return self
                .outbox
                .push_request(pending.id, pending.created_at, call, &pending.payload, None)
                .map_err(frame_error);
        };
        let what = attachment.what();
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
                trace: None,
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

    /// The worker answered with a stream: the caller gets it now, and the
    /// request stays counted on this worker until the stream's end.
    pub(super) fn on_response_stream(
        &mut self,
        mut pending: Pending,
        payload: Vec<u8>,
        mut fd: Fd,
    ) {
        let Some(fd) = fd.take() else {
            return pending.fail(Error::Descriptor {
                what: "response stream",
                reason: "its pipe did not arrive: the supervisor may be out of file \
                         descriptors (raise RLIMIT_NOFILE)"
                    .into(),
            });
        };
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
            },
        );
        self.effects.push(Effect::AnswerWithStream {
            pending: Box::new(pending),
            payload,
            fd,
            end: end_rx,
        });
    }

    /// The worker finished writing a response stream; `true` when that freed a slot.
    pub(super) fn on_stream_end(&mut self, id: RequestId, outcome: StreamEnd) -> bool {
        match self.fds.streams.remove(&id) {
            Some(open) => {
                // A reader that went away does not need the news.
                let _ = open.end.send(outcome);
                true
            }
            None => false,
        }
    }

    /// The worker closed a connection it was handed.
    pub(super) fn on_socket_closed(&mut self, id: RequestId) {
        if self.fds.sockets.remove(&id).is_none() {
            tracing::debug!(slot = self.id.slot, pid = self.pid, %id, "SocketClosed for no socket this worker holds; ignored");
        }
    }
}

impl Session {
    /// Passes a listener to the worker, with its event.
    pub(crate) fn send_listener(&mut self, listener: &SharedListener) {
        if !self.phase.is_open() {
            return;
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
fn frame_error(e: lpm_protocol::Error) -> Error {
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
