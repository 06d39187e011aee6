//! The one error type of `lpm-protocol`.

/// What can go wrong while framing, encoding or decoding lpm messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A frame announced (or would need) a body longer than the limit.
    #[error(
        "frame of {len} bytes exceeds the limit of {max} bytes; \
         send smaller payloads or raise `max_frame_len` on both sides"
    )]
    FrameTooLarge {
        /// Body length that was announced or produced.
        len: usize,
        /// The configured maximum body length.
        max: usize,
    },
    /// The frame body is not a valid postcard message of the expected kind.
    #[error("malformed frame body: {reason}; the peer speaks another protocol or is broken")]
    Malformed {
        /// What the decoder could not make sense of.
        reason: String,
    },
    /// A message could not be encoded (a payload type serde cannot express in postcard).
    #[error("could not encode message: {reason}")]
    Encode {
        /// Why postcard refused it.
        reason: String,
    },
    /// The peer closed the channel in the middle of a frame.
    #[error("channel closed in the middle of a frame ({buffered} bytes buffered)")]
    Truncated {
        /// Bytes that were received of the incomplete frame.
        buffered: usize,
    },
    /// The environment does not name a usable IPC file descriptor.
    #[error("{var} is {value:?}: {reason}; start this program as an lpm worker")]
    NoChannel {
        /// The variable that was read.
        var: &'static str,
        /// Its value, if any.
        value: Option<String>,
        /// Why it cannot be used.
        reason: String,
    },
    /// A message that declares a file descriptor arrived without one (the
    /// peer sent it with a plain write), or one could not be sent with it.
    #[error(
        "a {message} frame came without the file descriptor it declares; \
         the peer must send it with SCM_RIGHTS on the frame's first byte"
    )]
    MissingFd {
        /// The message's variant name.
        message: &'static str,
    },
    /// The peer passed more file descriptors than its frames claim.
    #[error(
        "the peer passed {queued} file descriptors that no frame claims \
         (at most {max} may wait); it is broken"
    )]
    TooManyFds {
        /// Descriptors received and unclaimed.
        queued: usize,
        /// The bound.
        max: usize,
    },
    /// A codec name (in `LPM_CODEC`, say) that names no codec.
    #[error("unknown payload codec {name:?}; use \"postcard\" or \"json\"")]
    UnknownCodec {
        /// The name given.
        name: String,
    },
    /// A trace context that is not a W3C `traceparent`.
    #[error(
        "{value:?} is not a W3C traceparent ({reason}); \
         expected 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>"
    )]
    InvalidTraceParent {
        /// The value given (its first 80 characters).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An I/O error on the channel.
    #[error("IPC channel I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub(crate) fn malformed(e: postcard::Error) -> Self {
        Error::Malformed {
            reason: e.to_string(),
        }
    }
}
