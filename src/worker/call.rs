//! Typed calls on the worker side: the handler registered with
//! [`Worker::handle`](super::Worker::handle) gets the decoded call and a
//! [`CallContext`], and its return value is the reply.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use lpm_protocol::Call;
use tokio::io::AsyncRead;
use uuid::Uuid;

use super::fds::{RequestStream, Socket};
use super::request::{Carried, Request};
use crate::{BoxError, WorkerError};

/// What a typed call's handler may know and take besides the call itself:
/// its id, its cancellation, the stream or connection it carries, and a
/// byte stream to answer with.
///
/// The reply is the handler's return value, so the context cannot answer;
/// everything else a [`Request`] offers is here.
pub struct CallContext {
    carried: Carried,
}

impl CallContext {
    /// The request's id, as the caller's `Response` carries it.
    pub fn id(&self) -> Uuid {
        self.carried.state().id()
    }

    /// When the caller enqueued the call (the supervisor's clock).
    pub fn created_at(&self) -> SystemTime {
        self.carried.state().created_at_raw().to_system_time()
    }

    /// The call's trace context; see [`Request::trace_parent`].
    pub fn trace_parent(&self) -> Option<lpm_protocol::TraceParent> {
        self.carried.state().trace_parent()
    }

    /// Whether the supervisor cancelled the call (see
    /// [Cancellation](Request#cancellation)): its reply will not be sent.
    pub fn is_cancelled(&self) -> bool {
        self.carried.state().is_cancelled()
    }

    /// Resolves once the supervisor cancels the call; see [`Request::cancelled`].
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        Arc::clone(self.carried.state()).cancelled()
    }

    /// Whether the call carries a byte stream ([`CallContext::stream`]).
    pub fn has_stream(&self) -> bool {
        self.carried.has_stream()
    }

    /// Whether the call carries a connection ([`CallContext::socket`]).
    pub fn has_socket(&self) -> bool {
        self.carried.has_socket()
    }

    /// Takes the byte stream the caller sent with the call; see [`Request::stream`].
    ///
    /// # Errors
    ///
    /// [`WorkerError::Descriptor`] when it cannot be made a tokio reader.
    pub fn stream(&mut self) -> Result<Option<RequestStream>, WorkerError> {
        self.carried.stream()
    }

    /// Takes the connection the caller handed over with the call; see
    /// [`Request::socket`]. Serve it in a task of your own and return the
    /// reply at once (say, the worker's pid): there is no typed `ack`.
    ///
    /// # Errors
    ///
    /// [`WorkerError::Descriptor`] when it cannot be made a tokio stream.
    pub fn socket(&mut self) -> Result<Option<Socket>, WorkerError> {
        self.carried.socket()
    }

    /// Answers with this byte stream after the reply: the caller reads it
    /// from the `Response` (`Enqueue::call(..).with_response()`); see
    /// [`Request::respond_with_stream`]. A later call replaces the reader.
    pub fn stream_reply(&self, reader: impl AsyncRead + Send + Unpin + 'static) {
        self.carried.state().set_stream_reply(Box::new(reader));
    }
}

impl fmt::Debug for CallContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallContext")
            .field("id", &self.id())
            .field("cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Decodes the call, runs the handler, and answers with its reply.
pub(crate) async fn serve_call<C, F, Fut>(
    mut request: Request,
    handler: Arc<F>,
) -> Result<(), BoxError>
where
    C: Call,
    F: Fn(C, CallContext) -> Fut,
    Fut: Future<Output = Result<C::Reply, BoxError>>,
{
    let call: C = request.data()?;
    let context = CallContext {
        carried: request.take_carried(),
    };
    let reply = handler(call, context).await?;
    match request.take_stream_reply() {
        Some(reader) => request.respond_with_stream(&reply, reader)?,
        None => request.respond(&reply)?,
    }
    Ok(())
}
