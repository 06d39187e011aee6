//! Named events broadcast by the supervisor, and the handlers that receive them.

use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use lpm_protocol::Codec;
use serde::de::DeserializeOwned;

use super::fds::{Attached, Listener, SharedAttached};
use super::request::panic_message;
use crate::error::decode_payload;
use crate::WorkerError;

/// An event the supervisor broadcast, handed to the handler registered for
/// its name with [`Worker::on_event`](super::Worker::on_event).
#[derive(Clone)]
pub struct Event {
    pub(crate) name: String,
    payload: Vec<u8>,
    codec: Codec,
    listener: Option<SharedAttached>,
}

impl Event {
    pub(crate) fn new(name: String, payload: Vec<u8>, codec: Codec) -> Self {
        Self {
            name,
            payload,
            codec,
            listener: None,
        }
    }

    pub(crate) fn with_listener(
        name: String,
        payload: Vec<u8>,
        codec: Codec,
        attached: Attached,
    ) -> Self {
        Self {
            name,
            payload,
            codec,
            listener: Some(Arc::new(std::sync::Mutex::new(Some(attached)))),
        }
    }

    /// Whether the event carries a listening socket.
    pub fn has_listener(&self) -> bool {
        self.listener.is_some()
    }

    /// Takes the listening socket the supervisor broadcast with this event
    /// ([`Pool::broadcast_listener`]); the first call gets it, later ones
    /// `Ok(None)`.
    ///
    /// # Errors
    ///
    /// [`WorkerError::Descriptor`] when it cannot be made a tokio listener.
    ///
    #[doc = pool_links!("Pool::broadcast_listener")]
    pub fn listener(&self) -> Result<Option<Listener>, WorkerError> {
        let Some(slot) = &self.listener else {
            return Ok(None);
        };
        let taken = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        taken.map(|(kind, fd)| Listener::new(kind, fd)).transpose()
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Decodes the payload as the broadcaster's type.
    ///
    /// # Errors
    ///
    /// [`WorkerError::Decode`] when the payload is not a `T` in the pool's codec.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, WorkerError> {
        decode_payload(self.codec, &self.payload)
    }

    /// The payload as it arrived.
    pub fn bytes(&self) -> &[u8] {
        &self.payload
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("name", &self.name)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// A registered event handler, its future boxed (events are rare next to requests).
pub(crate) type EventHandler = Arc<dyn Fn(Event) -> BoxFuture<'static, ()> + Send + Sync>;

/// Event handlers by name.
pub(crate) type EventHandlers = HashMap<String, EventHandler>;

/// Runs the handler for `event` in its own task; without one, logs and drops it.
pub(crate) fn dispatch(handler: Option<EventHandler>, event: Event) {
    let Some(handler) = handler else {
        tracing::debug!(event = %event.name, "no handler for event; ignored");
        return;
    };
    let name = event.name.clone();
    tokio::spawn(async move {
        let outcome = AssertUnwindSafe(async move { handler(event).await })
            .catch_unwind()
            .await;
        if let Err(panic) = outcome {
            tracing::warn!(
                event = %name,
                "event handler panicked: {}",
                panic_message(panic.as_ref())
            );
        }
    });
}
