//! What the pool tells its subscribers: [`PoolEvent`] and the custom events
//! workers emit ([`CustomEvent`]), with a reply handle when the worker awaits one.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use actix::Recipient;
use lpm_protocol::{Codec, Query, Topic};
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::mpsc;

use crate::error::{decode_payload, encode_payload};
use crate::{Error, KillReport};

/// Something that happened in the pool.
///
/// It serializes as an object tagged with the snake_case variant name as
/// `event`, next to the variant's fields (a [`KillReason`](crate::KillReason)
/// or [`RecycleReason`](crate::RecycleReason) as the object they serialize
/// as); `Custom` and `Stopped` put the fields of their [`CustomEvent`] or
/// [`KillReport`] there:
///
/// ```json
/// {"event": "online"}
/// {"event": "child_spawned", "slot": 0, "pid": 4242}
/// {"event": "child_exited", "slot": 0, "pid": 4242, "code": null, "signal": 9, "stderr_tail": ["..."]}
/// {"event": "worker_killed", "slot": 0, "pid": 4242, "reason": {"kind": "unresponsive", "silent_for": 1.5, "message": "..."}}
/// {"event": "worker_recycled", "slot": 0, "pid": 4242, "successor": 4250, "reason": {"kind": "max_requests", "served": 1000, "message": "..."}}
/// {"event": "restart_limit_reached", "slot": 0, "restarts": 5}
/// {"event": "slot_revived", "slot": 0}
/// {"event": "scaled", "from": 2, "to": 3, "reason": {"kind": "backlog", "waited": 0.25, "message": "..."}}
/// {"event": "reloaded", "slot": 0, "old_pid": 4242, "new_pid": 4250}
/// {"event": "custom", "slot": 0, "pid": 4242, "name": "progress", "payload_len": 8, "wants_reply": false}
/// {"event": "signal", "signal": 15}
/// {"event": "stopped", "served": 6, "failed": 1, "killed": 0}
/// ```
#[derive(Debug, Clone, actix::Message, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum PoolEvent {
    /// Every worker has said it is ready (sent once, when the pool first reaches full strength).
    Online,
    /// A worker process was started.
    ChildSpawned {
        /// Its slot.
        slot: usize,
        /// Its process id.
        pid: u32,
    },
    /// A worker process ended and was reaped.
    ChildExited {
        /// Its slot.
        slot: usize,
        /// Its process id.
        pid: u32,
        /// Exit code, when it exited.
        code: Option<i32>,
        /// Signal number, when a signal killed it.
        signal: Option<i32>,
        /// The last lines it wrote to stderr.
        stderr_tail: Vec<String>,
    },
    /// The pool killed a misbehaving worker (it is replaced as after any death).
    /// Sent before its [`PoolEvent::ChildExited`].
    WorkerKilled {
        /// Its slot.
        slot: usize,
        /// Its process id.
        pid: u32,
        /// Why.
        reason: crate::KillReason,
    },
    /// A worker reached a recycling limit; its replacement in the same slot
    /// is ready, and the old worker now finishes its requests and exits.
    WorkerRecycled {
        /// The slot.
        slot: usize,
        /// The old worker's process id.
        pid: u32,
        /// The replacement's process id.
        successor: u32,
        /// Which limit.
        reason: crate::RecycleReason,
    },
    /// A slot restarted too often within the window and is given up: for
    /// good, or until [`Config::revive_after`](crate::Config::revive_after) has passed.
    RestartLimitReached {
        /// The slot given up on.
        slot: usize,
        /// Restarts counted in the window.
        restarts: u32,
    },
    /// A slot given up after its restart limit rested its
    /// [`Config::revive_after`](crate::Config::revive_after) and gets a
    /// worker again, with a fresh restart window.
    SlotRevived {
        /// The slot.
        slot: usize,
    },
    /// The autoscaler changed the pool's size ([`Config::autoscale`](crate::Config::autoscale)).
    /// Workers added start now; a worker removed finishes its requests first.
    Scaled {
        /// Workers before.
        from: usize,
        /// Workers now aimed for.
        to: usize,
        /// Why.
        reason: crate::ScaleReason,
    },
    /// A rolling reload ([`Pool::reload`](crate::Pool::reload)) replaced a
    /// slot's worker: the new one is ready, the old one finishes its
    /// requests and exits.
    Reloaded {
        /// The slot.
        slot: usize,
        /// The old worker's process id.
        old_pid: u32,
        /// The new worker's process id.
        new_pid: u32,
    },
    /// A worker emitted a custom event.
    Custom(CustomEvent),
    /// The supervisor received SIGINT or SIGTERM (it acts per [`SignalPolicy`](crate::SignalPolicy)).
    Signal {
        /// The signal number.
        signal: i32,
    },
    /// Every worker is gone after a soft or hard kill.
    Stopped(KillReport),
}

