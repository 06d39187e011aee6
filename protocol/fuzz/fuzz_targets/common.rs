//! Shared by both targets: message equality that survives a round trip.

use lpm_protocol::{ToSupervisor, ToWorker};
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;

/// A protocol message with an equality that holds across encode/decode.
///
/// `ToSupervisor::Stats` carries `f64`s, and `NaN != NaN`, so derived
/// `PartialEq` would report a correct round trip of a NaN as a failure.
/// Postcard writes an `f64` as its 8 IEEE 754 bytes, so a round trip must
/// keep every bit: floats are compared with `to_bits` (stricter than `==`,
/// which also confuses `0.0` and `-0.0`).
pub trait Message: Serialize + DeserializeOwned + Debug {
    fn same(&self, other: &Self) -> bool;
}

impl Message for ToWorker {
    fn same(&self, other: &Self) -> bool {
        // No floats anywhere in `ToWorker`.
        self == other
    }
}

impl Message for ToSupervisor {
    fn same(&self, other: &Self) -> bool {
        match (self, other) {
            (ToSupervisor::Stats(a), ToSupervisor::Stats(b)) => {
                a.len() == b.len()
                    && a
                        .iter()
                        .zip(b)
                        .all(|((ka, va), (kb, vb))| ka == kb && va.to_bits() == vb.to_bits())
            }
            _ => self == other,
        }
    }
}
