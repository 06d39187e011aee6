//! `FrameDecoder` on an arbitrary byte stream, delivered in arbitrary chunks.
//!
//! Input layout: byte 0 picks the `max_frame_len`, byte 1 the chunking
//! pattern, the rest is the stream. The stream goes through a decoder for
//! `ToWorker` and, separately, one for `ToSupervisor`.
//!
//! A reference model cuts the whole stream into frames up front (header,
//! limit check, body, `postcard::take_from_bytes`, no leftovers) and lists
//! what a decoder must report, in order. The decoder fed in chunks must:
//! - never panic;
//! - report exactly the model's events, each as soon as its bytes are in
//!   the buffer and not before (`Ok(None)` only while the next event's
//!   bytes are incomplete): frames with an equal message, `FrameTooLarge`
//!   with the announced length as soon as the 4 header bytes are in, and
//!   `Malformed` once the whole bad body is in;
//! - never yield a frame whose body (measured by the bytes it consumed) is
//!   longer than the limit;
//! - make progress: every frame consumes its header and body, so the
//!   decode loop ends; after an error a few more calls (a careless caller)
//!   neither panic nor yield a frame over the limit nor spin without
//!   consuming;
//! - at the end of the stream, `pending` counts the bytes of the incomplete
//!   frame (what `Error::Truncated` reports);
//! - every frame re-encodes with `encode_frame` under the same limit (the
//!   canonical encoding is never longer than what was received), appending
//!   to the output buffer, and decodes back to an equal message (NaN-aware
//!   for `Stats`).

#![no_main]

mod common;

use bytes::BytesMut;
use common::Message;
use libfuzzer_sys::fuzz_target;
use lpm_protocol::{
    encode_frame, frame, Error, FrameDecoder, ToSupervisor, ToWorker, DEFAULT_MAX_FRAME_LEN,
    HEADER_LEN,
};

/// Limits for byte 0 values 0xf0..=0xff; below that, the byte is the limit.
const LARGE_LIMITS: [usize; 16] = [
    240,
    255,
    256,
    1000,
    1024,
    4095,
    4096,
    65535,
    65536,
    1 << 20,
    DEFAULT_MAX_FRAME_LEN - 1,
    DEFAULT_MAX_FRAME_LEN,
    DEFAULT_MAX_FRAME_LEN,
    DEFAULT_MAX_FRAME_LEN,
    DEFAULT_MAX_FRAME_LEN,
    DEFAULT_MAX_FRAME_LEN,
];

fuzz_target!(|data: &[u8]| {
    let [limit_sel, chunk_sel, stream @ ..] = data else {
        return;
    };
    let max = match *limit_sel {
        b @ 0..=0xef => usize::from(b),
        b => LARGE_LIMITS[usize::from(b & 0x0f)],
    };
    let chunks = chunk(stream, *chunk_sel);
    run::<ToWorker>(stream, &chunks, max);
    run::<ToSupervisor>(stream, &chunks, max);
});

