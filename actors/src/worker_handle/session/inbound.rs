//! What comes from the worker: the handshake, answers, state changes,
//! events, and what the channel itself reports (errors, EOF).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use lpm_protocol::{RequestId, ToSupervisor, PROTOCOL_VERSION};

use super::lifecycle::{Phase, Serving};
use super::{Effect, Session};
use crate::request::Pending;
use crate::{Error, KillReason};

impl Session {
    /// Handles what one read delivered, in order; a protocol violation kills
    /// the worker and ends the batch.
    pub(crate) fn on_frames(&mut self, batch: Vec<ToSupervisor>, now: Instant) {
        // The answers in this batch are timed by it.
        self.config.counters.metrics.tick(now);
        let mut freed = false;
        for msg in batch {
            // After the channel closed (a kill), nothing the worker says counts.
            if !self.phase.is_open() {
                break;
            }
            match self.on_message(msg, now) {
                Ok(f) => freed |= f,
                Err(reason) => {
                    return self.kill_for(KillReason::ProtocolViolation(reason), now);
                }
            }
        }
        if freed {
            self.notify_freed();
            self.check_recycle(now);
        }
    }

    /// The channel failed to read.
    pub(crate) fn on_read_error(&mut self, error: lpm_protocol::Error, now: Instant) {
        match error {
            // After we closed the channel (kill, EOF), a reset is expected news.
            e if !self.phase.is_open() => {
                tracing::debug!(slot = self.id.slot, pid = self.pid, error = %e, "channel error after close");
            }
            lpm_protocol::Error::Io(e) => self.on_io_error(e, now),
            // A worker that dies while writing leaves half a frame: a death
            // (its exit report follows), not misbehaviour.
            e @ lpm_protocol::Error::Truncated { .. } => {
                tracing::debug!(slot = self.id.slot, pid = self.pid, error = %e, "worker channel closed mid-frame");
                self.close_channel(now);
            }
            e => {
                let reason = KillReason::ProtocolViolation(format!("bad frame: {e}"));
                self.kill_for(reason, now);
            }
        }
    }

    /// The worker closed its end of the channel.
    pub(crate) fn on_eof(&mut self, now: Instant) {
        tracing::debug!(
            slot = self.id.slot,
            pid = self.pid,
            "worker closed its channel"
        );
        self.close_channel(now);
    }

    /// The socket failed (to read or to write). A worker that dies with
    /// unread requests resets the connection: that is a death (its exit
    /// report follows), not misbehaviour.
    pub(crate) fn on_io_error(&mut self, e: std::io::Error, now: Instant) {
        use std::io::ErrorKind::{BrokenPipe, ConnectionReset};
        if !self.phase.is_open() {
            return;
        }
        if matches!(e.kind(), BrokenPipe | ConnectionReset) {
            tracing::debug!(slot = self.id.slot, pid = self.pid, error = %e, "worker channel closed");
            self.close_channel(now);
        } else {
            self.kill_for(KillReason::ChannelFailed(e.to_string()), now);
        }
    }

