//! Frames come out whole and in order however the bytes are cut: at every
//! split point, one byte at a time, and at random cuts (proptest).

mod common;

use std::fmt::Debug;

use bytes::BytesMut;
use common::{drain, encode_all, every_to_supervisor, every_to_worker};
use lpm_protocol::{FrameDecoder, DEFAULT_MAX_FRAME_LEN};
use proptest::prelude::*;
use serde::{de::DeserializeOwned, Serialize};

/// Feeds `bytes` in the pieces that `cuts` (sorted offsets) delimit and
/// checks that after each piece exactly the frames it completed come out.
fn decode_in_pieces<T>(msgs: &[T], cuts: &[usize])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let (bytes, ends) = encode_all(msgs, DEFAULT_MAX_FRAME_LEN);
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    for &cut in cuts.iter().chain([&bytes.len()]) {
        buf.extend_from_slice(&bytes[fed..cut]);
        fed = cut;
        out.extend(drain::<T>(&mut decoder, &mut buf).unwrap());
        let complete = ends.iter().filter(|&&end| end <= fed).count();
        assert_eq!(
            out.len(),
            complete,
            "messages out after {fed} of {} bytes",
            bytes.len()
        );
    }
    assert_eq!(out, msgs);
    assert!(buf.is_empty());
}

fn every_split_point<T>(msgs: &[T])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let (bytes, _) = encode_all(msgs, DEFAULT_MAX_FRAME_LEN);
    for cut in 0..=bytes.len() {
        decode_in_pieces(msgs, &[cut]);
    }
}

fn one_byte_at_a_time<T>(msgs: &[T])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let (bytes, _) = encode_all(msgs, DEFAULT_MAX_FRAME_LEN);
    let cuts: Vec<usize> = (1..bytes.len()).collect();
    decode_in_pieces(msgs, &cuts);
}

#[test]
fn to_worker_frames_split_at_every_byte_boundary() {
    every_split_point(&every_to_worker());
}

#[test]
fn to_supervisor_frames_split_at_every_byte_boundary() {
    every_split_point(&every_to_supervisor());
}

#[test]
fn to_worker_frames_fed_one_byte_at_a_time() {
    one_byte_at_a_time(&every_to_worker());
}

#[test]
fn to_supervisor_frames_fed_one_byte_at_a_time() {
    one_byte_at_a_time(&every_to_supervisor());
}

/// Random cut points into the encoding of `len` bytes, sorted.
fn cuts(len: usize, picks: &[prop::sample::Index]) -> Vec<usize> {
    let mut cuts: Vec<usize> = picks.iter().map(|i| i.index(len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

proptest! {
    #[test]
    fn to_worker_survives_split_anywhere(
        msgs in prop::collection::vec(common::to_worker(), 1..6),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let (bytes, _) = encode_all(&msgs, DEFAULT_MAX_FRAME_LEN);
        decode_in_pieces(&msgs, &cuts(bytes.len(), &picks));
    }

    #[test]
    fn to_supervisor_survives_split_anywhere(
        msgs in prop::collection::vec(common::to_supervisor(), 1..6),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let (bytes, _) = encode_all(&msgs, DEFAULT_MAX_FRAME_LEN);
        decode_in_pieces(&msgs, &cuts(bytes.len(), &picks));
    }
}