/// Cuts `stream` into the pieces successive reads would return.
///
/// Top two bits of `sel`: 0 = all at once, 1 = fixed size `(sel & 63) + 1`,
/// 2 = one byte at a time, 3 = pseudo-random sizes 1..=32 seeded by `sel`.
fn chunk(stream: &[u8], sel: u8) -> Vec<&[u8]> {
    let mut rng = u32::from(sel) | 0x9e37_7900; // xorshift32 state, never 0
    let mut next_size = || -> usize {
        match sel >> 6 {
            0 => usize::MAX,
            1 => usize::from(sel & 63) + 1,
            2 => 1,
            _ => {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                (rng % 32) as usize + 1
            }
        }
    };
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = next_size().min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

/// What a decoder must report, in order. `ready_at`: the stream offset
/// (bytes fed so far) from which the event can be reported.
#[derive(Debug)]
enum Event<T> {
    Frame { ready_at: usize, msg: T },
    TooLarge { ready_at: usize, len: usize },
    Malformed { ready_at: usize },
}

impl<T> Event<T> {
    fn ready_at(&self) -> usize {
        match self {
            Event::Frame { ready_at, .. }
            | Event::TooLarge { ready_at, .. }
            | Event::Malformed { ready_at } => *ready_at,
        }
    }
}

/// The reference cut of the whole stream, independent of chunking.
fn model<T: Message>(stream: &[u8], max: usize) -> Vec<Event<T>> {
    let mut events = Vec::new();
    let mut pos = 0;
    while let Some(head) = stream.get(pos..pos + HEADER_LEN) {
        let len = u32::from_le_bytes(head.try_into().unwrap()) as usize;
        let body_at = pos + HEADER_LEN;
        if len > max {
            events.push(Event::TooLarge { ready_at: body_at, len });
            break;
        }
        let Some(body) = stream.get(body_at..body_at + len) else {
            break; // incomplete: ends the stream
        };
        let ready_at = body_at + len;
        match postcard::take_from_bytes::<T>(body) {
            Ok((msg, [])) => events.push(Event::Frame { ready_at, msg }),
            _ => {
                events.push(Event::Malformed { ready_at });
                break;
            }
        }
        pos = ready_at;
    }
    events
}

fn run<T: Message>(stream: &[u8], chunks: &[&[u8]], max: usize) {
    let events = model::<T>(stream, max);
    let mut decoder = FrameDecoder::new(max);
    assert_eq!(decoder.max_frame_len(), max);
    let mut buf = BytesMut::new();
    let mut fed = 0; // bytes of the stream put into `buf`
    let mut frame_start = 0; // stream offset where the current frame begins
    let mut next = 0; // index of the next expected event
    // Each frame consumes at least its header, so this bounds the decode calls.
    let mut calls_left = stream.len() / HEADER_LEN + chunks.len() + 2;

    for piece in chunks {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            calls_left = calls_left
                .checked_sub(1)
                .expect("decode loop does not terminate");
            let result = decoder.decode::<T>(&mut buf);
            let consumed = fed - buf.len();
            match result {
                Ok(None) => {
                    if let Some(ev) = events.get(next) {
                        assert!(
                            fed < ev.ready_at(),
                            "Ok(None) with {fed} bytes fed, but {ev:?} is complete"
                        );
                    }
                    break;
                }
                Ok(Some(msg)) => {
                    let body = consumed
                        .checked_sub(frame_start + HEADER_LEN)
                        .expect("a frame consumed less than its header");
                    assert!(body <= max, "frame body of {body} bytes over the limit {max}");
                    match events.get(next) {
                        Some(Event::Frame { ready_at, msg: want }) => {
                            assert_eq!(consumed, *ready_at, "frame ends at the wrong offset");
                            assert!(msg.same(want), "decoded {msg:?}, model has {want:?}");
                        }
                        other => panic!("decoder yielded {msg:?}, model expects {other:?}"),
                    }
                    roundtrip(&msg, body, max);
                    next += 1;
                    frame_start = consumed;
                }
                Err(e) => {
                    match (&e, events.get(next)) {
                        (
                            Error::FrameTooLarge { len, max: m },
                            Some(Event::TooLarge { ready_at, len: want }),
                        ) => {
                            assert_eq!((*len, *m), (*want, max), "{e}");
                            assert!(fed >= *ready_at);
                        }
                        (Error::Malformed { .. }, Some(Event::Malformed { ready_at })) => {
                            assert!(fed >= *ready_at);
                        }
                        (_, other) => panic!("decoder failed with {e:?}, model expects {other:?}"),
                    }
                    after_error::<T>(&mut decoder, &mut buf, max);
                    return;
                }
            }
        }
    }
    assert_eq!(next, events.len(), "stream ended before the model's events were seen");
    assert_eq!(
        decoder.pending(&buf),
        stream.len() - frame_start,
        "pending must count the incomplete frame's bytes"
    );
}

/// A careless caller keeps decoding after an error, with the rest of the
/// stream fed or not: no panic, no frame over the limit, and every frame
/// consumes bytes (a few calls, so a decoder stuck on the same error, as
/// after `Malformed`, is fine: the caller has to stop on the first error).
fn after_error<T: Message>(decoder: &mut FrameDecoder, buf: &mut BytesMut, max: usize) {
    for _ in 0..4 {
        let before = buf.len();
        match decoder.decode::<T>(buf) {
            Ok(Some(_)) => {
                let used = before - buf.len();
                assert!(used > 0, "a frame out of nothing");
                // `used` may include a header consumed by this call or not.
                assert!(
                    used <= max + HEADER_LEN,
                    "frame of {used} bytes after an error, limit {max}"
                );
            }
            Ok(None) | Err(_) => {}
        }
    }
}

/// A decoded message re-encodes under the same limit and decodes back equal.
fn roundtrip<T: Message>(msg: &T, body_len: usize, max: usize) {
    const PREFIX: [u8; 3] = [0xaa; 3];
    let mut out = PREFIX.to_vec();
    if let Err(e) = encode_frame(msg, &mut out, max) {
        panic!("{msg:?} arrived in a {body_len}-byte body but cannot be re-encoded under {max}: {e}");
    }
    assert_eq!(out[..3], PREFIX, "encode_frame must append");
    let bytes = &out[3..];
    let len = u32::from_le_bytes(bytes[..HEADER_LEN].try_into().unwrap()) as usize;
    assert_eq!(len, bytes.len() - HEADER_LEN, "header does not match the body");
    assert!(len <= body_len, "re-encoding ({len}) longer than the received body ({body_len})");

    let mut buf = BytesMut::from(bytes);
    let back = FrameDecoder::new(max)
        .decode::<T>(&mut buf)
        .expect("a re-encoded frame decodes")
        .expect("a whole re-encoded frame is a frame");
    assert!(buf.is_empty(), "bytes left after a re-encoded frame");
    assert!(back.same(msg), "round trip changed {msg:?} into {back:?}");
    assert_eq!(frame(&back, max).expect("re-encodes"), bytes, "not a fixed point");
}
