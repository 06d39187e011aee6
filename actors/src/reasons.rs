//! Why the pool ended or replaced a worker on its own initiative:
//! [`KillReason`] for a worker that misbehaved, [`RecycleReason`] for one
//! that reached a configured limit.

use std::time::Duration;

use lpm_protocol::RequestId;

/// Why the pool killed a worker (see [`PoolEvent::WorkerKilled`](crate::PoolEvent::WorkerKilled)).
///
/// The worker's requests are then handled as after a death: retried while
/// retries last, else failed with [`Error::WorkerKilled`](crate::Error::WorkerKilled).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KillReason {
    /// It sent something the protocol does not allow: a malformed or
    /// oversized frame, a wrong protocol version, an answer for a request it
    /// does not hold (unknown id, or a second answer).
    #[error("protocol violation: {0}")]
    ProtocolViolation(String),
    /// Its channel failed with an I/O error other than a hang-up.
    #[error("channel I/O failed: {0}")]
    ChannelFailed(String),
    /// Its `Hello` names another payload codec than the pool's
    /// ([`Config::codec`](crate::Config::codec)): every payload would be garbage to it.
    #[error(
        "codec mismatch: the pool encodes payloads with {pool}, the worker with {worker}; \
         start the worker with the pool's codec (it is in LPM_CODEC)"
    )]
    CodecMismatch {
        /// The pool's codec.
        pool: lpm_protocol::Codec,
        /// The worker's.
        worker: lpm_protocol::Codec,
    },
    /// It did not complete the handshake within [`Config::spawn_timeout`](crate::Config::spawn_timeout).
    #[error("no handshake within {after:?} (Config::spawn_timeout)")]
    NoHandshake {
        /// The spawn timeout.
        after: Duration,
    },
    /// It stopped answering heartbeats ([`Config::heartbeat`](crate::Config::heartbeat)).
    #[error("no heartbeat answer for {silent_for:?}: the worker is hung")]
    Unresponsive {
        /// How long it had been silent.
        silent_for: Duration,
    },
    /// A request timed out on it and [`Config::recycle_on_timeout`](crate::Config::recycle_on_timeout)
    /// is set: it got SIGTERM, then SIGKILL after `term_grace`.
    #[error("request {id} timed out on it (Config::recycle_on_timeout)")]
    RequestTimedOut {
        /// The request that ran late.
        id: RequestId,
    },
}

/// Why the pool replaced a healthy worker (see [`PoolEvent::WorkerRecycled`](crate::PoolEvent::WorkerRecycled)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecycleReason {
    /// It answered its share of requests ([`Config::max_requests`](crate::Config::max_requests)).
    MaxRequests {
        /// Requests it had answered.
        served: u64,
    },
    /// Its resident memory passed [`Config::max_rss`](crate::Config::max_rss).
    MaxRss {
        /// Its RSS in bytes when sampled.
        rss: u64,
        /// The limit.
        limit: u64,
    },
}

impl std::fmt::Display for RecycleReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecycleReason::MaxRequests { served } => {
                write!(f, "served {served} requests (Config::max_requests)")
            }
            RecycleReason::MaxRss { rss, limit } => {
                write!(
                    f,
                    "RSS {rss} bytes over the limit of {limit} (Config::max_rss)"
                )
            }
        }
    }
}
