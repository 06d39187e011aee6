//! Every message variant survives `encode_frame` → `FrameDecoder::decode`,
//! and its body starts with the variant index that WIRE.md documents.

mod common;

use std::collections::BTreeSet;
use std::fmt::Debug;

use bytes::BytesMut;
use common::{
    every_to_supervisor, every_to_worker, to_supervisor_index, to_worker_index,
    TO_SUPERVISOR_VARIANTS, TO_WORKER_VARIANTS,
};
use lpm_protocol::{frame, FrameDecoder, ToSupervisor, DEFAULT_MAX_FRAME_LEN, HEADER_LEN};
use serde::{de::DeserializeOwned, Serialize};

fn round_trip<T>(msg: &T, index: u8)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = frame(msg, DEFAULT_MAX_FRAME_LEN).unwrap();
    let body_len = u32::from_le_bytes(bytes[..HEADER_LEN].try_into().unwrap()) as usize;
    assert_eq!(
        body_len,
        bytes.len() - HEADER_LEN,
        "length prefix of {msg:?}"
    );
    assert_eq!(bytes[HEADER_LEN], index, "variant index of {msg:?}");

    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(decoder.decode::<T>(&mut buf).unwrap().as_ref(), Some(msg));
    assert!(
        buf.is_empty(),
        "the frame of {msg:?} was not consumed whole"
    );
    assert_eq!(decoder.decode::<T>(&mut buf).unwrap(), None);
}

#[test]
fn every_to_worker_variant_round_trips() {
    let samples = every_to_worker();
    for msg in &samples {
        round_trip(msg, to_worker_index(msg));
    }
    let covered: BTreeSet<u8> = samples.iter().map(to_worker_index).collect();
    assert_eq!(covered, (0..TO_WORKER_VARIANTS).collect());
}

#[test]
fn every_to_supervisor_variant_round_trips() {
    let samples = every_to_supervisor();
    for msg in &samples {
        round_trip(msg, to_supervisor_index(msg));
    }
    let covered: BTreeSet<u8> = samples.iter().map(to_supervisor_index).collect();
    assert_eq!(covered, (0..TO_SUPERVISOR_VARIANTS).collect());
}

/// NaN is not equal to itself, so the proptests leave it out; check its bits here.
#[test]
fn nan_stats_keep_their_bits() {
    let nan = f64::from_bits(0x7ff8_0000_dead_beef);
    let bytes = frame(
        &ToSupervisor::Stats(vec![("nan".into(), nan)]),
        DEFAULT_MAX_FRAME_LEN,
    )
    .unwrap();
    let mut buf = BytesMut::from(&bytes[..]);
    let decoded = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN)
        .decode::<ToSupervisor>(&mut buf)
        .unwrap();
    let Some(ToSupervisor::Stats(stats)) = decoded else {
        panic!("expected Stats, got {decoded:?}");
    };
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].0, "nan");
    assert_eq!(stats[0].1.to_bits(), nan.to_bits());
}