    /// Handles one message: `Ok(true)` when it freed a request slot, `Err` on a protocol violation.
    fn on_message(&mut self, msg: ToSupervisor, now: Instant) -> Result<bool, String> {
        if self.phase.hello_by().is_some() {
            return match msg {
                ToSupervisor::Hello {
                    version,
                    pid,
                    codec,
                    calls,
                    takes_fds,
                } => self
                    .on_hello(version, pid, codec, calls, takes_fds, now)
                    .map(|()| false),
                other => Err(format!("expected Hello first, got {}", other.kind())),
            };
        }
        let slot = self.id.slot;
        let freed = match msg {
            ToSupervisor::Response { id, payload } => {
                if let Some(p) = self.answered(&id)? {
                    self.served += 1;
                    p.respond(self.pid, slot, payload, false);
                }
                true
            }
            ToSupervisor::Ack { id } => {
                if let Some(p) = self.answered(&id)? {
                    self.served += 1;
                    p.respond(self.pid, slot, Vec::new(), true);
                }
                true
            }
            ToSupervisor::Failed { id, message } => {
                if let Some(p) = self.answered(&id)? {
                    p.fail(Error::Handler {
                        id,
                        message,
                        pid: self.pid,
                    });
                }
                true
            }
            ToSupervisor::Ready => {
                if let Phase::Serving(serving) = self.phase {
                    self.enter(Phase::Serving(Serving::Ready));
                    if serving == Serving::Starting {
                        self.effects.push(Effect::Online);
                    }
                }
                false
            }
            ToSupervisor::Busy => {
                if let Phase::Serving(_) = self.phase {
                    self.enter(Phase::Serving(Serving::Busy));
                }
                false
            }
            ToSupervisor::Emit {
                name,
                payload,
                reply_to,
            } => {
                self.effects.push(Effect::Emitted {
                    name,
                    payload,
                    reply_to,
                });
                false
            }
            ToSupervisor::SoftKillDone => {
                tracing::debug!(slot, pid = self.pid, "worker finished its soft kill");
                false
            }
            ToSupervisor::Stats(stats) => {
                self.stats = stats;
                false
            }
            ToSupervisor::Pong { seq } => {
                self.on_pong(seq, now);
                false
            }
            ToSupervisor::ResponseWithStream { id, payload, fd } => {
                // A stale or unwanted stream's descriptor closes with `fd`.
                match self.answered(&id)? {
                    Some(p) => self.on_response_stream(p, payload, fd),
                    None => {
                        self.expect_unwanted_end(id);
                        self.unwanted_ends_in_bounds()?;
                    }
                }
                // The request stays counted until its stream ends.
                false
            }
            ToSupervisor::ResponseStreamed { id, payload } => {
                if let Some(p) = self.answered(&id)? {
                    self.on_response_streamed(p, payload);
                }
                // The request stays counted until its stream ends.
                false
            }
            ToSupervisor::StreamData { id, data } => {
                self.on_stream_data(id, data)?;
                false
            }
            ToSupervisor::StreamEnd { id, outcome } => self.on_stream_end(id, outcome)?,
            ToSupervisor::StreamCredit { id, bytes } => {
                self.on_request_credit(id, bytes);
                false
            }
            ToSupervisor::Usage { rss_bytes, cpu_ns } => {
                self.on_usage(rss_bytes, cpu_ns, now);
                false
            }
            ToSupervisor::SocketClosed { id } => {
                self.on_socket_closed(id);
                true
            }
            ToSupervisor::NotHandled { id } => {
                if let Some(p) = self.answered(&id)? {
                    let error = p.not_handled();
                    p.fail(error);
                }
                true
            }
            ToSupervisor::Hello { .. } => return Err("a second Hello".into()),
        };
        Ok(freed)
    }

    fn on_hello(
        &mut self,
        version: u16,
        pid: u32,
        codec: lpm_protocol::Codec,
        calls: Vec<String>,
        takes_fds: bool,
        now: Instant,
    ) -> Result<(), String> {
        if version != PROTOCOL_VERSION {
            return Err(format!(
                "worker speaks protocol version {version}, the supervisor {PROTOCOL_VERSION}; \
                 rebuild the worker against this lpm version"
            ));
        }
        if codec != self.config.codec {
            let reason = KillReason::CodecMismatch {
                pool: self.config.codec,
                worker: codec,
            };
            self.kill_for(reason, now);
            return Ok(());
        }
        if pid != self.pid {
            // Not the process started: a launcher's (ssh, a shell), maybe on
            // another machine. Its usage is asked for, and it is stopped by
            // closing its input.
            tracing::debug!(
                slot = self.id.slot,
                pid = self.pid,
                reported = pid,
                "worker reports another pid: a remote worker behind its launcher"
            );
            self.remote = true;
        }
        // No descriptor goes through a pipe, whatever the worker says.
        self.takes_fds &= takes_fds;
        self.learn_calls(calls)?;
        match &mut self.phase {
            Phase::Draining { hello_by, .. } => *hello_by = None,
            _ => self.enter(Phase::Serving(Serving::Starting)),
        }
        self.start_heartbeat(now);
        Ok(())
    }

    /// Tells the balancer which calls the worker serves, numbered as its
    /// `Hello` listed them (from 1); `Err` when a name is listed twice
    /// (which number would it have?).
    fn learn_calls(&mut self, calls: Vec<String>) -> Result<(), String> {
        let names: Arc<[Box<str>]> = calls.into_iter().map(String::into_boxed_str).collect();
        let distinct: HashSet<&str> = names.iter().map(|n| &**n).collect();
        if distinct.len() < names.len() {
            return Err("its Hello lists a call name twice".to_owned());
        }
        self.effects.push(Effect::Calls {
            calls: names,
            refuses_fds: self.refuses_fds(),
        });
        Ok(())
    }

    /// The request an answer is for: `None` for a stale answer of a cancelled
    /// attempt; `Err` when the worker does not hold that request (an unknown
    /// id, or a second answer).
    fn answered(&mut self, id: &RequestId) -> Result<Option<Pending>, String> {
        if self.is_stale(id) {
            tracing::debug!(slot = self.id.slot, pid = self.pid, %id, "stale answer dropped");
            return Ok(None);
        }
        match self.in_flight.remove(id) {
            Some(p) => {
                // The worker answered: the rest of its request stream is not needed.
                self.stop_request_stream(id);
                Ok(Some(p))
            }
            None => Err(format!(
                "answer for request {id}, which it does not hold (an unknown id, or a second answer)"
            )),
        }
    }
}
