//! Length-prefixed framing: a 4-byte little-endian body length, then the body.
//!
//! The decoder is a two-state machine (`Head` → `Body(len)`) that rejects a
//! length over the limit before it reserves a single byte for the body, so a
//! peer cannot make us allocate by lying about a length.

use bytes::{Buf, BytesMut};
use serde::{de::DeserializeOwned, Serialize};

use crate::Error;

/// Size of the length prefix in bytes.
pub const HEADER_LEN: usize = 4;

/// Default limit on a frame body: 16 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Appends one frame carrying `msg` to `out`.
///
/// Many frames can be appended to the same buffer and written with one
/// syscall. On error `out` is left as it was.
///
/// # Errors
///
/// [`Error::FrameTooLarge`] when the body would exceed `max_frame_len`,
/// [`Error::Encode`] when postcard cannot encode `msg`.
///
/// # Examples
///
/// ```
/// use lpm_protocol::{encode_frame, FrameDecoder, ToSupervisor, DEFAULT_MAX_FRAME_LEN};
///
/// let mut out = Vec::new();
/// encode_frame(&ToSupervisor::Ready, &mut out, DEFAULT_MAX_FRAME_LEN).unwrap();
/// assert_eq!(out, [1, 0, 0, 0, 1]); // length 1, variant 1
///
/// let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
/// let mut buf = bytes::BytesMut::from(&out[..]);
/// assert_eq!(decoder.decode::<ToSupervisor>(&mut buf).unwrap(), Some(ToSupervisor::Ready));
/// ```
pub fn encode_frame<T: Serialize>(
    msg: &T,
    out: &mut Vec<u8>,
    max_frame_len: usize,
) -> Result<(), Error> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    if let Err(e) = append_postcard(msg, out) {
        out.truncate(start);
        return Err(Error::Encode {
            reason: e.to_string(),
        });
    }
    let len = out.len() - start - HEADER_LEN;
    if len > max_frame_len {
        out.truncate(start);
        return Err(Error::FrameTooLarge {
            len,
            max: max_frame_len,
        });
    }
    let Ok(prefix) = u32::try_from(len) else {
        out.truncate(start);
        return Err(Error::FrameTooLarge {
            len,
            max: max_frame_len,
        });
    };
    out[start..start + HEADER_LEN].copy_from_slice(&prefix.to_le_bytes());
    Ok(())
}

/// Encodes `msg` as a single frame in a new buffer.
///
/// # Errors
///
/// As [`encode_frame`].
pub fn frame<T: Serialize>(msg: &T, max_frame_len: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    encode_frame(msg, &mut out, max_frame_len)?;
    Ok(out)
}

/// Appends `value` in postcard to `out`: byte strings are copied with one
/// `memcpy` (postcard's own `to_extend` copies them byte by byte), and
/// frames share one buffer.
pub(crate) fn append_postcard<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> postcard::Result<()> {
    postcard::serialize_with_flavor(value, Append(out))
}

struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Head,
    Body(usize),
}

/// Incremental frame decoder: feed it bytes, take whole messages out.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_len: usize,
    state: State,
}

impl FrameDecoder {
    /// A decoder that rejects bodies longer than `max_frame_len`.
    pub fn new(max_frame_len: usize) -> Self {
        Self {
            max_frame_len,
            state: State::Head,
        }
    }

    /// The body length limit.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Takes the next whole frame out of `buf`, if there is one.
    ///
    /// Returns `Ok(None)` when more bytes are needed.
    ///
    /// # Errors
    ///
    /// [`Error::FrameTooLarge`] as soon as a header announces too long a body
    /// (nothing is reserved for it), [`Error::Malformed`] when a body does not
    /// decode as `T` or has bytes left over. After an error the stream is out
    /// of sync and must be closed.
    pub fn decode<T: DeserializeOwned>(&mut self, buf: &mut BytesMut) -> Result<Option<T>, Error> {
        let Some(len) = self.next_len(buf)? else {
            return Ok(None);
        };
        // Decoded in place, then skipped: no `split_to`, so the buffer stays
        // uniquely owned (no shared-mode promotion, no refcount per frame).
        let (msg, rest) = postcard::take_from_bytes::<T>(&buf[..len]).map_err(Error::malformed)?;
        if !rest.is_empty() {
            return Err(Error::Malformed {
                reason: format!("{} trailing bytes after the message", rest.len()),
            });
        }
        buf.advance(len);
        self.state = State::Head;
        Ok(Some(msg))
    }

    /// The length of the next whole frame body at the front of `buf` (its
    /// header already consumed), if `buf` holds all of it.
    fn next_len(&mut self, buf: &mut BytesMut) -> Result<Option<usize>, Error> {
        if let State::Head = self.state {
            if buf.len() < HEADER_LEN {
                return Ok(None);
            }
            let len = buf.get_u32_le() as usize;
            if len > self.max_frame_len {
                return Err(Error::FrameTooLarge {
                    len,
                    max: self.max_frame_len,
                });
            }
            buf.reserve(len.saturating_sub(buf.len()));
            self.state = State::Body(len);
        }
        match self.state {
            State::Body(len) if buf.len() >= len => Ok(Some(len)),
            _ => Ok(None),
        }
    }

    /// Bytes of an incomplete frame that `buf` still holds, for [`Error::Truncated`].
    pub fn pending(&self, buf: &BytesMut) -> usize {
        match self.state {
            State::Head => buf.len(),
            State::Body(_) => buf.len() + HEADER_LEN,
        }
    }
}
