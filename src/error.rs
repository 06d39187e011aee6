//! The one error type of the `lpm` facade: what can go wrong in a worker process.
//!
//! Errors of the wire protocol crate and of postcard stay private: they are
//! carried as an opaque `#[source]` or as text, so upgrading either is not a
//! breaking change for code that matches on [`WorkerError`].

use lpm_protocol::Codec;
use uuid::Uuid;

use crate::BoxError;

/// What can go wrong in the worker runtime ([`crate::worker`]).
///
/// Each message says what happened and what to do about it. Causes, where
/// there is one, are available through [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// This process did not inherit a usable IPC channel from a supervisor:
    /// `LPM_IPC_FD` names no socket, or, without it, stdin or stdout is no
    /// pipe or socket.
    #[error(
        "this process has no IPC channel to an lpm supervisor; start it through an lpm pool, \
         which passes the channel as file descriptor 3 and names it in LPM_IPC_FD, or, over \
         the stdio transport, as the worker's stdin and stdout \
         (tests can use `Worker::connect` with one end of a socketpair)"
    )]
    NoChannel {
        /// Why the inherited descriptor cannot be used.
        #[source]
        source: BoxError,
    },

    /// The supervisor speaks another protocol version.
    #[error(
        "protocol version mismatch: this worker speaks version {ours}, the supervisor speaks \
         version {theirs}; build the worker and the supervisor against the same lpm version"
    )]
    VersionMismatch {
        /// The worker's [`lpm_protocol::PROTOCOL_VERSION`].
        ours: u16,
        /// The version the supervisor announced.
        theirs: u16,
    },

    /// The supervisor encodes payloads with another codec than this worker.
    #[error(
        "payload codec mismatch: this worker uses {ours}, the pool uses {theirs}; \
         let the worker take the pool's codec (`Worker::from_env` reads LPM_CODEC) \
         or set the pool's `Config::codec` to {ours}"
    )]
    CodecMismatch {
        /// The worker's codec.
        ours: lpm_protocol::Codec,
        /// The pool's.
        theirs: lpm_protocol::Codec,
    },

    /// The supervisor did not open the channel with a valid `Hello`.
    #[error(
        "handshake with the supervisor failed: {reason}; the peer is not an lpm supervisor \
         or it is broken"
    )]
    Handshake {
        /// What was received instead of a `Hello`.
        reason: String,
    },

    /// Reading from or writing to the IPC channel failed, or the supervisor
    /// sent a frame that does not decode.
    #[error(
        "the IPC channel to the supervisor failed; the worker cannot go on and should exit \
         (its supervisor replaces it)"
    )]
    Channel {
        /// The I/O or framing error.
        #[source]
        source: BoxError,
    },

    /// The channel is closed: [`Worker::run`](crate::worker::Worker::run)
    /// has returned, or the supervisor hung up.
    #[error(
        "the channel to the supervisor is closed (the worker stopped running or the supervisor \
         hung up); nothing more can be sent"
    )]
    ChannelClosed,

    /// [`Worker::run`](crate::worker::Worker::run) was called a second time.
    #[error("this worker is already running or has run; call `Worker::run` exactly once")]
    AlreadyRunning,

    /// A payload did not decode as the requested type.
    #[error(
        "could not decode the payload as `{type_name}`: {reason}; the sender and the receiver \
         must agree on the payload type (postcard is not self-describing: untagged enums, \
         `serde(flatten)` and `deserialize_any` types such as `serde_json::Value` need the \
         JSON codec)"
    )]
    Decode {
        /// The type that was asked for.
        type_name: &'static str,
        /// What the codec reported.
        reason: String,
    },

    /// A payload could not be encoded.
    #[error(
        "could not encode a `{type_name}` payload: {reason}; its Serialize impl failed, or it \
         needs something postcard lacks (sequences and maps must know their length)"
    )]
    Encode {
        /// The type that was being encoded.
        type_name: &'static str,
        /// What the codec reported.
        reason: String,
    },

    /// A message would exceed the maximum frame length.
    #[error(
        "a message of {len} bytes exceeds the frame limit of {max} bytes; send smaller payloads \
         (split them, or pass large data out of band)"
    )]
    PayloadTooLarge {
        /// The encoded message length.
        len: usize,
        /// The frame limit.
        max: usize,
    },

    /// The request was already answered: its handler failed while the
    /// [`Request`](crate::worker::Request) lived on in another task.
    #[error(
        "request {id} was already answered (its handler returned an error or panicked); \
         answer a request from one place only"
    )]
    AlreadyAnswered {
        /// The request.
        id: Uuid,
    },

    /// A descriptor that came with a request or an event, or one for a
    /// response stream, could not be used (wrong kind, or the process is
    /// out of descriptors).
    #[error("could not use {what}: {source}; check the worker's descriptor limit (ulimit -n)")]
    Descriptor {
        /// What it was for.
        what: &'static str,
        /// The system's error.
        #[source]
        source: BoxError,
    },

    /// The supervisor answered an emitted event with an error instead of a reply.
    #[error("the supervisor gave no reply to event `{event}`: {reason}")]
    NoReply {
        /// The event name.
        event: String,
        /// The supervisor's explanation.
        reason: String,
    },
}

impl WorkerError {
    /// A channel error (I/O or framing) of the protocol crate, kept opaque.
    pub(crate) fn channel(source: impl Into<BoxError>) -> Self {
        WorkerError::Channel {
            source: source.into(),
        }
    }
}

/// Encodes a user payload with the pool's codec.
pub(crate) fn encode_payload<T: serde::Serialize + ?Sized>(
    codec: Codec,
    payload: &T,
) -> Result<Vec<u8>, WorkerError> {
    codec.encode(payload).map_err(|e| WorkerError::Encode {
        type_name: std::any::type_name::<T>(),
        reason: format!("{codec}: {e}"),
    })
}

/// Decodes a user payload with the pool's codec.
pub(crate) fn decode_payload<T: serde::de::DeserializeOwned>(
    codec: Codec,
    bytes: &[u8],
) -> Result<T, WorkerError> {
    codec.decode(bytes).map_err(|e| WorkerError::Decode {
        type_name: std::any::type_name::<T>(),
        reason: format!("{codec}: {e}"),
    })
}

/// `error: cause: cause ...`, the whole `source()` chain on one line.
pub(crate) fn display_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_chain_joins_sources() {
        let e = WorkerError::channel(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe"));
        let text = display_chain(&e);
        assert!(text.starts_with("the IPC channel to the supervisor failed"));
        assert!(text.ends_with(": pipe"), "{text}");
    }

    #[test]
    fn decode_names_the_type() {
        let e = decode_payload::<String>(Codec::Postcard, &[5, b'a']).unwrap_err();
        assert!(matches!(e, WorkerError::Decode { type_name, .. } if type_name.contains("String")));
    }
}
