//! A hash map keyed by [`RequestId`], for the in-flight tables on both sides.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::RequestId;

/// A map from request id to `V` with a hasher that costs almost nothing.
pub type IdMap<V> = HashMap<RequestId, V, BuildHasherDefault<IdHasher>>;

/// Hashes by folding the bytes it is given, 8 at a time.
///
/// Meant for request ids: random UUID v4s made by the supervisor, whose bytes
/// are a hash already, so SipHash would only cost time. It has no defence
/// against chosen keys: use it only where keys are random.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
