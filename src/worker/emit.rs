//! Emits that await a reply: their ids, and the replies routed back to them.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use lpm_protocol::Codec;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::error::decode_payload;
use crate::WorkerError;

/// What the supervisor answered: a payload, or why there is none.
pub(crate) type Outcome = Result<Vec<u8>, String>;

/// The supervisor's reply to [`Worker::emit_with_reply`](super::Worker::emit_with_reply).
#[derive(Clone)]
pub struct Reply {
    payload: Vec<u8>,
    codec: Codec,
}

impl Reply {
    /// Decodes the reply as the replier's type.
    ///
    /// # Errors
    ///
    /// [`WorkerError::Decode`] when the payload is not a `T` in the pool's codec.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, WorkerError> {
        decode_payload(self.codec, &self.payload)
    }

    /// The reply as it arrived.
    pub fn bytes(&self) -> &[u8] {
        &self.payload
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Emits waiting for their reply, by emit id.
#[derive(Debug, Default)]
pub(crate) struct PendingEmits {
    next_id: AtomicU64,
    /// `None` once the channel is closed: no reply can come any more.
    waiting: Mutex<Option<HashMap<u64, oneshot::Sender<Outcome>>>>,
}

impl PendingEmits {
    pub(crate) fn new() -> Self {
        Self {
            next_id: AtomicU64::new(0),
            waiting: Mutex::new(Some(HashMap::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<HashMap<u64, oneshot::Sender<Outcome>>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Allocates an emit id and a place for its reply.
    ///
    /// # Errors
    ///
    /// [`WorkerError::ChannelClosed`] once [`PendingEmits::close`] was called.
    pub(crate) fn register(&self) -> Result<Waiting<'_>, WorkerError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock()
            .as_mut()
            .ok_or(WorkerError::ChannelClosed)?
            .insert(id, tx);
        Ok(Waiting {
            emits: self,
            id,
            rx,
        })
    }

    /// Hands a reply to the emit waiting for it.
    pub(crate) fn resolve(&self, id: u64, outcome: Outcome) {
        let waiter = self.lock().as_mut().and_then(|w| w.remove(&id));
        match waiter {
            // The emitter may have stopped waiting; then the reply is of no use.
            Some(tx) => drop(tx.send(outcome)),
            None => tracing::debug!(emit_id = id, "reply to an emit nobody waits for; ignored"),
        }
    }

    /// Fails every pending emit with [`WorkerError::ChannelClosed`], and all later ones.
    pub(crate) fn close(&self) {
        // Dropping the senders wakes the waiters with a closed channel.
        drop(self.lock().take());
    }
}

/// One emit awaiting its reply; forgets the emit id if dropped before the reply.
#[derive(Debug)]
pub(crate) struct Waiting<'a> {
    emits: &'a PendingEmits,
    id: u64,
    rx: oneshot::Receiver<Outcome>,
}

impl Waiting<'_> {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Waits for the reply.
    ///
    /// # Errors
    ///
    /// [`WorkerError::NoReply`] when the supervisor answered with an error,
    /// [`WorkerError::ChannelClosed`] when the channel closed first.
    pub(crate) async fn reply(mut self, event: &str, codec: Codec) -> Result<Reply, WorkerError> {
        match (&mut self.rx).await {
            Ok(Ok(payload)) => Ok(Reply { payload, codec }),
            Ok(Err(reason)) => Err(WorkerError::NoReply {
                event: event.to_owned(),
                reason,
            }),
            Err(_) => Err(WorkerError::ChannelClosed),
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(waiting) = self.emits.lock().as_mut() {
            waiting.remove(&self.id);
        }
    }
}
