//! `postcard` decoding of one message body (`ToWorker` and `ToSupervisor`)
//! on arbitrary bytes.
//!
//! Checks, for each of the two message types:
//! - decoding never panics (and never aborts on a huge allocation: lengths
//!   are bounded by the input);
//! - `from_bytes` and `take_from_bytes` agree (the frame decoder uses the
//!   latter and rejects leftovers);
//! - a message that decodes re-encodes to no more bytes than it was read
//!   from (postcard's canonical form is the shortest), decodes back to an
//!   equal message (NaN-aware, bit-exact for `f64`), and its encoding is a
//!   fixed point (encode ∘ decode ∘ encode = encode);
//! - `lpm_protocol::frame` wraps exactly that encoding behind a u32 LE length.

#![no_main]

mod common;

use common::Message;
use libfuzzer_sys::fuzz_target;
use lpm_protocol::{frame, ToSupervisor, ToWorker, DEFAULT_MAX_FRAME_LEN, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    check::<ToWorker>(data);
    check::<ToSupervisor>(data);
});

fn check<T: Message>(data: &[u8]) {
    let whole = postcard::from_bytes::<T>(data);
    let taken = postcard::take_from_bytes::<T>(data);
    let (msg, rest) = match (whole, taken) {
        (Err(_), Err(_)) => return,
        (Ok(a), Ok((b, rest))) => {
            assert!(a.same(&b), "from_bytes {a:?} != take_from_bytes {b:?}");
            (b, rest)
        }
        (a, b) => panic!("from_bytes and take_from_bytes disagree: {a:?} vs {b:?}"),
    };
    let read = data.len() - rest.len();
    assert!(read > 0, "a message decoded from zero bytes: {msg:?}");

    let enc = postcard::to_allocvec(&msg).expect("a decoded message re-encodes");
    assert!(
        enc.len() <= read,
        "re-encoding of {msg:?} is longer ({}) than its input ({read}): {:02x?} -> {enc:02x?}",
        enc.len(),
        &data[..read]
    );

    let (back, left) = postcard::take_from_bytes::<T>(&enc).expect("a re-encoded message decodes");
    assert!(left.is_empty(), "{} bytes left after decoding a re-encoding", left.len());
    assert!(back.same(&msg), "round trip changed {msg:?} into {back:?}");
    assert_eq!(
        postcard::to_allocvec(&back).expect("re-encodes"),
        enc,
        "canonical encoding is not a fixed point"
    );

    let framed = frame(&msg, DEFAULT_MAX_FRAME_LEN).expect("fits in the default limit");
    assert_eq!(&framed[..HEADER_LEN], &(enc.len() as u32).to_le_bytes());
    assert_eq!(&framed[HEADER_LEN..], &enc[..]);
}
