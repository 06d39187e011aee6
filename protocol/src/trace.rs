//! The trace context a request carries to its worker
//! ([`RequestFrame::trace`](crate::RequestFrame::trace)), in the W3C
//! `traceparent` form.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A W3C [`traceparent`](https://www.w3.org/TR/trace-context/#traceparent-header):
/// the trace a request belongs to, the span that sent it, and the trace
/// flags (bit 0: sampled).
///
/// Written `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, the
/// form of the HTTP header, so a service passes an incoming header on as
/// it came.
///
/// # Examples
///
/// ```
/// use lpm_protocol::TraceParent;
///
/// let caller: TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse()?;
/// assert!(caller.is_sampled());
/// let child = caller.child(0x00f0_67aa_0ba9_02b7);
/// assert_eq!(child.trace_id(), caller.trace_id());
/// assert_eq!(child.to_string(), "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01");
/// # Ok::<(), lpm_protocol::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: u128,
    parent_id: u64,
    flags: u8,
}

/// The `sampled` bit of [`TraceParent::flags`].
pub const TRACE_SAMPLED: u8 = 0x01;

/// The length of a version-00 `traceparent`.
const LEN: usize = 55;

impl TraceParent {
    /// A context from its parts.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTraceParent`] when either id is zero, which the W3C
    /// format reserves for "invalid".
    pub fn new(trace_id: u128, parent_id: u64, flags: u8) -> Result<Self, Error> {
        if trace_id == 0 {
            return Err(invalid(&trace_id.to_string(), "the trace id is zero"));
        }
        if parent_id == 0 {
            return Err(invalid(&parent_id.to_string(), "the parent id is zero"));
        }
        Ok(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The trace every span of the request belongs to.
    pub fn trace_id(&self) -> u128 {
        self.trace_id
    }

    /// The span that sent the request.
    pub fn parent_id(&self) -> u64 {
        self.parent_id
    }

    /// The trace flags (bit 0: [`TRACE_SAMPLED`]).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the caller records this trace.
    pub fn is_sampled(&self) -> bool {
        self.flags & TRACE_SAMPLED != 0
    }

    /// The context a span `span_id` of the same trace passes on: same trace
    /// and flags, that span as the parent. A zero `span_id` (invalid) keeps
    /// this context's parent.
    #[must_use]
    pub fn child(&self, span_id: u64) -> Self {
        Self {
            parent_id: if span_id == 0 {
                self.parent_id
            } else {
                span_id
            },
            ..*self
        }
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

impl FromStr for TraceParent {
    type Err = Error;

    /// Parses the header's value as the W3C recommendation says: lowercase
    /// hex, version `ff` refused, and a version above `00` read for the
    /// fields `00` has (a longer value must go on with `-`).
    fn from_str(value: &str) -> Result<Self, Error> {
        let bytes = value.as_bytes();
        if bytes.len() < LEN {
            return Err(invalid(value, "shorter than 55 characters"));
        }
        // Also makes every slice below fall on a character boundary.
        if !bytes[..LEN].is_ascii() {
            return Err(invalid(value, "not ASCII"));
        }
        let version = hex(&value[0..2]).ok_or_else(|| invalid(value, "the version is not hex"))?;
        if version == 0xff {
            return Err(invalid(value, "version ff is invalid"));
        }
        if version == 0 && bytes.len() != LEN {
            return Err(invalid(value, "version 00 is exactly 55 characters"));
        }
        if bytes.len() > LEN && bytes[LEN] != b'-' {
            return Err(invalid(value, "fields after the flags must follow a '-'"));
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return Err(invalid(value, "the fields are not separated by '-'"));
        }
        let trace_id = hex(&value[3..35])
            .ok_or_else(|| invalid(value, "the trace id is not 32 hex digits"))?;
        let parent_id = hex(&value[36..52])
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| invalid(value, "the parent id is not 16 hex digits"))?;
        let flags = hex(&value[53..55])
            .and_then(|v| u8::try_from(v).ok())
            .ok_or_else(|| invalid(value, "the flags are not 2 hex digits"))?;
        Self::new(trace_id, parent_id, flags).map_err(|_| invalid(value, "an id is zero"))
    }
}

/// Lowercase hex digits only, as the format requires.
fn hex(digits: &str) -> Option<u128> {
    let lowercase = digits
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !lowercase || digits.is_empty() {
        return None;
    }
    u128::from_str_radix(digits, 16).ok()
}

fn invalid(value: &str, reason: &'static str) -> Error {
    Error::InvalidTraceParent {
        value: value.chars().take(80).collect(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_writes_the_w3c_example() {
        let parsed: TraceParent = EXAMPLE.parse().unwrap();
        assert_eq!(parsed.trace_id(), 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736);
        assert_eq!(parsed.parent_id(), 0x00f0_67aa_0ba9_02b7);
        assert!(parsed.is_sampled());
        assert_eq!(parsed.to_string(), EXAMPLE);
    }

    #[test]
    fn reads_a_later_version_by_the_fields_it_knows() {
        let later = format!("cc{}-what-comes-next", &EXAMPLE[2..]);
        let parsed: TraceParent = later.parse().unwrap();
        assert_eq!(parsed.to_string(), EXAMPLE);
    }

    #[test]
    fn refuses_what_the_recommendation_refuses() {
        let cases = [
            ("", "short"),
            (&EXAMPLE[..54], "short"),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "version ff",
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "uppercase",
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "zero trace",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "zero parent",
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "separator",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                "00 too long",
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                "no dash after",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                "not hex",
            ),
            (
                "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "sign",
            ),
            (
                "0é-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                "not ASCII",
            ),
        ];
        for (value, why) in cases {
            let error = value.parse::<TraceParent>().unwrap_err();
            assert!(
                matches!(error, Error::InvalidTraceParent { .. }),
                "{why}: {error}"
            );
        }
    }

    #[test]
    fn a_child_keeps_the_trace_and_the_flags() {
        let parent: TraceParent = EXAMPLE.parse().unwrap();
        let child = parent.child(7);
        assert_eq!(
            (child.trace_id(), child.parent_id(), child.flags()),
            (parent.trace_id(), 7, parent.flags())
        );
        assert_eq!(parent.child(0), parent);
    }
}