impl Serialize for CustomEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("CustomEvent", 5)?;
        s.serialize_field("slot", &self.slot)?;
        s.serialize_field("pid", &self.pid)?;
        s.serialize_field("name", self.name())?;
        s.serialize_field("payload_len", &self.payload.len())?;
        s.serialize_field("wants_reply", &self.wants_reply())?;
        s.end()
    }
}

/// Delivers a reply to the worker that emitted an event.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub(crate) struct DeliverReply {
    pub(crate) emit_id: u64,
    pub(crate) outcome: Result<Vec<u8>, String>,
}

/// A custom event emitted by a worker with `emit` or `emit_with_reply`.
///
/// Clones share one reply: the first [`CustomEvent::reply`] wins. When the
/// worker awaits a reply and every clone is dropped without one, the worker's
/// `emit_with_reply` fails instead of waiting forever.
///
/// It serializes as what can be shown without knowing the payload's type:
/// `{"slot": 0, "pid": 4242, "name": "progress", "payload_len": 8, "wants_reply": false}`
/// (the payload's length in bytes, not the payload).
#[derive(Debug, Clone)]
pub struct CustomEvent {
    slot: usize,
    pid: u32,
    name: Arc<str>,
    payload: Arc<[u8]>,
    codec: Codec,
    reply: Option<Arc<ReplySlot>>,
}

#[derive(Debug)]
struct ReplySlot {
    emit_id: u64,
    to: Recipient<DeliverReply>,
    done: AtomicBool,
}

impl Drop for ReplySlot {
    fn drop(&mut self) {
        if !self.done.load(Ordering::Acquire) {
            self.to.do_send(DeliverReply {
                emit_id: self.emit_id,
                outcome: Err("no subscriber of the supervisor replied to this event".into()),
            });
        }
    }
}

impl CustomEvent {
    pub(crate) fn new(
        slot: usize,
        pid: u32,
        name: String,
        payload: Vec<u8>,
        codec: Codec,
        reply: Option<(u64, Recipient<DeliverReply>)>,
    ) -> Self {
        Self {
            slot,
            pid,
            name: name.into(),
            payload: payload.into(),
            codec,
            reply: reply.map(|(emit_id, to)| {
                Arc::new(ReplySlot {
                    emit_id,
                    to,
                    done: AtomicBool::new(false),
                })
            }),
        }
    }

