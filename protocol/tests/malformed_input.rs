//! Bodies that are not exactly one message give `Error::Malformed`, and no
//! byte sequence makes the decoder panic.

mod common;

use bytes::BytesMut;
use common::{TO_SUPERVISOR_VARIANTS, TO_WORKER_VARIANTS};
use lpm_protocol::{frame, Error, FrameDecoder, ToSupervisor, ToWorker, DEFAULT_MAX_FRAME_LEN};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// A frame around `body`, decoded as `T`.
fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<Option<T>, Error> {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
    buf.extend_from_slice(body);
    FrameDecoder::new(DEFAULT_MAX_FRAME_LEN).decode(&mut buf)
}

fn assert_malformed<T: DeserializeOwned + Debug>(body: &[u8]) {
    let result = decode_body::<T>(body);
    assert!(
        matches!(result, Err(Error::Malformed { .. })),
        "body {body:02x?}: {result:?}"
    );
}

#[test]
fn trailing_bytes_are_malformed() {
    for msg in [
        ToSupervisor::Ready,
        ToSupervisor::Hello {
            version: 1,
            pid: 7,
            codec: lpm_protocol::Codec::Json,
            calls: vec!["x".into()],
            takes_fds: true,
        },
    ] {
        let mut body = frame(&msg, DEFAULT_MAX_FRAME_LEN).unwrap().split_off(4);
        assert_eq!(decode_body::<ToSupervisor>(&body).unwrap(), Some(msg));
        body.push(0);
        assert_malformed::<ToSupervisor>(&body);
    }
    let mut body = frame(&ToWorker::HardKill, DEFAULT_MAX_FRAME_LEN)
        .unwrap()
        .split_off(4);
    body.extend_from_slice(&[5, 5]);
    match decode_body::<ToWorker>(&body) {
        Err(Error::Malformed { reason }) => {
            assert!(reason.contains("2 trailing bytes"), "{reason}")
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn unknown_variant_index_is_malformed() {
    // The first index past the last variant.
    assert_malformed::<ToSupervisor>(&[TO_SUPERVISOR_VARIANTS]);
    assert_malformed::<ToWorker>(&[TO_WORKER_VARIANTS]);
    // A varint index that never ends.
    assert_malformed::<ToWorker>(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80]);
}

#[test]
fn empty_and_short_bodies_are_malformed() {
    assert_malformed::<ToSupervisor>(&[]);
    assert_malformed::<ToWorker>(&[]);
    // Hello without its pid.
    assert_malformed::<ToSupervisor>(&[0, 1]);
    // Response whose id claims 16 bytes and carries 3.
    assert_malformed::<ToSupervisor>(&[3, 16, 1, 2, 3]);
    // A uuid must be 16 bytes, not 15.
    let mut ack = vec![5, 15];
    ack.extend_from_slice(&[0; 15]);
    assert_malformed::<ToSupervisor>(&ack);
    // Option tag other than 0 or 1.
    assert_malformed::<ToSupervisor>(&[6, 0, 0, 2]);
    // Cancel without its id.
    assert_malformed::<ToWorker>(&[6]);
    // Event whose name is not UTF-8.
    assert_malformed::<ToWorker>(&[2, 2, 0xc3, 0x28, 0]);
}

/// Takes frames out of `bytes` until the decoder wants more or fails.
fn decode_until_stuck<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<usize, Error> {
    let mut decoder = FrameDecoder::new(max);
    let mut buf = BytesMut::from(bytes);
    let mut frames = 0;
    while decoder.decode::<T>(&mut buf)?.is_some() {
        frames += 1;
    }
    Ok(frames)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        max in prop_oneof![Just(DEFAULT_MAX_FRAME_LEN), 0..64usize],
    ) {
        let _ = decode_until_stuck::<ToSupervisor>(&bytes, max);
        let _ = decode_until_stuck::<ToWorker>(&bytes, max);
    }

    /// Random bodies behind a correct header reach postcard: each gives a
    /// message or `Malformed`, never a wait for more bytes nor a panic.
    #[test]
    fn arbitrary_bodies_decode_or_are_malformed(
        body in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        for result in [
            decode_body::<ToSupervisor>(&body).map(|m| m.is_some()),
            decode_body::<ToWorker>(&body).map(|m| m.is_some()),
        ] {
            prop_assert!(
                matches!(result, Ok(true) | Err(Error::Malformed { .. })),
                "{:?}", result
            );
        }
    }
}
