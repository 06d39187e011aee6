//! What a worker sends: the handshake, answers, state changes and events.

use std::collections::HashSet;
use std::sync::Arc;

use actix::prelude::*;
use lpm_protocol::{RequestId, ToSupervisor, PROTOCOL_VERSION};

use super::WorkerHandle;
use crate::balancer::WorkerCalls;
use crate::events::CustomEvent;
use crate::health::WorkerState;
use crate::request::Pending;
use crate::supervisor::{Publish, WorkerReady};
use crate::{Error, KillReason, PoolEvent};

impl WorkerHandle {
    /// Handles one message: `Ok(true)` when it freed a request slot, `Err` on a protocol violation.
    pub(super) fn on_message(
        &mut self,
        msg: ToSupervisor,
        ctx: &mut Context<Self>,
    ) -> Result<bool, String> {
        let slot = self.id.slot;
        if !self.handshaken {
            return match msg {
                ToSupervisor::Hello {
                    version,
                    pid,
                    codec,
                    calls,
                } => {
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
                        self.kill_for(reason, ctx);
                        return Ok(false);
                    }
                    if pid != self.pid {
                        tracing::debug!(
                            slot,
                            pid = self.pid,
                            reported = pid,
                            "worker reports another pid (a wrapper process?)"
                        );
                    }
                    self.handshaken = true;
                    if let Some(deadline) = self.handshake_deadline.take() {
                        ctx.cancel_future(deadline);
                    }
                    self.learn_calls(calls)?;
                    self.start_heartbeat(ctx);
                    Ok(false)
                }
                other => Err(format!("expected Hello first, got {}", other.kind())),
            };
        }
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
                if self.state != WorkerState::Draining {
                    let first = self.state == WorkerState::Starting;
                    self.set_state(WorkerState::Ready);
                    if first {
                        self.supervisor.do_send(WorkerReady { id: self.id });
                    }
                }
                false
            }
            ToSupervisor::Busy => {
                if self.state != WorkerState::Draining {
                    self.set_state(WorkerState::Busy);
                }
                false
            }
            ToSupervisor::Emit {
                name,
                payload,
                reply_to,
            } => {
                let reply = reply_to.map(|id| (id, ctx.address().recipient()));
                let event =
                    CustomEvent::new(slot, self.pid, name, payload, self.config.codec, reply);
                self.supervisor.do_send(Publish(PoolEvent::Custom(event)));
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
                self.on_pong(seq);
                false
            }
            ToSupervisor::ResponseWithStream { id, payload, fd } => {
                // A stale or unwanted stream's descriptor closes with `fd`.
                if let Some(p) = self.answered(&id)? {
                    self.on_response_stream(p, payload, fd);
                }
                // The request stays counted until its stream ends.
                false
            }
            ToSupervisor::StreamEnd { id, outcome } => self.on_stream_end(id, outcome),
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

    /// Tells the balancer which calls the worker serves, numbered as its
    /// `Hello` listed them (from 1); `Err` when a name is listed twice
    /// (which number would it have?).
    fn learn_calls(&mut self, calls: Vec<String>) -> Result<(), String> {
        let names: Arc<[Box<str>]> = calls.into_iter().map(String::into_boxed_str).collect();
        let distinct: HashSet<&str> = names.iter().map(|n| &**n).collect();
        if distinct.len() < names.len() {
            return Err("its Hello lists a call name twice".to_owned());
        }
        self.balancer.do_send(WorkerCalls {
            id: self.id,
            calls: names,
        });
        Ok(())
    }

    /// The request an answer is for: `None` for a stale answer of a cancelled
    /// attempt, or after the pool stopped listening; `Err` when the worker
    /// does not hold that request (an unknown id, or a second answer).
    fn answered(&mut self, id: &RequestId) -> Result<Option<Pending>, String> {
        if self.is_stale(id) || !self.channel_open {
            tracing::debug!(slot = self.id.slot, pid = self.pid, %id, "stale answer dropped");
            return Ok(None);
        }
        match self.take(id) {
            Some(p) => Ok(Some(p)),
            None => Err(format!(
                "answer for request {id}, which it does not hold (an unknown id, or a second answer)"
            )),
        }
    }
}