    /// Slot of the worker that emitted it.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Process id of the worker that emitted it.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Decodes the event's payload.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the payload is not a `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, Error> {
        decode_payload(self.codec, &self.payload)
    }

    /// Whether this is event `E` (its name is `E::NAME`).
    pub fn is<E: Topic>(&self) -> bool {
        *self.name == *E::NAME
    }

    /// The event as an `E`: `None` when it is another event, else its
    /// payload decoded.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when it is named `E::NAME` but its payload is not an `E`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures::StreamExt;
    /// use lpm_actors::{Pool, PoolEvent, Query, Topic};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Progress { done: u32 }
    /// # impl Topic for Progress { const NAME: &'static str = "progress"; }
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct NextBatch;
    /// # impl Topic for NextBatch { const NAME: &'static str = "next_batch"; }
    /// # impl Query for NextBatch { type Reply = Vec<u64>; }
    ///
    /// # async fn demo(pool: Pool) -> Result<(), lpm_actors::Error> {
    /// let mut events = pool.events();
    /// while let Some(event) = events.next().await {
    ///     let PoolEvent::Custom(event) = event else { continue };
    ///     if let Some(progress) = event.decode::<Progress>() {
    ///         println!("worker {} is at {}", event.pid(), progress?.done);
    ///     } else if event.is::<NextBatch>() {
    ///         event.answer::<NextBatch>(&vec![1, 2, 3])?;
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn decode<E: Topic>(&self) -> Option<Result<E, Error>> {
        self.is::<E>().then(|| self.data())
    }

    /// Answers the worker's `ask` of query `Q`, with the type `Q` declares.
    ///
    /// # Errors
    ///
    /// As [`CustomEvent::reply`].
    pub fn answer<Q: Query>(&self, reply: &Q::Reply) -> Result<(), Error> {
        self.reply(reply)
    }

    /// True when the worker awaits a reply.
    pub fn wants_reply(&self) -> bool {
        self.reply.is_some()
    }

    /// Answers the worker's `emit_with_reply`.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyReplied`] when this event (or a clone) was answered,
    /// or when the worker did not ask for a reply; [`Error::Encode`];
    /// [`Error::WorkerGone`] when the worker has exited.
    pub fn reply<T: Serialize + ?Sized>(&self, payload: &T) -> Result<(), Error> {
        let slot = self.reply.as_ref().ok_or(Error::AlreadyReplied)?;
        let bytes = encode_payload(self.codec, payload)?;
        if slot.done.swap(true, Ordering::AcqRel) {
            return Err(Error::AlreadyReplied);
        }
        slot.to
            .try_send(DeliverReply {
                emit_id: slot.emit_id,
                outcome: Ok(bytes),
            })
            .map_err(|_| Error::WorkerGone)
    }
}

/// The pool's events as a [`Stream`](futures::Stream), from [`Pool::events`](crate::Pool::events).
///
/// It holds up to 1024 undelivered events; past that, new events are
/// dropped with a warning rather than letting memory grow.
#[derive(Debug)]
pub struct EventStream {
    pub(crate) rx: mpsc::Receiver<PoolEvent>,
}

