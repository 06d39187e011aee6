//! Why the pool ended or replaced a worker on its own initiative:
//! [`KillReason`] for a worker that misbehaved, [`RecycleReason`] for one
//! that reached a configured limit.

use std::time::Duration;

use lpm_protocol::RequestId;

/// Why the pool killed a worker (see [`PoolEvent::WorkerKilled`](crate::PoolEvent::WorkerKilled)).
///
/// The worker's requests are then handled as after a death: retried while
/// retries last, else failed with [`Error::WorkerKilled`](crate::Error::WorkerKilled).
///
/// It serializes as an object with a snake_case `kind`, the variant's fields
/// (durations in seconds, a request id as its hyphenated UUID, the text of
/// the two string variants as `detail`) and the `Display` text as `message`:
///
/// ```json
/// {"kind": "protocol_violation", "detail": "frame of 5000000 bytes", "message": "protocol violation: frame of 5000000 bytes"}
/// {"kind": "channel_failed", "detail": "...", "message": "..."}
/// {"kind": "no_handshake", "after": 5.0, "message": "..."}
/// {"kind": "unresponsive", "silent_for": 1.5, "message": "..."}
/// {"kind": "request_timed_out", "id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "message": "..."}
/// ```
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
///
/// It serializes as an object with a snake_case `kind`, the variant's fields
/// and the `Display` text as `message`:
///
/// ```json
/// {"kind": "max_requests", "served": 1000, "message": "served 1000 requests (Config::max_requests)"}
/// {"kind": "max_rss", "rss": 300000000, "limit": 268435456, "message": "..."}
/// ```
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

/// The serialized shape of [`KillReason`] and [`RecycleReason`]: a `kind`
/// tag, the fields, and the `Display` text.
#[derive(serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ReasonJson<'a> {
    ProtocolViolation {
        detail: &'a str,
        message: String,
    },
    ChannelFailed {
        detail: &'a str,
        message: String,
    },
    NoHandshake {
        #[serde(serialize_with = "crate::error::secs")]
        after: Duration,
        message: String,
    },
    Unresponsive {
        #[serde(serialize_with = "crate::error::secs")]
        silent_for: Duration,
        message: String,
    },
    RequestTimedOut {
        id: RequestId,
        message: String,
    },
    CodecMismatch {
        pool: &'static str,
        worker: &'static str,
        message: String,
    },
    MaxRequests {
        served: u64,
        message: String,
    },
    MaxRss {
        rss: u64,
        limit: u64,
        message: String,
    },
}

impl serde::Serialize for KillReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let message = self.to_string();
        match self {
            KillReason::ProtocolViolation(detail) => {
                ReasonJson::ProtocolViolation { detail, message }
            }
            KillReason::ChannelFailed(detail) => ReasonJson::ChannelFailed { detail, message },
            KillReason::NoHandshake { after } => ReasonJson::NoHandshake {
                after: *after,
                message,
            },
            KillReason::Unresponsive { silent_for } => ReasonJson::Unresponsive {
                silent_for: *silent_for,
                message,
            },
            KillReason::RequestTimedOut { id } => ReasonJson::RequestTimedOut { id: *id, message },
            KillReason::CodecMismatch { pool, worker } => ReasonJson::CodecMismatch {
                pool: pool.name(),
                worker: worker.name(),
                message,
            },
        }
        .serialize(serializer)
    }
}

impl serde::Serialize for RecycleReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let message = self.to_string();
        match *self {
            RecycleReason::MaxRequests { served } => ReasonJson::MaxRequests { served, message },
            RecycleReason::MaxRss { rss, limit } => ReasonJson::MaxRss {
                rss,
                limit,
                message,
            },
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn kill_reasons_serialize_with_kind_fields_and_message() {
        let id: RequestId = "67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap();
        let cases = [
            (
                KillReason::ProtocolViolation("unknown id".into()),
                json!({"kind": "protocol_violation", "detail": "unknown id",
                       "message": "protocol violation: unknown id"}),
            ),
            (
                KillReason::ChannelFailed("EIO".into()),
                json!({"kind": "channel_failed", "detail": "EIO",
                       "message": "channel I/O failed: EIO"}),
            ),
            (
                KillReason::NoHandshake {
                    after: Duration::from_secs(5),
                },
                json!({"kind": "no_handshake", "after": 5.0,
                       "message": "no handshake within 5s (Config::spawn_timeout)"}),
            ),
            (
                KillReason::Unresponsive {
                    silent_for: Duration::from_millis(1500),
                },
                json!({"kind": "unresponsive", "silent_for": 1.5,
                       "message": "no heartbeat answer for 1.5s: the worker is hung"}),
            ),
            (
                KillReason::RequestTimedOut { id },
                json!({"kind": "request_timed_out", "id": "67e55044-10b1-426f-9247-bb680e5fe0c8",
                       "message": "request 67e55044-10b1-426f-9247-bb680e5fe0c8 timed out on it \
                                   (Config::recycle_on_timeout)"}),
            ),
        ];
        for (reason, expected) in cases {
            assert_eq!(serde_json::to_value(&reason).unwrap(), expected);
        }
    }

    #[test]
    fn recycle_reasons_serialize_with_kind_fields_and_message() {
        assert_eq!(
            serde_json::to_value(RecycleReason::MaxRequests { served: 1000 }).unwrap(),
            json!({"kind": "max_requests", "served": 1000,
                   "message": "served 1000 requests (Config::max_requests)"})
        );
        assert_eq!(
            serde_json::to_value(RecycleReason::MaxRss {
                rss: 300,
                limit: 200
            })
            .unwrap(),
            json!({"kind": "max_rss", "rss": 300, "limit": 200,
                   "message": "RSS 300 bytes over the limit of 200 (Config::max_rss)"})
        );
    }
}