impl futures::Stream for EventStream {
    type Item = PoolEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PoolEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// A subscriber to pool events.
#[derive(Debug)]
pub(crate) enum Subscriber {
    Actor(Recipient<PoolEvent>),
    Stream(mpsc::Sender<PoolEvent>),
}

impl Subscriber {
    /// Delivers `event`; false when the subscriber is gone.
    pub(crate) fn deliver(&self, event: &PoolEvent) -> bool {
        match self {
            Subscriber::Actor(r) => {
                r.connected() && {
                    r.do_send(event.clone());
                    true
                }
            }
            Subscriber::Stream(tx) => match tx.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!("event stream is 1024 events behind; dropping an event");
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix::{Actor, Context, Handler};
    use serde_json::json;

    use super::*;
    use crate::{KillReason, RecycleReason};

    /// Stands in for the worker handle a reply goes to.
    struct Sink;

    impl Actor for Sink {
        type Context = Context<Self>;
    }

    impl Handler<DeliverReply> for Sink {
        type Result = ();

        fn handle(&mut self, _: DeliverReply, _: &mut Context<Self>) {}
    }

    fn json(event: &PoolEvent) -> serde_json::Value {
        serde_json::to_value(event).unwrap()
    }

    #[test]
    fn pool_events_serialize_tagged_with_their_name() {
        assert_eq!(json(&PoolEvent::Online), json!({"event": "online"}));
        assert_eq!(
            json(&PoolEvent::ChildSpawned { slot: 0, pid: 42 }),
            json!({"event": "child_spawned", "slot": 0, "pid": 42})
        );
        assert_eq!(
            json(&PoolEvent::ChildExited {
                slot: 1,
                pid: 42,
                code: None,
                signal: Some(9),
                stderr_tail: vec!["oops".into()],
            }),
            json!({"event": "child_exited", "slot": 1, "pid": 42, "code": null,
                   "signal": 9, "stderr_tail": ["oops"]})
        );
        assert_eq!(
            json(&PoolEvent::WorkerKilled {
                slot: 0,
                pid: 42,
                reason: KillReason::Unresponsive {
                    silent_for: Duration::from_secs(2),
                },
            }),
            json!({"event": "worker_killed", "slot": 0, "pid": 42,
                   "reason": {"kind": "unresponsive", "silent_for": 2.0,
                              "message": "no heartbeat answer for 2s: the worker is hung"}})
        );
        assert_eq!(
            json(&PoolEvent::WorkerRecycled {
                slot: 0,
                pid: 42,
                successor: 43,
                reason: RecycleReason::MaxRequests { served: 10 },
            }),
            json!({"event": "worker_recycled", "slot": 0, "pid": 42, "successor": 43,
                   "reason": {"kind": "max_requests", "served": 10,
                              "message": "served 10 requests (Config::max_requests)"}})
        );
        assert_eq!(
            json(&PoolEvent::RestartLimitReached {
                slot: 2,
                restarts: 5
            }),
            json!({"event": "restart_limit_reached", "slot": 2, "restarts": 5})
        );
        assert_eq!(
            json(&PoolEvent::SlotRevived { slot: 2 }),
            json!({"event": "slot_revived", "slot": 2})
        );
        assert_eq!(
            json(&PoolEvent::Scaled {
                from: 2,
                to: 1,
                reason: crate::ScaleReason::Idle {
                    period: Duration::from_secs(30)
                },
            }),
            json!({"event": "scaled", "from": 2, "to": 1,
                   "reason": {"kind": "idle", "for": 30.0,
                              "message": "a worker was spare for 30s"}})
        );
        assert_eq!(
            json(&PoolEvent::Reloaded {
                slot: 1,
                old_pid: 42,
                new_pid: 43
            }),
            json!({"event": "reloaded", "slot": 1, "old_pid": 42, "new_pid": 43})
        );
        assert_eq!(
            json(&PoolEvent::Signal { signal: 15 }),
            json!({"event": "signal", "signal": 15})
        );
        assert_eq!(
            json(&PoolEvent::Stopped(KillReport {
                served: 6,
                failed: 1,
                killed: 0,
            })),
            json!({"event": "stopped", "served": 6, "failed": 1, "killed": 0})
        );
    }

    #[test]
    fn a_custom_event_serializes_its_payload_length_not_its_payload() {
        let event = CustomEvent::new(
            3,
            42,
            "progress".into(),
            vec![1, 2, 3, 4],
            Codec::Postcard,
            None,
        );
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"slot": 3, "pid": 42, "name": "progress", "payload_len": 4,
                   "wants_reply": false})
        );
        assert_eq!(
            json(&PoolEvent::Custom(event)),
            json!({"event": "custom", "slot": 3, "pid": 42, "name": "progress",
                   "payload_len": 4, "wants_reply": false})
        );
    }

    #[actix_rt::test]
    async fn a_custom_event_that_awaits_a_reply_says_so() {
        let sink = Sink.start().recipient();
        let event = CustomEvent::new(
            0,
            42,
            "ask".into(),
            vec![0; 9],
            Codec::Postcard,
            Some((1, sink)),
        );
        assert_eq!(
            json(&PoolEvent::Custom(event.clone())),
            json!({"event": "custom", "slot": 0, "pid": 42, "name": "ask",
                   "payload_len": 9, "wants_reply": true})
        );
        event.reply(&()).unwrap();
    }
}
